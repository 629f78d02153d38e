"""The coordinator: apply -> render -> persist (one transaction) -> advance and swap the snapshot.

Validate, then act, then tell (as Zulip's actions do): the pure program decides on the writer's own
state, the store commits, and only then is the readers' new snapshot swapped in and the commit handed
to the feed. An instruction the program refuses writes nothing; a batch whose transaction fails is
dropped (the writer's state is reloaded from the store), and no reader ever sees it.

Several processes may share one PostgreSQL: each write holds the version row and claims the next
state version; a writer (or a reader) that finds the version moved first applies what the other
processes committed since its own version, from the state log (``store.statelog``), and only then
decides.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from choir.engine.commits import Commit, CommitFeed
from choir.engine.ports import Clock, system_clock
from choir.engine.render import Render, plain_html, render_all
from choir.engine.snapshot import Snapshot
from choir.program import Instruction, Outcome, Params, ProgramError, State, apply
from choir.store.sql import Store, read_snapshot

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
        self,
        store: Store,
        state: State,
        version: int,
        clock: Clock = system_clock,
        render: Render = plain_html,
    ) -> None:
        self.store = store
        self.clock = clock
        self.render = render
        # Every commit goes to this feed: ``execute_many`` emits on the calling thread, a Writer on
        # its event loop.
        self.feed = CommitFeed()
        # The writer's own state: plain dicts, changed in place by a batch before it is persisted,
        # touched by the writing thread only. Readers never see it.
        self._state = state
        self._version = version
        # What readers see: replaced after each COMMIT, never changed.
        self._snapshot = Snapshot.of(state, version)
        # One writer at a time per process.
        self._lock = threading.Lock()
        # Set while the writer's state may hold changes the store has not committed.
        self._dirty = False

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
        state, version = _load(store)
        return cls(store, state, version, clock, render)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def state(self) -> State:
        """The writer's state: what was committed, between writes. For the writing thread and for
        single-threaded drivers (the simulator, tests); a server's readers take ``snapshot``."""
        return self._state

    @property
    def version(self) -> int:
        return self._version

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
            if self._dirty:
                # A failed write whose reload failed too: never build on uncommitted state.
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
        try:
            with self.store.begin() as conn:
                # Several processes may write a shared store: hold the version row for the whole
                # batch, and decide on what the others committed, not on a stale state.
                if self.store.shared:
                    self._catch_up(conn, self.store.lock_version(conn))
                self._dirty = True
                results, changed = _apply_all(self._state, instructions, now)
                if not changed:
                    self._dirty = False
                    return results, None
                html = render_all(changed, self.render)
                if not self.store.claim_version(conn, self._version, self._version + 1):
                    return None  # the caller reloads (the batch is dropped with the state)
                notes = self.store.persist(conn, changed, html, self._version + 1)
        except BaseException:
            # The writer's state ran ahead of the store: take the store's word. Readers never saw it.
            self._reload()
            raise
        self._version += 1
        self._dirty = False
        snapshot = self._snapshot.advanced(changed, self._version)
        self._snapshot = snapshot  # the swap: from here on, readers see the batch
        return results, Commit(tuple(changed), html, snapshot, notifications=tuple(notes))

    def refresh_if_stale(self) -> None:
        """Catch up with what other processes committed (one cheap read when nothing did)."""
        with self._lock:
            if self.store.version() == self._version:
                return
            with read_snapshot(self.store.engine) as conn:
                self._catch_up(conn, self.store.version(conn))

    def _catch_up(self, conn: Connection, version: int) -> None:
        """Apply what other processes committed up to ``version``, read in ``conn`` (which holds
        the version row, or reads one snapshot of the store): the versions' log rows and the records
        they name, not the whole store. Readers see the result only as the next snapshot."""
        if version == self._version:
            return
        outcomes = (
            self.store.outcomes_since(conn, self._version, version) if version > self._version else None
        )
        if outcomes is None:
            self._reload()  # pruned from the log, or a store that went back (restored)
            return
        try:
            for outcome in outcomes:
                self._state.commit(outcome)
        except BaseException:
            self._reload()  # never keep a state applied halfway
            raise
        self._version = version
        self._snapshot = self._snapshot.advanced(outcomes, version)

    def _reload(self) -> None:
        self._state, self._version = _load(self.store)
        self._snapshot = Snapshot.of(self._state, self._version)
        self._dirty = False


def _load(store: Store) -> tuple[State, int]:
    loaded = store.load_state()
    assert loaded is not None, "the store has its genesis"
    return loaded


def _apply_all(
    work: State, instructions: Sequence[Instruction], now: datetime
) -> tuple[list[Result], list[Outcome]]:
    """Apply each instruction to the writer's state, so later ones see earlier ones' effects."""
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
