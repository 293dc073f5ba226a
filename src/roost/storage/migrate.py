"""Bring a database to the newest schema with Alembic (the same migrations for both engines)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from roost.storage.database import Database

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant will do: processes migrating one PostgreSQL database take turns on this lock.
MIGRATION_LOCK = 0x524F4F5354  # "ROOST"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(db: Database) -> None:
    """Apply every pending migration, on the writer's engine so SQLite sees one writer.
    Processes that start together on PostgreSQL (web processes, workers) migrate one at a
    time: the others wait for the lock, then find nothing left to do."""
    with db.write_engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        config = alembic_config(db.url)
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
