"""Analytics read from the SQL store: activity per day, rewards per epoch, the most-cited
priors, each public thread's temperature and recommended stake over time, and the
treasury's ledger (what flowed in and out, by kind).

Everything is computed from the stored records alone, inside one read snapshot, so the
numbers agree with each other and with ``choir audit``. Amounts are ``int`` base units
here and decimal strings in JSON (DESIGN §7). Days are UTC dates.
"""

from __future__ import annotations

import bisect
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, func, or_, select

from choir.ledger import GENESIS_BALANCES, ONE_CHOIR, TREASURY, TransferKind, thread_account
from choir.ops.audit import snapshot
from choir.program import AI_AUTHOR, Visibility
from choir.program.pricing import SECONDS_PER_DAY, recommended_stake, temperature
from choir.store import schema
from choir.store.sql import Store

# Bounds on what one stats call returns (and computes): the rest is summarized in totals.
THREADS_MAX: Final = 10
DAYS_MAX: Final = 366
EPOCHS_MAX: Final = 500
TOP_CITED_MAX: Final = 10
RECENT_TRANSFERS_MAX: Final = 20
EXCERPT_CHARS: Final = 140

TREASURY_INFLOWS: Final = (TransferKind.SPEC_MIXED, TransferKind.SPEC_EXPIRED)
TREASURY_OUTFLOWS: Final = (TransferKind.PRIOR_REWARD, TransferKind.GRANT)


def day_of(at: datetime) -> str:
    return at.astimezone(UTC).date().isoformat()


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Day:
    day: str
    active_users: int = 0
    messages: int = 0
    questions: int = 0
    citations: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "active_users": self.active_users,
            "messages": self.messages,
            "questions": self.questions,
            "citations": self.citations,
        }


@dataclass(frozen=True, slots=True)
class EpochRewards:
    epoch: int
    settled_at: datetime
    new_message_budget: int
    new_message_paid: int
    prior_budget: int
    prior_paid: int
    recipients: int

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "settled_at": iso(self.settled_at),
            "new_message_budget": str(self.new_message_budget),
            "new_message_paid": str(self.new_message_paid),
            "prior_budget": str(self.prior_budget),
            "prior_paid": str(self.prior_paid),
            "recipients": self.recipients,
        }


@dataclass(frozen=True, slots=True)
class CitedPrior:
    message_id: str
    thread_id: str
    citations: int
    mean_score: float
    excerpt: str

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "thread_id": self.thread_id,
            "citations": self.citations,
            "mean_score": round(self.mean_score, 4),
            "excerpt": self.excerpt,
        }


@dataclass(frozen=True, slots=True)
class ThreadPoint:
    at: datetime
    balance: int
    messages: int
    co_authors: int
    temperature: float
    recommended_stake: int

    def to_json(self) -> dict[str, Any]:
        return {
            "at": iso(self.at),
            "balance": str(self.balance),
            "messages": self.messages,
            "co_authors": self.co_authors,
            "temperature": round(self.temperature, 6),
            "recommended_stake": str(self.recommended_stake),
        }


@dataclass
class ThreadSeries:
    thread_id: str
    title: str
    points: list[ThreadPoint] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "title": self.title,
            "points": [p.to_json() for p in self.points],
        }


@dataclass
class Stats:
    generated_at: datetime
    totals: dict[str, int] = field(default_factory=dict)
    days: list[Day] = field(default_factory=list)
    epochs: list[EpochRewards] = field(default_factory=list)
    top_cited: list[CitedPrior] = field(default_factory=list)
    threads: list[ThreadSeries] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        # Totals that are amounts travel as strings; counts as numbers.
        totals: dict[str, Any] = {
            k: str(v) if k.endswith(("_paid", "_balance")) else v for k, v in self.totals.items()
        }
        return {
            "generated_at": iso(self.generated_at),
            "totals": totals,
            "days": [d.to_json() for d in self.days],
            "epochs": [e.to_json() for e in self.epochs],
            "top_cited": [c.to_json() for c in self.top_cited],
            "threads": [t.to_json() for t in self.threads],
        }


