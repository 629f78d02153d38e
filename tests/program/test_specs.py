"""SubmitSpec, Vote, settlement splits and Expire (DESIGN §4)."""

from __future__ import annotations

from datetime import timedelta

from choir.ledger import ONE_CHOIR, SUPPLY, TREASURY, TransferKind, escrow_account
from choir.program import (
    AI_AUTHOR,
    Expire,
    PostMessage,
    SpecStatus,
    SubmitSpec,
    Vote,
    content_hash,
)

WEEK_S = 7 * 24 * 3600


def test_submitting_moves_the_stake_to_escrow_and_snapshots_the_voters(world) -> None:
    world.group(["alice", "bob"])
    world.fund("carol", 5 * ONE_CHOIR)
    outcome = world.do(SubmitSpec("carol", "t", "s1", "let me in", 2 * ONE_CHOIR))
    spec = world.spec("s1")
    assert spec.status is SpecStatus.PENDING
    assert spec.voters == ("alice", "bob")
    assert spec.expires_at == world.now + timedelta(days=7)
    assert spec.content_hash == content_hash("let me in")
    assert world.user("carol") == 3 * ONE_CHOIR
    assert world.escrow("s1") == 2 * ONE_CHOIR
    [transfer] = outcome.transfers
    assert (transfer.debit, transfer.credit, transfer.kind) == ("user:carol", "escrow:s1", TransferKind.STAKE)
    [event] = outcome.events
    assert event.kind == "spec.submitted"
    assert event.data["stake"] == str(2 * ONE_CHOIR) and event.data["voters"] == ["alice", "bob"]
    assert outcome.result == {"spec_id": "s1", "seq": event.seq}
    # The spec is not a message until approved.
    assert "s1" not in world.state.messages


def test_stake_is_at_least_min_stake_and_at_most_the_balance(world) -> None:
    world.create()
    world.fund("carol", 3 * ONE_CHOIR)
    world.refuse(SubmitSpec("carol", "t", "s1", "hi", ONE_CHOIR - 1), "stake_too_low")
    world.refuse(SubmitSpec("carol", "t", "s1", "hi", 3 * ONE_CHOIR + 1), "insufficient_funds")
    world.refuse(SubmitSpec("dave", "t", "s1", "hi", ONE_CHOIR), "insufficient_funds")
    world.do(SubmitSpec("carol", "t", "s1", "hi", 3 * ONE_CHOIR))  # the whole balance is allowed
    assert world.user("carol") == 0


def test_co_authors_and_the_ai_do_not_submit_specs(world) -> None:
    world.create()
    world.fund("alice")
    world.refuse(SubmitSpec("alice", "t", "s1", "hi", ONE_CHOIR), "already_co_author")
    world.refuse(SubmitSpec(AI_AUTHOR, "t", "s1", "hi", ONE_CHOIR), "forbidden")


def test_spec_ids_are_unique(world) -> None:
    world.create()
    world.do(PostMessage("alice", "t", "m1", "a message"))
    spec_id = world.submit("bob")
    world.fund("carol")
    world.refuse(SubmitSpec("carol", "t", spec_id, "other words", ONE_CHOIR), "spec_exists")
    world.refuse(SubmitSpec("carol", "t", "m1", "other words", ONE_CHOIR), "spec_exists")


def test_at_most_20_pending_specs_per_thread(world) -> None:
    world.create("t")
    world.create("u")
    specs = [world.submit(f"p{i}", "t") for i in range(20)]
    world.fund("late")
    world.refuse(SubmitSpec("late", "t", "s-late", "me too", ONE_CHOIR), "too_many_pending_specs")
    world.do(SubmitSpec("late", "u", "s-late", "me too", ONE_CHOIR))  # the limit is per thread
    world.do(Vote("alice", specs[0], False))  # one settles: a slot frees
    world.do(SubmitSpec("late", "t", "s-late2", "me too", ONE_CHOIR))


