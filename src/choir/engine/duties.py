"""Background duties: expiring specs and settling ended epochs, on a schedule.

They run in exactly one process: with PostgreSQL, the process that holds an advisory
lock (released by the database if that process dies, so another takes over); with
SQLite, one process owns the store anyway. Every duty is an idempotent instruction, so
even a second runner could never pay twice: this lock only saves wasted work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Iterable
from typing import Final

from sqlalchemy import Engine

from choir.engine.ports import Clock, Execute, Snapshots
from choir.program import Expire, ProgramError, SettleEpoch, SpecStatus
from choir.store.sql import AdvisoryLock

log = logging.getLogger(__name__)
# Epochs settled per sweep: a server down for a year catches up over a few sweeps.
MAX_EPOCHS_PER_SWEEP: Final = 500
DUTY_LOCK_KEY: Final = 0x43484F4952  # "CHOIR"


def due_epochs(settled: Collection[int], posted: Iterable[int], current: int) -> list[int]:
    """Ended epochs not settled yet, oldest first: every epoch after the last settled
    one, and any older one with posts still waiting (its novelty weights were not all measured)."""
    after = max(settled, default=-1) + 1
    waiting = {e for e in posted if e < current and e not in settled}
    return sorted(waiting | set(range(after, current)))[:MAX_EPOCHS_PER_SWEEP]


async def sweep_once(snapshots: Snapshots, execute: Execute, clock: Clock) -> int:
    """Expire specs past their time and settle ended epochs; returns instructions applied."""
    snap = snapshots()  # one committed snapshot decides what is due
    now = clock()
    applied = 0
    due = [
        spec_id
        for ids in snap.pending.values()
        for spec_id in ids
        if (s := snap.specs.get(spec_id)) and s.status is SpecStatus.PENDING and s.expires_at <= now
    ]
    for spec_id in due:
        with contextlib.suppress(ProgramError):
            await execute(Expire("sweeper", spec_id))
            applied += 1
    for epoch in due_epochs(snap.epochs, snap.posted_epochs, snap.epoch_of(now)):
        with contextlib.suppress(ProgramError):
            await execute(SettleEpoch(epoch))
            applied += 1
    return applied


async def run_duties(
    engine: Engine, snapshots: Snapshots, execute: Execute, clock: Clock, interval_s: float
) -> None:
    lock = AdvisoryLock(engine, DUTY_LOCK_KEY)
    try:
        while True:
            await asyncio.sleep(interval_s)
            try:
                if await asyncio.to_thread(lock.check):
                    await sweep_once(snapshots, execute, clock)
            except Exception:
                log.exception("background duties failed; retrying at the next sweep")
    finally:
        lock.release()
