"""The settlement feed over the SQL store's change log (`changes`, written by `Store.persist`).

Every committed transfer, published message and co-author change has a position in one commit order
(see `choir.store.schema.changes`). A batch is read inside one read snapshot, so it is a committed
state of the store and nothing half-written:

* transfers and messages: the rows the log names, joined to the `transfers` and `messages` tables
  (the log holds only references: what settles is what the ledger holds);
* ownership, for every thread whose co-authors or balance changed in the batch, as of ``through``:
  the co-author set of the thread's last log entry at or before ``through``, and the balance the
  `balances` table holds now minus the transfers committed after ``through``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import Connection, Engine, and_, func, or_, select

from choir.chain.errors import ChainError
from choir.chain.feed import ChainTransfer, FeedBatch
from choir.chain.records import MessageRecord, OwnershipRecord
from choir.program import version_record_id
from choir.store import schema
from choir.store.sql import read_snapshot

TRANSFER: Final = "t"
MESSAGE: Final = "m"
VERSION: Final = "v"
OWNERSHIP: Final = "o"
_THREAD_PREFIX: Final = "thread:"
# Log rows read per query while filling a batch: bounds memory, whatever the batch limits.
PAGE_ROWS: Final = 2048
# Bound parameters per IN (...) list: SQLite allows 32766, PostgreSQL 65535.
_IN_LIST_MAX: Final = 5000


class ChangeLogError(ChainError):
    """The change log names a row the store does not hold: settling on would hide a drift."""


def head_position(conn: Connection) -> int:
    """The last position of the change log (0 when empty)."""
    return int(conn.execute(select(func.max(schema.changes.c.position))).scalar_one_or_none() or 0)


@dataclass
class _Scan:
    """What a batch collected while walking the log."""

    through: int
    transfers: list[ChainTransfer] = field(default_factory=list)
    messages: list[MessageRecord] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)  # thread ids
    co_authors: dict[str, list[str]] = field(default_factory=dict)  # last set seen in the batch


class SqlFeed:
    """`SettlementFeed` over a store's change log."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def read_after(self, position: int, max_transfers: int, max_records: int) -> FeedBatch:
        if max_transfers < 1 or max_records < 1:
            raise ValueError("a batch holds at least one transfer and one record")
        if position < 0:
            raise ValueError(f"positions start at 0, got {position}")
        return await asyncio.to_thread(self.read_sync, position, max_transfers, max_records)

    def read_sync(self, position: int, max_transfers: int, max_records: int) -> FeedBatch:
        with read_snapshot(self.engine) as conn:
            scan = _scan(conn, position, max_transfers, max_records)
            ownership = _ownership(conn, scan)
        return FeedBatch(
            position, scan.through, tuple(scan.transfers), tuple(scan.messages), tuple(ownership)
        )

    def head(self) -> int:
        with self.engine.connect() as conn:
            return head_position(conn)


def _scan(conn: Connection, after: int, max_transfers: int, max_records: int) -> _Scan:
    """Walk the log after `after` until a limit is reached, as `MemoryFeed.read_after` does."""
    scan = _Scan(after)
    while True:
        rows = conn.execute(_page_query(scan.through)).all()
        for row in rows:
            if row.kind == TRANSFER and len(scan.transfers) == max_transfers:
                return scan
            if row.kind != TRANSFER and len(scan.messages) + len(scan.changed) >= max_records:
                return scan
            _take(scan, row)
        if len(rows) < PAGE_ROWS:
            return scan


def _page_query(after: int) -> Any:
    c, t, m = schema.changes, schema.transfers, schema.messages
    return (
        select(
            c.c.position,
            c.c.kind,
            c.c.ref,
            c.c.co_authors,
            c.c.version,
            func.coalesce(c.c.content_hash, m.c.content_hash).label("content_hash"),
            t.c.id,
            t.c.debit,
            t.c.credit,
            t.c.amount,
            m.c.thread_id,
        )
        .select_from(
            c.outerjoin(t, and_(c.c.kind == TRANSFER, t.c.id == c.c.ref)).outerjoin(
                m, and_(c.c.kind.in_((MESSAGE, VERSION)), m.c.message_id == c.c.ref)
            )
        )
        .where(c.c.position > after)
        .order_by(c.c.position)
        .limit(PAGE_ROWS)
    )