def test_a_spec_cannot_repeat_content_already_in_the_thread(world) -> None:
    world.create()
    world.do(PostMessage("alice", "t", "m1", "taken words"))
    world.fund("bob")
    world.fund("carol")
    world.refuse(SubmitSpec("bob", "t", "s1", "taken words", ONE_CHOIR), "duplicate_content")
    world.do(SubmitSpec("bob", "t", "s1", "pending words", ONE_CHOIR))
    # A pending spec reserves its content, against other specs and against posts.
    world.refuse(SubmitSpec("carol", "t", "s2", "pending words", ONE_CHOIR), "duplicate_content")
    world.refuse(PostMessage("alice", "t", "m2", "pending words"), "duplicate_content")
    world.do(Vote("alice", "s1", False))
    # A denied spec's content was never published: it is free again.
    world.do(SubmitSpec("carol", "t", "s2", "pending words", ONE_CHOIR))


def test_all_approve_splits_the_stake_by_floor_with_the_remainder_to_the_thread(make_world) -> None:
    world = make_world(min_stake=1)
    world.group(["alice", "bob", "carol"])
    before = {a: world.user(a) for a in ("alice", "bob", "carol")}
    thread_before = world.thread_balance("t")
    spec_id = world.submit("dave", stake=10, content="dave's first words")
    world.do(Vote("alice", spec_id, True))
    world.do(Vote("bob", spec_id, True))
    outcome = world.do(Vote("carol", spec_id, True))
    assert {a: world.user(a) - before[a] for a in before} == {"alice": 3, "bob": 3, "carol": 3}
    assert world.thread_balance("t") - thread_before == 1
    assert world.escrow(spec_id) == 0
    assert world.spec(spec_id).status is SpecStatus.APPROVED
    assert world.spec(spec_id).settled_at == world.now
    assert world.thread("t").co_authors == ("alice", "bob", "carol", "dave")
    # The spec's message is published under the spec's id, as dave's.
    assert world.state.messages[spec_id].author == "dave"
    kinds = [e.kind for e in outcome.events]
    assert kinds == ["spec.voted", "spec.settled", "coauthor.joined", "message.posted"]
    settled = outcome.events[1].data
    assert settled["outcome"] == "approved"
    assert sorted(int(t["amount"]) for t in settled["transfers"]) == [1, 3, 3, 3]
    assert outcome.result == {"seq": outcome.events[-1].seq}


def test_an_exact_split_sends_nothing_to_the_thread(make_world) -> None:
    world = make_world(min_stake=1)
    world.group(["alice", "bob"])
    spec_id = world.submit("carol", stake=10)
    world.do(Vote("alice", spec_id, True))
    outcome = world.do(Vote("bob", spec_id, True))
    assert [t.amount for t in outcome.transfers] == [5, 5]  # no zero-amount transfer
    assert world.thread_balance("t") == 0


def test_all_deny_sends_the_whole_stake_to_the_thread(make_world) -> None:
    world = make_world(min_stake=1)
    world.group(["alice", "bob", "carol"])
    thread_before = world.thread_balance("t")
    spec_id = world.submit("dave", stake=10)
    for voter in ("alice", "bob", "carol"):
        outcome = world.do(Vote(voter, spec_id, False))
    assert world.thread_balance("t") - thread_before == 10
    assert world.spec(spec_id).status is SpecStatus.DENIED
    assert "dave" not in world.thread("t").co_authors
    assert spec_id not in world.state.messages
    assert outcome.events[-1].data["outcome"] == "denied"


def test_mixed_sends_floor_of_the_approving_share_to_the_treasury_and_the_rest_to_the_thread(
    make_world,
) -> None:
    world = make_world(min_stake=1)
    world.group(["alice", "bob", "carol"])
    for approvals, to_treasury, to_thread in ((2, 6, 4), (1, 3, 7)):  # floor(10·a/3)
        spec_id = world.submit("dave", stake=10)  # (funding dave draws on the treasury)
        treasury, thread = world.balance(TREASURY), world.thread_balance("t")
        for i, voter in enumerate(("alice", "bob", "carol")):
            world.do(Vote(voter, spec_id, i < approvals))
        assert world.balance(TREASURY) - treasury == to_treasury
        assert world.thread_balance("t") - thread == to_thread
        assert world.spec(spec_id).status is SpecStatus.MIXED
        assert "dave" not in world.thread("t").co_authors


def test_each_voter_votes_once(world) -> None:
    world.group(["alice", "bob"])
    spec_id = world.submit("carol")
    outcome = world.do(Vote("alice", spec_id, True))
    assert [e.kind for e in outcome.events] == ["spec.voted"]
    assert world.spec(spec_id).votes == (("alice", True),)
    world.refuse(Vote("alice", spec_id, True), "already_voted")
    world.refuse(Vote("alice", spec_id, False), "already_voted")