def stats(store: Store, *, threads_max: int = THREADS_MAX, days_max: int = DAYS_MAX) -> Stats:
    """Everything the operator page and ``choir stats`` show."""
    with snapshot(store) as conn:
        threads = _threads(conn)
        report = Stats(generated_at=_latest(conn))
        report.days = _days(conn)[-days_max:]
        report.epochs = _epochs(conn)
        report.top_cited = _top_cited(conn, threads)
        public = [t for t in threads.values() if t.visibility == Visibility.PUBLIC]
        busiest = sorted(public, key=lambda t: (-t.message_count, t.thread_id))[:threads_max]
        report.threads = _thread_series(conn, busiest, report.generated_at, days_max)
        report.totals = _totals(conn, threads, report)
    return report


# -- reading ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Thread:
    thread_id: str
    title: str
    visibility: str
    created_at: datetime
    message_count: int


def _threads(conn: Connection) -> dict[str, _Thread]:
    t = schema.threads
    query = select(t.c.thread_id, t.c.title, t.c.visibility, t.c.created_at, t.c.message_count)
    return {r.thread_id: _Thread(*r) for r in conn.execute(query)}


def _latest(conn: Connection) -> datetime:
    """The time of the last thing the store recorded: analytics describe the store, not the
    clock of whoever reads it (a simulated store lives in its own time)."""
    times: list[datetime | None] = [
        conn.execute(select(func.max(schema.events.c.at))).scalar(),
        conn.execute(select(func.max(schema.transfers.c.at))).scalar(),
    ]
    known = [t for t in times if t is not None]
    if known:
        return max(known)
    genesis = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "genesis_at")).scalar()
    return datetime.fromisoformat(genesis).astimezone(UTC) if genesis else datetime.now(UTC)


def _days(conn: Connection) -> list[Day]:
    m, s, e, c = schema.messages, schema.specs, schema.events, schema.citations
    days: dict[str, Day] = {}
    active: dict[str, set[str]] = defaultdict(set)

    def day(at: datetime) -> Day:
        key = day_of(at)
        found = days.get(key)
        if found is None:
            found = days[key] = Day(key)
        return found

    for author, at in conn.execute(select(m.c.author, m.c.published_at)):
        if author == AI_AUTHOR:
            day(at).questions += 1
        else:
            day(at).messages += 1
            active[day_of(at)].add(author)
    for author, at in conn.execute(select(s.c.author, s.c.submitted_at)):
        active[day(at).day].add(author)
    for data, at in conn.execute(select(e.c.data, e.c.at).where(e.c.kind == "spec.voted")):
        active[day(at).day].add(data["voter"])
    for (at,) in conn.execute(select(c.c.at)):
        day(at).citations += 1
    for key, people in active.items():
        days[key].active_users = len(people)
    return [days[k] for k in sorted(days)]


def _epochs(conn: Connection) -> list[EpochRewards]:
    ep, t = schema.epochs, schema.transfers
    kinds = (TransferKind.NEW_MESSAGE_REWARD.value, TransferKind.PRIOR_REWARD.value)
    recipients: Counter[str] = Counter(
        ref for (ref,) in conn.execute(select(t.c.ref).where(t.c.kind.in_(kinds)))
    )
    rows = conn.execute(select(ep).order_by(ep.c.epoch.desc()).limit(EPOCHS_MAX)).all()
    return [
        EpochRewards(
            r.epoch,
            r.settled_at,
            r.new_message_budget,
            r.new_message_paid,
            r.prior_budget,
            r.prior_paid,
            recipients[f"epoch:{r.epoch}"],
        )
        for r in reversed(rows)
    ]


def _top_cited(conn: Connection, threads: dict[str, _Thread]) -> list[CitedPrior]:
    c, m = schema.citations, schema.messages
    counts: Counter[str] = Counter()
    scores: Counter[str] = Counter()
    for message_id, score_ppm in conn.execute(select(c.c.message_id, c.c.score_ppm)):
        counts[message_id] += 1
        scores[message_id] += score_ppm
    ranked = sorted(counts, key=lambda mid: (-counts[mid], -scores[mid], mid))
    out: list[CitedPrior] = []
    # Only public priors are shown, whatever was cited: an excerpt of a private thread is not ours to
    # show, and a deleted message has none left.
    for start in range(0, len(ranked), 200):
        if len(out) >= TOP_CITED_MAX:
            break
        chunk = ranked[start : start + 200]
        rows = {
            r.message_id: r
            for r in conn.execute(
                select(m.c.message_id, m.c.thread_id, m.c.content).where(
                    m.c.message_id.in_(chunk), m.c.deleted_at.is_(None)
                )
            )
        }
        for mid in chunk:
            row = rows.get(mid)
            thread = threads.get(row.thread_id) if row is not None else None
            if row is None or thread is None or thread.visibility != Visibility.PUBLIC:
                continue
            mean = scores[mid] / counts[mid] / 1_000_000
            out.append(CitedPrior(mid, row.thread_id, counts[mid], mean, _excerpt(row.content)))
            if len(out) >= TOP_CITED_MAX:
                break
    return out


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1] + "…"


