"""The coordinator: load → program.apply → persist → publish, one transaction each.

Validate, then act, then tell (as Zulip's actions do): the pure program decides, the
store commits, and only then do subscribers hear of it. An instruction the program
refuses writes nothing; a store failure leaves the in-memory state as the store has it.

Several processes may share one PostgreSQL: each write claims the next state version,
and a writer that finds the version moved reloads the state and applies again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from choir.program import Instruction, Outcome, Params, ProgramError, State, apply
from choir.store.sql import Store

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Listener = Callable[[Outcome], None]
# Another process won the version race this many times in a row: give up, loudly.
MAX_VERSION_RETRIES = 20
# Group commit: at most this many queued instructions share one transaction.
MAX_BATCH = 256


def system_clock() -> datetime:
    return datetime.now(UTC)


class StoreConflict(Exception):
    """Other writers kept committing first; the instruction was not applied."""


@dataclass(frozen=True, slots=True)
class Refused:
    error: ProgramError


Result = Outcome | Refused


class Coordinator:
    def __init__(self, store: Store, state: State, version: int, clock: Clock = system_clock) -> None:
        self.store = store
        self.state = state
        self.version = version
        self.clock = clock
        self.listeners: list[Listener] = []
        # One writer at a time per process: the state is shared by every request.
        self._lock = threading.Lock()
        # Set while the in-memory state may hold changes the store has not committed.
        self._dirty = False
        # The last seq of each thread whose event is committed (the state may run ahead of
        # it while a write is in flight): what a subscriber may safely be told is stored.
        self.committed_seq: dict[str, int] = {t.thread_id: t.last_seq for t in state.threads.values()}

    @classmethod
    def open(cls, store: Store, params: Params | None = None, clock: Clock = system_clock) -> Coordinator:
        """Open the store, creating its genesis on first use (the moment rewards count from)."""
        store.migrate()
        store.genesis(State.genesis(clock(), params))
        loaded = store.load_state()
        assert loaded is not None, "genesis was just written"
        return cls(store, loaded[0], loaded[1], clock)

    def execute(self, instruction: Instruction, now: datetime | None = None) -> Outcome:
        """Apply one instruction; raise its ProgramError when refused."""
        result = self.execute_many([instruction], now)[0]
        if isinstance(result, Refused):
            raise result.error
        return result

    def execute_many(self, instructions: Sequence[Instruction], now: datetime | None = None) -> list[Result]:
        """Apply instructions in order and commit them in one transaction (group commit).
        A refused one is reported and skipped; it does not affect the others."""
        with self._lock:
            if self._dirty:
                # A failed write whose reload failed too: never build on uncommitted state.
                self.reload()
            for _attempt in range(MAX_VERSION_RETRIES):
                results = self._try(instructions, now or self.clock())
                if results is not None:
                    break
                self.reload()
            else:
                raise StoreConflict("the store kept changing under this writer")
        for result in results:
            if isinstance(result, Outcome):
                self._notify(result)
        return results

    def _try(self, instructions: Sequence[Instruction], now: datetime) -> list[Result] | None:
        try:
            with self.store.begin() as conn:
                # Several processes may write a shared store: hold the version row for the
                # whole batch, and decide on what the others committed, not on a stale copy.
                if self.store.shared and self.store.lock_version(conn) != self.version:
                    self.reload()
                self._dirty = True
                results, changed = self._apply_all(instructions, now)
                if not changed:
                    self._dirty = False
                    return results
                if not self.store.claim_version(conn, self.version, self.version + 1):
                    raise _VersionMoved
                self.store.persist(conn, changed)
        except _VersionMoved:
            return None
        except BaseException:
            # The in-memory state ran ahead of the store: take the store's word.
            self.reload()
            raise
        self.version += 1
        self._dirty = False
        for outcome in changed:
            for e in outcome.events:
                self.committed_seq[e.thread_id] = e.seq
        return results

    def _apply_all(
        self, instructions: Sequence[Instruction], now: datetime
    ) -> tuple[list[Result], list[Outcome]]:
        results: list[Result] = []
        changed: list[Outcome] = []
        for instruction in instructions:
            try:
                outcome = apply(self.state, instruction, now)
            except ProgramError as error:
                results.append(Refused(error))
                continue
            results.append(outcome)
            if not outcome.empty or outcome.events:
                changed.append(outcome)
                # Later instructions of the batch must see this one's effects.
                self.state.commit(outcome)
        return results, changed

    def refresh_if_stale(self) -> None:
        """Catch up with what other processes committed (one cheap read when nothing did)."""
        with self._lock:
            if self.store.version() != self.version:
                self.reload()

    def reload(self) -> None:
        loaded = self.store.load_state()
        assert loaded is not None
        self.state, self.version = loaded
        self._dirty = False
        self.committed_seq = {t.thread_id: t.last_seq for t in self.state.threads.values()}

    def _notify(self, outcome: Outcome) -> None:
        for listener in self.listeners:
            try:
                listener(outcome)
            except Exception:  # a listener's bug must not undo a commit
                log.exception("outcome listener failed")


class _VersionMoved(Exception):
    pass


class AsyncCoordinator:
    """The coordinator for an event loop: one writer thread, group commit of whatever
    queued while the previous transaction ran, results delivered to awaiting callers."""

    def __init__(self, coordinator: Coordinator, max_queue: int = 10_000) -> None:
        self.sync = coordinator
        self._queue: asyncio.Queue[tuple[Instruction, asyncio.Future[Result]]] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> State:
        return self.sync.state

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="coordinator-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def execute(self, instruction: Instruction) -> Outcome:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        await self._queue.put((instruction, future))
        result = await future
        if isinstance(result, Refused):
            raise result.error
        return result

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                results = await asyncio.to_thread(self.sync.execute_many, [i for i, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
