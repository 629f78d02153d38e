"""One connection's reading side: frame limits, parsing, and a handler per frame type, each
answered with an ``ack`` or an ``error``; events arrive through the hub. Each frame reads one
committed snapshot."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Final

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from choir import program
from choir.auth.ratelimit import TokenBucket
from choir.chorus.service import AskRefused, ChorusService
from choir.engine import Snapshot, Writer
from choir.program import PostMessage, ProgramError, SubmitSpec, Visibility, Vote
from choir.realtime import protocol
from choir.realtime.hub import Connection, Hub
from choir.realtime.protocol import (
    Ask,
    Divest,
    Ping,
    Post,
    ProtocolError,
    SpecSubmit,
    SpecVote,
    Subscribe,
    Unsubscribe,
    WithdrawFunds,
    iso,
)
from choir.realtime.replay import replay
from choir.store.sql import Store

log = logging.getLogger(__name__)
MAX_CONTENT_BYTES: Final = 16 * 1024
FRAMES_PER_MINUTE: Final = 100


class Session:
    """One connection's reading side: limits, parsing, dispatch."""

    def __init__(
        self, writer: Writer, store: Store, hub: Hub, chorus: ChorusService | None, conn: Connection
    ) -> None:
        self.writer = writer
        self.store = store
        self.hub = hub
        self.chorus = chorus
        self.conn = conn
        self.bucket = TokenBucket(capacity=FRAMES_PER_MINUTE, refill_per_s=FRAMES_PER_MINUTE / 60)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.handlers: dict[type, Callable[[str, Any], Awaitable[None]]] = {
            Subscribe: self.subscribe,
            Unsubscribe: self.unsubscribe,
            Post: self.post,
            SpecSubmit: self.spec_submit,
            SpecVote: self.spec_vote,
            Divest: self.divest,
            WithdrawFunds: self.withdraw,
            Ask: self.ask,
            Ping: self.ping,
        }

    async def read_loop(self, ws: WebSocket) -> None:
        while ws.application_state is WebSocketState.CONNECTED:
            try:
                message = await ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                raw = message.get("bytes") or b""
            await self.handle(raw)

    async def handle(self, raw: str | bytes) -> None:
        if not self.bucket.take():
            self.send_error(
                None,
                "rate_limited",
                f"at most {FRAMES_PER_MINUTE} frames a minute; this one was not processed",
            )
            return
        try:
            frame_id, payload = protocol.parse(raw)
        except ProtocolError as exc:
            self.send_error(exc.frame_id, exc.code, exc.message)
            return
        try:
            await self.handlers[type(payload)](frame_id, payload)
        except ProtocolError as exc:
            self.send_error(frame_id, exc.code, exc.message)
        except ProgramError as exc:
            self.send_error(frame_id, exc.code, exc.message)
        except Exception:
            log.exception("frame handler failed")
            self.send_error(frame_id, "internal", "the server failed on this frame; nothing was changed")

    def send_ack(self, frame_id: str, payload: dict[str, Any]) -> None:
        self.conn.offer(protocol.ack(frame_id, payload))

    def send_error(self, frame_id: str | None, code: str, message: str) -> None:
        self.conn.offer(protocol.error(frame_id, code, message))

    # -- handlers ---------------------------------------------------------------------

    async def _snapshot(self) -> Snapshot:
        """The committed snapshot this frame reads (caught up with other processes first, when
        several share PostgreSQL)."""
        if self.store.shared:
            await asyncio.to_thread(self.writer.sync.refresh_if_stale)
        return self.writer.snapshot()

    async def subscribe(self, frame_id: str, p: Subscribe) -> None:
        snap = self.writer.snapshot()
        if p.thread_id not in snap.threads:
            snap = await self._snapshot()
        thread = snap.threads.get(p.thread_id)
        if thread is None:
            raise ProtocolError("thread_not_found", f"no thread {p.thread_id!r}")
        private = thread.visibility is Visibility.PRIVATE
        if private and thread.member(self.conn.address) is None:
            raise ProtocolError("forbidden", "this thread is private to its co-authors")
        hub = self.hub
        # A snapshot holds only committed events, so the store has every seq up to this one.
        latest = thread.last_seq
        if p.since_seq is None:
            hub.subscribe(self.conn, p.thread_id, latest, replaying=False, private=private)
            self.send_ack(frame_id, {"thread_id": p.thread_id, "seq": latest})
            return
        # Subscribe first, holding live events, so none slips between the replay and live.
        sub = hub.subscribe(self.conn, p.thread_id, p.since_seq, replaying=True, private=private)
        self.send_ack(frame_id, {"thread_id": p.thread_id, "seq": latest})
        await replay(self.store, hub, self.conn, sub)

    async def unsubscribe(self, frame_id: str, p: Unsubscribe) -> None:
        if not self.hub.unsubscribe(self.conn, p.thread_id):
            raise ProtocolError("not_subscribed", f"not subscribed to {p.thread_id!r}")
        self.send_ack(frame_id, {})

    async def post(self, frame_id: str, p: Post) -> None:
        _check_content(p.content)
        message_id = secrets.token_hex(12)
        outcome = await self.writer.execute(
            PostMessage(self.conn.address, p.thread_id, message_id, p.content, novelty_ppm=None)
        )
        self.send_ack(frame_id, outcome.result)

    async def spec_submit(self, frame_id: str, p: SpecSubmit) -> None:
        _check_content(p.content)
        spec_id = secrets.token_hex(12)
        instruction = SubmitSpec(
            self.conn.address, p.thread_id, spec_id, p.content, p.stake_units, novelty_ppm=None
        )
        outcome = await self.writer.execute(instruction)
        self.send_ack(frame_id, outcome.result)

    async def spec_vote(self, frame_id: str, p: SpecVote) -> None:
        outcome = await self.writer.execute(Vote(self.conn.address, p.spec_id, p.approve))
        self.send_ack(frame_id, {"seq": outcome.result["seq"]})

    async def divest(self, frame_id: str, p: Divest) -> None:
        outcome = await self.writer.execute(program.Divest(self.conn.address, p.thread_id))
        self.send_ack(frame_id, {"amount": outcome.result["amount"], "seq": outcome.result["seq"]})

    async def withdraw(self, frame_id: str, p: WithdrawFunds) -> None:
        withdrawal_id = secrets.token_hex(12)
        outcome = await self.writer.execute(
            program.Withdraw(self.conn.address, p.amount_units, withdrawal_id)
        )
        self.send_ack(frame_id, {"withdrawal_id": withdrawal_id, "amount": outcome.result["amount"]})

    async def ask(self, frame_id: str, p: Ask) -> None:
        if self.chorus is None:
            raise ProtocolError("unavailable", "the Chorus loop is not running on this server")
        try:
            ask_id, task = await self.chorus.start(self.conn.address, p.thread_id, p.prompt, self.echo)
        except AskRefused as exc:
            raise ProtocolError(exc.code, exc.message) from None
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        self.send_ack(frame_id, {"ask_id": ask_id})

    def echo(self, thread_id: str, kind: str, data: dict[str, Any]) -> None:
        """Show the asker a live event of a thread it is not subscribed to (its answer's phases)."""
        if thread_id not in self.conn.subs:
            self.conn.offer(protocol.event(thread_id, None, kind, data, iso(self.writer.sync.clock())))

    async def ping(self, frame_id: str, _p: Ping) -> None:
        self.send_ack(frame_id, {})


def _check_content(content: str) -> None:
    size = len(content.encode())
    if size > MAX_CONTENT_BYTES:
        raise ProtocolError("too_large", f"content is {size} bytes; the limit is {MAX_CONTENT_BYTES}")
