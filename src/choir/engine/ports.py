"""The narrow interfaces the shell's handlers use, so that none of them needs the whole server:
``Execute`` an instruction, read the current ``Snapshot``, ``Publish`` a live-only event."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from choir.engine.snapshot import Snapshot
from choir.program import Instruction, Outcome

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class Execute(Protocol):
    """Apply one instruction and wait for its COMMIT; raise its ProgramError when refused."""

    async def __call__(self, instruction: Instruction, /) -> Outcome: ...


class Snapshots(Protocol):
    """The last committed snapshot; take it once per request or frame and read only it."""

    def __call__(self) -> Snapshot: ...


class Publish(Protocol):
    """Send a live-only event (no seq, never stored: the Chorus loop's phases) to a thread."""

    async def __call__(self, thread_id: str, kind: str, data: dict[str, Any], /) -> None: ...
