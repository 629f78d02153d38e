"""A deterministic simulator: many actors, random valid and invalid instructions.

It drives the real coordinator (and so the SQL store) with a seeded generator and a
simulated clock that crosses spec expiries and epochs, and checks the invariants after
every step. The same seed replays the same run exactly; a failure names its seed and step.
"""

from __future__ import annotations

import random
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from choir.engine.coordinator import Coordinator
from choir.engine.duties import due_epochs
from choir.ledger import ONE_CHOIR, user_account
from choir.program import (
    CitationInput,
    CreateThread,
    DeleteMessage,
    Divest,
    EditMessage,
    Expire,
    Grant,
    Instruction,
    Params,
    PostMessage,
    ProgramError,
    RecordCitations,
    SetNovelty,
    SettleEpoch,
    SpecStatus,
    State,
    SubmitSpec,
    Visibility,
    Vote,
    Withdraw,
)
from choir.program.invariants import InvariantViolation, check, check_step
from choir.store.sql import Store

GENESIS = datetime(2026, 1, 1, tzinfo=UTC)
# A full check of every invariant over the whole state this often (each step checks what it touched).
FULL_CHECK_EVERY = 1000
WELCOME = 50 * ONE_CHOIR
SWEEP_EVERY = 10
# Mean simulated seconds between steps: the default 10,000 steps then span about three weeks, past
# the 7-day divest lock and spec lifetime, so divests and expiries are applied, not only refused.
STEP_MEAN_S = 180


class SimulationFailure(Exception):
    def __init__(self, seed: int, step: int, instruction: object, problem: str) -> None:
        super().__init__(
            f"seed {seed} step {step}: {problem}\n  instruction: {instruction!r}\n"
            f"  replay: choir simulate --seed {seed} --steps {step + 1}"
        )
        self.seed, self.step = seed, step


@dataclass
class Report:
    seed: int
    steps: int
    applied: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    balances_by_class: dict[str, int] = field(default_factory=dict)
    simulated_days: float = 0.0
    epochs_settled: int = 0

    def lines(self) -> list[str]:
        out = [f"seed {self.seed}: {self.steps} steps over {self.simulated_days:.1f} simulated days"]
        out.append(f"{'instruction':<18}{'applied':>10}{'refused':>10}  refusals by code")
        kinds = sorted({k.split(":")[0] for k in self.applied} | {k.split(":")[0] for k in self.refused})
        for kind in kinds:
            codes = {k.split(":")[1]: n for k, n in self.refused.items() if k.startswith(kind + ":")}
            detail = ", ".join(f"{c} {n}" for c, n in sorted(codes.items()))
            out.append(f"{kind:<18}{self.applied[kind]:>10}{sum(codes.values()):>10}  {detail}")
        out.append(f"epochs settled: {self.epochs_settled}")
        out.append("CHOIR by account class:")
        for cls, amount in sorted(self.balances_by_class.items()):
            out.append(f"  {cls:<10}{amount / ONE_CHOIR:>28,.9f}")
        out.append(f"  {'total':<10}{sum(self.balances_by_class.values()) / ONE_CHOIR:>28,.9f}")
        out.append("every invariant held after every step")
        return out


