"""Novelty measured after publication: a message posted with novelty None waits for
SetNovelty; its epoch waits for it (novelty_pending) until the grace period ends, and
then counts it at full weight; a measured near-duplicate earns nothing."""

from __future__ import annotations

from choir.ledger import user_account
from choir.program import CreateThread, PostMessage, SetNovelty, SettleEpoch
from choir.rewards import epoch_budget


def test_measured_weights_decide_the_split(world) -> None:
    world.do(CreateThread("alice", "ta", "a"))
    world.do(CreateThread("bob", "tb", "b"))
    world.do(PostMessage("alice", "ta", "m1", "an original thought", None))
    world.do(PostMessage("bob", "tb", "m2", "an original thought, copied", None))
    world.do(SetNovelty("m1", 1_000_000))
    world.do(SetNovelty("m2", 0))  # a near-duplicate
    world.advance(world.params.epoch_seconds)
    world.do(SettleEpoch(0))
    budget = epoch_budget(0, world.params.epoch_seconds)
    assert world.user("bob") == 0
    assert world.user("alice") == budget * world.params.author_cap_ppm // 1_000_000


def test_an_epoch_waits_for_its_weights_then_counts_them_at_full_weight(world) -> None:
    world.do(CreateThread("alice", "ta", "a"))
    world.do(CreateThread("bob", "tb", "b"))
    world.do(PostMessage("alice", "ta", "m1", "measured", None))
    world.do(PostMessage("bob", "tb", "m2", "never measured", None))
    world.do(SetNovelty("m1", 1_000_000))
    world.advance(world.params.epoch_seconds)
    world.refuse(SettleEpoch(0), "novelty_pending")
    world.advance(world.params.novelty_grace_s)
    world.do(SettleEpoch(0))
    assert world.user("alice") == world.user("bob") > 0


def test_set_novelty_is_once_and_survives_settlement(world) -> None:
    world.do(CreateThread("alice", "ta", "a"))
    world.do(PostMessage("alice", "ta", "m1", "late", None))
    world.advance(world.params.epoch_seconds + world.params.novelty_grace_s)
    world.do(SettleEpoch(0))
    paid = world.balance(user_account("alice"))
    # Measured after its epoch settled: recorded, but nothing is paid again.
    outcome = world.do(SetNovelty("m1", 10))
    assert outcome.novelty == [("m1", 10)] and not outcome.transfers
    assert world.balance(user_account("alice")) == paid
    world.refuse(SetNovelty("m1", 20), "novelty_set")
    world.refuse(SetNovelty("nope", 20), "message_not_found")
