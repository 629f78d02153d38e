"""The commit feed's ``publisher``: each committed event encoded once, in commit order, and
handed to the broker (in process: straight to this process's hub; with Redis: to every process).

With the in-process broker, delivery happens inside the feed's call, on the event loop, with no
queue between the commit and the sockets' queues. A broker that must await (Redis) gets the
frames through one bounded queue drained by one task, which keeps commit order.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from choir.actions.views import iso
from choir.engine.commits import Commit
from choir.engine.ports import Clock
from choir.program import Outcome, Visibility
from choir.realtime import protocol
from choir.realtime.broker import Broker, LocalBroker
from choir.realtime.protocol import EVERYONE

log = logging.getLogger(__name__)
# Frames waiting for a remote broker; past this the process cannot keep up with its own commits,
# and dropping is better than growing without bound (subscribers resume with since_seq).
MAX_PENDING_FRAMES: Final = 100_000

_Frame = tuple[str, str, int | None, str]  # ("t", thread_id, seq, frame) or ("u", address, None, frame)


class Publisher:
    def __init__(self, broker: Broker, clock: Clock) -> None:
        self.broker = broker
        self.clock = clock
        self._local = broker if isinstance(broker, LocalBroker) else None
        self._queue: asyncio.Queue[_Frame] = asyncio.Queue(MAX_PENDING_FRAMES)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._local is None:
            self._task = asyncio.get_running_loop().create_task(self._drain(), name="publisher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def on_commit(self, commit: Commit) -> None:
        """The commit feed's ``publisher`` subscriber."""
        for outcome in commit.outcomes:
            for e in outcome.events:
                frame = protocol.event(e.thread_id, e.seq, e.kind, commit.event_data(e), iso(e.at))
                self._send(("t", e.thread_id, e.seq, frame))
            for listed in _listings(outcome):
                self._send(listed)
            for notice in outcome.notices:
                at = iso(outcome.at or self.clock())
                frame = protocol.event(notice.data.get("thread_id"), None, notice.kind, notice.data, at)
                self._send(("u", notice.address, None, frame))
        for note in commit.notifications:
            frame = protocol.event(note.thread_id, None, "notification", note.view(), iso(note.at))
            self._send(("u", note.address, None, frame))

    async def thread_event(self, thread_id: str, kind: str, data: dict[str, Any]) -> None:
        """The ``Publish`` port: a live-only event (no seq) to a thread's subscribers."""
        frame = protocol.event(thread_id, None, kind, data, iso(self.clock()))
        await self.broker.publish_thread(thread_id, None, frame)

    def _send(self, item: _Frame) -> None:
        if self._local is not None:
            self._local.deliver(item)
            return
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            log.error("fan-out queue full: a frame was dropped; subscribers resume with since_seq")

    async def _drain(self) -> None:
        while True:
            kind, target, seq, frame = await self._queue.get()
            try:
                if kind == "t":
                    await self.broker.publish_thread(target, seq, frame)
                else:
                    await self.broker.publish_user(target, frame)
            except Exception:
                log.exception("publishing failed")


def _listings(outcome: Outcome) -> list[_Frame]:
    """`thread.listed` frames for the thread lists: a new public thread to everyone; a new private
    thread to its creator, and to each person who joins it."""
    frames: list[_Frame] = []
    for e in outcome.events:
        if e.kind not in ("thread.created", "coauthor.joined"):
            continue
        thread = outcome.threads.get(e.thread_id)
        if thread is None:
            continue
        public = thread.visibility is Visibility.PUBLIC
        if e.kind == "thread.created":
            to = EVERYONE if public else thread.creator
        elif public:
            continue  # everyone has it already
        else:
            to = e.data["address"]
        data = {"thread_id": thread.thread_id, "title": thread.title, "visibility": str(thread.visibility)}
        frames.append(
            ("u", to, None, protocol.event(thread.thread_id, None, "thread.listed", data, iso(e.at)))
        )
    return frames
