"""Keeps the vector index in step with the store: every published public message is
embedded and indexed (AI answers too, marked as such, so they are never priors);
private threads never enter the index; co-author changes update the thread's metadata.

It is the commit feed's ``indexer`` subscriber: committed outcomes are queued, embedded in
batches off the event loop, and upserted, so a message is searchable well within a second
without slowing the post path. The novelty weights a batch measures are committed together, in
one transaction (one ``execute_all``), not one commit per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

import numpy as np

from choir.chorus.embed import Embedder
from choir.engine import Commit, Result, Snapshot, Snapshots
from choir.program import AI_AUTHOR, Instruction, Message, Outcome, Revision, SetNovelty, Thread, Visibility
from choir.rewards import novelty_ppm
from choir.store.faults import unavailable
from choir.store.sql import Store
from choir.store.vectors import VectorIndex, VectorPoint

log = logging.getLogger(__name__)
T = TypeVar("T")

# Messages embedded together; MiniLM's batch cost grows slower than its size.
MAX_BATCH: Final = 64
MAX_QUEUE: Final = 100_000
# The nearest few are enough to find the most similar earlier message (itself excluded).
NOVELTY_NEIGHBOURS: Final = 3
# Embedding is the server's largest CPU cost (bench/bench_load.py, profiled: ~40% of its samples). It
# runs on one thread of its own at a lower OS priority, so that on shared cores the event loop's
# fan-out and the SQL writer come first, and indexing takes what they leave (a message is still
# searchable within a second at the loads measured).
INDEXER_NICENESS: Final = 10
# A batch that failed is tried again: while the database is away, for as long as it is away (waits
# doubling up to the last); after another failure (a bug), this many times, then left to the audit
# and the next start's catch-up.
RETRY_WAITS_S: Final = (0.2, 0.5, 1.0, 2.0, 5.0)
RETRIES_AFTER_BUG: Final = 2


def _lower_priority() -> None:
    """Runs in the indexer's thread: Linux schedules threads by their own niceness."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), INDEXER_NICENESS)


ExecuteAll = Callable[[Sequence[Instruction]], Awaitable[list[Result]]]


