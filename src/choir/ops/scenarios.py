"""Incentive attacks, simulated with bounds: ``choir simulate --scenario NAME``.

Each scenario plays one attack a reward system meets on launch day against the real Thread
Program (pure core, simulated clock), alongside honest people, and reports the bound the rules
keep. The rules each one relies on are written in docs/tokens.md ("What attacks earn").

    duplicate-spam   copies and near-copies (similarity >= 0.95) of earlier messages earn 0
    sybil            one person split into K authors earns no more than the same posts under one
                     name would without the per-author cap; each identity is still capped
    self-citation    citing one's own messages or thread earns 0
    citation-ring    colluders citing each other's threads share at most the epoch's prior budget
    flash-join       joining and divesting at once is refused until the 7-day lock ends
    spec-griefing    a full queue of junk specs ends by expiry within 7 days; the stakes go to
                     the treasury, and the thread takes specs again
    rounding         thousands of tiny transfers and odd splits never mint: the supply is exact
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from choir.ledger import ONE_CHOIR, POOL_NEW_MESSAGES, SUPPLY, TREASURY, thread_account, user_account
from choir.program import (
    CitationInput,
    CreateThread,
    DeleteMessage,
    Divest,
    EditMessage,
    Expire,
    Grant,
    Instruction,
    Outcome,
    Params,
    PostAnswer,
    PostMessage,
    ProgramError,
    SetNovelty,
    SettleEpoch,
    SpecStatus,
    State,
    SubmitSpec,
    Vote,
    Withdraw,
    apply,
    check,
)
from choir.rewards import novelty_ppm

GENESIS = datetime(2026, 1, 1, tzinfo=UTC)
HOUR_S = 3600


@dataclass(frozen=True)
class Bound:
    scenario: str
    attack: str
    measured: str
    bound: str
    holds: bool
    # The numbers behind ``measured``, by name (base units and counts), for tests and reports.
    values: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return f"{self.scenario:<15} {'held' if self.holds else 'BROKEN':<7} {self.measured}  (bound: {self.bound})"


class World:
    """The pure program on a simulated clock; every step checks every invariant."""

    def __init__(self, params: Params | None = None) -> None:
        self.state = State.genesis(GENESIS, params or Params(epoch_seconds=HOUR_S))
        self.now = GENESIS + timedelta(seconds=1)
        self.count = 0

    def do(self, ins: Instruction) -> Outcome:
        outcome = apply(self.state, ins, self.now)
        self.state.commit(outcome)
        check(self.state)
        return outcome

    def try_do(self, ins: Instruction) -> ProgramError | None:
        try:
            self.do(ins)
        except ProgramError as error:
            return error
        return None

    def tick(self, seconds: float = 1.0) -> None:
        self.now += timedelta(seconds=seconds)

    def fund(self, who: str, amount: int = 1_000 * ONE_CHOIR) -> None:
        self.count += 1
        self.do(Grant(who, amount, f"fund{self.count}"))

    def post(self, who: str, thread_id: str, content: str, similarity: float | None = None) -> str:
        """Publish, then measure novelty as the indexer would, from the given similarity."""
        self.count += 1
        message_id = f"m{self.count}"
        self.do(PostMessage(who, thread_id, message_id, content, novelty_ppm=None))
        self.do(SetNovelty(message_id, novelty_ppm(similarity)))
        self.tick()
        return message_id

    def settle(self) -> Outcome:
        epoch = self.state.epoch_of(self.now)
        self.now = self.state.epoch_bounds(epoch)[1] + timedelta(seconds=1)
        return self.do(SettleEpoch(epoch))

    def paid(self, outcome: Outcome, who: str) -> int:
        return sum(t.amount for t in outcome.transfers if t.credit == user_account(who))

    def budget(self, outcome: Outcome) -> int:
        return outcome.epochs[0].new_message_budget


def duplicate_spam() -> Bound:
    w = World()
    w.do(CreateThread("honest", "h", "honest"))
    w.do(CreateThread("spammer", "s", "spam"))
    for n in range(10):
        w.post("honest", "h", f"honest thought number {n}")
    original = w.post("spammer", "s", "the one original thing the spammer wrote")
    refused = sum(
        w.try_do(PostMessage("spammer", "s", f"dup{n}", "the one original thing the spammer wrote"))
        is not None
        for n in range(20)
    )
    for n in range(40):  # copies (1.0) and near-copies (0.95-0.99) of others' words, in the spammer's thread
        w.post(
            "spammer",
            "s",
            f"copied honest thought number {n} again",
            similarity=1.0 if n % 2 else 0.95 + n / 1000,
        )
    outcome = w.settle()
    spam_paid = w.paid(outcome, "spammer")
    # What the spammer's one original message alone earns: 1 weight among 11.
    fair = w.budget(outcome) * 1 // 11
    assert original
    return Bound(
        "duplicate-spam",
        "20 exact repeats in one thread, 40 copies and near-copies elsewhere",
        f"repeats refused {refused}/20; spammer paid {spam_paid} for 41 posts (its 1 original earns {fair})",
        "repeats refused; copies and near-copies (similarity >= 0.95) earn 0",
        refused == 20 and spam_paid <= fair + 1,
        {"refused": refused, "paid": spam_paid, "fair": fair},
    )


def sybil(identities: int = 8) -> Bound:
    def run(split: bool, with_cap: bool) -> tuple[int, int]:
        params = Params(epoch_seconds=HOUR_S, author_cap_ppm=200_000 if with_cap else 1_000_000)
        w = World(params)
        w.do(CreateThread("honest", "h", "honest"))
        for n in range(20):
            w.post("honest", "h", f"honest post {n}")
        names = [f"sybil{i}" for i in range(identities)] if split else ["attacker"]
        for i, name in enumerate(names):
            w.do(CreateThread(name, f"t{i}", f"thread {i}"))
        for n in range(80):
            who = names[n % len(names)]
            w.post(who, f"t{names.index(who)}", f"attacker post {n}")
        outcome = w.settle()
        return sum(w.paid(outcome, name) for name in names), w.budget(outcome)

    single, budget = run(split=False, with_cap=True)
    split, _ = run(split=True, with_cap=True)
    uncapped, _ = run(split=False, with_cap=False)
    per_identity_cap = budget * 200_000 // 1_000_000
    return Bound(
        "sybil",
        f"one person as {identities} authors posting 80 of 100 messages",
        f"one name {single}, {identities} sybils {split}, the same posts uncapped {uncapped}; budget {budget}",
        "sybils together <= the same posts under one name without the cap; each <= 20% of the budget",
        split <= uncapped and split // identities <= per_identity_cap and single <= per_identity_cap,
        {"single": single, "split": split, "uncapped": uncapped, "budget": budget},
    )


def _cite(w: World, asker: str, thread_id: str, cited: list[str]) -> Outcome:
    w.count += 1
    cites = tuple(CitationInput(i + 1, m, 900_000) for i, m in enumerate(cited))
    outcome = w.do(PostAnswer(f"q{w.count}", asker, thread_id, f"a{w.count}", f"answer {w.count}", cites))
    w.tick()
    return outcome


def self_citation() -> Bound:
    w = World()
    w.do(CreateThread("alice", "a", "alice's"))
    mine = [w.post("alice", "a", f"alice wrote {n}") for n in range(5)]
    eligible = 0
    for _ in range(30):
        eligible += sum(r.eligible for r in _cite(w, "alice", "a", mine).citations)
    before = w.state.ledger.balance(thread_account("a"))
    outcome = w.settle()
    prior_paid = outcome.epochs[0].prior_paid
    return Bound(
        "self-citation",
        "30 answers in one's own thread citing one's own messages",
        f"eligible citations {eligible}; prior reward to the thread {w.state.ledger.balance(thread_account('a')) - before}",
        "citing oneself or one's own thread earns 0",
        eligible == 0 and prior_paid == 0,
    )


def citation_ring(members: int = 3) -> Bound:
    w = World()
    names = [f"ring{i}" for i in range(members)]
    messages: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        w.do(CreateThread(name, f"r{i}", f"ring {i}"))
        messages[name] = [w.post(name, f"r{i}", f"ring member {i} post {n}") for n in range(3)]
    w.do(CreateThread("honest", "h", "honest"))
    honest = [w.post("honest", "h", f"honest post {n}") for n in range(3)]
    for round_ in range(40):
        for i, name in enumerate(names):
            other = names[(i + 1) % members]
            _cite(w, name, f"r{i}", messages[other])
        if round_ % 10 == 0:
            _cite(w, "outsider", "r0", honest)  # an honest question now and then, citing the honest thread
    treasury = w.state.ledger.balance(TREASURY)
    outcome = w.settle()
    budget = outcome.epochs[0].prior_budget
    ring_threads = {thread_account(f"r{i}") for i in range(members)}
    ring_paid = sum(t.amount for t in outcome.transfers if t.credit in ring_threads)
    honest_paid = sum(t.amount for t in outcome.transfers if t.credit == thread_account("h"))
    return Bound(
        "citation-ring",
        f"{members} colluders answering 120 questions by citing each other's threads",
        f"ring threads paid {ring_paid}, the honest thread {honest_paid}, of a prior budget {budget} "
        f"(treasury {treasury})",
        "at most the epoch's prior budget = 10 ppm of the treasury, shared with honest citations",
        ring_paid + honest_paid <= budget and honest_paid > 0 and budget == treasury * 10 // 1_000_000,
    )


def flash_join() -> Bound:
    w = World()
    w.do(CreateThread("owner", "t", "rich thread"))
    w.fund("owner")
    w.fund("joiner")
    w.post("owner", "t", "worth citing")
    w.do(SubmitSpec("joiner", "t", "s1", "let me in", ONE_CHOIR))
    w.do(Vote("owner", "s1", True))
    refusal = w.try_do(Divest("joiner", "t"))
    w.tick(7 * 24 * 3600 - 5)
    still = w.try_do(Divest("joiner", "t"))
    w.tick(10)
    later = w.try_do(Divest("joiner", "t"))
    codes = [e.code if e else "ok" for e in (refusal, still, later)]
    return Bound(
        "flash-join",
        "join a thread by spec and divest at once",
        f"divest at join {codes[0]}, 5 s before 7 days {codes[1]}, after {codes[2]}",
        "refused (divest_too_soon) until 7 days after joining",
        codes == ["divest_too_soon", "divest_too_soon", "ok"],
    )


def spec_griefing() -> Bound:
    w = World()
    w.do(CreateThread("owner", "t", "target"))
    w.fund("griefer")
    w.fund("honest")
    treasury = w.state.ledger.balance(TREASURY)
    specs = [f"g{n}" for n in range(20)]
    for n, spec_id in enumerate(specs):
        w.do(SubmitSpec("griefer", "t", spec_id, f"junk {n}", ONE_CHOIR))
    full = w.try_do(SubmitSpec("honest", "t", "h1", "a real spec", ONE_CHOIR))
    w.tick(7 * 24 * 3600)
    for spec_id in specs:
        w.do(Expire("sweeper", spec_id))
    expired = sum(w.state.specs[s].status is SpecStatus.EXPIRED for s in specs)
    reopened = w.try_do(SubmitSpec("honest", "t", "h2", "a real spec", ONE_CHOIR))
    lost = w.state.ledger.balance(TREASURY) - treasury
    return Bound(
        "spec-griefing",
        "20 junk specs fill a thread's queue",
        f"honest spec while full: {full.code if full else 'ok'}; expired after 7 days {expired}/20; "
        f"then: {reopened.code if reopened else 'ok'}; griefer's stakes to the treasury {lost}",
        "blocked at most 7 days (spec_ttl); the junk stakes go to the treasury",
        bool(full) and expired == 20 and reopened is None and lost == 20 * ONE_CHOIR,
    )


def rounding() -> Bound:
    w = World(Params(epoch_seconds=HOUR_S, min_stake=1))
    for n in range(7):
        w.do(CreateThread(f"p{n}", f"t{n}", f"thread {n}"))
    for n in range(700):
        w.post(f"p{n % 7}", f"t{n % 7}", f"post {n}", similarity=(n % 97) / 100)
        if n % 3 == 0:
            w.count += 1
            w.do(Grant(f"p{n % 7}", 1 + n % 13, f"tiny{w.count}"))
    for n in range(200):
        w.try_do(Withdraw(f"p{n % 7}", 1 + n % 11, f"w{n}"))
    paid = 0
    for _ in range(5):
        outcome = w.settle()
        paid += outcome.epochs[0].new_message_paid
        budget = outcome.epochs[0].new_message_budget
        assert outcome.epochs[0].new_message_paid <= budget
    total = w.state.ledger.total()
    pool = w.state.ledger.balance(POOL_NEW_MESSAGES)
    return Bound(
        "rounding",
        "700 posts of odd weights, 233 tiny grants, 200 tiny withdrawals, 5 epochs of floored splits",
        f"Σ balances {total} (supply {SUPPLY}); paid {paid}; pool left {pool}",
        "Σ balances = supply exactly; an epoch never pays more than its budget (floors stay in the pool)",
        total == SUPPLY,
    )


def edit_farming(edits: int = 40) -> Bound:
    """One message edited again and again, and one posted then deleted, beside authors who each post
    one message: the farmer earns exactly what one message earns, never for the edits or the deleted."""
    w = World()
    authors = ["farmer", "single", *(f"honest{i}" for i in range(6))]  # each under the 20% cap
    for name in authors:
        w.do(CreateThread(name, name, f"{name}'s"))
    farmed = w.post("farmer", "farmer", "a first thought")
    for n in range(edits):
        w.do(EditMessage("farmer", farmed, f"a first thought, edited {n + 1} times"))
        w.tick()
    gone = w.post("farmer", "farmer", "soon deleted")
    w.do(DeleteMessage("farmer", gone))
    for name in authors[1:]:
        w.post(name, name, f"the one message of {name}")
    outcome = w.settle()
    farmer, single = w.paid(outcome, "farmer"), w.paid(outcome, "single")
    return Bound(
        "edit-farming",
        f"one message edited {edits} times and one deleted, beside seven authors of one message each",
        f"farmer paid {farmer}, an author of one unedited message paid {single}",
        "an edit earns nothing of its own and a deleted message nothing: exactly one message's share",
        farmer == single > 0,
        {"farmer": farmer, "single": single},
    )


SCENARIOS: dict[str, Callable[[], Bound]] = {
    "duplicate-spam": duplicate_spam,
    "sybil": sybil,
    "self-citation": self_citation,
    "citation-ring": citation_ring,
    "flash-join": flash_join,
    "spec-griefing": spec_griefing,
    "edit-farming": edit_farming,
    "rounding": rounding,
}
