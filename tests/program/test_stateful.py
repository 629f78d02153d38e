"""Stateful property test of the Thread Program over the ledger.

A few people, threads and ids; every instruction, with valid and invalid choices; time
jumping across 7-day expiries and epochs. After every step every invariant holds
(conservation first), a refused instruction has changed nothing, ``apply`` never touched
the state it read, event seqs are gap-free, and the state rebuilt from its records (as the
store does on start) equals the live one.

Rules come in two kinds: ``anything`` and ``garbage`` draw instructions blindly from small
pools (so refusals of every sort happen), the others choose among what exists (so runs
reach approvals, mixed votes, divests, expiries and paid epochs).
Novelty may be measured after publication (SetNovelty), so epochs may wait for it.
CHOIR_SLOW_TESTS=1 runs ten times as many examples, twice as long (~5 min here: pass --timeout=0).
"""

from __future__ import annotations

import copy
import dataclasses
import os
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from choir.ledger import SUPPLY, user_account
from choir.program import (
    AI_AUTHOR,
    ERROR_CODES,
    CitationInput,
    CitationRecord,
    CreateThread,
    DeleteMessage,
    Divest,
    EditMessage,
    Expire,
    Grant,
    Instruction,
    Message,
    Outcome,
    Params,
    PostMessage,
    ProgramError,
    RecordCitations,
    SetNovelty,
    SettleEpoch,
    Spec,
    SpecStatus,
    State,
    SubmitSpec,
    Visibility,
    Vote,
    Withdraw,
    apply,
    check,
)

GENESIS_AT = datetime(2030, 1, 1, tzinfo=UTC)
# Small limits, so that a short run reaches them.
PARAMS = Params(epoch_seconds=3600, min_stake=10, max_pending_specs=3, max_co_authors=3, threads_per_hour=2)
WEEK_S = 7 * 86_400

ACTORS = ["a", "b", "c", "d"]
THREADS = ["t0", "t1", "t2", "bad id!"]
IDS = ["s0", "s1", "m0", "m1", "m2", "nope"]
CONTENTS = ["hello", "world", "hello world", "¡hola!", "", "\ud800"]
GOOD_CONTENTS = CONTENTS[:4]
INSTRUCTIONS = [
    CreateThread,
    PostMessage,
    SubmitSpec,
    Vote,
    Expire,
    Divest,
    RecordCitations,
    SettleEpoch,
    SetNovelty,
    Grant,
    Withdraw,
    EditMessage,
    DeleteMessage,
]

actors = st.sampled_from(ACTORS)
threads = st.sampled_from(THREADS)
ids = st.sampled_from(IDS)
contents = st.sampled_from(CONTENTS)
amounts = st.one_of(
    st.integers(min_value=1, max_value=100),
    st.sampled_from([0, -5, 10, 10**12, SUPPLY + 1, 1.5, "10", True]),
)
# None: to be measured after publication (SetNovelty).
novelties = st.one_of(
    st.integers(min_value=0, max_value=1_000_000), st.sampled_from([None, None, -1, 2_000_000])
)
citation_lists = st.lists(
    st.builds(CitationInput, st.sampled_from([1, 2, 0]), ids, st.sampled_from([0, 500_000, 1_000_000, -1])),
    max_size=3,
)
seconds = st.sampled_from([0, 1, 59, 1800, 3600, 86_400, WEEK_S - 1, WEEK_S, WEEK_S + 1])
# Blind instructions from the pools: well-typed, often naming what does not exist.
blind = st.one_of(
    st.builds(
        CreateThread, actors, threads, st.sampled_from(["a title", " "]), st.sampled_from([*Visibility, "x"])
    ),
    st.builds(PostMessage, actors, threads, ids, contents, novelties),
    st.builds(PostMessage, st.just(AI_AUTHOR), threads, ids, contents, novelties, ids, citation_lists),
    st.builds(SubmitSpec, actors, threads, ids, contents, amounts, novelties),
    st.builds(Vote, actors, ids, st.sampled_from([True, False, 1])),
    st.builds(Expire, actors, ids),
    st.builds(Divest, actors, threads),
    st.builds(RecordCitations, ids, actors, threads, citation_lists),
    st.builds(SettleEpoch, st.integers(min_value=-1, max_value=400)),
    st.builds(SetNovelty, ids, novelties),
    st.builds(Grant, actors, amounts, st.sampled_from(["g0", "g1"])),
    st.builds(Withdraw, actors, amounts, st.sampled_from(["w0", "w1"])),
    st.builds(EditMessage, st.sampled_from([*ACTORS, AI_AUTHOR]), ids, contents),
    st.builds(DeleteMessage, st.sampled_from([*ACTORS, AI_AUTHOR]), ids),
)
# Any value in any field.
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=40),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.sampled_from([*ACTORS, *THREADS, *IDS, "public"]),
)


class ProgramMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = State.genesis(GENESIS_AT, PARAMS)
        self.now = GENESIS_AT
        # Every record a store would keep, to rebuild the state from.
        self.messages: list[Message] = []
        self.citations: list[CitationRecord] = []
        self.fresh = 0

    # -- the step ------------------------------------------------------------------------

    def step(self, ins: Instruction) -> Outcome | None:
        before = copy.deepcopy(self.state)
        try:
            outcome = apply(self.state, ins, self.now)
        except ProgramError as exc:
            assert exc.code in ERROR_CODES
            assert self.state == before, f"refused {ins!r} with {exc.code} but changed the state"
            return None
        assert self.state == before, f"apply({ins!r}) changed the state it read"
        self.state.commit(outcome)
        self.messages += outcome.messages
        for message_id, novelty in outcome.novelty:  # as the store updates its row
            self.messages = [
                dataclasses.replace(m, novelty_ppm=novelty) if m.message_id == message_id else m
                for m in self.messages
            ]
        for r in outcome.revisions:  # as the store rewrites the message's row
            self.messages = [
                dataclasses.replace(
                    m, content=r.content, content_hash=r.content_hash, version=r.version, deleted=r.deleted
                )
                if m.message_id == r.message_id
                else m
                for m in self.messages
            ]
        self.citations += outcome.citations
        self._check_outcome(before, outcome)
        return outcome

    def _check_outcome(self, before: State, outcome: Outcome) -> None:
        assert all(type(t.amount) is int and t.amount > 0 for t in outcome.transfers)
        # Events are numbered without gaps, per thread, from where the thread was.
        by_thread: dict[str, list[int]] = {}
        for event in outcome.events:
            by_thread.setdefault(event.thread_id, []).append(event.seq)
        for thread_id, seqs in by_thread.items():
            start = before.threads[thread_id].last_seq if thread_id in before.threads else 0
            assert seqs == list(range(start + 1, start + 1 + len(seqs)))
            assert self.state.threads[thread_id].last_seq == seqs[-1]

    def _fresh(self, prefix: str) -> str:
        self.fresh += 1
        return f"{prefix}{self.fresh}"

    def _members(self) -> list[tuple[str, str]]:
        return [(t.thread_id, a) for t in self.state.threads.values() for a in t.co_authors]

    def _pending(self) -> list[Spec]:
        return [s for s in self.state.specs.values() if s.status is SpecStatus.PENDING]

    def settle(self, epoch: int) -> None:
        if self.step(SettleEpoch(epoch)) is not None:
            assert epoch in self.state.epochs
            again = self.step(SettleEpoch(epoch))
            assert again is not None and again.empty and not again.notices

    # -- blind rules -----------------------------------------------------------------------

    @rule(s=seconds)
    def advance(self, s: int) -> None:
        self.now += timedelta(seconds=s)

    @rule(ins=blind)
    def anything(self, ins: Instruction) -> None:
        self.step(ins)

    @rule(kind=st.sampled_from(INSTRUCTIONS), data=st.data())
    def garbage(self, kind: type, data: st.DataObject) -> None:
        """Refused with a code, or (rarely) valid after all; never a crash."""
        fields = {f.name: data.draw(junk, label=f.name) for f in dataclasses.fields(kind)}
        self.step(kind(**fields))

    # -- rules that choose among what exists ---------------------------------------------

    @rule(actor=actors, thread_id=threads, visibility=st.sampled_from(Visibility))
    def create_thread(self, actor: str, thread_id: str, visibility: Visibility) -> None:
        self.step(CreateThread(actor, thread_id, f"about {thread_id}", visibility))

    @rule(actor=actors, amount=st.sampled_from([10, 100, 1_000]))
    def fund(self, actor: str, amount: int) -> None:
        assert self.step(Grant(actor, amount, self._fresh("fund"))) is not None

    @precondition(lambda self: self.state.threads)
    @rule(data=st.data(), content=st.sampled_from(GOOD_CONTENTS), novelty=novelties)
    def post_as_a_co_author(self, data: st.DataObject, content: str, novelty: int) -> None:
        thread_id, actor = data.draw(st.sampled_from(self._members()))
        self.step(PostMessage(actor, thread_id, self._fresh("pm"), content, novelty))

    @precondition(lambda self: self.state.messages)
    @rule(data=st.data(), thread_id=threads)
    def answer_citing_known_messages(self, data: st.DataObject, thread_id: str) -> None:
        cited = data.draw(st.lists(st.sampled_from(sorted(self.state.messages)), max_size=3))
        citations = tuple(CitationInput(n, m, 500_000) for n, m in enumerate(cited, 1))
        ask_id = self._fresh("ask")
        self.step(
            PostMessage(AI_AUTHOR, thread_id, self._fresh("ai"), f"answer {ask_id}", 1, ask_id, citations)
        )

    @precondition(lambda self: self.state.messages)
    @rule(data=st.data(), asker=actors)
    def cite_known_messages(self, data: st.DataObject, asker: str) -> None:
        cited = data.draw(st.lists(st.sampled_from(sorted(self.state.messages)), min_size=1, max_size=3))
        thread_id = data.draw(st.sampled_from(sorted(self.state.threads)))
        citations = tuple(CitationInput(n, m, 400_000 + n) for n, m in enumerate(cited, 1))
        self.step(RecordCitations(self._fresh("ask"), asker, thread_id, citations))

    @precondition(lambda self: self.state.threads)
    @rule(data=st.data(), stake=st.sampled_from([10, 11, 17, 100]), fresh_content=st.booleans())
    def submit_as_an_outsider(self, data: st.DataObject, stake: int, fresh_content: bool) -> None:
        thread_id = data.draw(st.sampled_from(sorted(self.state.threads)))
        outsiders = [a for a in ACTORS if a not in self.state.threads[thread_id].co_authors]
        actor = data.draw(st.sampled_from(outsiders or ACTORS))
        if self.state.ledger.balance(user_account(actor)) < stake:
            self.fund(actor, 100)
        content = self._fresh("spec words ") if fresh_content else data.draw(st.sampled_from(GOOD_CONTENTS))
        self.step(SubmitSpec(actor, thread_id, self._fresh("sp"), content, stake, 700_000))

    @precondition(lambda self: self._pending())
    @rule(data=st.data(), approve=st.sampled_from([True, True, False]))
    def vote_as_a_voter(self, data: st.DataObject, approve: bool) -> None:
        spec = data.draw(st.sampled_from(self._pending()))
        self.step(Vote(data.draw(st.sampled_from(spec.voters)), spec.spec_id, approve))

    @precondition(lambda self: self._pending())
    @rule(data=st.data())
    def decide_a_spec(self, data: st.DataObject) -> None:
        """Every voter yet to vote votes, so that threads grow and all outcomes happen."""
        spec = data.draw(st.sampled_from(self._pending()))
        for voter in spec.voters:
            if spec.vote_of(voter) is None:
                self.step(Vote(voter, spec.spec_id, data.draw(st.sampled_from([True, True, False]))))

    @precondition(lambda self: self._pending())
    @rule(data=st.data(), actor=actors)
    def expire_a_pending_spec(self, data: st.DataObject, actor: str) -> None:
        self.step(Expire(actor, data.draw(st.sampled_from(self._pending())).spec_id))

    @precondition(lambda self: self.state.threads)
    @rule(data=st.data())
    def divest_as_a_co_author(self, data: st.DataObject) -> None:
        # Mostly from threads that someone can leave (the last co-author cannot).
        shared = [(t, a) for t, a in self._members() if len(self.state.threads[t].co_authors) > 1]
        thread_id, actor = data.draw(st.sampled_from(shared or self._members()))
        self.step(Divest(actor, thread_id))

    @rule(data=st.data())
    def settle_an_epoch(self, data: st.DataObject) -> None:
        self.settle(data.draw(st.integers(min_value=-1, max_value=self.state.epoch_of(self.now) + 1)))

    @precondition(lambda self: self.state.epoch_posts or self.state.epoch_citations)
    @rule(data=st.data(), wait_for_novelty=st.booleans())
    def settle_an_active_epoch(self, data: st.DataObject, wait_for_novelty: bool) -> None:
        epoch = data.draw(st.sampled_from(sorted({*self.state.epoch_posts, *self.state.epoch_citations})))
        end = self.state.epoch_bounds(epoch)[1]
        if wait_for_novelty:
            end += timedelta(seconds=PARAMS.novelty_grace_s)
        self.now = max(self.now, end)
        self.settle(epoch)

    @precondition(lambda self: any(not m.deleted for m in self.state.messages.values()))
    @rule(data=st.data(), content=st.sampled_from(GOOD_CONTENTS), delete=st.booleans())
    def revise_own_message(self, data: st.DataObject, content: str, delete: bool) -> None:
        live = sorted((mid, ref.author) for mid, ref in self.state.messages.items() if not ref.deleted)
        message_id, author = data.draw(st.sampled_from(live))
        if delete:
            outcome = self.step(DeleteMessage(author, message_id))
            assert (outcome is not None) == (author != AI_AUTHOR)
            if outcome is not None:
                assert self.state.messages[message_id].deleted
        else:
            self.step(EditMessage(author, message_id, content))

    @precondition(lambda self: any(m.novelty_ppm is None for m in self.state.messages.values()))
    @rule(data=st.data(), novelty=st.integers(min_value=0, max_value=1_000_000))
    def measure_novelty(self, data: st.DataObject, novelty: int) -> None:
        waiting = sorted(m for m, ref in self.state.messages.items() if ref.novelty_ppm is None)
        assert self.step(SetNovelty(data.draw(st.sampled_from(waiting)), novelty)) is not None

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def invariants_hold(self) -> None:
        check(self.state)

    @invariant()
    def the_state_rebuilt_from_its_records_is_the_same(self) -> None:
        rebuilt = State.load(
            GENESIS_AT,
            PARAMS,
            copy.deepcopy(self.state.ledger),
            dict(self.state.threads),
            dict(self.state.specs),
            list(self.messages),
            list(self.citations),
            dict(self.state.epochs),
        )
        assert rebuilt == self.state


SLOW = os.environ.get("CHOIR_SLOW_TESTS") == "1"
ProgramMachine.TestCase.settings = settings(
    max_examples=1000 if SLOW else 100,
    stateful_step_count=200 if SLOW else 100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    # No "explain" phase: it traces every line, which makes shrinking a long failing run
    # take minutes (past the suite's timeout) for a report we do not need.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)
TestProgram = ProgramMachine.TestCase
