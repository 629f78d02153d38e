"""``auto`` chooses pgvector on a PostgreSQL whose operator created the extension in Choir's database,
and nowhere else (a Debian PostgreSQL without it keeps the embedded index; explicit engines stand)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy

from choir.config import Settings
from choir.store.vectors.pgvector import PgvectorIndex, engine_for
from choir.store.vectors.protocol import VectorIndexError


def test_auto_chooses_pgvector_where_the_extension_is_created(pgvector_url: str, tmp_path: Path) -> None:
    engine = sqlalchemy.create_engine(pgvector_url)
    try:
        assert engine_for(Settings(data_dir=tmp_path, database_url=pgvector_url), engine) == "pgvector"
        named = Settings(data_dir=tmp_path, database_url=pgvector_url, vector_engine="sql")
        assert engine_for(named, engine) == "sql"
        qdrant = Settings(data_dir=tmp_path, database_url=pgvector_url, qdrant_url="http://127.0.0.1:1")
        assert engine_for(qdrant, engine) == "qdrant"
    finally:
        engine.dispose()


def test_auto_keeps_the_edge_index_without_the_extension(postgres_url: str, tmp_path: Path) -> None:
    engine = sqlalchemy.create_engine(postgres_url)
    try:
        assert engine_for(Settings(data_dir=tmp_path, database_url=postgres_url), engine) == "edge"
        with pytest.raises(VectorIndexError, match="no pgvector extension"):
            PgvectorIndex(engine, 8)
    finally:
        engine.dispose()


def test_pgvector_needs_postgresql(tmp_path: Path) -> None:
    with pytest.raises(VectorIndexError, match="needs PostgreSQL"):
        PgvectorIndex(f"sqlite:///{tmp_path / 'x.db'}", 8)
