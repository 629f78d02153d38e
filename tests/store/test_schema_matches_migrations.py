"""The tables the code declares (``store.schema``) are the tables the migrations make, on SQLite and on
PostgreSQL: a column or index added to one and not the other fails here, not in production."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from choir.store import schema
from choir.store.sql import Store

# Made by migration 0006 outside the declared tables: the keyword index (FTS5 tables, a GIN index).
KEYWORD_INDEX = ("messages_fts", "ix_messages_fts")


def _name(diff: Any) -> str:
    item = diff[1] if isinstance(diff, tuple) else diff[0][1]
    return str(getattr(item, "name", ""))


# SQLite cannot reflect an expression index (lower(display_name)); PostgreSQL compares it.
@pytest.mark.filterwarnings("ignore:.*expression-based index")
@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_the_migrated_store_is_the_declared_schema(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'choir.db'}"
        if engine == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    store = Store(url)
    try:
        store.migrate()
        with store.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": False})
            diffs = [
                d
                for d in compare_metadata(context, schema.metadata)
                if not _name(d).startswith(KEYWORD_INDEX)
            ]
    finally:
        store.close()
    assert diffs == []
