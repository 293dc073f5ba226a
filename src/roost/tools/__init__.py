"""Tools that drive a running Roost over its HTTP API (replays, demos)."""
