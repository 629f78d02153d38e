"""The coordinator on an event loop: one writer thread, group commit of whatever queued while
the previous transaction ran, then, back on the loop, the commit handed to the feed and the
results to the awaiting callers (in that order: a post's event is on its way to every
subscriber before its author's ack)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Final

from choir.engine.commits import CommitFeed
from choir.engine.coordinator import Coordinator, Refused, Result
from choir.engine.snapshot import Snapshot
from choir.program import Instruction, Outcome
from choir.store.faults import StoreUnavailable, unavailable

log = logging.getLogger(__name__)
# Group commit: at most this many queued instructions share one transaction.
MAX_BATCH: Final = 256
# Instructions waiting for the writer; past this, callers wait for room (backpressure).
MAX_QUEUE: Final = 10_000

_Pending = tuple[tuple[Instruction, ...], "asyncio.Future[list[Result]]"]


class Writer:
    def __init__(self, coordinator: Coordinator, max_queue: int = MAX_QUEUE) -> None:
        self.sync = coordinator
        # The coordinator's feed, emitted to here, on the event loop, rather than in the writing thread.
        self.feed: CommitFeed = coordinator.feed
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None
        # Set while this process must not write (a start-up claim it lost: another process took it).
        self.refusing: str | None = None

    def snapshot(self) -> Snapshot:
        """The last committed snapshot (the ``Snapshots`` port)."""
        return self.sync.snapshot

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="engine-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def execute(self, instruction: Instruction) -> Outcome:
        """The ``Execute`` port: apply one instruction, return after COMMIT or raise its error."""
        result = (await self.execute_all((instruction,)))[0]
        if isinstance(result, Refused):
            raise result.error
        return result

    async def execute_all(self, instructions: Sequence[Instruction]) -> list[Result]:
        """Apply several instructions in one transaction (a refused one is skipped, not raised)."""
        if self.refusing is not None:
            raise StoreUnavailable(f"this server does not write now: {self.refusing}")
        future: asyncio.Future[list[Result]] = asyncio.get_running_loop().create_future()
        await self._queue.put((tuple(instructions), future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            size = len(batch[0][0])
            while size < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
                size += len(batch[-1][0])
            await self._write(batch)

    async def _write(self, batch: list[_Pending]) -> None:
        instructions = [i for group, _ in batch for i in group]
        try:
            results, commit = await asyncio.to_thread(self.sync.write, instructions)
        except Exception as exc:
            failure: Exception = exc
            if unavailable(exc):
                # Nothing committed: each caller may send the same again once the database is back.
                log.warning(
                    "the database is unreachable; %d instructions refused: %s", len(instructions), exc
                )
                failure = StoreUnavailable("the database is unreachable for now; nothing was changed; retry")
                failure.__cause__ = exc
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return
        if commit is not None:
            self.feed.emit(commit)
        start = 0
        for group, future in batch:
            if not future.done():
                future.set_result(results[start : start + len(group)])
            start += len(group)
