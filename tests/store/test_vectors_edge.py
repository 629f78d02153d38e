"""The edge shard's own duties: generations, out-of-process optimization, ownership, crash leftovers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from choir.store.vectors import EdgeVectorIndex, VectorIndexError, VectorPoint
from choir.store.vectors import edge as vectors

DIM = 16


def gated_optimizer(gate: Path) -> str:
    """The real optimizer, held until `gate` exists: writes made before opening it certainly land while
    the cycle runs (bounded: it goes ahead after 60 s in any case)."""
    wait = (
        "import os, time\n"
        "deadline = time.monotonic() + 60\n"
        f"while not os.path.exists({str(gate)!r}) and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)\n"
    )
    return wait + vectors._OPTIMIZER_SCRIPT


def unit(seed: int, dim: int = DIM) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def point(i: int, *, thread_id: str = "t1", dim: int = DIM) -> VectorPoint:
    return VectorPoint(f"m{i}", thread_id, unit(i, dim), "public", False, f"h{i}", "alice", ["alice"])


def top1(index: EdgeVectorIndex, i: int) -> str | None:
    hits = index.search(unit(i, index.dim), limit=1)
    return hits[0].message_id if hits else None


def wait_for_child(index: EdgeVectorIndex) -> None:
    """Until the optimizer child runs: the copy is then taken, so later writes go to the journal."""
    deadline = time.monotonic() + 30
    while index._child is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert index._child is not None


def current_generation(root: Path) -> str:
    return (root / "CURRENT").read_text()


def test_reopen_after_optimize_keeps_points_and_filters(tmp_path: Path) -> None:
    root = tmp_path / "v"
    with EdgeVectorIndex(root, DIM, background_optimize=False, indexing_threshold_kb=1) as index:
        index.upsert([point(i) for i in range(300)])
        index.upsert([VectorPoint("p", "tp", unit(1000), "private", False, "hp", "bob", ["bob"])])
        index.optimize()
        assert index.indexed_vectors_count() > 0
    assert current_generation(root) == "gen-000002"
    assert sorted(p.name for p in root.glob("gen-*")) == ["gen-000002"]
    with EdgeVectorIndex(root, DIM, background_optimize=False) as index:
        assert index.count() == 301
        assert top1(index, 123) == "m123"
        assert index.search(unit(1000), limit=1)[0].message_id != "p"


def test_one_owner_per_directory(tmp_path: Path) -> None:
    with (
        EdgeVectorIndex(tmp_path, DIM, background_optimize=False),
        pytest.raises(VectorIndexError, match="already open"),
    ):
        EdgeVectorIndex(tmp_path, DIM)
    EdgeVectorIndex(tmp_path, DIM).close()  # released on close


def test_dimension_mismatch_on_reopen_is_refused(tmp_path: Path) -> None:
    EdgeVectorIndex(tmp_path, DIM).close()
    with pytest.raises(VectorIndexError, match="size"):
        EdgeVectorIndex(tmp_path, DIM * 2)


def test_leftover_generation_of_a_crashed_cycle_is_removed(tmp_path: Path) -> None:
    with EdgeVectorIndex(tmp_path, DIM, background_optimize=False) as index:
        index.upsert([point(1)])
    (tmp_path / "gen-000007").mkdir()
    with EdgeVectorIndex(tmp_path, DIM, background_optimize=False) as index:
        assert top1(index, 1) == "m1"
    assert not (tmp_path / "gen-000007").exists()


def test_writes_during_background_optimization_survive_the_swap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = tmp_path / "gate"
    monkeypatch.setattr(vectors, "_OPTIMIZER_SCRIPT", gated_optimizer(gate))
    index = EdgeVectorIndex(tmp_path / "v", DIM, optimize_every_points=100, indexing_threshold_kb=1)
    try:
        index.upsert([point(i) for i in range(100)])  # reaches the threshold: a cycle starts
        cycle = index._cycle_thread
        assert cycle is not None
        wait_for_child(index)
        # While the copy is optimized elsewhere, new points are searchable at once and a thread goes private.
        for i in range(100, 110):
            index.upsert([point(i, thread_id="late")])
            assert top1(index, i) == f"m{i}"
        index.set_thread_meta("t1", ["alice", "bob"], "private")
        index.delete(["m105"])
        assert cycle.is_alive()
        gate.touch()
        assert index.wait_for_background_optimize(timeout_s=120)
        assert index.last_optimize_error is None
        assert current_generation(tmp_path / "v") == "gen-000002"
        assert index.indexed_vectors_count() > 0
        assert index.count() == 109
        assert top1(index, 101) == "m101"
        assert top1(index, 105) != "m105"
        assert all(h.thread_id == "late" for h in index.search(unit(5), limit=20))
        got = index.get("m5")
        assert got is not None and list(got.co_authors) == ["alice", "bob"]
    finally:
        index.close()


def test_the_process_keeps_running_python_during_optimize(tmp_path: Path) -> None:
    # EdgeShard.optimize() holds the GIL; run in this process it would starve every other thread.
    dim = 384
    index = EdgeVectorIndex(tmp_path, dim, background_optimize=False, indexing_threshold_kb=1)
    index.upsert([point(i, dim=dim) for i in range(1000)])
    ticks = 0
    stop = threading.Event()

    def tick() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        index.optimize()
    finally:
        stop.set()
        ticker.join()
    assert index.indexed_vectors_count() > 0
    assert ticks >= 20
    index.close()


def test_failed_optimizer_leaves_the_live_shard_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vectors, "_OPTIMIZER_SCRIPT", "import sys; sys.exit('disk on fire')")
    with EdgeVectorIndex(tmp_path, DIM, background_optimize=False) as index:
        index.upsert([point(i) for i in range(10)])
        with pytest.raises(VectorIndexError, match="disk on fire"):
            index.optimize()
        assert sorted(p.name for p in tmp_path.glob("gen-*")) == ["gen-000001"]
        index.upsert([point(10)])
        assert top1(index, 10) == "m10"
        assert index.count() == 11


def test_journal_overflow_abandons_the_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = tmp_path / "gate"
    monkeypatch.setattr(vectors, "_OPTIMIZER_SCRIPT", gated_optimizer(gate))
    monkeypatch.setattr(vectors, "JOURNAL_OPS_MAX", 3)
    with EdgeVectorIndex(tmp_path / "v", DIM, optimize_every_points=20) as index:
        index.upsert([point(i) for i in range(20)])
        wait_for_child(index)
        for i in range(20, 30):
            index.upsert([point(i)])
        gate.touch()
        assert index.wait_for_background_optimize(timeout_s=120)
        assert isinstance(index.last_optimize_error, VectorIndexError)
        assert current_generation(tmp_path / "v") == "gen-000001"
        assert index.count() == 30
        assert top1(index, 29) == "m29"


def test_close_during_a_cycle_stops_the_optimizer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vectors, "_OPTIMIZER_SCRIPT", "import time; time.sleep(60)")
    index = EdgeVectorIndex(tmp_path, DIM, optimize_every_points=5)
    index.upsert([point(i) for i in range(5)])
    wait_for_child(index)
    index.close()
    cycle = index._cycle_thread
    assert cycle is not None and not cycle.is_alive()
    with EdgeVectorIndex(tmp_path, DIM, background_optimize=False) as reopened:
        assert reopened.count() == 5
    assert sorted(p.name for p in tmp_path.glob("gen-*")) == ["gen-000001"]
