"""The shared engine in the SQL database itself (`CHOIR_VECTOR_ENGINE=sql`): one index for every
process of a deployment, with no service beside PostgreSQL.

The points live in the `vector_points` table of Choir's own database; that table is the index. Each
process keeps a replica of it in memory (a float32 matrix, ~1.5 KB a point) and searches the
replica exactly, after applying the table's writes it has not seen yet (one indexed read of
`rev > last`, usually empty). Every write takes the next revision under a table lock, so revisions
increase in commit order: a replica that has applied revision r holds exactly the table as of r, and
two processes that have both caught up answer the same query with the same hits.

Exact search costs a matrix-vector product per query (~5 ms for 100k points of 384 dimensions on one
core), which suits a community up to a few hundred thousand messages; past that a Qdrant server
(`CHOIR_QDRANT_URL`) searches an HNSW graph instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, func, select, text, update

from choir.store import schema
from choir.store.sql import make_engine, upsert_for
from choir.store.vectors.protocol import (
    _ORIGIN_HUMAN,
    DEFAULT_DIM,
    SCROLL_PAGE_SIZE,
    FloatArray,
    Hit,
    VectorIndexError,
    VectorPoint,
    Visibility,
    _check_co_authors,
    _check_points,
    _check_search,
    _check_vector,
    _check_visibility,
    point_id,
)

_INITIAL_CAPACITY: Final = 1024
# A search reads the table's new writes unless the replica read them this recently: searches come in
# bursts (the indexer measures each new message's novelty), and one read serves a burst.
REFRESH_AGE_S: Final = 0.05
_table = schema.vector_points


class SqlVectorIndex:
    """The `vector_points` table, searched through an in-memory replica kept in revision order."""

    def __init__(
        self, url_or_engine: str | Engine, dim: int = DEFAULT_DIM, *, refresh_age_s: float = REFRESH_AGE_S
    ) -> None:
        self._owns_engine = isinstance(url_or_engine, str)
        self._engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        self._upsert = upsert_for(self._engine.dialect.name)
        self._dim = dim
        self._lock = threading.Lock()
        self._closed = False
        self._rev = 0
        self._refreshed_at = 0.0
        self._refresh_age_s = refresh_age_s
        self._slot_of: dict[str, int] = {}
        self._free: list[int] = []
        self._size = 0
        self._matrix: FloatArray = np.zeros((_INITIAL_CAPACITY, dim), dtype=np.float32)
        self._alive = np.zeros(_INITIAL_CAPACITY, dtype=bool)
        self._public = np.zeros(_INITIAL_CAPACITY, dtype=bool)
        self._human = np.zeros(_INITIAL_CAPACITY, dtype=bool)
        self._payloads: list[dict[str, Any] | None] = [None] * _INITIAL_CAPACITY
        self.refresh()

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def revision(self) -> int:
        """The last revision of the table this process's replica has applied."""
        return self._rev

    def _live(self) -> Engine:
        if self._closed:
            raise VectorIndexError("the vector index is closed")
        return self._engine

    # -- writes: every one takes the next revisions under the table lock ---------------------------

    def _next_rev(self, conn: Connection) -> int:
        if conn.dialect.name == "postgresql":
            # Plain reads go on; another writer waits until this one commits, so it numbers after it.
            conn.execute(text("LOCK TABLE vector_points IN EXCLUSIVE MODE"))
        last = conn.execute(select(func.max(_table.c.rev))).scalar_one_or_none()
        return int(last or 0) + 1

    def upsert(self, points: Sequence[VectorPoint]) -> None:
        rows = _check_points(points, self._dim)
        if not rows:
            return
        # The last point of a batch wins for a repeated message id, as it would one upsert at a time.
        latest = {pid: (vector, payload) for pid, vector, payload in rows}
        with self._live().begin() as conn:
            rev = self._next_rev(conn)
            records = [
                _record(pid, rev + n, vector, payload)
                for n, (pid, (vector, payload)) in enumerate(latest.items())
            ]
            self._upsert(conn, _table, "point_id", records)
        self.refresh()

    def delete(self, message_ids: Sequence[str]) -> None:
        ids = sorted({point_id(m) for m in message_ids})
        if not ids:
            return
        with self._live().begin() as conn:
            rev = self._next_rev(conn)
            present = conn.execute(
                select(_table.c.point_id).where(_table.c.point_id.in_(ids), _table.c.vector.is_not(None))
            ).scalars()
            for n, pid in enumerate(sorted(present)):
                conn.execute(update(_table).where(_table.c.point_id == pid).values(vector=None, rev=rev + n))
        self.refresh()

    def set_thread_meta(self, thread_id: str, co_authors: Sequence[str], visibility: Visibility) -> None:
        _check_visibility(visibility)
        members = _check_co_authors(co_authors)
        with self._live().begin() as conn:
            rev = self._next_rev(conn)
            ids = conn.execute(
                select(_table.c.point_id)
                .where(_table.c.thread_id == thread_id, _table.c.vector.is_not(None))
                .order_by(_table.c.point_id)
            ).scalars()
            for n, pid in enumerate(list(ids)):
                conn.execute(
                    update(_table)
                    .where(_table.c.point_id == pid)
                    .values(co_authors=members, visibility=visibility, rev=rev + n)
                )
        self.refresh()

    # -- the replica ---------------------------------------------------------------------------------

    def refresh(self, *, max_age_s: float = 0.0) -> int:
        """Apply the table's writes after this replica's revision; returns how many there were.
        With ``max_age_s``, a replica read from the table that recently is used as it is."""
        engine = self._live()
        with self._lock:
            if max_age_s and time.monotonic() - self._refreshed_at < max_age_s:
                return 0
            query = select(_table).where(_table.c.rev > self._rev).order_by(_table.c.rev)
            with engine.connect() as conn:
                rows = conn.execute(query).all()
            self._refreshed_at = time.monotonic()
            for row in rows:
                self._apply(row._mapping)
            return len(rows)

    def _apply(self, row: Any) -> None:
        pid: str = row["point_id"]
        self._rev = max(self._rev, int(row["rev"]))
        slot = self._slot_of.get(pid)
        if row["vector"] is None:
            if slot is not None:
                del self._slot_of[pid]
                self._alive[slot] = False
                self._payloads[slot] = None
                self._free.append(slot)
            return
        vector = np.frombuffer(row["vector"], dtype="<f4")
        if vector.shape != (self._dim,):
            raise VectorIndexError(f"vector_points holds vectors of size {vector.shape[0]}, not {self._dim}")
        if slot is None:
            slot = self._free.pop() if self._free else self._grow()
            self._slot_of[pid] = slot
        self._matrix[slot] = vector / np.linalg.norm(vector)
        self._alive[slot] = True
        self._public[slot] = row["visibility"] == "public"
        self._human[slot] = row["origin"] == _ORIGIN_HUMAN
        self._payloads[slot] = _payload(row)

    def _grow(self) -> int:
        if self._size == len(self._alive):
            capacity = 2 * len(self._alive)
            self._matrix = np.resize(self._matrix, (capacity, self._dim))
            for name in ("_alive", "_public", "_human"):
                grown = np.zeros(capacity, dtype=bool)
                grown[: self._size] = getattr(self, name)[: self._size]
                setattr(self, name, grown)
            self._payloads.extend([None] * (capacity - self._size))
        self._size += 1
        return self._size - 1

    # -- reads -----------------------------------------------------------------------------------

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
        query = np.asarray(_check_vector(vector, self._dim), dtype=np.float32)
        query /= np.linalg.norm(query)
        # This process's own writes are applied as they are made; the others' within refresh_age_s.
        self.refresh(max_age_s=self._refresh_age_s)
        with self._lock:
            n = self._size
            mask = self._alive[:n].copy()
            if public_only:
                mask &= self._public[:n]
            if exclude_ai:
                mask &= self._human[:n]
            # Every row scored in one product (BLAS, without the GIL), then the wanted ones kept: no copy
            # of the matrix's selected rows per search.
            all_scores = self._matrix[:n] @ query
            slots = np.flatnonzero(mask)
            scores = all_scores[slots]
            if score_threshold is not None:
                keep = scores >= score_threshold
                slots, scores = slots[keep], scores[keep]
            if len(slots) > limit:
                # The best `limit` in linear time (and the ties at the cut, so the order below decides
                # them), then only those are sorted: no Python-level sort over the whole index.
                cut = np.partition(scores, len(scores) - limit)[len(scores) - limit]
                keep = scores >= cut
                slots, scores = slots[keep], scores[keep]
            # Best first; equal scores in message-id order, so every replica breaks ties alike.
            order = sorted(range(len(slots)), key=lambda i: (-float(scores[i]), self._id_at(int(slots[i]))))
            hits = []
            for i in order[:limit]:
                payload = self._payloads[int(slots[i])]
                assert payload is not None
                hits.append(Hit.from_payload(payload, float(scores[i])))
            return hits

    def _id_at(self, slot: int) -> str:
        payload = self._payloads[slot]
        return payload["message_id"] if payload else ""

    def get(self, message_id: str) -> VectorPoint | None:
        query = select(_table).where(_table.c.point_id == point_id(message_id), _table.c.vector.is_not(None))
        with self._live().connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _point(row._mapping)

    def scroll_all(self) -> Iterator[VectorPoint]:
        after = ""
        while True:
            query = (
                select(_table)
                .where(_table.c.point_id > after, _table.c.vector.is_not(None))
                .order_by(_table.c.point_id)
                .limit(SCROLL_PAGE_SIZE)
            )
            with self._live().connect() as conn:
                rows = [r._mapping for r in conn.execute(query)]
            yield from (_point(r) for r in rows)
            if len(rows) < SCROLL_PAGE_SIZE:
                return
            after = rows[-1]["point_id"]

    def count(self) -> int:
        query = select(func.count()).select_from(_table).where(_table.c.vector.is_not(None))
        with self._live().connect() as conn:
            return int(conn.execute(query).scalar_one())

    def optimize(self) -> None:
        """Nothing to build: the replica is searched exactly."""
        self._live()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._owns_engine:
                self._engine.dispose()


def _record(pid: str, rev: int, vector: list[float], payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "point_id": pid,
        "rev": rev,
        "message_id": payload["message_id"],
        "thread_id": payload["thread_id"],
        "visibility": payload["visibility"],
        "origin": payload["origin"],
        "content_hash": payload["content_hash"],
        "author": payload["author"],
        "co_authors": payload["co_authors"],
        "vector": np.asarray(vector, dtype="<f4").tobytes(),
    }


def _payload(row: Any) -> dict[str, Any]:
    return {
        "message_id": row["message_id"],
        "thread_id": row["thread_id"],
        "visibility": row["visibility"],
        "origin": row["origin"],
        "content_hash": row["content_hash"],
        "author": row["author"],
        "co_authors": list(row["co_authors"]),
    }


def _point(row: Any) -> VectorPoint:
    vector = np.frombuffer(row["vector"], dtype="<f4")
    return VectorPoint.from_payload(_payload(row), vector.tolist())
