"""The audit: proves from the store alone that CHOIR was conserved and that the state is
coherent, and, given the vector index, that the index holds exactly the public messages.

What it checks (each failure is a ``Finding`` whose ``kind`` is stable and whose ``detail``
names the account, transfer, spec, thread or message):

    supply               Σ balances = 10^19
    negative_balance     no balance below zero
    unknown_account      every account name is one a rule produces
    invalid_transfer     amount > 0, debit ≠ credit, a known kind, a 128-bit hex id
    duplicate_transfer_id
    replay_overdraft     replaying every transfer in commit order from the genesis
    balance_mismatch       balances never overdraws and ends exactly at the balances table
                           (so a tampered balance and a tampered transfer are both caught)
    escrow               a pending spec's escrow holds its stake; a settled one holds nothing
    co_authors           a thread's co-authors are never empty, never repeated, within the limit
    spec_hash            a spec's staked text hashes to its content_hash, and its spec.submitted
                           event carries the same text (blank only once the message it became is
                           deleted: a deletion takes its copies)
    message_hash         content_hash = sha256(content), unique per thread
    version_hash         every earlier version's text hashes to its content_hash (none is kept
                           once the message is deleted)
    version_log          every version of every message is in the change log with the hash the
                           log committed (the one a chain anchors)
    message_event        a message's content and hash are those of its `message.posted` event
                           (so a message rewritten together with its hash is still caught)
    message_thread       a message belongs to a known thread
    message_count        a thread's message count is what the store holds
    event_seq            a thread's events are numbered 1..last_seq without a gap
    genesis              the meta rows a store is born with are there
With an index:
    index_missing        a public message the index lacks
    index_mismatch       a point whose thread, hash, author or origin differs from the store
    index_co_authors     a point's co-authors differ from its thread's
    index_extra          a point for a message the store does not have
    index_private        a point from a private thread (or marked private)
With a chain (``choir audit --chain``; see choir.chain.audit_checks):
    chain_checkpoint     the chain never settled, or a batch is in flight
    chain_log            a transfer or message the change log does not name
    chain_drift          a mirrored account (or the supply) whose chain balance is not the ledger's
    chain_anchor         an anchor whose memo on chain differs from its records, or a settled
                           range no anchor covers
    coherence            co-authors or a message hash that differ between the store, the index
                           and the latest anchored records

The store is read inside one snapshot (a read transaction), so an audit of a live server
sees one consistent state. Rows are streamed; memory grows with accounts and messages,
not with transfers' history.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Connection, String, cast, func, select

from choir.ledger import GENESIS_BALANCES, SUPPLY, TransferKind, account_class, escrow_account
from choir.ops.audit_texts import MessageFacts, check_message_events, check_spec_texts, check_versions, rows
from choir.program import AI_AUTHOR, SpecStatus, Visibility, tombstone_hash
from choir.store import keywords, schema
from choir.store.sql import VERSION_KEY, Store, read_snapshot
from choir.store.vectors import VectorIndex

if TYPE_CHECKING:
    from choir.chain.audit_checks import ChainSource, IndexView, SettledView

# A badly corrupted store could yield millions of findings: list this many of each kind,
# count the rest.
MAX_FINDINGS_PER_KIND: Final = 50
_TRANSFER_KINDS: Final = frozenset(k.value for k in TransferKind)
_SPEC_STATUSES: Final = frozenset(s.value for s in SpecStatus)
_MAX_CO_AUTHORS_DEFAULT: Final = 10


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    detail: str


@dataclass
class AuditReport:
    findings: list[Finding] = field(default_factory=list)
    # Findings past MAX_FINDINGS_PER_KIND, by kind: counted, not listed.
    suppressed: Counter[str] = field(default_factory=Counter)
    # What was looked at: accounts, transfers, threads, specs, messages, index points.
    checked: Counter[str] = field(default_factory=Counter)
    index_checked: bool = False
    chain_checked: str | None = None  # the chain audited, "<kind>:<custody authority>"
    _listed: Counter[str] = field(default_factory=Counter, repr=False)

    @property
    def ok(self) -> bool:
        return not self.findings and not self.suppressed

    @property
    def finding_count(self) -> int:
        return len(self.findings) + sum(self.suppressed.values())

    def add(self, kind: str, detail: str) -> None:
        if self._listed[kind] >= MAX_FINDINGS_PER_KIND:
            self.suppressed[kind] += 1
            return
        self._listed[kind] += 1
        self.findings.append(Finding(kind, detail))

    def kinds(self) -> set[str]:
        return {f.kind for f in self.findings} | set(self.suppressed)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "findings": [{"kind": f.kind, "detail": f.detail} for f in self.findings],
            "suppressed": dict(self.suppressed),
            "checked": dict(self.checked),
            "index_checked": self.index_checked,
            "chain_checked": self.chain_checked,
        }

    def lines(self) -> list[str]:
        looked = ", ".join(f"{n} {what}" for what, n in sorted(self.checked.items()))
        out = [f"checked {looked}" + ("" if self.index_checked else " (vector index not checked)")]
        if self.chain_checked is not None:
            out.append(f"checked the chain {self.chain_checked}")
        out += [f"{f.kind}: {f.detail}" for f in self.findings]
        out += [f"{kind}: {n} more not listed" for kind, n in sorted(self.suppressed.items())]
        out.append("audit passed" if self.ok else f"audit FAILED: {self.finding_count} findings")
        return out


def audit(store: Store, index: VectorIndex | None = None, chain: ChainSource | None = None) -> AuditReport:
    """Audit the store (and the index, the chain when given). Never raises on bad data: reports it
    (a chain that cannot be reached raises `choir.chain.audit_checks.CannotAuditChain`)."""
    report = AuditReport()
    settled: SettledView | None = None
    with snapshot(store) as conn:
        params = _check_meta(conn, report)
        balances = _check_balances(conn, report)
        _check_replay(conn, report, balances)
        _check_specs(conn, report, balances)
        threads = _check_threads(conn, report, params)
        messages = _check_messages(conn, report, threads)
        _check_events(conn, report, threads)
        check_message_events(conn, report, messages)
        check_versions(conn, report, messages)
        check_spec_texts(conn, report)
        if chain is not None:
            from choir.chain.audit_checks import read_settled

            settled = read_settled(conn, chain)
    _check_keywords(store, report)
    indexed: IndexView | None = None
    if index is not None:
        indexed = _check_index(index, report, threads, messages, store)
        report.index_checked = True
    if settled is not None:
        _check_chain(report, settled, threads, messages, indexed)
    return report


def _check_keywords(store: Store, report: AuditReport) -> None:
    """The keyword index agrees with the messages it is built from (store.keywords)."""
    with store.engine.begin() as conn:  # FTS5's integrity check is written as an INSERT; it changes nothing
        for detail in keywords.check(conn):
            report.add("keyword_index", detail)


def snapshot(store: Store) -> AbstractContextManager[Connection]:
    """A connection whose reads all see one committed state of the store (read only)."""
    return read_snapshot(store.engine)


def _amount(text: Any) -> int | None:
    """A stored amount, or None when the text is not a decimal integer."""
    if not isinstance(text, str) or not text.lstrip("-").isdigit():
        return None
    return int(text)


# -- the ledger ---------------------------------------------------------------------------


def _check_meta(conn: Connection, report: AuditReport) -> dict[str, Any]:
    rows = dict(conn.execute(select(schema.meta.c.key, schema.meta.c.value)).all())
    for key in ("genesis_at", "params", VERSION_KEY):
        if key not in rows:
            report.add("genesis", f"meta row {key!r} is missing")
    try:
        params: dict[str, Any] = json.loads(rows.get("params", "{}"))
    except ValueError:
        report.add("genesis", "meta row 'params' is not JSON")
        params = {}
    return params


def _check_balances(conn: Connection, report: AuditReport) -> dict[str, int]:
    b = schema.balances
    balances: dict[str, int] = {}
    for account, text in rows(conn, select(b.c.account, cast(b.c.amount, String))):
        report.checked["accounts"] += 1
        amount = _amount(text)
        if amount is None:
            report.add("balance_mismatch", f"account {account}: stored balance {text!r} is not an integer")
            continue
        balances[account] = amount
        if amount < 0:
            report.add("negative_balance", f"account {account} holds {amount}")
        if not _known_account(account):
            report.add("unknown_account", f"balance row for {account!r}, a name no rule produces")
    total = sum(balances.values())
    if total != SUPPLY:
        report.add("supply", f"balances sum to {total}, not the supply {SUPPLY} (off by {total - SUPPLY})")
    return balances


def _known_account(account: str) -> bool:
    try:
        account_class(account)
    except ValueError:
        return False
    return True


def _check_replay(conn: Connection, report: AuditReport, balances: dict[str, int]) -> None:
    t = schema.transfers
    query = select(t.c.position, t.c.id, t.c.debit, t.c.credit, cast(t.c.amount, String), t.c.kind).order_by(
        t.c.position
    )
    running = dict(GENESIS_BALANCES)
    seen: set[str] = set()
    overdrawn: set[str] = set()
    for position, tid, debit, credit, text, kind in rows(conn, query):
        report.checked["transfers"] += 1
        name = f"transfer {tid} (position {position})"
        amount = _transfer_problems(report, name, tid, debit, credit, text, kind)
        if tid in seen:
            report.add("duplicate_transfer_id", f"{name}: its id was already used by an earlier transfer")
        seen.add(tid)
        if amount is None:
            continue
        running[debit] = running.get(debit, 0) - amount
        running[credit] = running.get(credit, 0) + amount
        if running[debit] < 0 and debit not in overdrawn:
            overdrawn.add(debit)
            report.add("replay_overdraft", f"{name} overdraws {debit} to {running[debit]}")
    for account in sorted(running.keys() | balances.keys()):
        replayed, stored = running.get(account, 0), balances.get(account, 0)
        if replayed != stored:
            report.add(
                "balance_mismatch",
                f"account {account}: the balances table says {stored}, replaying the transfers gives "
                f"{replayed} (off by {stored - replayed})",
            )


def _transfer_problems(
    report: AuditReport, name: str, tid: Any, debit: str, credit: str, text: Any, kind: str
) -> int | None:
    """Report what is malformed about one transfer; its amount when it can be replayed."""
    if not (isinstance(tid, str) and len(tid) == 32 and all(c in "0123456789abcdef" for c in tid)):
        report.add("invalid_transfer", f"{name}: id is not 32 lowercase hex digits")
    if kind not in _TRANSFER_KINDS:
        report.add("invalid_transfer", f"{name}: unknown kind {kind!r}")
    if debit == credit:
        report.add("invalid_transfer", f"{name}: moves {debit} to itself")
    for account in (debit, credit):
        if not _known_account(account):
            report.add("unknown_account", f"{name} names {account!r}, a name no rule produces")
    amount = _amount(text)
    if amount is None:
        report.add("invalid_transfer", f"{name}: amount {text!r} is not an integer")
        return None
    if amount <= 0 or amount > SUPPLY:
        report.add("invalid_transfer", f"{name}: amount {amount} is not in 1..{SUPPLY}")
        return None
    return amount if debit != credit else None


def _check_specs(conn: Connection, report: AuditReport, balances: dict[str, int]) -> None:
    s = schema.specs
    spec_escrows: set[str] = set()
    for spec_id, status, text in rows(conn, select(s.c.spec_id, s.c.status, cast(s.c.stake, String))):
        report.checked["specs"] += 1
        account = escrow_account(spec_id)
        spec_escrows.add(account)
        held = balances.get(account, 0)
        if status == SpecStatus.PENDING:
            if _amount(text) != held:
                report.add("escrow", f"pending spec {spec_id}: escrow holds {held}, its stake is {text}")
        elif status in _SPEC_STATUSES:
            if held != 0:
                report.add("escrow", f"{status} spec {spec_id} still holds {held} in escrow")
        else:
            report.add("escrow", f"spec {spec_id} has an unknown status {status!r}")
    for account, held in balances.items():
        if account.startswith("escrow:") and account not in spec_escrows and held != 0:
            report.add("escrow", f"{account} holds {held} but no such spec exists")


# -- threads, messages, events ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Thread:
    visibility: str
    co_authors: tuple[str, ...]
    message_count: int
    last_seq: int


def _check_threads(conn: Connection, report: AuditReport, params: dict[str, Any]) -> dict[str, _Thread]:
    t = schema.threads
    limit = int(params.get("max_co_authors", _MAX_CO_AUTHORS_DEFAULT))
    threads: dict[str, _Thread] = {}
    query = select(t.c.thread_id, t.c.visibility, cast(t.c.members, String), t.c.message_count, t.c.last_seq)
    for thread_id, visibility, members, message_count, last_seq in rows(conn, query):
        report.checked["threads"] += 1
        co_authors = _co_authors(members)
        if co_authors is None:
            report.add("co_authors", f"thread {thread_id}: its co-author list is unreadable")
            co_authors = ()
        if not co_authors:
            report.add("co_authors", f"thread {thread_id} has no co-author")
        if len(set(co_authors)) != len(co_authors):
            twice = sorted(a for a, n in Counter(co_authors).items() if n > 1)
            report.add("co_authors", f"thread {thread_id} lists {', '.join(twice)} more than once")
        if len(co_authors) > limit:
            report.add("co_authors", f"thread {thread_id} has {len(co_authors)} co-authors (limit {limit})")
        threads[thread_id] = _Thread(visibility, co_authors, message_count, last_seq)
    return threads


def _co_authors(text: str) -> tuple[str, ...] | None:
    """The addresses of a stored member list (``[[address, joined_at], ...]``)."""
    try:
        members = json.loads(text)
        return tuple(str(m[0]) for m in members)
    except (ValueError, TypeError, IndexError, KeyError):
        return None


def _check_messages(
    conn: Connection, report: AuditReport, threads: dict[str, _Thread]
) -> dict[str, MessageFacts]:
    m = schema.messages
    messages: dict[str, MessageFacts] = {}
    hashes: set[tuple[str, str]] = set()
    counts: Counter[str] = Counter()
    v = schema.message_versions
    first = dict(conn.execute(select(v.c.message_id, v.c.content_hash).where(v.c.version == 1)).all())
    query = select(
        m.c.message_id,
        m.c.thread_id,
        m.c.author,
        m.c.content,
        m.c.content_hash,
        m.c.ask_id,
        m.c.version,
        m.c.deleted_at.is_not(None),
    )
    for message_id, thread_id, author, content, stored_hash, ask_id, version, deleted in rows(conn, query):
        report.checked["messages"] += 1
        counts[thread_id] += 1
        # A tombstone holds no content and its own hash (the one its deletion anchored).
        actual = tombstone_hash(message_id) if deleted else hashlib.sha256(content.encode()).hexdigest()
        if actual != stored_hash:
            report.add(
                "message_hash",
                f"message {message_id} in {thread_id}: stored hash {stored_hash[:12]}… but its content "
                f"hashes to {actual[:12]}…",
            )
        elif deleted and content:
            report.add("message_hash", f"message {message_id} is deleted but still holds content")
        # An AI answer may repeat an earlier answer, a person's post may not; a tombstone holds nothing.
        if ask_id is None and not deleted:
            if (thread_id, stored_hash) in hashes:
                report.add("message_hash", f"message {message_id}: its hash appears twice in {thread_id}")
            hashes.add((thread_id, stored_hash))
        if thread_id not in threads:
            report.add("message_thread", f"message {message_id} belongs to unknown thread {thread_id}")
        first_hash = first.get(message_id, stored_hash) if version > 1 else stored_hash
        messages[message_id] = MessageFacts(
            thread_id, stored_hash, author, version, bool(deleted), first_hash
        )
    for thread_id, thread in threads.items():
        if counts[thread_id] != thread.message_count:
            report.add(
                "message_count",
                f"thread {thread_id} counts {thread.message_count} messages, the store holds "
                f"{counts[thread_id]}",
            )
    return messages


def _check_events(conn: Connection, report: AuditReport, threads: dict[str, _Thread]) -> None:
    e = schema.events
    query = select(e.c.thread_id, func.count(), func.min(e.c.seq), func.max(e.c.seq)).group_by(e.c.thread_id)
    seen: set[str] = set()
    for thread_id, count, low, high in conn.execute(query):
        report.checked["events"] += count
        seen.add(thread_id)
        thread = threads.get(thread_id)
        last = thread.last_seq if thread else None
        if (low, high, count) != (1, last, last):
            report.add(
                "event_seq",
                f"thread {thread_id}: events numbered {low}..{high} ({count} of them), "
                f"expected 1..{last} without a gap",
            )
    for thread_id, thread in threads.items():
        if thread_id not in seen and thread.last_seq:
            report.add("event_seq", f"thread {thread_id}: last seq {thread.last_seq} but no stored event")


# -- the vector index ---------------------------------------------------------------------


def _check_index(
    index: VectorIndex,
    report: AuditReport,
    threads: dict[str, _Thread],
    messages: dict[str, MessageFacts],
    store: Store | None = None,
) -> IndexView:
    """Check every point; return what the index says of threads and messages (for the chain check)."""
    from choir.chain.audit_checks import IndexView

    expected = {
        mid
        for mid, msg in messages.items()
        if not msg.deleted
        and (t := threads.get(msg.thread_id)) is not None
        and t.visibility == Visibility.PUBLIC
    }
    present: set[str] = set()
    co_authors: dict[str, tuple[str, ...]] = {}
    said: dict[str, tuple[str, str]] = {}
    doubtful: list[Any] = []
    for point in index.scroll_all():
        report.checked["index points"] += 1
        present.add(point.message_id)
        scratch = AuditReport()
        _check_point(point, scratch, threads, messages)
        if scratch.findings:
            doubtful.append(point)
        # Points of one thread that disagree are each named by index_co_authors; one set stands for it.
        co_authors.setdefault(point.thread_id, tuple(point.co_authors))
        said[point.message_id] = (point.thread_id, point.content_hash)
    # A running server commits and indexes on while the audit reads: a point that disagrees with the
    # audit's snapshot is judged against the store as it is now (a message, an edit or a join
    # committed since), and named only when that still disagrees.
    if doubtful:
        now_messages, now_threads = _facts_now(store, [p.message_id for p in doubtful]) if store else ({}, {})
        threads_now, messages_now = threads | now_threads, messages | now_messages
        for point in doubtful:
            _check_point(point, report, threads_now, messages_now)
    for mid in sorted(expected - present):
        msg = messages[mid]
        report.add("index_missing", f"public message {mid} in {msg.thread_id} is not in the vector index")
    return IndexView(co_authors, said)


def _facts_now(store: Store, message_ids: list[str]) -> tuple[dict[str, MessageFacts], dict[str, _Thread]]:
    rows = store.messages_by_id(message_ids)
    found = store.threads_by_id(sorted({r["thread_id"] for r in rows.values()}))
    messages = {
        mid: MessageFacts(
            r["thread_id"], r["content_hash"], r["author"], r["version"], r["deleted_at"] is not None
        )
        for mid, r in rows.items()
    }
    threads = {
        tid: _Thread(t.visibility.value, t.co_authors, t.message_count, t.last_seq)
        for tid, t in found.items()
    }
    return messages, threads


# -- the chain ----------------------------------------------------------------------------


def _check_chain(
    report: AuditReport,
    settled: SettledView,
    threads: dict[str, _Thread],
    messages: dict[str, MessageFacts],
    indexed: IndexView | None,
) -> None:
    from choir.chain.audit_checks import chain_findings

    findings = chain_findings(
        settled,
        sql_co_authors={tid: t.co_authors for tid, t in threads.items()},
        sql_messages={mid: (m.thread_id, m.content_hash) for mid, m in messages.items()},
        sql_versions={mid: m.version for mid, m in messages.items() if m.version > 1},
        deleted={mid for mid, m in messages.items() if m.deleted},
        private_threads={tid for tid, t in threads.items() if t.visibility != Visibility.PUBLIC},
        index=indexed,
    )
    for kind, detail in findings:
        report.add(kind, detail)
    report.checked["anchored batches"] += len(settled.anchors)
    report.chain_checked = settled.source.name


def _check_point(
    point: Any, report: AuditReport, threads: dict[str, _Thread], messages: dict[str, MessageFacts]
) -> None:
    mid = point.message_id
    msg = messages.get(mid)
    if msg is None or msg.deleted:
        held = "holds it deleted" if msg is not None else "does not"
        report.add(
            "index_extra", f"the index holds message {mid} (thread {point.thread_id}); the store {held}"
        )
        return
    thread = threads.get(msg.thread_id)
    if point.visibility != Visibility.PUBLIC or (
        thread is not None and thread.visibility != Visibility.PUBLIC
    ):
        report.add("index_private", f"the index holds message {mid} of private thread {msg.thread_id}")
        return
    differs = [
        f"{what} {got!r} (store: {want!r})"
        for what, got, want in (
            ("thread", point.thread_id, msg.thread_id),
            ("hash", point.content_hash, msg.content_hash),
            ("author", point.author, msg.author),
            ("is_ai", point.is_ai, msg.author == AI_AUTHOR),
        )
        if got != want
    ]
    if differs:
        report.add("index_mismatch", f"index point of message {mid} has " + ", ".join(differs))
    if thread is not None and sorted(point.co_authors) != sorted(thread.co_authors):
        report.add(
            "index_co_authors",
            f"index point of message {mid} lists co-authors {sorted(point.co_authors)}, thread "
            f"{msg.thread_id} has {sorted(thread.co_authors)}",
        )