def test_voters_are_the_co_authors_at_submission(world) -> None:
    world.create()
    early = world.submit("carol")
    world.join("bob")  # bob joins after carol's spec was submitted
    world.refuse(Vote("bob", early, True), "not_voter")
    world.refuse(Vote("mallory", early, True), "not_voter")
    world.do(Vote("alice", early, True))  # alice alone decides
    assert world.thread("t").co_authors == ("alice", "bob", "carol")


def test_votes_close_at_expires_at(world) -> None:
    world.group(["alice", "bob"])
    spec_id = world.submit("carol")
    world.advance(WEEK_S - 1)
    world.do(Vote("alice", spec_id, True))
    world.advance(1)
    world.refuse(Vote("bob", spec_id, True), "spec_expired")
    world.advance(3600)
    world.refuse(Vote("bob", spec_id, True), "spec_expired")


def test_a_settled_spec_takes_no_more_votes(world) -> None:
    world.create()
    spec_id = world.submit("carol")
    world.do(Vote("alice", spec_id, False))
    world.refuse(Vote("alice", spec_id, True), "spec_not_pending")


def test_expire_sends_the_stake_to_the_treasury_once_expired(world) -> None:
    world.group(["alice", "bob"])
    spec_id = world.submit("carol", stake=3 * ONE_CHOIR)
    world.do(Vote("alice", spec_id, True))
    world.advance(WEEK_S - 1)
    world.refuse(Expire("anyone", spec_id), "spec_not_expired")
    world.advance(1)
    treasury = world.balance(TREASURY)
    outcome = world.do(Expire("anyone", spec_id))  # anyone may trigger it
    assert world.balance(TREASURY) - treasury == 3 * ONE_CHOIR
    assert world.balance(escrow_account(spec_id)) == 0
    assert world.spec(spec_id).status is SpecStatus.EXPIRED
    assert outcome.events[-1].data["outcome"] == "expired"
    assert "carol" not in world.thread("t").co_authors
    world.refuse(Expire("anyone", spec_id), "spec_not_pending")


def test_an_approval_beyond_ten_co_authors_is_refused(world) -> None:
    world.group(["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"])
    first = world.submit("x")
    second = world.submit("y")
    for voter in world.spec(first).voters:
        world.do(Vote(voter, first, True))
    assert len(world.thread("t").co_authors) == 10
    for voter in world.spec(second).voters[:-1]:
        world.do(Vote(voter, second, True))
    world.refuse(Vote(world.spec(second).voters[-1], second, True), "thread_full")
    world.refuse(SubmitSpec("z", "t", "s-z", "full?", ONE_CHOIR), "thread_full")


def test_a_second_approved_spec_of_the_same_author_does_not_list_them_twice(make_world) -> None:
    world = make_world(min_stake=1)
    world.create()
    first = world.submit("carol", stake=4, content="first")
    second = world.submit("carol", stake=6, content="second")
    world.do(Vote("alice", first, True))
    outcome = world.do(Vote("alice", second, True))
    assert world.thread("t").co_authors == ("alice", "carol")
    assert "coauthor.joined" not in [e.kind for e in outcome.events]
    assert world.state.messages[second].author == "carol"
    assert world.user("alice") == 10


def test_an_approved_spec_publishes_with_the_novelty_it_was_submitted_with(world) -> None:
    world.create()
    world.fund("carol")
    world.do(SubmitSpec("carol", "t", "s1", "half new", ONE_CHOIR, novelty_ppm=500_000))
    outcome = world.do(Vote("alice", "s1", True))
    assert outcome.messages[0].novelty_ppm == 500_000
    assert world.state.epoch_posts[0]["s1"] == ("carol", 500_000)


def test_stake_can_be_as_large_as_the_supply_allows(make_world) -> None:
    world = make_world(min_stake=1)
    world.create()
    world.fund("whale", 7_000_000_000 * ONE_CHOIR)
    world.refuse(SubmitSpec("whale", "t", "s1", "hi", SUPPLY + 1), "insufficient_funds")
    world.do(SubmitSpec("whale", "t", "s1", "hi", 7_000_000_000 * ONE_CHOIR))
