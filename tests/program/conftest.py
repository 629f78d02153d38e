"""A small driver for the Thread Program: apply instructions at a controlled time and
check every invariant after each one, and that every refusal changes nothing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from choir.ledger import ONE_CHOIR, escrow_account, thread_account, user_account
from choir.program import (
    CreateThread,
    Grant,
    Instruction,
    Outcome,
    Params,
    ProgramError,
    Spec,
    State,
    SubmitSpec,
    Thread,
    Visibility,
    Vote,
    apply,
    check,
)

GENESIS_AT = datetime(2030, 1, 1, tzinfo=UTC)


class World:
    """One program state and its clock; ``do`` commits, ``refuse`` asserts a refusal."""

    def __init__(self, params: Params | None = None) -> None:
        self.state = State.genesis(GENESIS_AT, params)
        self.now = GENESIS_AT
        self._grants = 0
        self._specs = 0

    @property
    def params(self) -> Params:
        return self.state.params

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def do(self, ins: Instruction) -> Outcome:
        before = copy.deepcopy(self.state)
        outcome = apply(self.state, ins, self.now)
        assert self.state == before, "apply must not touch the state it reads"
        self.state.commit(outcome)
        check(self.state)
        return outcome

    def refuse(self, ins: Instruction, code: str) -> ProgramError:
        before = copy.deepcopy(self.state)
        with pytest.raises(ProgramError) as caught:
            apply(self.state, ins, self.now)
        assert caught.value.code == code, caught.value
        assert self.state == before, "a refusal must change nothing"
        return caught.value

    # -- reading -----------------------------------------------------------------------

    def balance(self, account: str) -> int:
        return self.state.ledger.balance(account)

    def user(self, address: str) -> int:
        return self.balance(user_account(address))

    def thread_balance(self, thread_id: str) -> int:
        return self.balance(thread_account(thread_id))

    def escrow(self, spec_id: str) -> int:
        return self.balance(escrow_account(spec_id))

    def thread(self, thread_id: str) -> Thread:
        return self.state.threads[thread_id]

    def spec(self, spec_id: str) -> Spec:
        return self.state.specs[spec_id]

    # -- building ----------------------------------------------------------------------

    def fund(self, address: str, amount: int = 1_000 * ONE_CHOIR) -> None:
        self._grants += 1
        self.do(Grant(address, amount, f"fund-{self._grants}"))

    def create(
        self, thread_id: str = "t", creator: str = "alice", visibility: Visibility = Visibility.PUBLIC
    ) -> Thread:
        self.do(CreateThread(creator, thread_id, f"title of {thread_id}", visibility))
        return self.thread(thread_id)

    def submit(self, author: str, thread_id: str = "t", stake: int | None = None, content: str = "") -> str:
        """Fund ``author`` and submit a spec for them; returns its id."""
        self._specs += 1
        spec_id = f"spec-{self._specs}"
        stake = self.thread(thread_id).min_stake if stake is None else stake
        if self.user(author) < stake:
            self.fund(author, stake)
        self.do(
            SubmitSpec(author, thread_id, spec_id, content or f"{author} asks to join, #{self._specs}", stake)
        )
        return spec_id

    def join(self, author: str, thread_id: str = "t", stake: int | None = None) -> str:
        """``author`` becomes a co-author: a spec every current co-author approves."""
        spec_id = self.submit(author, thread_id, stake)
        for voter in self.spec(spec_id).voters:
            self.do(Vote(voter, spec_id, True))
        assert author in self.thread(thread_id).co_authors
        return spec_id

    def group(
        self, co_authors: list[str], thread_id: str = "t", visibility: Visibility = Visibility.PUBLIC
    ) -> Thread:
        """A thread whose co-authors are exactly ``co_authors`` (the first creates it)."""
        self.create(thread_id, co_authors[0], visibility)
        for author in co_authors[1:]:
            self.join(author, thread_id)
        return self.thread(thread_id)


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def make_world() -> Callable[..., World]:
    """A World with custom Params, e.g. ``make_world(min_stake=1)``."""

    def make(**params: int) -> World:
        return World(Params(**params))

    return make
