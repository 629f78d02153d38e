"""`choir audit --chain`: the chain against the store, and the three-way coherence check.

Read inside the audit's snapshot of the store (`read_settled`): the chain's checkpoint, the anchored
records, and the ledger as of the settled position. Then (`chain_findings`) the chain itself is asked:
the embedded chain is the one saved with that checkpoint (LiteSVM restored from its snapshot, so the
audit needs no running server), a cluster is read over RPC. Findings, each naming what differs:

    chain_checkpoint   the chain never settled, or a batch is in flight (finish it by starting the server)
    chain_log          a transfer or message the change log does not name (it would never settle)
    chain_drift        a mirrored account, or the mint's supply, whose chain balance is not the ledger's
                       as of the settled position (`reconcile`: reported, never corrected)
    chain_anchor       an anchored batch whose memo on chain differs from its records' Merkle root, or a
                       settled range no anchor covers
    coherence          a thread's co-authors or a message's hash that differ between the SQL store, the
                       vector index and the latest anchored records (`coherence_differences`)

Anchoring lags the store: a thread whose co-authors changed after the settled position is compared
once its new set is anchored; a message not anchored yet is no difference.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TypeVar

from solders.pubkey import Pubkey
from sqlalchemy import Connection, select
from sqlalchemy.exc import SQLAlchemyError

from choir.chain.anchor import AnchoredBatch, read_anchor
from choir.chain.backend import ChainBackend
from choir.chain.coherence import coherence_differences
from choir.chain.cursor import Checkpoint
from choir.chain.errors import ChainError
from choir.chain.layout import CustodyLayout
from choir.chain.litesvm_backend import LiteSvmBackend
from choir.chain.merkle import MerkleTree
from choir.chain.reconcile import reconcile
from choir.chain.records import MessageRecord, OwnershipRecord, split_record_id
from choir.chain.sqlfeed import OWNERSHIP, head_position, ledger_balances_at, log_gaps
from choir.chain.sqlstate import anchored_batches, chain_names, load_checkpoint
from choir.ledger import SUPPLY
from choir.store import schema
from choir.store.sql import Store

_T = TypeVar("_T")
Finding = tuple[str, str]


class CannotAuditChain(ChainError):
    """There is no chain to audit, or it cannot be reached; the message says why."""


@dataclass(frozen=True)
class ChainSource:
    """Which chain to audit: the checkpoint's key ``<kind>:<custody authority>``, and its RPC URL."""

    name: str
    rpc_url: str | None = None

    @property
    def kind(self) -> str:
        return self.name.partition(":")[0]

    @property
    def layout(self) -> CustodyLayout:
        return CustodyLayout(Pubkey.from_string(self.name.partition(":")[2]))


def find_chain_source(store: Store, kind: str, rpc_url: str | None) -> ChainSource:
    """The most recently settled chain of that kind in the store."""
    if kind == "rpc" and not rpc_url:
        raise CannotAuditChain("CHOIR_CHAIN=rpc needs CHOIR_SOLANA_RPC_URL to read the cluster")
    try:
        with store.engine.connect() as conn:
            names = chain_names(conn, kind)
    except SQLAlchemyError:
        raise CannotAuditChain(
            "the store has no settlement tables: no server of this version has opened it"
        ) from None
    if not names:
        raise CannotAuditChain(
            f"the store has no {kind} settlement checkpoint: no server ran with CHOIR_CHAIN={kind} on it"
        )
    return ChainSource(names[0], rpc_url if kind == "rpc" else None)


@dataclass(frozen=True)
class IndexView:
    """What the vector index says: co-authors per thread, (thread id, content hash hex) per message."""

    co_authors: Mapping[str, Collection[str]]
    messages: Mapping[str, tuple[str, str]]


@dataclass(frozen=True)
class SettledView:
    """The store's side of the chain, read in the audit's snapshot."""

    source: ChainSource
    checkpoint: Checkpoint
    head: int
    ledger: dict[str, int]  # as of checkpoint.position
    anchors: list[AnchoredBatch]  # through <= checkpoint.position
    owners_changed_since: frozenset[str]
    log_gaps: list[str]


def read_settled(conn: Connection, source: ChainSource) -> SettledView:
    checkpoint = load_checkpoint(conn, source.name)
    position = checkpoint.position
    c = schema.changes
    changed = conn.execute(select(c.c.ref).where(c.c.kind == OWNERSHIP, c.c.position > position).distinct())
    return SettledView(
        source,
        checkpoint,
        head_position(conn),
        ledger_balances_at(conn, position),
        [a for a in anchored_batches(conn, source.name) if a.memo.through <= position],
        frozenset(changed.scalars()),
        log_gaps(conn),
    )


def chain_findings(
    view: SettledView,
    *,
    sql_co_authors: Mapping[str, Collection[str]],
    sql_messages: Mapping[str, tuple[str, str]],
    private_threads: Collection[str],
    index: IndexView | None,
    sql_versions: Mapping[str, int] | None = None,
    deleted: Collection[str] = (),
) -> list[Finding]:
    """Every difference between the chain, its anchors, the store and the index. Raises
    `CannotAuditChain` when the chain cannot be read. ``sql_versions``: each edited message's
    current version; ``deleted``: the tombstones (never in the index, by design)."""
    findings: list[Finding] = [("chain_log", gap) for gap in view.log_gaps]
    checkpoint = view.checkpoint
    if view.source.kind == "litesvm" and checkpoint.chain_snapshot is None:
        return [*findings, ("chain_checkpoint", f"{view.source.name} saved no chain snapshot yet")]
    findings += _run(lambda: _ask_chain(view))
    findings += [
        ("coherence", line)
        for line in _coherence(
            view, sql_co_authors, sql_messages, private_threads, index, sql_versions or {}, deleted
        )
    ]
    return findings


