"""Storage: the relational schema, the database runner, and the stores behind small Protocols."""
