"""Divest: a co-author leaves with floor(balance / N) (DESIGN §4)."""

from __future__ import annotations

from choir.ledger import TransferKind
from choir.program import Divest, Expire, SpecStatus, Vote

WEEK_S = 7 * 24 * 3600


def _thread_holding(world, co_authors: list[str], balance: int) -> None:
    """A thread with those co-authors whose account holds ``balance`` (denied stakes)."""
    world.group(co_authors)
    spec_id = world.submit("outsider", stake=balance - world.thread_balance("t"))
    for voter in world.spec(spec_id).voters:
        world.do(Vote(voter, spec_id, False))
    assert world.thread_balance("t") == balance


def test_leaving_takes_floor_of_balance_over_n_counting_the_one_leaving(make_world) -> None:
    world = make_world(min_stake=1)
    _thread_holding(world, ["alice", "bob", "carol"], 10)
    world.advance(WEEK_S)
    before = world.user("bob")
    outcome = world.do(Divest("bob", "t"))
    assert world.user("bob") - before == 3
    assert world.thread_balance("t") == 7
    assert world.thread("t").co_authors == ("alice", "carol")
    [transfer] = outcome.transfers
    assert transfer.kind is TransferKind.DIVEST
    assert [e.kind for e in outcome.events] == ["coauthor.left"]
    assert outcome.result["amount"] == "3"
    world.do(Divest("carol", "t"))  # 7 // 2
    assert world.thread_balance("t") == 4


def test_leaving_an_empty_thread_moves_nothing(world) -> None:
    world.group(["alice", "bob"])
    world.advance(WEEK_S)
    outcome = world.do(Divest("bob", "t"))
    assert outcome.transfers == () and outcome.result["amount"] == "0"


def test_the_last_co_author_cannot_leave(world) -> None:
    world.create()
    world.advance(WEEK_S)
    world.refuse(Divest("alice", "t"), "last_co_author")


def test_only_co_authors_divest(world) -> None:
    world.group(["alice", "bob"])
    world.advance(WEEK_S)
    world.refuse(Divest("mallory", "t"), "not_co_author")


def test_not_within_seven_days_of_joining(world) -> None:
    world.create()
    world.advance(3 * 24 * 3600)
    world.join("bob")
    world.advance(WEEK_S - 1)
    world.refuse(Divest("bob", "t"), "divest_too_soon")
    world.do(Divest("alice", "t"))  # alice joined (created) earlier: free to go
    world.advance(1)
    world.join("carol")
    world.do(Divest("bob", "t"))  # exactly seven days after joining


def test_one_can_leave_join_again_and_leave_again(make_world) -> None:
    world = make_world(min_stake=1)
    _thread_holding(world, ["alice", "bob"], 9)
    world.advance(WEEK_S)
    world.do(Divest("bob", "t"))
    world.join("bob", stake=3)
    world.advance(WEEK_S)
    outcome = world.do(Divest("bob", "t"))  # a distinct transfer, not a replay of the first
    assert len(outcome.transfers) == 1
    assert len({t.id for t in world.state.ledger.transfers.values() if t.kind is TransferKind.DIVEST}) == 2


def test_a_leaver_is_taken_out_of_pending_specs(world) -> None:
    world.group(["alice", "bob", "carol"])
    world.advance(WEEK_S)  # past everyone's divest lock
    spec_id = world.submit("dave")
    world.do(Vote("bob", spec_id, False))
    world.do(Divest("bob", "t"))
    spec = world.spec(spec_id)
    assert spec.voters == ("alice", "carol")
    assert spec.votes == ()  # bob's vote left with him
    assert spec.status is SpecStatus.PENDING
    world.refuse(Vote("bob", spec_id, True), "not_voter")
    world.do(Vote("alice", spec_id, True))
    world.do(Vote("carol", spec_id, True))
    assert world.spec(spec_id).status is SpecStatus.APPROVED  # bob's deny no longer counts


def test_a_spec_whose_remaining_voters_all_voted_settles_when_the_last_one_leaves(make_world) -> None:
    world = make_world(min_stake=1)
    _thread_holding(world, ["alice", "bob", "carol"], 11)
    world.advance(WEEK_S)
    approve = world.submit("dave", stake=9)
    deny = world.submit("erin", stake=5)
    for voter in ("alice", "bob"):
        world.do(Vote(voter, approve, True))
        world.do(Vote(voter, deny, False))
    before = {a: world.user(a) for a in ("alice", "bob", "carol")}
    thread_before = world.thread_balance("t")
    outcome = world.do(Divest("carol", "t"))
    assert world.spec(approve).status is SpecStatus.APPROVED
    assert world.spec(deny).status is SpecStatus.DENIED
    assert world.thread("t").co_authors == ("alice", "bob", "dave")
    # The approvers split 9; the deny's 5 goes to the thread, after carol took her third of it.
    assert world.user("alice") - before["alice"] == 4 and world.user("bob") - before["bob"] == 4
    assert world.user("carol") - before["carol"] == thread_before // 3
    assert world.thread_balance("t") == thread_before - thread_before // 3 + 1 + 5
    kinds = [e.kind for e in outcome.events]
    assert kinds.count("spec.settled") == 2 and "coauthor.joined" in kinds
    assert outcome.result["seq"] == world.thread("t").last_seq


def test_an_expired_spec_does_not_settle_when_a_voter_leaves(world) -> None:
    world.group(["alice", "bob"])
    spec_id = world.submit("carol")
    world.do(Vote("alice", spec_id, True))
    world.advance(WEEK_S)
    world.do(Divest("bob", "t"))
    assert world.spec(spec_id).status is SpecStatus.PENDING  # left for Expire
    world.do(Expire("x", spec_id))


def test_when_every_snapshot_voter_leaves_the_present_co_authors_decide(world) -> None:
    world.create()
    world.advance(WEEK_S)
    spec_id = world.submit("carol")
    world.join("bob")  # bob joins later: not a voter of carol's spec
    world.do(Divest("alice", "t"))
    assert world.spec(spec_id).voters == ("bob",)
    world.do(Vote("bob", spec_id, True))
    assert world.thread("t").co_authors == ("bob", "carol")


def test_leaving_a_full_thread_is_not_blocked_by_a_spec_that_cannot_join(make_world) -> None:
    world = make_world(max_co_authors=3)
    world.group(["alice", "bob"])
    world.advance(WEEK_S)
    z, w, v = world.submit("z"), world.submit("w"), world.submit("v")
    for voter in ("alice", "bob"):
        world.do(Vote(voter, v, True))  # v joins: the thread is full
    world.do(Vote("alice", z, True))
    world.do(Vote("alice", w, True))
    # bob's leaving completes both specs' votes: z takes his place, w finds no room.
    world.do(Divest("bob", "t"))
    assert world.thread("t").co_authors == ("alice", "v", "z")
    assert world.spec(z).status is SpecStatus.APPROVED
    assert world.spec(w).status is SpecStatus.PENDING  # it expires, as a refused last vote would
    world.advance(WEEK_S)
    world.do(Expire("anyone", w))
