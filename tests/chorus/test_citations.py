"""[n] markers → priors: extraction, resolution (unknown markers dropped), similarity attribution."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from choir.chorus.citations import (
    Prior,
    attribute_sentences,
    extract_markers,
    ground,
    resolve,
    split_sentences,
)
from choir.chorus.embed import MiniLMEmbedder

PRIORS = [
    Prior(1, "m-escrow", "A spec's stake is held in escrow until every voter has voted.", 0.81),
    Prior(2, "m-pizza", "The best pizza in Naples is at a tiny place near the station.", 0.55),
    Prior(
        3, "m-divest", "A co-author who divests takes the balance divided by the number of co-authors.", 0.42
    ),
]


def test_extract_markers_in_order_without_repeats() -> None:
    assert extract_markers("a [2] b [1][2] c [3, 1] d [10,2]") == [2, 1, 3, 10]
    assert extract_markers("no markers, [x], [], [-1], [1.5]") == []
    assert extract_markers("[123456] is too long to be a marker") == []


def test_resolve_keeps_real_priors_and_drops_the_rest() -> None:
    text, citations = resolve(
        "Stakes wait in escrow [1]. Pizza [7] is good [2]. Leaving pays [3, 9].", PRIORS
    )
    assert text == "Stakes wait in escrow [1]. Pizza is good [2]. Leaving pays [3]."
    assert citations == [
        {"n": 1, "message_id": "m-escrow", "score": 0.81},
        {"n": 2, "message_id": "m-pizza", "score": 0.55},
        {"n": 3, "message_id": "m-divest", "score": 0.42},
    ]


def test_resolve_keeps_the_prior_number_and_cites_once() -> None:
    # n is the prior's number in the prompt, not a renumbering by order of appearance.
    text, citations = resolve("Divest [3]. Again [3]. Escrow [1].", PRIORS)
    assert text == "Divest [3]. Again [3]. Escrow [1]."
    assert [c["n"] for c in citations] == [3, 1]


def test_resolve_with_only_unknown_markers() -> None:
    assert resolve("Nothing real [8] here [0].", PRIORS) == ("Nothing real here.", [])
    assert resolve("Untouched text.", []) == ("Untouched text.", [])


def test_duplicate_prior_numbers_are_refused() -> None:
    with pytest.raises(ValueError, match=r"two priors are numbered \[1\]"):
        resolve("x [1]", [PRIORS[0], PRIORS[0]])
    with pytest.raises(ValueError, match="start at 1"):
        Prior(0, "m", "c", 0.1)


def test_split_sentences() -> None:
    assert split_sentences("One. Two! Three? Four") == ["One.", "Two!", "Three?", "Four"]
    assert split_sentences("Line one\nLine two.") == ["Line one", "Line two."]
    assert split_sentences("It is held [1]. Then paid.") == ["It is held [1].", "Then paid."]
    assert split_sentences("  ") == []


class KeywordEmbedder:
    """A transparent embedder for the attribution rule: one axis per keyword."""

    KEYWORDS = ("escrow", "pizza", "divest")
    dim = 3

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for j, word in enumerate(self.KEYWORDS):
                out[i, j] = text.lower().count(word)
            norm = np.linalg.norm(out[i])
            out[i] = out[i] / norm if norm else out[i]
        return out


def test_attribute_sentences_marks_similar_ones_only() -> None:
    answer = "Your stake waits in escrow. Nobody knows the weather. If you divest, you take a share!"
    text, citations = attribute_sentences(answer, PRIORS, KeywordEmbedder())
    assert (
        text
        == "Your stake waits in escrow [1]. Nobody knows the weather. If you divest, you take a share [3]!"
    )
    assert [c["message_id"] for c in citations] == ["m-escrow", "m-divest"]


def test_attribution_threshold_is_inclusive_and_configurable() -> None:
    # "escrow pizza" has cosine 1/sqrt(2) ≈ 0.707 with both the escrow and the pizza prior.
    text, _ = attribute_sentences("escrow pizza", PRIORS, KeywordEmbedder(), threshold=0.7)
    assert text == "escrow pizza [1]"
    assert attribute_sentences("escrow pizza", PRIORS, KeywordEmbedder(), threshold=0.71)[1] == []


def test_ground_prefers_model_markers_then_falls_back() -> None:
    cited = ground("Escrow holds it [1]. Also pizza.", PRIORS, KeywordEmbedder())
    assert cited == ("Escrow holds it [1]. Also pizza.", [{"n": 1, "message_id": "m-escrow", "score": 0.81}])
    fallback_text, fallback = ground("Escrow holds it [9]. Also pizza.", PRIORS, KeywordEmbedder())
    assert fallback_text == "Escrow holds it [1]. Also pizza [2]."
    assert [c["n"] for c in fallback] == [1, 2]


def test_attribution_with_minilm() -> None:
    answer = (
        "Your stake stays locked in escrow until all voters have cast their vote. "
        "The Eiffel tower is made of iron."
    )
    text, citations = attribute_sentences(answer, PRIORS, MiniLMEmbedder())
    assert [c["message_id"] for c in citations] == ["m-escrow"]
    assert text.startswith("Your stake stays locked in escrow until all voters have cast their vote [1].")
    assert text.endswith("The Eiffel tower is made of iron.")


def test_a_marker_whose_prior_does_not_support_its_claim_is_dropped() -> None:
    """The LLM path: a model may cite a real prior for a claim it does not support."""
    from choir.chorus.citations import drop_unsupported
    from choir.chorus.embedders import default_embedder

    priors = [
        Prior(1, "m1", "Tomatoes need at least six hours of direct sun a day to fruit well.", 0.7),
        Prior(2, "m2", "How much sun do tomatoes need?", 0.9),
    ]
    answer = (
        "Tomatoes want six hours of direct sun a day [1].\n"
        "Bicycle chains should be oiled every 300 kilometres [1].\n"
        "Give them plenty of sun [2]."
    )
    text, citations = drop_unsupported(answer, priors, default_embedder())
    assert text == (
        "Tomatoes want six hours of direct sun a day [1].\n"
        "Bicycle chains should be oiled every 300 kilometres.\n"
        "Give them plenty of sun."
    )
    assert [c["message_id"] for c in citations] == ["m1"]
