"""Whether a prior supports an answer: the bar a citation must clear.

Cosine similarity alone cites the wrong things: a message that *asks* the same question ranks above the
one that answers it, and messages on the same subject crowd the top of the list. The measure here adds
what the words say (how many of the question's content words the prior has) and subtracts for a prior
that is itself a question, then asks two things: does the best prior clear the bar, and is each other
prior close enough to the best one to be cited beside it?

The constants are calibrated on tests/fixtures/relevance_set.json (61 questions with their answering
prior among 208 priors, with a prior asking each question and a neighbour sharing its words, plus 15
questions nobody wrote about) by `python -m bench relevance`, which prints recall and precision before
and after, on the half it was calibrated on and on the held-out half.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

# Calibrated on the even topics of the set (python -m bench relevance --calibrate); on the held-out odd
# topics: recall 0.97, precision 0.88, no citation for 100% of the unanswerable questions. Shared words
# earned nothing beyond what the hybrid retrieval already gives them (weight 0 was best); a prior that
# asks is all but never cited (an answer must clear the bar by 0.6 more than its similarity).
WORDS_WEIGHT: Final = 0.0
ASKS_PENALTY: Final = 0.6
BAR: Final = 0.40
# Another prior is cited beside the best only when it is this close to it.
RUNNER_UP_WITHIN: Final = 0.08

_WORD = re.compile(r"[a-z0-9]+")
_QUESTION_START = re.compile(
    r"^\s*(how|what|why|when|where|which|who|whom|whose|is|are|can|could|should|would|does|do|did|any|has|"
    r"have|will)\b",
    re.I,
)
STOP_WORDS: Final = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "do",
        "does",
        "did",
        "i",
        "you",
        "he",
        "she",
        "it",
        "we",
        "they",
        "me",
        "my",
        "your",
        "our",
        "their",
        "his",
        "her",
        "its",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "can",
        "could",
        "should",
        "would",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "not",
        "no",
        "yes",
        "so",
        "than",
        "then",
        "too",
        "very",
        "just",
        "also",
        "any",
        "some",
        "all",
        "each",
        "every",
        "about",
        "into",
        "over",
        "after",
        "before",
        "again",
        "out",
        "up",
        "down",
        "off",
        "only",
        "own",
        "same",
        "other",
        "such",
        "more",
        "most",
        "much",
        "many",
        "few",
        "get",
        "got",
        "have",
        "has",
        "had",
        "having",
        "am",
        "im",
        "ive",
        "dont",
        "doesnt",
        "didnt",
        "cant",
        "wont",
        "isnt",
        "arent",
        "anyone",
        "someone",
        "something",
        "anything",
        "thing",
        "things",
        "way",
        "best",
        "good",
        "make",
        "know",
        "want",
        "need",
    ]
)


def content_words(text: str) -> set[str]:
    """The words of a text that carry its subject: lower-cased, without stop words, crudely singular."""
    words = set()
    for word in _WORD.findall(text.lower().replace("'", "")):
        if word in STOP_WORDS or len(word) < 2:
            continue
        words.add(word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word)
    return words


def word_overlap(question: str, prior: str) -> float:
    """The share of the question's content words that the prior contains (0 when it has none)."""
    asked = content_words(question)
    return len(asked & content_words(prior)) / len(asked) if asked else 0.0


def asks(text: str) -> bool:
    """Whether a message is itself a question (it asks rather than answers)."""
    stripped = text.strip()
    return stripped.endswith("?") or bool(_QUESTION_START.match(stripped) and "?" in stripped)


@dataclass(frozen=True)
class Judged:
    index: int  # position in the list judged
    relevance: float
    cosine: float
    words: float
    asks: bool


def score_of(cosine: float, words: float, asking: bool, words_weight: float, asks_penalty: float) -> float:
    return cosine + words_weight * words - (asks_penalty if asking else 0.0)


def judge(
    question: str,
    candidates: Sequence[tuple[str, float]],
    *,
    words_weight: float = WORDS_WEIGHT,
    asks_penalty: float = ASKS_PENALTY,
) -> list[Judged]:
    """Each (prior text, cosine to the question) candidate's relevance, in the candidates' order."""
    out = []
    for i, (text, cosine) in enumerate(candidates):
        words, asking = word_overlap(question, text), asks(text)
        out.append(
            Judged(i, score_of(cosine, words, asking, words_weight, asks_penalty), cosine, words, asking)
        )
    return out


def select(judged: Sequence[Judged], *, bar: float = BAR, within: float = RUNNER_UP_WITHIN) -> list[Judged]:
    """Those that support an answer, best first: none when the best does not clear the bar; beside the
    best, those that clear it too and come within ``within`` of the best."""
    ranked = sorted(judged, key=lambda j: (-j.relevance, j.index))
    if not ranked or ranked[0].relevance < bar:
        return []
    best = ranked[0].relevance
    return [j for j in ranked if j.relevance >= bar and j.relevance >= best - within]


def supporting(question: str, candidates: Sequence[tuple[str, float]]) -> list[Judged]:
    """Of (prior text, cosine to the question) candidates, those that support an answer, best first
    (none: the community has not written about this)."""
    return select(judge(question, candidates))
