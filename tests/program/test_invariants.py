"""The invariant checker finds each kind of broken state (so that passing it means something)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from choir.ledger import ONE_CHOIR, TREASURY, escrow_account, thread_account
from choir.program import (
    InvariantViolation,
    PostMessage,
    SpecStatus,
    State,
    Vote,
    check,
    violations,
)


def _world(world):
    world.group(["alice", "bob"])
    world.do(PostMessage("alice", "t", "m1", "first"))
    world.do(PostMessage("bob", "t", "m2", "second"))
    spec_id = world.submit("carol", stake=2 * ONE_CHOIR)
    world.do(Vote("alice", spec_id, True))
    return world


def _money_from_nowhere(state: State) -> None:
    state.ledger.balances[thread_account("t")] = state.ledger.balance(thread_account("t")) + 1


def _negative_balance(state: State) -> None:
    state.ledger.balances["user:mallory"] = -5
    state.ledger.balances[TREASURY] += 5


def _no_co_author(state: State) -> None:
    state.threads["t"] = replace(state.threads["t"], members=())


def _co_author_twice(state: State) -> None:
    thread = state.threads["t"]
    state.threads["t"] = replace(thread, members=(*thread.members, thread.members[0]))


def _too_many_co_authors(state: State) -> None:
    thread = state.threads["t"]
    extra = tuple(replace(thread.members[0], address=f"x{i}") for i in range(state.params.max_co_authors))
    state.threads["t"] = replace(thread, members=(*thread.members, *extra))


def _wrong_message_count(state: State) -> None:
    state.threads["t"] = replace(state.threads["t"], message_count=state.threads["t"].message_count + 1)


def _hash_not_unique(state: State) -> None:
    state.messages["m2"] = replace(state.messages["m2"], content_hash=state.messages["m1"].content_hash)


def _escrow_short(state: State) -> None:
    spec_id = next(iter(state.pending["t"]))
    state.ledger.balances[escrow_account(spec_id)] -= 1
    state.ledger.balances[TREASURY] += 1


def _settled_with_escrow(state: State) -> None:
    spec_id = next(iter(state.pending["t"]))
    state.specs[spec_id] = replace(state.specs[spec_id], status=SpecStatus.DENIED)


def _voted_twice(state: State) -> None:
    spec_id = next(iter(state.pending["t"]))
    spec = state.specs[spec_id]
    state.specs[spec_id] = replace(spec, votes=(*spec.votes, spec.votes[0]))


def _vote_from_a_non_voter(state: State) -> None:
    spec_id = next(iter(state.pending["t"]))
    spec = state.specs[spec_id]
    state.specs[spec_id] = replace(spec, votes=(*spec.votes, ("mallory", True)))


BREAKS: dict[str, tuple[Callable[[State], None], str]] = {
    "conservation": (_money_from_nowhere, "conservation"),
    "negative": (_negative_balance, "negative balance"),
    "no co-author": (_no_co_author, "no co-author"),
    "co-author twice": (_co_author_twice, "co-author twice"),
    "too many co-authors": (_too_many_co_authors, "more than"),
    "message count": (_wrong_message_count, "message count"),
    "hash unique": (_hash_not_unique, "not unique"),
    "escrow short": (_escrow_short, "escrow"),
    "settled escrow": (_settled_with_escrow, "still holds"),
    "voted twice": (_voted_twice, "voted twice"),
    "non-voter": (_vote_from_a_non_voter, "non-voter"),
}


def test_a_healthy_state_passes(world) -> None:
    state = _world(world).state
    assert violations(state) == []
    check(state)


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_each_broken_state_is_caught(world, name: str) -> None:
    state = _world(world).state
    breaker, words = BREAKS[name]
    breaker(state)
    with pytest.raises(InvariantViolation) as caught:
        check(state)
    assert any(words in problem for problem in caught.value.problems), caught.value.problems
