"""Asking the Choir AI from the server: start a loop for an ``ask``, stream its phases
to the thread's subscribers (and the asker), post the answer as the Choir AI's message
with its citations, and record them for prior rewards. One loop per ask, cancelled when
the asker's connection closes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from choir.auth.ratelimit import SlidingWindow
from choir.chorus.citations import Citation
from choir.chorus.loop import Answer, ChorusLoop
from choir.chorus.prompts import Phase
from choir.observability.metrics import observe_answer, timed_retrieval
from choir.program import (
    AI_AUTHOR,
    CitationInput,
    PostMessage,
    RecordCitations,
    Visibility,
)
from choir.program.errors import DuplicateContent
from choir.realtime import protocol

if TYPE_CHECKING:
    from choir.app import Choir
    from choir.realtime.socket import Session

log = logging.getLogger(__name__)
# Asks running at once in this process; more wait their turn (a model is one resource).
MAX_CONCURRENT_ASKS: Final = 4
# The content limit is 16 KiB of UTF-8; leave room for the "asked again" note.
MAX_ANSWER_BYTES: Final = 15_000
# Asks started (running or waiting) per process, and per asker a minute.
MAX_ASKS_IN_FLIGHT: Final = 64
ASKS_PER_MINUTE: Final = 20


class AskRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class ChorusService:
    def __init__(self, choir: Choir, loop: ChorusLoop) -> None:
        self.choir = choir
        loop.index = timed_retrieval(choir, loop.index)  # choir_retrieval_seconds
        self.loop = loop
        self.slots = asyncio.Semaphore(MAX_CONCURRENT_ASKS)
        self.running: dict[str, asyncio.Task[None]] = {}
        self.per_asker = SlidingWindow(ASKS_PER_MINUTE, 60.0)

    async def start(self, asker: str, thread_id: str, prompt: str, session: Session | None) -> str:
        thread = self.choir.state.threads.get(thread_id)
        if thread is None:
            raise AskRefused("thread_not_found", f"no thread {thread_id!r}")
        if thread.visibility is Visibility.PRIVATE and thread.member(asker) is None:
            raise AskRefused("forbidden", "this thread is private to its co-authors")
        if len(self.running) >= MAX_ASKS_IN_FLIGHT or not self.per_asker.hit(asker):
            raise AskRefused(
                "rate_limited", f"at most {ASKS_PER_MINUTE} questions a minute; try again shortly"
            )
        ask_id = secrets.token_hex(8)
        task = asyncio.get_running_loop().create_task(self.run(ask_id, asker, thread_id, prompt, session))
        self.running[ask_id] = task
        task.add_done_callback(lambda _t: self.running.pop(ask_id, None))
        if session is not None:
            session.tasks.add(task)
            task.add_done_callback(session.tasks.discard)
        return ask_id

    async def run(
        self, ask_id: str, asker: str, thread_id: str, prompt: str, session: Session | None
    ) -> None:
        async def emit(phase: Phase, state: str, text: str) -> None:
            await self._phase(ask_id, thread_id, session, phase, state, text)

        async with self.slots:
            try:
                answer = await self.loop.run(prompt, emit)
                observe_answer(self.choir, answer)  # phase and first-event latencies
                await self._post(ask_id, asker, thread_id, prompt, answer)
            except asyncio.CancelledError:
                log.info("ask %s cancelled: the asker left", ask_id)
                raise
            except Exception as exc:
                log.exception("ask %s failed", ask_id)
                with contextlib.suppress(Exception):
                    await self._phase(
                        ask_id, thread_id, session, "yield", "error", f"The answer failed: {exc}"
                    )

    async def _phase(
        self, ask_id: str, thread_id: str, session: Session | None, phase: str, state: str, text: str
    ) -> None:
        data = {"ask_id": ask_id, "phase": phase, "state": state, "text": text}
        frame = protocol.event(thread_id, None, "chorus.phase", data, _now_iso(self.choir))
        await self.choir.broker.publish_thread(thread_id, None, frame)
        # The asker sees the phases even when not subscribed to the thread.
        if session is not None and thread_id not in session.conn.subs:
            session.conn.offer(frame)

    async def _post(self, ask_id: str, asker: str, thread_id: str, prompt: str, answer: Answer) -> None:
        text = answer.text.strip() or "I found nothing to say about that."
        text = _clip_utf8(text, MAX_ANSWER_BYTES)
        content = text
        citations = tuple(_citation_input(c) for c in answer.citations)
        message_id = secrets.token_hex(12)
        for attempt in range(3):
            try:
                await self.choir.execute(
                    PostMessage(AI_AUTHOR, thread_id, message_id, content, ask_id=ask_id, citations=citations)
                )
                break
            except DuplicateContent:
                # The same question asked again in this thread gets the same answer; say so.
                content = f"{text}\n\n_(asked again: {ask_id}{'.' * attempt})_"
        if citations:
            await self.choir.execute(RecordCitations(ask_id, asker, thread_id, citations))


def _clip_utf8(text: str, limit_bytes: int) -> str:
    encoded = text.encode()
    return text if len(encoded) <= limit_bytes else encoded[:limit_bytes].decode(errors="ignore")


def _citation_input(c: Citation) -> CitationInput:
    return CitationInput(c["n"], c["message_id"], max(0, min(1_000_000, round(c["score"] * 1_000_000))))


def _now_iso(choir: Choir) -> str:
    return choir.clock().isoformat().replace("+00:00", "Z")


async def fetch_rows(choir: Choir, message_ids: list[str]) -> Mapping[str, Mapping[str, Any]]:
    return await asyncio.to_thread(choir.store.messages_by_id, message_ids)
