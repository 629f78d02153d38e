"""Epoch settlement through the program: new-message and prior rewards (DESIGN §5),
compared with a reference written here straight from the design's text."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal, localcontext

import pytest

from choir.ledger import ONE_CHOIR, POOL_NEW_MESSAGES, TREASURY, TransferKind, thread_account, user_account
from choir.program import (
    AI_AUTHOR,
    CitationInput,
    PostMessage,
    RecordCitations,
    SettleEpoch,
    Visibility,
)

HOUR_S = 3600


# -- the reference: DESIGN §5, nothing shared with choir.rewards -------------------------------


def reference_emitted(t_s: int) -> int:
    """F(t) = R·ln(1 + k·t)/ln(1 + k·T), R = 2.5B CHOIR, T = 4 years of 365.25 days, k = 2.04."""
    r = Decimal(2_500_000_000) * 10**9
    with localcontext() as ctx:
        ctx.prec = 80
        years = Decimal(t_s) / (Decimal("365.25") * 86_400)
        if years >= 4:
            return int(r)
        k = Decimal("2.04")
        value = r * (1 + k * years).ln() / (1 + k * 4).ln()
        return int(value.to_integral_value(rounding=ROUND_FLOOR))


def reference_new_message_payouts(budget: int, posts: list[tuple[str, int]]) -> dict[str, int]:
    """Shared by novelty weight, floored, at most 20% of the budget to one author."""
    weight: dict[str, int] = {}
    for author, w in posts:
        weight[author] = weight.get(author, 0) + w
    total = sum(weight.values())
    pay = {a: min(budget * w // total, budget // 5) for a, w in weight.items()} if total else {}
    return {a: p for a, p in pay.items() if p}


def reference_prior_payouts(treasury: int, citations: list[tuple[str, int]]) -> dict[str, int]:
    """treasury × 0.001%, shared by the eligible citations' scores, to the cited threads."""
    budget = treasury // 100_000
    weight: dict[str, int] = {}
    for thread_id, score in citations:
        weight[thread_id] = weight.get(thread_id, 0) + score
    total = sum(weight.values())
    pay = {t: budget * w // total for t, w in weight.items()} if total else {}
    return {t: p for t, p in pay.items() if p}


# -- the scenario -------------------------------------------------------------------------------


def _epoch_one(world) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Seven people, each in a thread of their own, post and ask during epoch 1.
    Returns the (author, novelty) posts and the eligible (thread, score) citations."""
    for i in range(1, 8):
        world.create(f"t{i}", f"a{i}", Visibility.PRIVATE if i == 6 else Visibility.PUBLIC)
    world.advance(HOUR_S)  # everything below is in epoch 1
    posts = [("a1", 1_000_000), ("a1", 1_000_000), ("a1", 1_000_000), ("a2", 900_000), ("a3", 0)]
    posts += [("a4", 650_000), ("a5", 1_000_000), ("a6", 1_000_000), ("a7", 1)]
    for n, (author, novelty) in enumerate(posts):
        world.do(PostMessage(author, f"t{author[1]}", f"m{n}", f"words #{n}", novelty))
        world.advance(1)
    world.do(PostMessage(AI_AUTHOR, "t2", "ai1", "an answer", ask_id="q0"))

    def cite(ask_id: str, asker: str, thread_id: str, *cited: tuple[str, int]) -> None:
        citations = tuple(CitationInput(n, m, score) for n, (m, score) in enumerate(cited, 1))
        world.do(RecordCitations(ask_id, asker, thread_id, citations))

    # a2 asks in t2: a1's message counts; a2's own (in the asking thread), a6's private one,
    # and the AI's answer do not.
    cite("q1", "a2", "t2", ("m0", 900_000), ("m3", 1_000_000), ("m7", 1_000_000), ("ai1", 1_000_000))
    # a4 asks in t4: a5's message and a1's second count.
    cite("q2", "a4", "t4", ("m6", 300_000), ("m1", 600_000))
    # a5 asks in t1 and cites their own message, which is in another thread: it earns nothing.
    cite("q3", "a5", "t1", ("m6", 1_000_000))
    return posts, [("t1", 900_000), ("t5", 300_000), ("t1", 600_000)]


def test_settlement_pays_what_the_design_says(make_world) -> None:
    world = make_world(epoch_seconds=HOUR_S)
    posts, citations = _epoch_one(world)
    world.advance(HOUR_S)
    treasury, pool = world.balance(TREASURY), world.balance(POOL_NEW_MESSAGES)
    budget = reference_emitted(2 * HOUR_S) - reference_emitted(HOUR_S)
    expected_users = reference_new_message_payouts(budget, posts)
    expected_threads = reference_prior_payouts(treasury, citations)
    assert expected_users["a1"] == budget // 5  # the cap binds for a1
    assert set(expected_threads) == {"t1", "t5"}

    outcome = world.do(SettleEpoch(1))

    paid_users = {t.credit: t.amount for t in outcome.transfers if t.kind is TransferKind.NEW_MESSAGE_REWARD}
    paid_threads = {t.credit: t.amount for t in outcome.transfers if t.kind is TransferKind.PRIOR_REWARD}
    assert paid_users == {user_account(a): p for a, p in expected_users.items()}
    assert paid_threads == {thread_account(t): p for t, p in expected_threads.items()}
    assert all(
        t.debit == POOL_NEW_MESSAGES for t in outcome.transfers if t.kind is TransferKind.NEW_MESSAGE_REWARD
    )
    assert all(t.debit == TREASURY for t in outcome.transfers if t.kind is TransferKind.PRIOR_REWARD)
    # What is not paid stays in the pool.
    assert world.balance(POOL_NEW_MESSAGES) == pool - sum(expected_users.values())
    assert world.balance(TREASURY) == treasury - sum(expected_threads.values())
    settlement = world.state.epochs[1]
    assert settlement.new_message_budget == budget
    assert settlement.new_message_paid == sum(expected_users.values())
    assert settlement.prior_budget == treasury // 100_000
    assert settlement.prior_paid == sum(expected_threads.values())
    # Each payee hears of it; a thread's reward is news to each of its co-authors.
    notices = {(n.address, n.data["reward"]) for n in outcome.notices}
    assert {(a, "new_message") for a in expected_users} | {("a1", "prior"), ("a5", "prior")} == notices
    assert outcome.events == []


def test_settling_twice_pays_once(make_world) -> None:
    world = make_world(epoch_seconds=HOUR_S)
    _epoch_one(world)
    world.advance(HOUR_S)
    first = world.do(SettleEpoch(1))
    assert first.transfers
    balances = dict(world.state.ledger.balances)
    again = world.do(SettleEpoch(1))
    assert again.empty and again.transfers == () and again.notices == []
    assert again.result == {"epoch": 1, "already_settled": True}
    world.advance(10 * HOUR_S)
    assert world.do(SettleEpoch(1)).empty
    assert world.state.ledger.balances == balances


def test_an_epoch_settles_only_after_it_ends(make_world) -> None:
    world = make_world(epoch_seconds=HOUR_S)
    world.advance(HOUR_S - 1)
    world.refuse(SettleEpoch(0), "epoch_not_ended")
    world.advance(1)
    world.do(SettleEpoch(0))
    world.refuse(SettleEpoch(1), "epoch_not_ended")
    world.refuse(SettleEpoch(-1), "invalid_payload")


def test_epochs_may_settle_in_any_order_and_budgets_add_up(make_world) -> None:
    world = make_world(epoch_seconds=HOUR_S)
    for i in range(1, 6):
        world.create(f"t{i}", f"a{i}")
    for epoch in range(4):
        for i in range(1, 6):
            world.do(PostMessage(f"a{i}", f"t{i}", f"m{epoch}-{i}", f"epoch {epoch} by a{i}"))
        world.advance(HOUR_S)
    for epoch in (2, 0, 3, 1):
        world.do(SettleEpoch(epoch))
    budgets = sum(world.state.epochs[e].new_message_budget for e in range(4))
    assert budgets == reference_emitted(4 * HOUR_S)
    # Five equal authors: each takes exactly a fifth (the cap), all but the floor remainders.
    paid = sum(world.state.epochs[e].new_message_paid for e in range(4))
    assert 0 <= budgets - paid < 4 * 5
    assert world.balance(POOL_NEW_MESSAGES) == 2_500_000_000 * ONE_CHOIR - paid


def test_one_author_alone_takes_at_most_a_fifth_of_the_budget(make_world) -> None:
    world = make_world(epoch_seconds=2)
    world.create()
    world.do(PostMessage("alice", "t", "m1", "the only message"))
    world.advance(2)
    outcome = world.do(SettleEpoch(0))
    budget = world.state.epochs[0].new_message_budget
    assert 145 * ONE_CHOIR < budget < 147 * ONE_CHOIR  # an early 2-second epoch pays ~146 CHOIR
    assert [t.amount for t in outcome.transfers] == [budget // 5]


def test_a_near_duplicate_earns_nothing(make_world) -> None:
    world = make_world(epoch_seconds=HOUR_S)
    world.create("t1", "alice")
    world.create("t2", "bob")
    world.do(PostMessage("alice", "t1", "m1", "new", 1_000_000))
    world.do(PostMessage("bob", "t2", "m2", "copied", 0))
    world.advance(HOUR_S)
    outcome = world.do(SettleEpoch(0))
    assert [t.credit for t in outcome.transfers] == ["user:alice"]


@pytest.mark.parametrize(
    ("asker", "thread_id", "cited"),
    [
        ("bob", "t", "m-alice"),  # a message of the asking thread
        ("alice", "u", "m-alice"),  # the asker's own message
        ("bob", "u", "m-private"),  # a private thread is never a prior
        ("bob", "u", "m-ai"),  # an AI answer is not a prior
    ],
)
def test_citations_that_earn_nothing(make_world, asker: str, thread_id: str, cited: str) -> None:
    world = make_world(epoch_seconds=HOUR_S)
    world.create("t", "alice")
    world.create("u", "bob")
    world.create("p", "carol", Visibility.PRIVATE)
    world.do(PostMessage("alice", "t", "m-alice", "alice's words"))
    world.do(PostMessage("carol", "p", "m-private", "carol's words"))
    world.do(PostMessage(AI_AUTHOR, "t", "m-ai", "an answer", ask_id="q0"))
    outcome = world.do(RecordCitations("q1", asker, thread_id, (CitationInput(1, cited, 1_000_000),)))
    assert outcome.result == {"recorded": 1, "eligible": 0}
    world.advance(HOUR_S)
    outcome = world.do(SettleEpoch(0))
    assert [t for t in outcome.transfers if t.kind is TransferKind.PRIOR_REWARD] == []
    assert world.state.epochs[0].prior_paid == 0


def test_a_citation_earns_for_the_thread_not_the_author(make_world) -> None:
    world = make_world(epoch_seconds=HOUR_S)
    world.group(["alice", "bob"], "t")
    world.create("u", "carol")
    world.do(PostMessage("alice", "t", "m1", "a prior"))
    outcome = world.do(RecordCitations("q1", "carol", "u", (CitationInput(1, "m1", 500_000),)))
    assert outcome.result == {"recorded": 1, "eligible": 1}
    world.advance(HOUR_S)
    treasury, thread = world.balance(TREASURY), world.thread_balance("t")
    users = (world.user("alice"), world.user("bob"))
    outcome = world.do(SettleEpoch(0))
    assert world.thread_balance("t") - thread == treasury // 100_000  # the whole budget: one citation
    assert (world.user("alice"), world.user("bob")) == tuple(
        u + p for u, p in zip(users, _new_message_pay(outcome, ("alice", "bob")), strict=True)
    )
    assert {n.address for n in outcome.notices if n.data["reward"] == "prior"} == {"alice", "bob"}


def _new_message_pay(outcome, authors: tuple[str, ...]) -> list[int]:
    paid = {t.credit: t.amount for t in outcome.transfers if t.kind is TransferKind.NEW_MESSAGE_REWARD}
    return [paid.get(user_account(a), 0) for a in authors]


def test_citing_an_unknown_message_is_refused(world) -> None:
    world.create()
    world.refuse(RecordCitations("q1", "bob", "t", (CitationInput(1, "nope", 1),)), "message_not_found")