def _take(scan: _Scan, row: Any) -> None:
    where = f"change log position {row.position}"
    if row.kind == TRANSFER:
        if row.id is None:
            raise ChangeLogError(f"{where} names transfer {row.ref}, which the transfers table lacks")
        transfer = ChainTransfer(row.position, int(row.id, 16), row.debit, row.credit, row.amount)
        scan.transfers.append(transfer)
        scan.changed.update(
            n[len(_THREAD_PREFIX) :] for n in (row.debit, row.credit) if n.startswith(_THREAD_PREFIX)
        )
    elif row.kind in (MESSAGE, VERSION):
        if row.thread_id is None:
            raise ChangeLogError(f"{where} names message {row.ref}, which the messages table lacks")
        # A message's first record has its id; each later version is a record of its own (the
        # hash committed in the log, not the message's current one).
        record_id = row.ref if row.kind == MESSAGE else version_record_id(row.ref, row.version)
        scan.messages.append(MessageRecord(record_id, row.thread_id, _hash_bytes(row.content_hash, where)))
    elif row.kind == OWNERSHIP:
        scan.changed.add(row.ref)
        scan.co_authors[row.ref] = _members(row.co_authors, where)
    else:
        raise ChangeLogError(f"{where} has unknown kind {row.kind!r}")
    scan.through = row.position


def _hash_bytes(text: str, where: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != 32:
        raise ChangeLogError(f"{where}: content hash {text!r} is not 64 hex digits")
    return value


def _members(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(a, str) and a for a in value):
        raise ChangeLogError(f"{where}: co-author set {value!r} is not a list of addresses")
    return value


def _ownership(conn: Connection, scan: _Scan) -> list[OwnershipRecord]:
    if not scan.changed:
        return []
    threads = sorted(scan.changed)
    co_authors = {t: scan.co_authors.get(t) or co_authors_at(conn, t, scan.through) for t in threads}
    accounts = [_THREAD_PREFIX + t for t in threads]
    balances = ledger_balances_at(conn, scan.through, accounts)
    return [OwnershipRecord.of(t, co_authors[t], balances.get(_THREAD_PREFIX + t, 0)) for t in threads]


def co_authors_at(conn: Connection, thread_id: str, position: int) -> list[str]:
    """The thread's co-author set as of `position`: its last ownership entry at or before it."""
    c = schema.changes
    query = (
        select(c.c.co_authors)
        .where(c.c.ref == thread_id, c.c.kind == OWNERSHIP, c.c.position <= position)
        .order_by(c.c.position.desc())
        .limit(1)
    )
    found = conn.execute(query).first()
    if found is None:
        raise ChangeLogError(f"thread {thread_id} has no co-author set logged at or before {position}")
    return _members(found[0], f"the co-author set of thread {thread_id}")


def ledger_balances_at(
    conn: Connection, position: int, accounts: Collection[str] | None = None
) -> dict[str, int]:
    """Ledger balances as of a log position: today's balances minus the transfers committed since.

    `accounts` limits the answer to those names (None: every account the ledger knows). The work is
    proportional to the transfers after `position` (the settlement backlog), not to the history.
    """
    b = schema.balances
    query = select(b.c.account, b.c.amount)
    names = None if accounts is None else sorted(set(accounts))
    balances: dict[str, int] = {}
    if names is None:
        balances.update((a, int(v)) for a, v in conn.execute(query))
    else:
        for chunk in _chunks(names):
            balances.update((a, int(v)) for a, v in conn.execute(query.where(b.c.account.in_(chunk))))
        balances.update((n, 0) for n in names if n not in balances)
    for debit, credit, amount in _transfers_after(conn, position, names):
        if debit in balances:
            balances[debit] += amount
        if credit in balances:
            balances[credit] -= amount
    return balances


def _transfers_after(
    conn: Connection, position: int, names: list[str] | None
) -> Iterator[tuple[str, str, int]]:
    c, t = schema.changes, schema.transfers
    base = (
        select(c.c.position, t.c.debit, t.c.credit, t.c.amount)
        .select_from(c.join(t, t.c.id == c.c.ref))
        .where(c.c.kind == TRANSFER, c.c.position > position)
    )
    if names is None:
        for _, debit, credit, amount in conn.execute(base.execution_options(yield_per=PAGE_ROWS)):
            yield debit, credit, amount
        return
    seen: set[int] = set()  # a transfer between two chunks' names is met twice
    for chunk in _chunks(names):
        query = base.where(or_(t.c.debit.in_(chunk), t.c.credit.in_(chunk)))
        for at, debit, credit, amount in conn.execute(query.execution_options(yield_per=PAGE_ROWS)):
            if at not in seen:
                seen.add(at)
                yield debit, credit, amount


def _chunks(names: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(names), _IN_LIST_MAX):
        yield names[start : start + _IN_LIST_MAX]


def log_gaps(conn: Connection) -> list[str]:
    """Transfers and messages the store holds that the change log does not name (never settled)."""
    c = schema.changes
    out: list[str] = []
    for kind, table, key, what in (
        (TRANSFER, schema.transfers, schema.transfers.c.id, "transfer"),
        (MESSAGE, schema.messages, schema.messages.c.message_id, "message"),
    ):
        logged = select(c.c.ref).where(c.c.kind == kind)
        missing = conn.execute(select(key).select_from(table).where(key.not_in(logged)).limit(50)).scalars()
        out += [f"{what} {ref} is not in the change log: it will never settle" for ref in missing]
    return out
