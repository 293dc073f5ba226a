"""SQL implementations of the relational stores (SQLite and PostgreSQL through SQLAlchemy Core)."""
