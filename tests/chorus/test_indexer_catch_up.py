"""A process starting beside another on one shared vector index reconciles the index with the store
without undoing the other's work: a point for a thread or message committed after this process read
its state is not taken for a stray and deleted (it was, and the audit then found the public message
missing from the index: `python -m bench faults`, choir-kill)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from choir.chorus.indexer import Indexer
from choir.engine import Coordinator
from choir.program import CreateThread, DeleteMessage, PostMessage
from choir.store.sql import Store
from choir.store.vectors.sql import SqlVectorIndex


class Digest:
    """Vectors from a text's digest: deterministic, distinct, no model to load."""

    dim = 8

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[: self.dim], dtype=np.uint8) for t in texts]
        out = np.asarray(rows, dtype=np.float32) + 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_a_late_process_keeps_what_another_indexed_after_it_read_the_store(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'choir.db'}")
    coordinator = Coordinator.open(store)
    coordinator.execute(CreateThread("alice", "t1", "early"))
    coordinator.execute(PostMessage("alice", "t1", "m1", "an early message", novelty_ppm=500_000))
    coordinator.execute(PostMessage("alice", "t1", "m3", "soon deleted", novelty_ppm=500_000))
    index = SqlVectorIndex(store.engine, dim=Digest.dim)
    live = Indexer(store, index, Digest(), lambda: coordinator.snapshot)
    live.index_messages([m for m in store.all_messages() if m.message_id == "m3"])
    coordinator.execute(DeleteMessage("alice", "m3"))  # ... and its point left behind: a real stray
    stale = coordinator.snapshot  # what the starting process read
    # Meanwhile the other process commits a new thread and a message, and indexes them.
    coordinator.execute(CreateThread("bob", "t2", "later"))
    coordinator.execute(PostMessage("bob", "t2", "m2", "a later message", novelty_ppm=500_000))
    live.index_messages([m for m in store.all_messages() if m.message_id == "m2"])
    starting = Indexer(store, index, Digest(), lambda: stale)
    starting.catch_up()
    points = {p.message_id for p in index.scroll_all()}
    assert "m2" in points, "the other process's fresh point was deleted"
    assert "m1" in points  # what the index lacked is indexed
    assert "m3" not in points  # a deleted message's point is a stray indeed
