"""PostAnswer: the Choir AI's answer and its citation records in one instruction, both or neither."""

from __future__ import annotations

from choir.program import (
    AI_AUTHOR,
    CitationInput,
    PostAnswer,
    PostMessage,
    Visibility,
)


def _priors(world) -> None:
    world.create("src", "carol")
    world.do(PostMessage("carol", "src", "p1", "tomatoes like sun"))
    world.do(PostMessage("carol", "src", "p2", "basil likes water"))
    world.create("t", "alice")
    world.do(PostMessage("alice", "t", "own", "my own words"))


def test_an_answer_publishes_the_message_and_records_its_citations(world) -> None:
    _priors(world)
    cites = (CitationInput(1, "p1", 900_000), CitationInput(2, "own", 500_000))
    outcome = world.do(PostAnswer("q1", "alice", "t", "a1", "Sun [1], and [2].", cites))
    (message,) = outcome.messages
    assert message.author == AI_AUTHOR and message.ask_id == "q1"
    assert [(c.n, c.message_id) for c in message.citations] == [(1, "p1"), (2, "own")]
    assert [e.kind for e in outcome.events] == ["message.posted"]
    assert [(r.message_id, r.eligible) for r in outcome.citations] == [("p1", True), ("own", False)]
    assert outcome.result == {
        "message_id": "a1",
        "seq": world.thread("t").last_seq,
        "recorded": 2,
        "eligible": 1,
    }
    assert [r.message_id for r in world.state.epoch_citations[0]] == ["p1"]
    assert "a1" not in world.state.epoch_posts.get(0, {})  # an answer earns no new-message reward


def test_an_answer_citing_a_missing_message_publishes_nothing(world) -> None:
    _priors(world)
    world.refuse(
        PostAnswer("q1", "alice", "t", "a1", "Sun [1].", (CitationInput(1, "gone", 1),)), "message_not_found"
    )
    assert "a1" not in world.state.messages


def test_an_answer_is_refused_like_any_post(world) -> None:
    _priors(world)
    world.do(PostAnswer("q1", "alice", "t", "a1", "the same words", (), "What are the same words?"))
    # The same question asked again is answered again with the same text: not a duplicate post...
    again = world.do(PostAnswer("q2", "alice", "t", "a2", "the same words", (), "What are the same words?"))
    assert again.messages[0].question == "What are the same words?"
    # People's posts are unique among people's posts (an answer's text does not count), ids always.
    world.do(PostMessage("alice", "t", "m9", "the same words"))
    world.refuse(PostMessage("alice", "t", "m10", "the same words"), "duplicate_content")
    world.refuse(PostAnswer("q3", "alice", "t", "a1", "other words", ()), "message_exists")
    world.refuse(PostAnswer("q8", "alice", "t", "a8", "words", (), "x" * 20_000), "content_too_large")
    world.refuse(PostAnswer("q4", "alice", "nope", "a4", "words", ()), "thread_not_found")
    world.refuse(PostAnswer("bad id!", "alice", "t", "a5", "words", ()), "invalid_id")
    world.refuse(PostAnswer("q6", "", "t", "a6", "words", ()), "invalid_payload")
    world.refuse(PostAnswer("q7", "alice", "t", "a7", "", ()), "empty_content")


def test_an_answer_in_a_private_thread_cites_and_is_not_a_prior(world) -> None:
    _priors(world)
    world.create("secret", "alice", Visibility.PRIVATE)
    outcome = world.do(PostAnswer("q1", "alice", "secret", "a1", "Sun [1].", (CitationInput(1, "p1", 1),)))
    assert [r.eligible for r in outcome.citations] == [True]
