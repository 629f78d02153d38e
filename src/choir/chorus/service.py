"""Asking the Choir AI from the server: start a loop for an ``ask``, stream its phases to the
thread's subscribers (and the asker), and post the answer as the Choir AI's message with its
citations in one instruction (``PostAnswer``). One loop per ask, cancelled when the asker's
connection closes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import Any, Final

from choir.auth.ratelimit import SlidingWindow
from choir.chorus.citations import Citation
from choir.chorus.loop import Answer, ChorusLoop
from choir.chorus.prompts import Phase
from choir.engine.ports import Execute, Publish, Snapshots
from choir.ops.metrics import Metrics, timed_retrieval
from choir.program import CitationInput, PostAnswer

log = logging.getLogger(__name__)
# Asks running at once in this process; more wait their turn (a model is one resource).
MAX_CONCURRENT_ASKS: Final = 4
# The content limit is 16 KiB of UTF-8; leave room for the "asked again" note.
MAX_ANSWER_BYTES: Final = 15_000
# Asks started (running or waiting) per process, and per asker a minute.
MAX_ASKS_IN_FLIGHT: Final = 64
ASKS_PER_MINUTE: Final = 20
PHASE_KIND: Final = "chorus.phase"

# Shows a phase event to the asker directly (thread_id, kind, data): the asker sees the phases
# even when not subscribed to the thread.
Echo = Callable[[str, str, dict[str, Any]], None]


class AskRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class ChorusService:
    def __init__(
        self,
        loop: ChorusLoop,
        execute: Execute,
        snapshots: Snapshots,
        publish: Publish,
        metrics: Metrics | None = None,
    ) -> None:
        loop.retriever = timed_retrieval(metrics, loop.retriever)  # choir_retrieval_seconds
        self.loop = loop
        self.execute = execute
        self.snapshots = snapshots
        self.publish = publish
        self.metrics = metrics
        self.slots = asyncio.Semaphore(MAX_CONCURRENT_ASKS)
        self.running: dict[str, asyncio.Task[None]] = {}
        self.per_asker = SlidingWindow(ASKS_PER_MINUTE, 60.0)

    async def start(
        self, asker: str, thread_id: str, prompt: str, echo: Echo | None
    ) -> tuple[str, asyncio.Task[None]]:
        """Check the ask and start its loop; returns the ask id and the loop's task."""
        thread = self.snapshots().threads.get(thread_id)
        if thread is None or not thread.readable_by(asker):
            raise AskRefused("thread_not_found", f"no thread {thread_id!r}")
        if len(self.running) >= MAX_ASKS_IN_FLIGHT or not self.per_asker.hit(asker):
            raise AskRefused(
                "rate_limited", f"at most {ASKS_PER_MINUTE} questions a minute; try again shortly"
            )
        ask_id = secrets.token_hex(8)
        # Priors come from threads everybody may read: the answer is read by all of its thread.
        readable = frozenset(t.thread_id for t in self.snapshots().threads.values() if t.readable_by(None))
        task = asyncio.get_running_loop().create_task(
            self.run(ask_id, asker, thread_id, prompt, echo, readable)
        )
        self.running[ask_id] = task
        task.add_done_callback(lambda _t: self.running.pop(ask_id, None))
        return ask_id, task

    async def stop(self) -> None:
        for task in list(self.running.values()):
            task.cancel()
        await asyncio.gather(*self.running.values(), return_exceptions=True)

    async def run(
        self,
        ask_id: str,
        asker: str,
        thread_id: str,
        prompt: str,
        echo: Echo | None,
        readable: frozenset[str] = frozenset(),
    ) -> None:
        async def emit(phase: Phase, state: str, text: str) -> None:
            await self._phase(ask_id, thread_id, echo, phase, state, text)

        async with self.slots:
            try:
                answer = await self.loop.run(prompt, emit, readable)
                if self.metrics is not None:  # phase and first-event latencies
                    self.metrics.observe_answer(answer.phase_ms, answer.first_event_ms)
                await self._post(ask_id, asker, thread_id, prompt, answer)
            except asyncio.CancelledError:
                log.info("ask %s cancelled: the asker left", ask_id)
                raise
            except Exception as exc:
                log.exception("ask %s failed", ask_id)
                with contextlib.suppress(Exception):
                    await self._phase(ask_id, thread_id, echo, "yield", "error", f"The answer failed: {exc}")

    async def _phase(
        self, ask_id: str, thread_id: str, echo: Echo | None, phase: str, state: str, text: str
    ) -> None:
        data = {"ask_id": ask_id, "phase": phase, "state": state, "text": text}
        await self.publish(thread_id, PHASE_KIND, data)
        if echo is not None:
            echo(thread_id, PHASE_KIND, data)

    async def _post(self, ask_id: str, asker: str, thread_id: str, question: str, answer: Answer) -> None:
        text = answer.text.strip() or "I found nothing to say about that."
        content = _clip_utf8(text, MAX_ANSWER_BYTES)
        citations = tuple(_citation_input(c) for c in answer.citations)
        message_id = secrets.token_hex(12)
        # The question is kept with its answer (shown above it to everyone, after a reload too).
        question = _clip_utf8(question.strip(), MAX_ANSWER_BYTES) or "(no question)"
        await self.execute(PostAnswer(ask_id, asker, thread_id, message_id, content, citations, question))


def _clip_utf8(text: str, limit_bytes: int) -> str:
    encoded = text.encode()
    return text if len(encoded) <= limit_bytes else encoded[:limit_bytes].decode(errors="ignore")


def _citation_input(c: Citation) -> CitationInput:
    return CitationInput(c["n"], c["message_id"], max(0, min(1_000_000, round(c["score"] * 1_000_000))))