# -- a thread's history, replayed ---------------------------------------------------------


@dataclass
class _History:
    """A thread's changes in time order: balance moves, messages, co-author joins and leaves."""

    moves: list[tuple[datetime, int]] = field(default_factory=list)
    messages: list[datetime] = field(default_factory=list)
    members: list[tuple[datetime, int]] = field(default_factory=list)


def _histories(conn: Connection, thread_ids: list[str]) -> dict[str, _History]:
    t, m, e = schema.transfers, schema.messages, schema.events
    histories = {tid: _History() for tid in thread_ids}
    by_account = {thread_account(tid): tid for tid in thread_ids}
    accounts = list(by_account)
    query = (
        select(t.c.debit, t.c.credit, t.c.amount, t.c.at)
        .where(or_(t.c.debit.in_(accounts), t.c.credit.in_(accounts)))
        .order_by(t.c.position)
    )
    for debit, credit, amount, at in conn.execute(query):
        if credit in by_account:
            histories[by_account[credit]].moves.append((at, amount))
        if debit in by_account:
            histories[by_account[debit]].moves.append((at, -amount))
    for thread_id, at in conn.execute(
        select(m.c.thread_id, m.c.published_at).where(m.c.thread_id.in_(thread_ids))
    ):
        histories[thread_id].messages.append(at)
    joins = select(e.c.thread_id, e.c.kind, e.c.at).where(
        e.c.thread_id.in_(thread_ids), e.c.kind.in_(("coauthor.joined", "coauthor.left"))
    )
    for thread_id, kind, at in conn.execute(joins):
        histories[thread_id].members.append((at, 1 if kind == "coauthor.joined" else -1))
    for history in histories.values():
        history.moves.sort(key=lambda x: x[0])
        history.messages.sort()
        history.members.sort(key=lambda x: x[0])
    return histories


def _thread_series(
    conn: Connection, threads: list[_Thread], until: datetime, days_max: int
) -> list[ThreadSeries]:
    histories = _histories(conn, [t.thread_id for t in threads])
    return [
        ThreadSeries(t.thread_id, t.title, _points(t, histories[t.thread_id], until, days_max))
        for t in threads
    ]


def sample_times(start: datetime, until: datetime, days_max: int) -> list[datetime]:
    """The end of each UTC day from ``start``'s day to ``until`` (the last one cut at ``until``),
    at most ``days_max`` of them (the latest)."""
    if until < start:
        return [start]
    first_end = datetime.combine(start.astimezone(UTC).date() + timedelta(days=1), datetime.min.time(), UTC)
    times: list[datetime] = []
    at = first_end
    while at < until:
        times.append(at)
        at += timedelta(days=1)
    times.append(until)
    return times[-days_max:]


def _points(thread: _Thread, history: _History, until: datetime, days_max: int) -> list[ThreadPoint]:
    points: list[ThreadPoint] = []
    move_times = [at for at, _ in history.moves]
    balances = _running([d for _, d in history.moves])
    member_times = [at for at, _ in history.members]
    members = _running([d for _, d in history.members])
    for at in sample_times(thread.created_at, until, days_max):
        i = bisect.bisect_right(move_times, at)
        balance = balances[i - 1] if i else 0
        j = bisect.bisect_right(member_times, at)
        co_authors = 1 + (members[j - 1] if j else 0)
        count = bisect.bisect_right(history.messages, at)
        age_s = (at - thread.created_at).total_seconds()
        age_days = max(age_s, 0.0) / SECONDS_PER_DAY
        rate = count / max(age_days, 1.0)
        temp = temperature(balance / ONE_CHOIR, rate, co_authors, age_days)
        stake = recommended_stake(balance, count, co_authors, age_s)
        points.append(ThreadPoint(at, balance, count, co_authors, temp, stake))
    return points


