"""Citations: `[n]` markers in an answer → the priors they name.

Only a marker that names a real prior survives (DESIGN §6); the others are removed from the text, so the
stored answer never shows a citation that links nowhere. `n` stays the prior's own number as the prompt
listed it, so the answer text and the stored citations agree without renumbering.

Small models rarely cite (SmolLM2 never does), so when an answer carries no valid marker,
`attribute_sentences` grounds it instead: each sentence is linked to its most similar prior when the
embedding similarity reaches the threshold.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

import numpy as np

from choir.chorus import relevance
from choir.chorus.embed import Embedder

__all__ = [
    "ATTRIBUTION_THRESHOLD",
    "Citation",
    "Prior",
    "attribute_sentences",
    "extract_markers",
    "ground",
    "resolve",
    "split_sentences",
]

ATTRIBUTION_THRESHOLD = 0.5
# `[12]` or `[1, 3]` / `[1,3]`: models write both. Digits are bounded so "[99999999999]" is not a marker.
_MARKER = re.compile(r"\[(\d{1,4}(?:\s*,\s*\d{1,4})*)\]")
_MARKER_WITH_BLANK = re.compile(r"([ \t]*)\[(\d{1,4}(?:\s*,\s*\d{1,4})*)\]")
# A sentence ends at . ! or ? (with any closing marker or quote) followed by space, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?])(?:\s*\[\d{1,4}(?:\s*,\s*\d{1,4})*\])*[\"')\]]*\s+|\n+")


@dataclass(frozen=True)
class Prior:
    """A message retrieved for a question, numbered as the prompt shows it (`[n]`, from 1)."""

    n: int
    message_id: str
    content: str
    score: float
    thread_id: str = ""
    author: str = ""

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"prior numbers start at 1, got {self.n}")


class Citation(TypedDict):
    """As stored with the answer and sent in `message.posted`."""

    n: int
    message_id: str
    score: float


def extract_markers(text: str) -> list[int]:
    """Every number cited in `text`, in order of first appearance, without repeats."""
    seen: dict[int, None] = {}
    for match in _MARKER.finditer(text):
        for number in match.group(1).split(","):
            seen.setdefault(int(number), None)
    return list(seen)


def _by_number(priors: Sequence[Prior]) -> dict[int, Prior]:
    table: dict[int, Prior] = {}
    for prior in priors:
        if prior.n in table:
            raise ValueError(f"two priors are numbered [{prior.n}]")
        table[prior.n] = prior
    return table


def resolve(text: str, priors: Sequence[Prior]) -> tuple[str, list[Citation]]:
    """Drop markers naming no prior; return the cleaned text and the citations in order of appearance."""
    table = _by_number(priors)

    def keep_known(match: re.Match[str]) -> str:
        numbers = [int(x) for x in match.group(2).split(",")]
        known = list(dict.fromkeys(n for n in numbers if n in table))
        if len(known) == len(numbers):
            return match.group(0)
        # The blank before a dropped marker goes with it: "rains [9]." becomes "rains.", not "rains ."
        return match.group(1) + "[" + ", ".join(map(str, known)) + "]" if known else ""

    cleaned = _MARKER_WITH_BLANK.sub(keep_known, text)
    return cleaned, [_citation(table[n]) for n in extract_markers(cleaned)]


def _citation(prior: Prior) -> Citation:
    return {"n": prior.n, "message_id": prior.message_id, "score": float(prior.score)}


def split_sentences(text: str) -> list[str]:
    """Sentences of `text` with their end punctuation (and any marker right after it) kept."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def attribute_sentences(
    answer: str,
    priors: Sequence[Prior],
    embedder: Embedder,
    threshold: float = ATTRIBUTION_THRESHOLD,
) -> tuple[str, list[Citation]]:
    """Append `[n]` to each sentence whose most similar prior has cosine similarity ≥ `threshold`.

    Sentences are joined back with single spaces (line structure is not preserved). Returns the
    attributed text and the citations in order of first appearance.
    """
    table = _by_number(priors)
    sentences = split_sentences(answer)
    if not sentences or not table:
        return answer, []
    ordered = list(table.values())
    vectors = embedder.embed(sentences + [p.content for p in ordered])
    similarity = vectors[: len(sentences)] @ vectors[len(sentences) :].T
    out = []
    for i, sentence in enumerate(sentences):
        best = int(np.argmax(similarity[i]))
        if float(similarity[i, best]) >= threshold:
            out.append(_append_marker(sentence, ordered[best].n))
        else:
            out.append(sentence)
    text = " ".join(out)
    return text, [_citation(table[n]) for n in extract_markers(text)]


