"""One contract for every VectorIndex engine: the embedded edge shard, qdrant-client (local mode), the
shared SQL engine on SQLite and on a real PostgreSQL, and pgvector on a real PostgreSQL 18 with the
extension."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from choir.store.sql import Store
from choir.store.vectors import (
    AsyncVectorIndex,
    EdgeVectorIndex,
    Hit,
    QdrantServerIndex,
    SqlVectorIndex,
    VectorIndex,
    VectorIndexError,
    VectorPoint,
    Visibility,
)
from choir.store.vectors.pgvector import PgvectorIndex

DIM = 8
PGVECTOR_HNSW = os.environ.get("CHOIR_TEST_PGVECTOR_HNSW") == "1"


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def point(
    message_id: str,
    vector: np.ndarray,
    *,
    thread_id: str = "t1",
    visibility: Visibility = "public",
    is_ai: bool = False,
    author: str = "alice",
    content_hash: str | None = None,
    co_authors: tuple[str, ...] = ("alice",),
) -> VectorPoint:
    return VectorPoint(
        message_id=message_id,
        thread_id=thread_id,
        vector=vector,
        visibility=visibility,
        is_ai=is_ai,
        content_hash=content_hash or f"hash-{message_id}",
        author=author,
        co_authors=co_authors,
    )


def migrated(url: str) -> str:
    store = Store(url)
    store.migrate()
    store.close()
    return url


@pytest.fixture(params=["edge", "qdrant-local", "sql-sqlite", "sql-postgres", "pgvector"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    engine: VectorIndex
    if request.param == "pgvector":
        # Exact: the only pgvector build installable here dies on HNSW inserts on this CPU (SIGILL).
        engine = PgvectorIndex(migrated(request.getfixturevalue("pgvector_url")), DIM, hnsw=PGVECTOR_HNSW)
    elif request.param == "sql-sqlite":
        engine = SqlVectorIndex(migrated(f"sqlite:///{tmp_path / 'choir.db'}"), DIM)
    elif request.param == "sql-postgres":
        engine = SqlVectorIndex(migrated(request.getfixturevalue("postgres_url")), DIM)
    elif request.param == "edge":
        # Background cycles off: a contract test must not race an optimization it did not ask for.
        engine = EdgeVectorIndex(
            tmp_path / "vectors", DIM, background_optimize=False, indexing_threshold_kb=1
        )
    else:
        engine = QdrantServerIndex(QdrantClient(":memory:"), "messages", DIM)
    yield engine
    engine.close()


def ids(hits: list[Hit]) -> list[str]:
    return [h.message_id for h in hits]


def test_is_a_vector_index(index: VectorIndex) -> None:
    assert isinstance(index, VectorIndex)
    assert index.dim == DIM


def test_upserted_point_is_found_at_once(index: VectorIndex) -> None:
    index.upsert([point("m1", unit(1)), point("m2", unit(2))])
    hits = index.search(unit(1), limit=5)
    assert ids(hits)[0] == "m1"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0] == Hit("m1", "t1", hits[0].score, "hash-m1", "alice")


def test_results_are_best_first_and_limited(index: VectorIndex) -> None:
    index.upsert([point(f"m{i}", unit(i)) for i in range(30)])
    query = unit(7)
    hits = index.search(query, limit=5)
    assert len(hits) == 5
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    expected = sorted(range(30), key=lambda i: -float(unit(i) @ query))[:5]
    assert ids(hits) == [f"m{i}" for i in expected]


def test_score_threshold_drops_weak_matches(index: VectorIndex) -> None:
    base = np.eye(DIM, dtype=np.float32)
    index.upsert(
        [point("same", base[0]), point("orthogonal", base[1]), point("close", base[0] + 0.2 * base[1])]
    )
    assert set(ids(index.search(base[0], limit=10, score_threshold=0.5))) == {"same", "close"}
    assert ids(index.search(base[0], limit=10, score_threshold=None))[:2] == ["same", "close"]


def test_private_points_never_reach_a_public_search(index: VectorIndex) -> None:
    v = unit(3)
    index.upsert([point("secret", v, thread_id="tp", visibility="private"), point("open", unit(4))])
    assert "secret" not in ids(index.search(v, limit=10))
    assert "secret" in ids(index.search(v, limit=10, public_only=False))


def test_ai_answers_are_not_priors_unless_asked(index: VectorIndex) -> None:
    v = unit(5)
    index.upsert([point("answer", v, is_ai=True, author="choir-ai"), point("human", unit(6))])
    assert ids(index.search(v, limit=10)) == ["human"]
    assert ids(index.search(v, limit=10, exclude_ai=False))[0] == "answer"


def test_upsert_replaces_by_message_id(index: VectorIndex) -> None:
    index.upsert([point("m1", unit(1), content_hash="old")])
    index.upsert([point("m1", unit(2), content_hash="new")])
    assert index.count() == 1
    got = index.get("m1")
    assert got is not None
    assert got.content_hash == "new"
    np.testing.assert_allclose(got.vector, unit(2), atol=1e-6)


def test_get_returns_every_field(index: VectorIndex) -> None:
    p = point("m1", unit(1) * 3.0, thread_id="t9", visibility="private", is_ai=True, co_authors=("a", "b"))
    index.upsert([p])
    got = index.get("m1")
    assert got is not None
    assert (got.message_id, got.thread_id, got.visibility, got.is_ai, got.content_hash, got.author) == (
        "m1",
        "t9",
        "private",
        True,
        "hash-m1",
        "alice",
    )
    assert list(got.co_authors) == ["a", "b"]
    # Cosine engines keep the direction; the stored vector is the unit one.
    np.testing.assert_allclose(got.vector / np.linalg.norm(got.vector), unit(1), atol=1e-6)
    assert index.get("nope") is None


def test_delete_removes_and_ignores_unknown(index: VectorIndex) -> None:
    index.upsert([point("m1", unit(1)), point("m2", unit(2))])
    index.delete(["m1", "never-indexed"])
    index.delete([])
    assert index.count() == 1
    assert index.get("m1") is None
    assert "m1" not in ids(index.search(unit(1), limit=10))


def test_scroll_all_pages_through_everything(index: VectorIndex) -> None:
    # More than two scroll pages (256 each) so the paging itself is exercised.
    index.upsert([point(f"m{i}", unit(i), thread_id=f"t{i % 7}") for i in range(600)])
    seen = {p.message_id: p for p in index.scroll_all()}
    assert len(seen) == 600 == index.count()
    assert seen["m42"].thread_id == "t0"
    assert seen["m42"].content_hash == "hash-m42"


def test_set_thread_meta_rewrites_that_thread_only(index: VectorIndex) -> None:
    index.upsert(
        [
            point("a1", unit(1), thread_id="ta"),
            point("a2", unit(2), thread_id="ta"),
            point("b1", unit(3), thread_id="tb"),
        ]
    )
    index.set_thread_meta("ta", ["alice", "bob"], "private")
    for mid in ("a1", "a2"):
        got = index.get(mid)
        assert got is not None
        assert (list(got.co_authors), got.visibility) == (["alice", "bob"], "private")
    b1 = index.get("b1")
    assert b1 is not None
    assert (list(b1.co_authors), b1.visibility) == (["alice"], "public")
    assert ids(index.search(unit(1), limit=10)) == ["b1"]
    index.set_thread_meta("ta", ["alice", "bob"], "public")
    assert ids(index.search(unit(1), limit=10))[0] == "a1"


def test_optimize_keeps_every_point_searchable(index: VectorIndex) -> None:
    index.upsert([point(f"m{i}", unit(i)) for i in range(200)])
    index.optimize()
    index.upsert([point("late", unit(999))])
    assert index.count() == 201
    for i in (0, 57, 199):
        assert ids(index.search(unit(i), limit=1)) == [f"m{i}"]
    assert ids(index.search(unit(999), limit=1)) == ["late"]


def test_bad_input_is_refused(index: VectorIndex) -> None:
    with pytest.raises(ValueError, match="shape"):
        index.upsert([point("m1", np.ones(DIM + 1, dtype=np.float32))])
    with pytest.raises(ValueError, match="NaN"):
        index.search(np.full(DIM, np.nan), limit=1)
    with pytest.raises(ValueError, match="zero"):
        index.search(np.zeros(DIM), limit=1)
    with pytest.raises(ValueError, match="limit"):
        index.search(unit(1), limit=0)
    with pytest.raises(ValueError, match="visibility"):
        index.set_thread_meta("t1", ["alice"], "secret")  # type: ignore[arg-type]
    # A bad point anywhere in a batch writes nothing.
    with pytest.raises(TypeError):
        index.upsert([point("ok", unit(1)), "not a point"])  # type: ignore[list-item]
    assert index.count() == 0


def test_vector_point_validates_itself() -> None:
    with pytest.raises(ValueError, match="visibility"):
        point("m1", unit(1), visibility="friends")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="message_id"):
        point("", unit(1))
    with pytest.raises(ValueError, match="co_authors"):
        point("m1", unit(1), co_authors="alice")  # type: ignore[arg-type]


def test_closed_index_refuses_calls(index: VectorIndex) -> None:
    index.close()
    with pytest.raises(VectorIndexError, match="closed"):
        index.search(unit(1), limit=1)
    index.close()  # idempotent


async def test_async_wrapper(index: VectorIndex) -> None:
    aindex = AsyncVectorIndex(index)
    await aindex.upsert([point(f"m{i}", unit(i)) for i in range(300)])
    hits, count = await asyncio.gather(aindex.search(unit(4), limit=3), aindex.count())
    assert ids(hits)[0] == "m4"
    assert count == 300
    assert len([p async for p in aindex.scroll_all()]) == 300
    await aindex.set_thread_meta("t1", ["alice"], "private")
    assert await aindex.search(unit(4), limit=3) == []
    await aindex.delete(["m4"])
    assert await aindex.get("m4") is None
    await aindex.optimize()
    assert aindex.dim == DIM