class Indexer:
    def __init__(
        self,
        store: Store,
        index: VectorIndex,
        embedder: Embedder,
        snapshots: Snapshots,
        execute_all: ExecuteAll | None = None,
    ) -> None:
        self.store = store
        self.execute_all = execute_all
        self.index = index
        self.embedder = embedder
        self.snapshots = snapshots
        self.queue: asyncio.Queue[Outcome | None] = asyncio.Queue(MAX_QUEUE)
        self.indexed = 0
        # The batch being indexed (or retried while the database is away), beside what is queued.
        self.in_hand = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="choir-indexer", initializer=_lower_priority)

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)

    def on_commit(self, commit: Commit) -> None:
        """The commit feed's ``indexer`` subscriber."""
        for outcome in commit.outcomes:
            self.offer(outcome)

    def offer(self, outcome: Outcome) -> None:
        if (
            outcome.messages
            or outcome.revisions
            or any(e.kind in ("coauthor.joined", "coauthor.left") for e in outcome.events)
        ):
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
            self.in_hand = len(batch)
            await self._index_retrying([o for o in batch if o is not None])
            self.in_hand = 0
            if self.queue.empty():
                self.idle.set()

    async def _index_retrying(self, outcomes: Sequence[Outcome]) -> None:
        """Index one batch, again after a failure: every step is idempotent (an upsert, a delete, a
        novelty weight recorded once), so a retry after a half-done attempt finishes it."""
        bugs = 0
        attempt = 0
        while True:
            try:
                await self._index(outcomes)
                return
            except Exception as exc:
                if not unavailable(exc):
                    bugs += 1
                    if bugs > RETRIES_AFTER_BUG:
                        log.exception("indexing failed; left to the audit and the next start")
                        return
                    log.warning("indexing failed (%s); trying again", exc)
                else:
                    log.warning("indexing waits for the database: %s", exc)
                wait_s = RETRY_WAITS_S[min(attempt, len(RETRY_WAITS_S) - 1)]
                attempt += 1
                await asyncio.sleep(wait_s)

    async def _index(self, outcomes: Sequence[Outcome]) -> None:
        messages = [m for o in outcomes for m in o.messages]
        changed = {
            e.thread_id for o in outcomes for e in o.events if e.kind in ("coauthor.joined", "coauthor.left")
        }
        measured = await self._off_loop(self.index_messages, messages)
        await self.record(measured)
        revisions = [r for o in outcomes for r in o.revisions]
        if revisions:
            await self._off_loop(self.revise, revisions)
        for thread_id in changed:
            thread = self.snapshots().threads.get(thread_id)
            if thread is not None and thread.visibility is Visibility.PUBLIC:
                await self._off_loop(self.index.set_thread_meta, thread_id, thread.co_authors, "public")

    def index_messages(self, messages: Sequence[Message]) -> list[tuple[str, int]]:
        """Embed the messages; index the public ones; measure the novelty of those that
        wait for it against the public messages indexed before each. Returns the
        measured (message_id, novelty_ppm) pairs."""
        threads = self.snapshots().threads
        rows = [(m, t) for m in messages if (t := threads.get(m.thread_id)) is not None]
        if not rows:
            return []
        vectors = self.embedder.embed([m.content for m, _ in rows])
        measured: list[tuple[str, int]] = []
        batch: list[VectorPoint] = []
        # This batch's public human messages so far: a later one is measured against them here, in
        # memory, rather than after writing them (one index write per batch, not one per message).
        earlier: list[Any] = []
        for (m, thread), vector in zip(rows, vectors, strict=True):
            if m.novelty_ppm is None and m.author != AI_AUTHOR:
                measured.append((m.message_id, self._novelty(m.message_id, vector, earlier)))
            if _public(thread):
                batch.append(_point(m, thread, vector))
                if m.author != AI_AUTHOR:
                    earlier.append(vector)
        self._flush(batch)
        return measured

    def revise(self, revisions: Sequence[Revision]) -> None:
        """An edited message's point gets its new content's vector; a deleted one's point goes
        (its content must no longer be found by meaning). The last version of each counts."""
        last = {r.message_id: r for r in revisions}
        gone = [mid for mid, r in last.items() if r.deleted]
        if gone:
            self.index.delete(gone)
        threads = self.snapshots().threads
        edited = [
            (r, t) for r in last.values() if not r.deleted and (t := threads.get(r.thread_id)) and _public(t)
        ]
        if edited:
            vectors = self.embedder.embed([r.content for r, _ in edited])
            self._flush([_point(r, t, v) for (r, t), v in zip(edited, vectors, strict=True)])

    def _flush(self, batch: list[VectorPoint]) -> None:
        if batch:
            self.index.upsert(batch)
            self.indexed += len(batch)
            batch.clear()

    def _novelty(self, message_id: str, vector: Any, earlier: Sequence[Any] = ()) -> int:
        hits = self.index.search(vector, NOVELTY_NEIGHBOURS, None, public_only=True, exclude_ai=True)
        scores = [h.score for h in hits if h.message_id != message_id]
        scores += [float(np.dot(vector, other)) for other in earlier]
        return novelty_ppm(max(scores) if scores else None)

    def catch_up(self) -> list[tuple[str, int]]:
        """Reconcile the index with the store at start-up (after a crash, or with a new index):
        points of a message the store lacks are deleted, a thread whose points carry another
        co-author list than the store's gets the store's, and what the store has and the index
        lacks is indexed; what still waits for its novelty is measured. Returns the measured pairs."""
        state = self.snapshots()
        stored = self.store.all_messages()
        hashes = {m.message_id: m.content_hash for m in stored if not m.deleted}
        present: set[str] = set()
        extra: list[str] = []
        stale: set[str] = set()
        for point in self.index.scroll_all():
            thread = state.threads.get(point.thread_id)
            if point.message_id not in hashes or thread is None or not _public(thread):
                extra.append(point.message_id)
                continue
            if point.content_hash == hashes[point.message_id]:
                present.add(point.message_id)  # else an edit it missed: indexed again below
            if tuple(point.co_authors) != thread.co_authors:
                stale.add(point.thread_id)
        # Another process sharing the index may have committed and indexed messages (and threads)
        # after this one read the store: a point is only deleted once a fresh read confirms what
        # never changes back (a message absent, or deleted, or in a private thread).
        extra = self._confirmed_extra(extra)
        if extra:
            log.warning("index: deleting %d points the store does not publish", len(extra))
            self.index.delete(extra)
        fresh = self.store.threads_by_id(sorted(stale))
        for thread_id in sorted(stale):
            thread = fresh.get(thread_id)
            if thread is not None and _public(thread):
                log.warning("index: thread %s had stale co-authors; set from the store", thread_id)
                self.index.set_thread_meta(thread_id, thread.co_authors, "public")
        todo = [
            m
            for m in stored
            if not m.deleted
            and (m.novelty_ppm is None or (m.message_id not in present and _public_id(state, m.thread_id)))
        ]
        todo.sort(key=lambda m: m.published_at)
        measured: list[tuple[str, int]] = []
        for start in range(0, len(todo), MAX_BATCH):
            measured += self.index_messages(todo[start : start + MAX_BATCH])
        return measured

    def _confirmed_extra(self, candidates: Sequence[str]) -> list[str]:
        if not candidates:
            return []
        rows = self.store.messages_by_id(candidates)
        threads = self.store.threads_by_id(sorted({r["thread_id"] for r in rows.values()}))
        return [
            mid
            for mid in candidates
            if (row := rows.get(mid)) is None
            or row["deleted_at"] is not None
            or (thread := threads.get(row["thread_id"])) is None
            or not _public(thread)
        ]

    async def record(self, measured: Sequence[tuple[str, int]]) -> None:
        """Commit measured novelty weights in one transaction (each once: a repeat is refused,
        and a refused one is skipped without failing the others)."""
        if self.execute_all is None or not measured:
            return
        await self.execute_all([SetNovelty(message_id, weight) for message_id, weight in measured])

    @property
    def backlog(self) -> int:
        """Committed changes not indexed yet: queued, or in the batch being (re)tried."""
        return self.queue.qsize() + self.in_hand

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait until everything queued so far is searchable (tests and shutdown)."""
        await asyncio.wait_for(self.idle.wait(), timeout_s)


def _public(thread: Thread) -> bool:
    return thread.visibility is Visibility.PUBLIC


def _public_id(state: Snapshot, thread_id: str) -> bool:
    thread = state.threads.get(thread_id)
    return thread is not None and _public(thread)


def _point(m: Message | Revision, thread: Thread, vector: Any) -> VectorPoint:
    return VectorPoint(
        message_id=m.message_id,
        thread_id=m.thread_id,
        vector=vector,
        visibility="public",
        is_ai=m.author == AI_AUTHOR,
        content_hash=m.content_hash,
        author=m.author,
        co_authors=thread.co_authors,
    )
