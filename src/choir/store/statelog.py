"""The state log: one row per state version naming what that version wrote, so that a process whose
state is at version v catches up with v + 1.. by reading just those rows (not the whole store).

Several processes write one PostgreSQL database, each with the program's state in memory. Before this
log, a process that found the version moved reloaded everything: O(store) on every write that
followed another process's, which made two processes slower than one (bench/bench_load.py). Now it
reads the log rows after its version and the records they name, in the same transaction (or the
same REPEATABLE READ snapshot) that read the version, and applies them in version order.

The records are read as they are now, not as they were at each version: applying a later value early
is harmless because every later version is applied too, in the same step, before anyone reads the
state. The log is pruned to the last LOG_KEEP versions; a process further behind reloads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, delete, select

from choir.program import Outcome
from choir.store import codec, schema

LOG_KEEP: Final = 10_000
PRUNE_EVERY: Final = 1_000


@dataclass(frozen=True, slots=True)
class Logged:
    """One field of ``Outcome`` as the log keeps it: under ``key``, the keys of its records."""

    field: str
    key: str
    keys: Callable[[Outcome], Iterable[Any]]


# Every field of Outcome is here or in NOT_LOGGED (tests/store/test_outcome_schema.py holds them to
# cover Outcome exactly): a new kind of change cannot reach the store without reaching the log.
LOGGED: Final = (
    Logged("threads", "threads", lambda o: o.threads),
    Logged("specs", "specs", lambda o: o.specs),
    Logged("balances", "accounts", lambda o: o.balances),
    Logged("messages", "messages", lambda o: (m.message_id for m in o.messages)),
    Logged("transfers", "transfers", lambda o: (f"{t.id:032x}" for t in o.transfers)),
    Logged("citations", "asks", lambda o: dict.fromkeys(c.ask_id for c in o.citations)),
    Logged("epochs", "epochs", lambda o: (e.epoch for e in o.epochs)),
    Logged("novelty", "novelty", lambda o: ([mid, ppm] for mid, ppm in o.novelty)),
    Logged("revisions", "revisions", lambda o: (r.message_id for r in o.revisions)),
)
# What a catching-up process does not need to rebuild its state, and why.
NOT_LOGGED: Final = {
    "events": "replays read the events table; the state keeps only each thread's last seq (its row)",
    "notices": "told once, by the process that committed them (the notifications table keeps them)",
    "result": "the answer to the caller of the instruction, on the process that ran it",
    "at": "the commit time, carried by the records themselves",
}
# Repeated keys are kept once, in first order; novelty pairs are values, kept all.
_VALUES: Final = frozenset({"novelty"})


def delta_of(outcomes: Sequence[Outcome]) -> dict[str, list[Any]]:
    """The keys of what a batch wrote, in the order it wrote them."""
    delta: dict[str, list[Any]] = {logged.key: [] for logged in LOGGED}
    for o in outcomes:
        for logged in LOGGED:
            delta[logged.key].extend(logged.keys(o))
    return {k: v if k in _VALUES else list(dict.fromkeys(v)) for k, v in delta.items() if v}


def write(conn: Connection, version: int, outcomes: Sequence[Outcome]) -> None:
    conn.execute(schema.state_log.insert(), {"version": version, "delta": delta_of(outcomes)})
    if version % PRUNE_EVERY == 0:
        conn.execute(delete(schema.state_log).where(schema.state_log.c.version <= version - LOG_KEEP))


def outcomes_since(conn: Connection, version: int, target: int) -> list[Outcome] | None:
    """What versions version + 1 .. target changed, one Outcome each, in order; None when the log no
    longer (or never) covered them (the caller reloads)."""
    log = schema.state_log
    rows = conn.execute(
        select(log.c.version, log.c.delta)
        .where(log.c.version > version, log.c.version <= target)
        .order_by(log.c.version)
    ).all()
    if [r.version for r in rows] != list(range(version + 1, target + 1)):
        return None
    deltas: list[dict[str, list[Any]]] = [r.delta for r in rows]
    records = _Records(conn, deltas)
    return [records.outcome(d) for d in deltas]


class _Records:
    """Every record the deltas name, read with one query per table."""

    def __init__(self, conn: Connection, deltas: Sequence[dict[str, list[Any]]]) -> None:
        def keys(name: str) -> list[Any]:
            return list({k: None for d in deltas for k in d.get(name, ())})

        t, s, b, m = schema.threads, schema.specs, schema.balances, schema.messages
        x, c, e = schema.transfers, schema.citations, schema.epochs
        self.threads = {
            r.thread_id: codec.thread_from(r._mapping) for r in _rows(conn, t, t.c.thread_id, keys("threads"))
        }
        self.specs = {
            r.spec_id: codec.spec_from(r._mapping) for r in _rows(conn, s, s.c.spec_id, keys("specs"))
        }
        self.balances = {r.account: r.amount for r in _rows(conn, b, b.c.account, keys("accounts"))}
        self.messages = {
            r.message_id: codec.message_from(r._mapping)
            for r in _rows(conn, m, m.c.message_id, keys("messages"))
        }
        # A revised message's row holds its current version: applying it for each revision that
        # led there is harmless (the same later value, applied early).
        self.revisions = {
            r.message_id: codec.revision_from(r._mapping)
            for r in _rows(conn, m, m.c.message_id, keys("revisions"))
        }
        self.transfers = {
            r.id: codec.transfer_from(r._mapping) for r in _rows(conn, x, x.c.id, keys("transfers"))
        }
        self.citations: dict[str, list[Any]] = {}
        for r in sorted(_rows(conn, c, c.c.ask_id, keys("asks")), key=lambda r: r.citation_id):
            self.citations.setdefault(r.ask_id, []).append(codec.citation_from(r._mapping))
        self.epochs = {
            r.epoch: codec.epoch_from(r._mapping) for r in _rows(conn, e, e.c.epoch, keys("epochs"))
        }

    def outcome(self, delta: dict[str, list[Any]]) -> Outcome:
        return Outcome(
            threads={k: self.threads[k] for k in delta.get("threads", ())},
            specs={k: self.specs[k] for k in delta.get("specs", ())},
            balances={k: self.balances.get(k, 0) for k in delta.get("accounts", ())},
            messages=[self.messages[k] for k in delta.get("messages", ())],
            transfers=tuple(self.transfers[k] for k in delta.get("transfers", ())),
            citations=[c for ask in delta.get("asks", ()) for c in self.citations.get(ask, ())],
            epochs=[self.epochs[k] for k in delta.get("epochs", ())],
            novelty=[(mid, ppm) for mid, ppm in delta.get("novelty", ())],
            revisions=[self.revisions[k] for k in delta.get("revisions", ())],
        )


_CHUNK: Final = 500


def _rows(conn: Connection, table: Any, column: Any, keys: list[Any]) -> Iterable[Any]:
    for start in range(0, len(keys), _CHUNK):
        yield from conn.execute(select(table).where(column.in_(keys[start : start + _CHUNK])))