def _running(deltas: list[int]) -> list[int]:
    out: list[int] = []
    total = 0
    for d in deltas:
        total += d
        out.append(total)
    return out


# -- totals and the treasury -------------------------------------------------------------


def _totals(conn: Connection, threads: dict[str, _Thread], report: Stats) -> dict[str, int]:
    ep = schema.epochs
    new_paid = prior_paid = 0
    settled = 0
    for new, prior in conn.execute(select(ep.c.new_message_paid, ep.c.prior_paid)):
        new_paid += new
        prior_paid += prior
        settled += 1
    return {
        "threads": len(threads),
        "public_threads": sum(1 for t in threads.values() if t.visibility == Visibility.PUBLIC),
        "messages": sum(d.messages for d in report.days),
        "questions": sum(d.questions for d in report.days),
        "citations": sum(d.citations for d in report.days),
        "people": _people(conn),
        "epochs_settled": settled,
        "new_message_rewards_paid": new_paid,
        "prior_rewards_paid": prior_paid,
        "treasury_balance": _balance(conn, TREASURY),
    }


def _people(conn: Connection) -> int:
    m, s = schema.messages, schema.specs
    authors = {a for (a,) in conn.execute(select(m.c.author).distinct()) if a != AI_AUTHOR}
    authors |= {a for (a,) in conn.execute(select(s.c.author).distinct())}
    return len(authors)


def _balance(conn: Connection, account: str) -> int:
    b = schema.balances
    amount = conn.execute(select(b.c.amount).where(b.c.account == account)).scalar()
    return int(amount or 0)


def treasury(store: Store, *, recent: int = RECENT_TRANSFERS_MAX) -> dict[str, Any]:
    """The treasury's ledger: its inflows and outflows by transfer kind, whether they account
    for its balance from genesis, the rates in effect, and its most recent transfers."""
    t = schema.transfers
    inflows: Counter[str] = Counter()
    outflows: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    latest: list[dict[str, Any]] = []
    with snapshot(store) as conn:
        query = (
            select(t.c.position, t.c.id, t.c.debit, t.c.credit, t.c.amount, t.c.kind, t.c.ref, t.c.at)
            .where(or_(t.c.debit == TREASURY, t.c.credit == TREASURY))
            .order_by(t.c.position.desc())
        )
        for row in conn.execute(query):
            side = inflows if row.credit == TREASURY else outflows
            side[row.kind] += row.amount
            counts[row.kind] += 1
            if len(latest) < recent:
                latest.append(_transfer_json(row))
        balance = _balance(conn, TREASURY)
        params_text = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "params")).scalar()
    params = json.loads(params_text) if params_text else {}
    genesis = GENESIS_BALANCES[TREASURY]
    expected = genesis + sum(inflows.values()) - sum(outflows.values())
    return {
        "account": TREASURY,
        "balance": str(balance),
        "genesis_balance": str(genesis),
        "inflows": _flows(inflows, counts, TREASURY_INFLOWS),
        "outflows": _flows(outflows, counts, TREASURY_OUTFLOWS),
        "total_in": str(sum(inflows.values())),
        "total_out": str(sum(outflows.values())),
        # genesis + in − out = balance: the treasury's own conservation, shown.
        "reconciled": expected == balance,
        "rates": {
            "prior_rate_ppm": params.get("prior_rate_ppm"),
            "epoch_seconds": params.get("epoch_seconds"),
            "author_cap_ppm": params.get("author_cap_ppm"),
        },
        "recent": latest,
    }


def _flows(amounts: Counter[str], counts: Counter[str], expected: tuple[TransferKind, ...]) -> dict[str, Any]:
    kinds = [k.value for k in expected] + sorted(k for k in amounts if k not in {e.value for e in expected})
    return {k: {"amount": str(amounts.get(k, 0)), "transfers": counts.get(k, 0)} for k in kinds}


def _transfer_json(row: Any) -> dict[str, Any]:
    return {
        "position": row.position,
        "id": row.id,
        "debit": row.debit,
        "credit": row.credit,
        "amount": str(row.amount),
        "kind": row.kind,
        "ref": row.ref,
        "at": iso(row.at),
    }