def _append_marker(sentence: str, n: int) -> str:
    # "It rains." → "It rains [2]." — the marker sits before the final punctuation, as a reader expects.
    match = re.search(r"[.!?]+[\"')]*$", sentence)
    if match:
        return f"{sentence[: match.start()]} [{n}]{sentence[match.start() :]}"
    return f"{sentence} [{n}]"


def ground(
    answer: str,
    priors: Sequence[Prior],
    embedder: Embedder,
    threshold: float = ATTRIBUTION_THRESHOLD,
) -> tuple[str, list[Citation]]:
    """The whole rule the loop applies: keep valid markers; if none survive, attribute by similarity."""
    text, citations = resolve(answer, priors)
    if citations:
        return drop_unsupported(text, priors, embedder)
    return attribute_sentences(text, priors, embedder, threshold)


def drop_unsupported(text: str, priors: Sequence[Prior], embedder: Embedder) -> tuple[str, list[Citation]]:
    """Remove each marker whose prior does not support the claim it ends (the calibrated measure of
    `chorus.relevance`: similarity, and not a question itself). A marker's claim is the text before it,
    back to the previous marker or the start of its line."""
    table = _by_number(priors)
    matches = list(_MARKER_WITH_BLANK.finditer(text))
    claims: list[tuple[int, str, int]] = []  # (match index, claim, prior number)
    previous_end = 0
    for i, match in enumerate(matches):
        line_start = text.rfind("\n", 0, match.start()) + 1
        claim = text[max(line_start, previous_end) : match.start()].strip().lstrip(">").strip()
        previous_end = match.end()
        claims += [(i, claim, n) for n in (int(x) for x in match.group(2).split(",")) if n in table]
    if not claims:
        return text, []
    vectors = embedder.embed([c for _, c, _ in claims] + [table[n].content for _, _, n in claims])
    half = len(claims)
    unsupported: set[tuple[int, int]] = set()
    for k, (i, claim, n) in enumerate(claims):
        cosine = float(vectors[k] @ vectors[half + k])
        judged = relevance.judge(claim, [(table[n].content, cosine)])[0]
        if judged.relevance < relevance.BAR:
            unsupported.add((i, n))
    by_position = {m.start(): i for i, m in enumerate(matches)}

    def keep_supported(match: re.Match[str]) -> str:
        i = by_position[match.start()]
        numbers = [int(x) for x in match.group(2).split(",")]
        kept = [n for n in numbers if n in table and (i, n) not in unsupported]
        if len(kept) == len(numbers):
            return match.group(0)
        return match.group(1) + "[" + ", ".join(map(str, kept)) + "]" if kept else ""

    cleaned = _MARKER_WITH_BLANK.sub(keep_supported, text)
    return cleaned, [_citation(table[n]) for n in extract_markers(cleaned) if n in table]


# What replaces a quote of a deleted message in an answer that cited it.
REMOVED_QUOTE = "*(quote removed: the message was deleted)*"
# A deleted message's sentences this long or longer are taken out wherever an answer repeats them.
_REDACTED_SENTENCE_CHARS_MIN = 12


def redact_quotes(answer: str, numbers: Sequence[int], removed: str) -> str:
    """``answer`` without what it quoted of a deleted message it cited as ``[n]`` (n in ``numbers``):
    each quoted line (``> … [n]``, as the no-model answer writes them) becomes ``REMOVED_QUOTE``, and
    each of the message's sentences repeated verbatim elsewhere is removed too. Markers stay, so the
    citation still shows where the removed message was."""
    wanted = set(numbers)
    lines = []
    for line in answer.split("\n"):
        marks = {int(n) for group in _MARKER.findall(line) for n in re.split(r"\s*,\s*", group)}
        if line.lstrip().startswith(">") and marks & wanted:
            tail = " ".join(f"[{n}]" for n in sorted(marks))
            lines.append(f"> {REMOVED_QUOTE} {tail}")
        else:
            lines.append(line)
    text = "\n".join(lines)
    for sentence in sorted(split_sentences(removed), key=len, reverse=True):
        core = sentence.strip()
        if len(core) >= _REDACTED_SENTENCE_CHARS_MIN and core in text:
            text = text.replace(core, REMOVED_QUOTE)
    return text
