"""Keeps the vector index in step with the store: every published public message is
embedded and indexed (AI answers too, marked as such, so they are never priors);
private threads never enter the index; co-author changes update the thread's metadata.

It runs beside the coordinator: committed outcomes are queued, embedded in batches off
the event loop, and upserted, so a message is searchable well within a second without
slowing the post path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Final

from choir.chorus.embed import Embedder
from choir.program import AI_AUTHOR, Message, Outcome, State, Thread, Visibility
from choir.store.sql import Store
from choir.store.vectors import VectorIndex, VectorPoint

log = logging.getLogger(__name__)

# Messages embedded together; MiniLM's batch cost grows slower than its size.
MAX_BATCH: Final = 64
MAX_QUEUE: Final = 100_000


class Indexer:
    def __init__(self, store: Store, index: VectorIndex, embedder: Embedder, state: Any) -> None:
        self.store = store
        self.index = index
        self.embedder = embedder
        self._state = state  # a callable returning the current State
        self.queue: asyncio.Queue[Outcome | None] = asyncio.Queue(MAX_QUEUE)
        self.indexed = 0
        self.idle = asyncio.Event()
        self.idle.set()

    @property
    def state(self) -> State:
        state: State = self._state()
        return state

    def offer(self, outcome: Outcome) -> None:
        if outcome.messages or any(e.kind in ("coauthor.joined", "coauthor.left") for e in outcome.events):
            self.idle.clear()
            try:
                self.queue.put_nowait(outcome)
            except asyncio.QueueFull:
                log.error("index queue full; the audit and the next start will catch up")

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < MAX_BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            if None in batch:
                return
            try:
                await self._index([o for o in batch if o is not None])
            except Exception:
                log.exception("indexing failed")
            if self.queue.empty():
                self.idle.set()

    async def _index(self, outcomes: Sequence[Outcome]) -> None:
        messages = [m for o in outcomes for m in o.messages]
        changed = {e.thread_id for o in outcomes for e in o.events if e.kind in ("coauthor.joined", "coauthor.left")}
        await asyncio.to_thread(self.index_messages, messages)
        for thread_id in changed:
            thread = self.state.threads.get(thread_id)
            if thread is not None and thread.visibility is Visibility.PUBLIC:
                await asyncio.to_thread(self.index.set_thread_meta, thread_id, thread.co_authors, "public")

    def index_messages(self, messages: Sequence[Message]) -> int:
        """Embed and upsert the public ones; returns how many were indexed."""
        public = [(m, t) for m in messages if (t := self.state.threads.get(m.thread_id)) and _public(t)]
        if not public:
            return 0
        vectors = self.embedder.embed([m.content for m, _ in public])
        points = [
            VectorPoint(
                message_id=m.message_id,
                thread_id=m.thread_id,
                vector=vector,
                visibility="public",
                is_ai=m.author == AI_AUTHOR,
                content_hash=m.content_hash,
                author=m.author,
                co_authors=t.co_authors,
            )
            for (m, t), vector in zip(public, vectors, strict=True)
        ]
        self.index.upsert(points)
        self.indexed += len(points)
        return len(points)

    def catch_up(self) -> int:
        """Index what the store has and the index lacks (after a crash, or a new index)."""
        present = {p.message_id for p in self.index.scroll_all()}
        missing = [m for m in self.store.all_messages() if m.message_id not in present]
        done = 0
        for start in range(0, len(missing), MAX_BATCH):
            done += self.index_messages(missing[start : start + MAX_BATCH])
        return done

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait until everything queued so far is searchable (tests and shutdown)."""
        await asyncio.wait_for(self.idle.wait(), timeout_s)


def _public(thread: Thread) -> bool:
    return thread.visibility is Visibility.PUBLIC
