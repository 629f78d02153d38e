"""Hybrid retrieval: the vector index (meaning) and the SQL engine's full-text index (words), fused by
reciprocal rank fusion. Search and the Chorus loop's Experience phase both find messages through it.

A vector search alone loses an exact rare word (a product name, a handle) among messages on the same
topic; a keyword search alone misses a paraphrase. Reciprocal rank fusion (Cormack, Clarke & Buettcher,
2009) adds 1 / (RRF_K + rank) over the lists a message appears in: it needs no score calibration
between the two engines (cosine and bm25 are not comparable) and rewards a message both find.

Visibility: the vector index holds public messages only; the keyword search is scoped to the threads
the caller names (those the reader may read, by ``Thread.readable_by``), and ranks by statistics of
those threads alone. Naming none finds no keyword hit. The Chorus names the public threads, so a
prior is always public.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from choir.chorus.embed import Embedder
from choir.store.sql import Store
from choir.store.vectors import VectorIndex

RRF_K: Final = 60
# Each engine is asked for this many more than the caller wants: fusion reorders the union.
CANDIDATES_FACTOR: Final = 3
# Below this cosine a vector hit is noise, not a result (a keyword hit needs no such floor).
MIN_COSINE: Final = 0.2


@dataclass(frozen=True)
class Found:
    message_id: str
    thread_id: str
    score: float  # the fused score: sum of 1 / (RRF_K + rank) over the lists that found it
    cosine: float  # similarity of the message to the query (computed for keyword-only hits too)
    keyword_rank: int | None  # 1-based, None: no word of the query in it


class Retriever:
    """Blocking calls, safe from worker threads; `find` runs them off the event loop."""

    def __init__(self, embedder: Embedder, index: VectorIndex, store: Store) -> None:
        self.embedder = embedder
        self.index = index
        self.store = store

    async def find(
        self,
        query: str,
        limit: int,
        *,
        readable: Collection[str] = (),
        vector_only: bool = False,
    ) -> list[Found]:
        return await asyncio.to_thread(self.search, query, limit, readable, vector_only)

    def search(
        self, query: str, limit: int, readable: Collection[str] = (), vector_only: bool = False
    ) -> list[Found]:
        if limit < 1:
            return []
        wanted = limit * CANDIDATES_FACTOR
        vector = self.embedder.embed([query])[0]
        scope = frozenset(readable)
        vector_hits = [
            h
            for h in self.index.search(vector, wanted, MIN_COSINE, public_only=True, exclude_ai=True)
            if h.thread_id in scope
        ]
        keyword_hits = [] if vector_only else self.store.keyword_search(query, wanted, readable)
        cosine = {h.message_id: h.score for h in vector_hits}
        thread_of = {h.message_id: h.thread_id for h in vector_hits} | {
            h.message_id: h.thread_id for h in keyword_hits
        }
        fused: dict[str, float] = {}
        keyword_rank: dict[str, int] = {}
        for rank, hit in enumerate(vector_hits, start=1):
            fused[hit.message_id] = fused.get(hit.message_id, 0.0) + 1.0 / (RRF_K + rank)
        for rank, kw in enumerate(keyword_hits, start=1):
            fused[kw.message_id] = fused.get(kw.message_id, 0.0) + 1.0 / (RRF_K + rank)
            keyword_rank[kw.message_id] = rank
        # A tie of fused scores (two hits whose ranks swap between the lists) goes to the closer one.
        best = sorted(fused, key=lambda m: (-fused[m], -cosine.get(m, 0.0), m))[:limit]
        missing = [m for m in best if m not in cosine]
        cosine |= self._cosines(vector, missing)
        return [Found(m, thread_of[m], fused[m], cosine.get(m, 0.0), keyword_rank.get(m)) for m in best]

    def _cosines(self, query: np.ndarray, message_ids: Sequence[str]) -> dict[str, float]:
        """The similarity of keyword-only hits to the query: from their vectors in the index, or (a
        private thread's message, which the index does not hold) from their content."""
        out: dict[str, float] = {}
        unindexed = []
        for message_id in message_ids:
            point = self.index.get(message_id)
            if point is None:
                unindexed.append(message_id)
            else:
                vector = np.asarray(point.vector, dtype=np.float32)
                out[message_id] = float(vector @ query / max(float(np.linalg.norm(vector)), 1e-12))
        if unindexed:
            rows = self.store.messages_by_id(unindexed)
            ids = [m for m in unindexed if m in rows]
            if ids:
                vectors = self.embedder.embed([rows[m]["content"] for m in ids])
                out |= {m: float(v @ query) for m, v in zip(ids, vectors, strict=True)}
        return out
