"""CreateThread and PostMessage (DESIGN §4)."""

from __future__ import annotations

import hashlib

from choir.ledger import ONE_CHOIR
from choir.program import (
    AI_AUTHOR,
    CitationInput,
    CreateThread,
    PostMessage,
    Visibility,
)

HOUR_S = 3600


def test_creator_is_the_sole_co_author_of_an_empty_thread(world) -> None:
    outcome = world.do(CreateThread("alice", "t", "  Rust and Go  ", Visibility.PRIVATE))
    thread = world.thread("t")
    assert thread.co_authors == ("alice",)
    assert thread.min_stake == ONE_CHOIR
    assert thread.title == "Rust and Go"
    assert thread.visibility is Visibility.PRIVATE
    assert world.thread_balance("t") == 0
    assert outcome.transfers == ()
    assert [(e.kind, e.seq) for e in outcome.events] == [("thread.created", 1)]
    assert outcome.result == {"thread_id": "t", "seq": 1}


def test_min_stake_comes_from_params(make_world) -> None:
    world = make_world(min_stake=7)
    assert world.create().min_stake == 7


def test_thread_ids_are_unique(world) -> None:
    world.create("t", "alice")
    world.refuse(CreateThread("bob", "t", "again"), "thread_exists")


def test_at_most_ten_new_threads_per_hour_per_user(world) -> None:
    for i in range(10):
        world.create(f"t{i}", "alice")
        world.advance(60)
    world.refuse(CreateThread("alice", "t10", "one too many"), "rate_limited")
    world.create("b0", "bob")  # another person is not limited by alice's threads
    # The window slides: once the first creation is an hour old, one more is allowed.
    world.advance(HOUR_S - 10 * 60 - 1)
    world.refuse(CreateThread("alice", "t10", "still too many"), "rate_limited")
    world.advance(1)
    world.create("t10", "alice")
    world.refuse(CreateThread("alice", "t11", "and again"), "rate_limited")


def test_a_co_author_publishes_at_once_with_the_sha256_of_the_content(world) -> None:
    world.create()
    content = "ünïcode\nline two"
    outcome = world.do(PostMessage("alice", "t", "m1", content))
    [message] = outcome.messages
    assert message.content_hash == hashlib.sha256(content.encode("utf-8")).hexdigest()
    assert message.seq == 2 and message.published_at == world.now
    assert outcome.result == {"message_id": "m1", "seq": 2}
    assert [e.kind for e in outcome.events] == ["message.posted"]
    assert outcome.events[0].data["citations"] == [] and outcome.events[0].data["ask_id"] is None
    assert world.thread("t").message_count == 1
    assert world.state.messages["m1"].author == "alice"


def test_only_co_authors_post(world) -> None:
    world.create()
    world.refuse(PostMessage("mallory", "t", "m1", "hi"), "not_co_author")


def test_the_same_content_twice_in_one_thread_is_refused(world) -> None:
    world.create("t")
    world.create("u")
    world.do(PostMessage("alice", "t", "m1", "same words"))
    world.refuse(PostMessage("alice", "t", "m2", "same words"), "duplicate_content")
    world.do(PostMessage("alice", "u", "m2", "same words"))  # another thread is fine
    world.do(PostMessage("alice", "t", "m3", "same words "))  # different bytes, different hash


def test_message_ids_are_unique_across_threads_and_specs(world) -> None:
    world.create("t")
    world.create("u")
    world.do(PostMessage("alice", "t", "m1", "one"))
    world.refuse(PostMessage("alice", "u", "m1", "two"), "message_exists")
    spec_id = world.submit("bob", "t")
    world.refuse(PostMessage("alice", "t", spec_id, "three"), "message_exists")


def test_content_is_at_most_16_kib_counted_in_utf8_bytes(world) -> None:
    world.create()
    limit = 16 * 1024
    world.do(PostMessage("alice", "t", "m1", "a" * limit))
    world.refuse(PostMessage("alice", "t", "m2", "b" * (limit + 1)), "content_too_large")
    # 8193 two-byte characters: fewer characters than the limit, more bytes.
    world.refuse(PostMessage("alice", "t", "m3", "é" * 8193), "content_too_large")
    world.refuse(PostMessage("alice", "t", "m4", " \n\t "), "empty_content")


def test_the_ai_answers_in_any_thread_with_its_ask_id_and_citations(world) -> None:
    world.create()
    world.do(PostMessage("alice", "t", "m1", "a prior"))
    citations = (CitationInput(1, "m1", 800_000),)
    outcome = world.do(PostMessage(AI_AUTHOR, "t", "a1", "an answer [1]", ask_id="q1", citations=citations))
    [message] = outcome.messages
    assert message.is_ai and message.ask_id == "q1"
    assert outcome.events[0].data["citations"] == [{"n": 1, "message_id": "m1", "score": 0.8}]
    # An AI answer is no human message: it earns no new-message reward.
    assert all(author != AI_AUTHOR for author, _ in world.state.epoch_posts[0])


def test_a_person_cannot_pose_as_an_answer(world) -> None:
    world.create()
    world.refuse(PostMessage("alice", "t", "m1", "hi", ask_id="q1"), "invalid_payload")
    citations = (CitationInput(1, "m0", 1),)
    world.refuse(PostMessage("alice", "t", "m1", "hi", citations=citations), "invalid_payload")


def test_seq_is_gap_free_per_thread(world) -> None:
    world.create("t")
    world.create("u", "bob")
    seqs = []
    for i in range(5):
        seqs.append(world.do(PostMessage("alice", "t", f"m{i}", f"message {i}")).result["seq"])
        world.do(PostMessage("bob", "u", f"n{i}", f"message {i}"))
    assert seqs == [2, 3, 4, 5, 6]
    assert world.thread("u").last_seq == 6
