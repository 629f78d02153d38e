"""Alembic migrations, run from code: `Store.migrate()` upgrades any store to head."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, text

MIGRATIONS = Path(__file__).parent / "migrations"


def config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
        cfg.attributes["engine"] = engine
    return cfg


# Held for the transaction that migrates (and the one that writes genesis): several processes
# starting at once on a new PostgreSQL database would otherwise race to create the same tables.
SETUP_LOCK_KEY: Final = 0x43484F49524D  # "CHOIRM"


def hold_setup_lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SETUP_LOCK_KEY})


def upgrade(engine: Engine) -> None:
    with engine.begin() as conn:
        hold_setup_lock(conn)
        cfg = config(engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