class Simulator:
    def __init__(
        self, seed: int, actors: int, database_url: str = "sqlite://", *, revisions: bool = True
    ) -> None:
        self.seed = seed
        # False: no edits or deletions, as a store from before they existed (migration tests).
        self.revisions = revisions
        self.rng = random.Random(seed)
        self.now = GENESIS
        params = Params(epoch_seconds=3600)
        self.coordinator = Coordinator.open(Store(database_url), params, clock=lambda: self.now)
        self.actors = [f"actor{i:03d}" for i in range(actors)]
        self.counter = 0

    @property
    def state(self) -> State:
        return self.coordinator.state

    def run(self, steps: int) -> Report:
        report = Report(self.seed, steps)
        for step in range(steps):
            self.now += timedelta(seconds=self.rng.expovariate(1 / STEP_MEAN_S))
            instruction = self.step_instruction(step)
            self.execute(step, instruction, report)
            # The sweeper runs every few steps, as the server's does every few seconds.
            for epoch_instruction in self.due_epochs() if step % SWEEP_EVERY == 0 else ():
                self.execute(step, epoch_instruction, report)
            if step % FULL_CHECK_EVERY == FULL_CHECK_EVERY - 1:
                self.full_check(step, instruction)
        self.full_check(steps, None)
        report.balances_by_class = self.state.ledger.by_class()
        report.simulated_days = (self.now - GENESIS).total_seconds() / 86400
        report.epochs_settled = len(self.state.epochs)
        return report

    def execute(self, step: int, instruction: Instruction, report: Report) -> None:
        kind = type(instruction).__name__
        try:
            outcome = self.coordinator.execute(instruction, self.now)
        except ProgramError as error:
            report.refused[f"{kind}:{error.code}"] += 1
            return
        report.applied[kind] += 1
        try:
            check_step(self.state, outcome)
        except InvariantViolation as violation:
            raise SimulationFailure(self.seed, step, instruction, str(violation)) from None

    def full_check(self, step: int, instruction: object) -> None:
        try:
            check(self.state)
        except InvariantViolation as violation:
            raise SimulationFailure(self.seed, step, instruction, str(violation)) from None

    def due_epochs(self) -> list[Instruction]:
        """The sweeper's epoch settlements that came due (those waiting for novelty weights
        are retried each step); occasionally a repeat of a settled one (a no-op)."""
        due: list[Instruction] = [
            SettleEpoch(e)
            for e in due_epochs(self.state.epochs, self.state.epoch_posts, self.state.epoch_of(self.now))
        ]
        if self.state.epochs and self.rng.random() < 0.05:
            due.append(SettleEpoch(self.rng.choice(sorted(self.state.epochs))))
        return due

    # -- generating instructions -------------------------------------------------------

    def fresh_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def step_instruction(self, step: int) -> Instruction:
        if step < len(self.actors):
            return Grant(self.actors[step], WELCOME, f"welcome-{step}")
        makers: list[tuple[float, Callable[[], Instruction]]] = [
            (0.04, self.create_thread),
            (0.36, self.post),
            (0.06, self.measure),
            (0.12, self.submit_spec),
            (0.20, self.vote),
            (0.05, self.expire),
            (0.04, self.divest),
            (0.08, self.cite),
            (0.02, self.withdraw),
            (0.05, self.nonsense),
            (0.04 if self.revisions else 0.0, self.revise),
        ]
        roll = self.rng.random() * sum(w for w, _ in makers)
        for weight, make in makers:
            roll -= weight
            if roll <= 0:
                return make()
        return self.post()

    def actor(self) -> str:
        return self.rng.choice(self.actors)

    def thread_id(self) -> str:
        threads = list(self.state.threads)
        if not threads or self.rng.random() < 0.03:
            return self.fresh_id("missing")
        thread_id: str = self.rng.choice(threads)
        return thread_id

    def create_thread(self) -> Instruction:
        roll = self.rng.random()
        thread_id = self.fresh_id("t")
        if roll < 0.05 and self.state.threads:
            thread_id = self.rng.choice(list(self.state.threads))  # thread_exists
        elif roll < 0.08:
            thread_id = "x" * 33  # invalid_id: longer than 32 bytes
        visibility = Visibility.PRIVATE if self.rng.random() < 0.2 else Visibility.PUBLIC
        return CreateThread(self.actor(), thread_id, f"topic {self.counter}", visibility)

    def content(self) -> str:
        if self.rng.random() < 0.05:
            return "hello"  # often a duplicate_content
        words = "".join(self.rng.choices(string.ascii_lowercase + " ", k=self.rng.randint(5, 60)))
        return f"{words} #{self.counter}"

    def post(self) -> Instruction:
        thread_id = self.thread_id()
        thread = self.state.threads.get(thread_id)
        if thread and self.rng.random() < 0.85:
            actor = self.rng.choice(thread.co_authors)
        else:
            actor = self.actor()  # often not_co_author
        content = self.content() if self.rng.random() > 0.01 else "x" * (16 * 1024 + 1)
        # A fifth of posts are measured later, as the server does (SetNovelty).
        novelty = None if self.rng.random() < 0.2 else self.rng.randint(0, 1_000_000)
        return PostMessage(actor, thread_id, self.fresh_id("m"), content, novelty_ppm=novelty)

    def measure(self) -> Instruction:
        waiting = [m for posts in self.state.epoch_posts.values() for m, (_, w) in posts.items() if w is None]
        if not waiting or self.rng.random() < 0.05:
            messages = list(self.state.messages) or [self.fresh_id("m")]
            return SetNovelty(self.rng.choice(messages), 5)  # novelty_set or message_not_found
        return SetNovelty(self.rng.choice(sorted(waiting)), self.rng.randint(0, 1_000_000))

    def submit_spec(self) -> Instruction:
        thread_id = self.thread_id()
        actor = self.actor()
        balance = self.state.ledger.balance(user_account(actor))
        roll = self.rng.random()
        if roll < 0.05:
            stake = -self.rng.randint(0, 10)  # invalid_amount
        elif roll < 0.10:
            stake = balance + ONE_CHOIR  # overspend: insufficient_funds
        elif roll < 0.15:
            stake = self.rng.randint(1, ONE_CHOIR - 1)  # stake_too_low
        else:
            stake = self.rng.randint(ONE_CHOIR, max(ONE_CHOIR, balance // 4 or ONE_CHOIR))
        return SubmitSpec(actor, thread_id, self.fresh_id("s"), self.content(), stake)

    def pending_specs(self) -> list[str]:
        return [s for ids in self.state.pending.values() for s in sorted(ids)]

    def vote(self) -> Instruction:
        pending = self.pending_specs()
        if not pending or self.rng.random() < 0.05:
            specs = list(self.state.specs) or [self.fresh_id("s")]
            return Vote(self.actor(), self.rng.choice(specs), True)  # spec_not_pending / not found
        spec = self.state.specs[self.rng.choice(pending)]
        roll = self.rng.random()
        if roll < 0.85:
            voter = self.rng.choice(spec.voters)  # sometimes already_voted or spec_expired
        else:
            voter = self.actor()  # often not_voter
        return Vote(voter, spec.spec_id, self.rng.random() < 0.75)

    def expire(self) -> Instruction:
        pending = self.pending_specs()
        if not pending:
            return Expire(self.actor(), self.fresh_id("s"))
        spec_id = self.rng.choice(pending)
        return Expire(self.actor(), spec_id)  # spec_not_expired until 7 days have passed

    def divest(self) -> Instruction:
        thread_id = self.thread_id()
        thread = self.state.threads.get(thread_id)
        actor = self.rng.choice(thread.co_authors) if thread and self.rng.random() < 0.9 else self.actor()
        return Divest(actor, thread_id)  # last_co_author, divest_too_soon, not_co_author

    def cite(self) -> Instruction:
        messages = list(self.state.messages)
        if not messages:
            return RecordCitations(self.fresh_id("a"), self.actor(), self.thread_id(), ())
        chosen = self.rng.sample(messages, k=min(len(messages), self.rng.randint(1, 5)))
        citations = tuple(
            CitationInput(n + 1, mid, self.rng.randint(200_000, 1_000_000)) for n, mid in enumerate(chosen)
        )
        return RecordCitations(self.fresh_id("a"), self.actor(), self.thread_id(), citations)

    def revise(self) -> Instruction:
        """Edit or delete a message, mostly as its author (not_author, message_deleted, unchanged)."""
        if not self.state.messages:
            return DeleteMessage(self.actor(), self.fresh_id("m"))  # message_not_found
        message_id = self.rng.choice(list(self.state.messages))  # insertion order: seeded runs replay
        ref = self.state.messages[message_id]
        actor = ref.author if self.rng.random() < 0.9 else self.actor()
        if self.rng.random() < 0.3:
            return DeleteMessage(actor, message_id)
        return EditMessage(actor, message_id, self.content())

    def withdraw(self) -> Instruction:
        actor = self.actor()
        balance = self.state.ledger.balance(user_account(actor))
        amount = self.rng.randint(1, balance) if balance and self.rng.random() < 0.8 else balance + 1
        return Withdraw(actor, amount, self.fresh_id("w"))

    def nonsense(self) -> Instruction:
        """Malformed input a careless client might send: each must be refused cleanly."""
        options: list[Instruction] = [
            SubmitSpec(self.actor(), self.thread_id(), self.fresh_id("s"), "x", 1.5),  # type: ignore[arg-type]
            SubmitSpec(self.actor(), self.thread_id(), self.fresh_id("s"), "x", 0),
            PostMessage(self.actor(), self.thread_id(), "id" * 20, "content"),
            PostMessage(self.actor(), self.thread_id(), self.fresh_id("m"), "   "),
            CreateThread(self.actor(), "bad id!", "title"),
            Grant(self.actor(), -5, self.fresh_id("g")),
            Vote(self.actor(), "s" * 40, True),
        ]
        return self.rng.choice(options)


def simulate(seed: int, steps: int, actors: int, database_url: str = "sqlite://") -> Report:
    return Simulator(seed, actors, database_url).run(steps)


def pending_count(sim: Simulator) -> int:
    return sum(1 for s in sim.state.specs.values() if s.status is SpecStatus.PENDING)
