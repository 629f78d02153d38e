"""The Chorus loop (DESIGN §6): action → experience → intention → observation →
update (LOOP or RETURN, at most two loops) → yield, every phase streamed as it runs.

The phase order is an explicit state machine that raises on any other move, and the
loop is bounded whatever the model says. The answer's citations are grounded: markers
naming no prior are dropped, and an answer with none is attributed sentence by
sentence to its most similar prior.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from choir.chorus import prompts, relevance
from choir.chorus.citations import Citation, Prior, ground
from choir.chorus.embed import Embedder
from choir.chorus.llm import LLM
from choir.chorus.prompts import Phase
from choir.chorus.retrieval import Retriever
from choir.program import IllegalTransition

MAX_LOOPS: Final = 2
TOP_K: Final = 20
MIN_SCORE: Final = 0.2
PHASE_TOKENS_MAX: Final = 400
ANSWER_TOKENS_MAX: Final = 700

_NEXT: Final[dict[str | None, tuple[Phase, ...]]] = {
    None: ("action",),
    "action": ("experience",),
    "experience": ("intention",),
    "intention": ("observation",),
    "observation": ("update",),
    "update": ("experience", "yield"),
    "yield": (),
}


# emit(phase, state, text): state is start, delta or end.
Emit = Callable[[Phase, str, str], Awaitable[None]]
# The stored messages behind hits: message_id -> {"content", "thread_id", "author", ...}.
Fetch = Callable[[list[str]], Awaitable[Mapping[str, Mapping[str, Any]]]]


class PhaseMachine:
    """Which phase may follow which; anything else is a bug and raises at once."""

    def __init__(self) -> None:
        self.phase: Phase | None = None
        self.loops = 0

    def enter(self, phase: Phase) -> None:
        if phase not in _NEXT[self.phase]:
            raise IllegalTransition(f"the Chorus cannot go from {self.phase} to {phase}")
        if self.phase == "update" and phase == "experience":
            if self.loops >= MAX_LOOPS:
                raise IllegalTransition(f"at most {MAX_LOOPS} loops")
            self.loops += 1
        self.phase = phase


@dataclass
class Answer:
    text: str
    citations: list[Citation]
    priors: list[Prior]
    loops: int
    phase_ms: dict[str, float] = field(default_factory=dict)
    first_event_ms: float | None = None


# What people read of the update phase's decision (the loop reads LOOP or RETURN).
DECISIONS_SHOWN: Final = {
    "LOOP": "Something is missing: searching the community's messages again.",
    "RETURN": "Enough is known: writing the answer.",
}


class ChorusLoop:
    def __init__(
        self,
        llm: LLM,
        embedder: Embedder,
        retriever: Retriever,
        fetch: Fetch,
        *,
        top_k: int = TOP_K,
        min_score: float = MIN_SCORE,
        max_loops: int = MAX_LOOPS,
    ) -> None:
        self.llm = llm
        self.embedder = embedder
        self.retriever = retriever
        self.fetch = fetch
        self.top_k = top_k
        self.min_score = min_score
        self.max_loops = min(max_loops, MAX_LOOPS)

    async def run(self, question: str, emit: Emit, readable: Collection[str] = ()) -> Answer:
        """Answer ``question`` from priors of the threads in ``readable`` (the asker's service passes
        those everybody may read: an answer is read by all of its thread)."""
        machine = PhaseMachine()
        started = time.perf_counter()
        timings: dict[str, float] = {}
        first: list[float] = []

        async def timed_emit(phase: Phase, state: str, text: str) -> None:
            if not first:
                first.append((time.perf_counter() - started) * 1000)
            await emit(phase, state, text)

        async def phase(
            name: Phase,
            messages: list[dict[str, str]] | None,
            intro: str = "",
            tokens: int = PHASE_TOKENS_MAX,
            shown: Callable[[str], str] | None = None,
        ) -> str:
            """One phase, streamed as it is written; with ``shown``, only what it makes of the whole
            text is shown (a decision word is for the loop, not for people)."""
            machine.enter(name)
            t0 = time.perf_counter()
            await timed_emit(name, "start", "")
            text = intro
            if intro:
                await timed_emit(name, "delta", intro)
            if messages is not None:
                async for delta in self.llm.stream(messages, max_tokens=tokens):
                    text += delta
                    if shown is None:
                        await timed_emit(name, "delta", delta)
            await timed_emit(name, "end", text if shown is None else shown(text))
            timings[name] = timings.get(name, 0.0) + (time.perf_counter() - t0) * 1000
            return text

        notes: dict[str, str] = {}
        notes["action"] = await phase("action", prompts.action_messages(question))
        priors: list[Prior] = []
        query = question
        while True:
            priors = await self._retrieve(query, priors, readable)
            listing = _listing(priors)
            notes["experience"] = await phase(
                "experience", prompts.experience_messages(question, priors), listing
            )
            notes["intention"] = await phase("intention", prompts.intention_messages(question, priors, notes))
            notes["observation"] = await phase(
                "observation", prompts.observation_messages(question, priors, notes)
            )
            decision_text = await phase(
                "update",
                prompts.update_messages(question, notes, loops_done=machine.loops),
                tokens=8,
                shown=lambda text: DECISIONS_SHOWN[prompts.parse_decision(text)],
            )
            decision = prompts.parse_decision(decision_text)
            if decision == "RETURN" or machine.loops >= self.max_loops:
                break
            # Search again with what the observation found missing.
            query = f"{question}\n{notes['observation']}"
        # Only the priors that support an answer reach it (chorus.relevance): a neighbour on the same
        # subject, or a message asking the same question, is found but not cited.
        judged = relevance.supporting(question, [(p.content, p.score) for p in priors])
        cited = [priors[j.index] for j in judged]
        answer = await phase(
            "yield", prompts.yield_messages(question, cited, notes), tokens=ANSWER_TOKENS_MAX
        )
        text, citations = await asyncio.to_thread(ground, answer.strip(), cited, self.embedder)
        return Answer(text, citations, priors, machine.loops, timings, first[0] if first else None)

    async def _retrieve(self, query: str, known: list[Prior], readable: Collection[str]) -> list[Prior]:
        """Priors for the query (hybrid retrieval: words and meaning, public messages only), merged with
        those already found (their numbers kept)."""
        found = await self.retriever.find(query, self.top_k, readable=readable)
        seen = {p.message_id for p in known}
        new = [f for f in found if f.message_id not in seen and f.cosine >= self.min_score]
        rows = await self.fetch([f.message_id for f in new])
        merged = list(known)
        for hit in new:
            row = rows.get(hit.message_id)
            if row is None:  # indexed but not (or no longer) in the store: never cite it
                continue
            merged.append(
                Prior(
                    len(merged) + 1,
                    hit.message_id,
                    row["content"],
                    round(hit.cosine, 6),
                    hit.thread_id,
                    row["author"],
                )
            )
        return merged[: self.top_k * (MAX_LOOPS + 1)]


def _listing(priors: Sequence[Prior]) -> str:
    if not priors:
        return "No earlier public message matches.\n"
    lines = [f"[{p.n}] {_excerpt(p.content)} ({p.score:.2f})" for p in priors]
    return "\n".join(lines) + "\n"


def _excerpt(text: str, chars_max: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= chars_max else flat[: chars_max - 1] + "…"
