"""The coordinator: apply on a private fork -> render -> persist (one transaction) -> swap snapshot.

Validate, then act, then tell (as Zulip's actions do): the pure program decides on a fork of the
committed state, the store commits, and only then is the new snapshot swapped in and the commit
handed to the feed. An instruction the program refuses writes nothing; a batch whose transaction
fails is dropped with its fork, so no reader ever sees it.

Several processes may share one PostgreSQL: each write claims the next state version, and a
writer that finds the version moved reloads the state and applies the batch again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from choir.engine.commits import Commit, CommitFeed
from choir.engine.ports import Clock, system_clock
from choir.engine.render import Render, plain_html, render_all
from choir.engine.snapshot import Snapshot
from choir.program import Instruction, Outcome, Params, ProgramError, State, apply
from choir.store.sql import Store

log = logging.getLogger(__name__)

# Another process won the version race this many times in a row: give up, loudly.
MAX_VERSION_RETRIES = 20


class StoreConflict(Exception):
    """Other writers kept committing first; the instruction was not applied."""


@dataclass(frozen=True, slots=True)
class Refused:
    error: ProgramError


Result = Outcome | Refused


class Coordinator:
    def __init__(
        self, store: Store, snapshot: Snapshot, clock: Clock = system_clock, render: Render = plain_html
    ) -> None:
        self.store = store
        self.clock = clock
        self.render = render
        # Emitted to after each commit by ``execute_many``; a Writer emits on its event loop instead.
        self.feed = CommitFeed()
        # Read by any thread at any time: replaced, never changed.
        self._snapshot = snapshot
        # One writer at a time per process.
        self._lock = threading.Lock()
        # Set when a transaction failed in a way that may have committed after all (an error
        # raised by COMMIT itself): the next write reloads before it trusts the snapshot.
        self._suspect = False

    @classmethod
    def open(
        cls,
        store: Store,
        params: Params | None = None,
        clock: Clock = system_clock,
        render: Render = plain_html,
    ) -> Coordinator:
        """Open the store, creating its genesis on first use (the moment rewards count from)."""
        store.migrate()
        store.genesis(State.genesis(clock(), params))
        return cls(store, _load(store), clock, render)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def state(self) -> State:
        """The committed state. Read it, never commit to it."""
        return self._snapshot.state

    @property
    def version(self) -> int:
        return self._snapshot.version

    def execute(self, instruction: Instruction, now: datetime | None = None) -> Outcome:
        """Apply one instruction; raise its ProgramError when refused."""
        result = self.execute_many([instruction], now)[0]
        if isinstance(result, Refused):
            raise result.error
        return result

    def execute_many(self, instructions: Sequence[Instruction], now: datetime | None = None) -> list[Result]:
        """Apply instructions in order, commit them in one transaction, and emit the commit to
        ``feed`` on this thread. A refused one is reported and skipped; it does not affect the others."""
        results, commit = self.write(instructions, now)
        if commit is not None:
            self.feed.emit(commit)
        return results

    def write(
        self, instructions: Sequence[Instruction], now: datetime | None = None
    ) -> tuple[list[Result], Commit | None]:
        """Apply and commit one batch; return its results and its Commit (None: nothing changed).
        Emits nothing: the caller hands the Commit to the feed on its own thread."""
        with self._lock:
            if self._suspect:
                self._reload()
            for _attempt in range(MAX_VERSION_RETRIES):
                written = self._try(instructions, now or self.clock())
                if written is not None:
                    return written
                self._reload()
        raise StoreConflict("the store kept changing under this writer")

    def _try(
        self, instructions: Sequence[Instruction], now: datetime
    ) -> tuple[list[Result], Commit | None] | None:
        base = self._snapshot
        try:
            with self.store.begin() as conn:
                # Several processes may write a shared store: hold the version row for the whole
                # batch, and decide on what the others committed, not on a stale snapshot.
                if self.store.shared and self.store.lock_version(conn) != base.version:
                    base = self._reload()
                work = base.state.fork()
                results, changed = _apply_all(work, instructions, now)
                if not changed:
                    return results, None
                html = render_all(changed, self.render)
                if not self.store.claim_version(conn, base.version, base.version + 1):
                    return None
                self.store.persist(conn, changed, html)
        except BaseException:
            # The fork is dropped and the snapshot stays what the store had committed, unless
            # COMMIT itself failed after writing: reload before the next write to be sure.
            self._suspect = True
            raise
        snapshot = Snapshot(work, base.version + 1)
        self._snapshot = snapshot  # the swap: from here on, readers see the batch
        return results, Commit(tuple(changed), html, snapshot)

    def refresh_if_stale(self) -> None:
        """Catch up with what other processes committed (one cheap read when nothing did)."""
        with self._lock:
            if self.store.version() != self._snapshot.version:
                self._reload()

    def _reload(self) -> Snapshot:
        self._snapshot = _load(self.store)
        self._suspect = False
        return self._snapshot


def _load(store: Store) -> Snapshot:
    loaded = store.load_state()
    assert loaded is not None, "the store has its genesis"
    return Snapshot(*loaded)


def _apply_all(
    work: State, instructions: Sequence[Instruction], now: datetime
) -> tuple[list[Result], list[Outcome]]:
    """Apply each instruction to the private fork, so later ones see earlier ones' effects."""
    results: list[Result] = []
    changed: list[Outcome] = []
    for instruction in instructions:
        try:
            outcome = apply(work, instruction, now)
        except ProgramError as error:
            results.append(Refused(error))
            continue
        results.append(outcome)
        if not outcome.empty or outcome.events:
            changed.append(outcome)
            work.commit(outcome)
    return results, changed