async def _ask_chain(view: SettledView) -> list[Finding]:
    backend = await _open(view)
    try:
        findings: list[Finding] = []
        in_flight = view.checkpoint.in_flight
        if in_flight is not None:
            findings.append(
                (
                    "chain_checkpoint",
                    f"a batch of positions {in_flight.batch.after + 1}..{in_flight.batch.through} is in flight: "
                    "start the server to land it, then audit again (balances not reconciled)",
                )
            )
        else:
            drifts = await reconcile(backend, view.source.layout, view.ledger, SUPPLY)
            findings += [
                ("chain_drift", f"{d} (settled through position {view.checkpoint.position})") for d in drifts
            ]
        findings += [("chain_anchor", line) for line in await _anchor_problems(backend, view)]
        return findings
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            await close()


async def _open(view: SettledView) -> ChainBackend:
    if view.source.kind == "litesvm":
        assert view.checkpoint.chain_snapshot is not None
        try:
            return LiteSvmBackend.restore(view.checkpoint.chain_snapshot)
        except ValueError as exc:
            raise CannotAuditChain(f"the embedded chain's snapshot cannot be restored: {exc}") from None
    from choir.chain.rpc_backend import RpcBackend

    return RpcBackend.connect(view.source.rpc_url)


async def _anchor_problems(backend: ChainBackend, view: SettledView) -> list[str]:
    out: list[str] = []
    covered = 0
    for anchored in view.anchors:
        memo = anchored.memo
        if memo.first != covered + 1:
            out.append(f"positions {covered + 1}..{memo.first - 1} are settled but no anchor covers them")
        covered = max(covered, memo.through)
        leaves = anchored.leaves()
        if MerkleTree(leaves).root != memo.root or len(leaves) != memo.leaves:
            out.append(
                f"batch {memo.first}..{memo.through}: its stored records do not hash to its memo's root"
            )
        try:
            on_chain = await read_anchor(backend, anchored.signature)
        except LookupError as exc:
            out.append(f"batch {memo.first}..{memo.through}: {exc}")
            continue
        if on_chain != memo:
            out.append(
                f"batch {memo.first}..{memo.through}: the chain's memo says {on_chain.text()!r}, the store {memo.text()!r}"
            )
    if view.checkpoint.position > covered:
        out.append(
            f"positions {covered + 1}..{view.checkpoint.position} are settled but no anchor covers them"
        )
    return out


def _coherence(
    view: SettledView,
    sql_co_authors: Mapping[str, Collection[str]],
    sql_messages: Mapping[str, tuple[str, str]],
    private_threads: Collection[str],
    index: IndexView | None,
    sql_versions: Mapping[str, int],
    deleted: Collection[str],
) -> list[str]:
    ownership: dict[str, OwnershipRecord] = {}
    latest: dict[str, tuple[int, MessageRecord]] = {}
    for anchored in view.anchors:
        ownership.update((r.thread_id, r) for r in anchored.ownership)
        for record in anchored.messages:
            # A message's versions are records of their own; the latest one anchored stands for it.
            message_id, version = split_record_id(record.message_id)
            if message_id not in latest or version > latest[message_id][0]:
                latest[message_id] = (
                    version,
                    MessageRecord(message_id, record.thread_id, record.content_hash),
                )
    # A message whose current version is not anchored yet is lag, not a difference.
    anchored_messages = {
        mid: record for mid, (version, record) in latest.items() if version >= sql_versions.get(mid, 1)
    }
    for thread_id in view.owners_changed_since:
        ownership.pop(thread_id, None)  # its new set is not anchored yet: lag, not a difference
    sql = _records(sql_messages)
    if index is None:
        # The index was not asked (--no-index): the store stands in for it.
        index_co_authors, index_messages = sql_co_authors, sql
    else:
        index_co_authors = index.co_authors
        # Private messages are never indexed, by design: for them the store's record stands in.
        private = {mid: r for mid, r in sql.items() if r.thread_id in private_threads or mid in deleted}
        index_messages = {**private, **_records(index.messages)}
    return coherence_differences(
        sql_co_authors=sql_co_authors,
        index_co_authors=index_co_authors,
        anchored_ownership=ownership,
        sql_messages=sql,
        index_messages=index_messages,
        anchored_messages=anchored_messages,
    )


def _records(messages: Mapping[str, tuple[str, str]]) -> dict[str, MessageRecord]:
    """Message records; a malformed stored hash is left out (the audit names it as message_hash)."""
    out: dict[str, MessageRecord] = {}
    for message_id, (thread_id, content_hash) in messages.items():
        try:
            out[message_id] = MessageRecord(message_id, thread_id, bytes.fromhex(content_hash))
        except ValueError:
            continue
    return out


def _run(make: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to completion from synchronous code, inside a running event loop or not."""

    async def main() -> _T:
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()
