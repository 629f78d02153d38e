"""The citation bar (chorus.relevance), calibrated on the labelled set: an answer cites the prior that
answers the question, not the message asking the same thing nor a neighbour sharing its words, and cites
nothing when nobody wrote about it. Measured with the real store, indexes and retrieval."""

from __future__ import annotations

import pytest
from bench.bench_relevance import after, before, load_cases, score

from choir.chorus import relevance
from choir.chorus.embedders import default_embedder


def test_a_question_is_told_from_an_answer() -> None:
    assert relevance.asks("How do I fix a flat tyre?")
    assert relevance.asks("Does anyone know how restaurants get risotto creamy? Asking for a friend.")
    assert not relevance.asks("To patch a puncture, take the tube out and find the hole.")
    assert not relevance.asks("How I fixed my bike: new tube, ten minutes.")


def test_words_are_compared_by_their_content() -> None:
    assert relevance.content_words("How do I fix the tyres?") == {"fix", "tyre"}
    assert relevance.word_overlap("fix a flat tyre", "The tyre was flat; I could not fix it") == 1.0
    assert relevance.word_overlap("the and of", "anything") == 0.0


def test_nothing_clears_the_bar_when_nothing_is_close() -> None:
    assert relevance.supporting("How do I prune an olive tree?", [("Good morning everyone!", 0.1)]) == []
    best = relevance.supporting(
        "How do I fix a flat bike tyre?",
        [
            ("I got a flat tyre on my bike, how do I fix it?", 0.83),
            ("To patch a puncture, take the tube out, find the hole and glue a patch on it.", 0.62),
        ],
    )
    assert [j.index for j in best] == [1]


@pytest.fixture(scope="module")
def cases():  # type: ignore[no-untyped-def]
    return load_cases(default_embedder())


def test_the_labelled_set_meets_the_targets(cases) -> None:  # type: ignore[no-untyped-def]
    assert len({c.question for c in cases}) >= 60
    calibrated = after(
        relevance.BAR, relevance.RUNNER_UP_WITHIN, relevance.WORDS_WEIGHT, relevance.ASKS_PENALTY
    )
    now = score(cases, calibrated)
    assert now.recall >= 0.9 and now.precision >= 0.8 and now.silent >= 0.8, now
    held_out = score([c for c in cases if c.half == 1], calibrated)
    assert held_out.recall >= 0.85 and held_out.precision >= 0.75, held_out
    # What it replaced: the top three hits, cited whatever they said.
    old = score(cases, before)
    assert old.precision < 0.5 and old.silent < 0.2, old
