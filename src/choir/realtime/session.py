"""One connection's reading side: frame limits, parsing, and a handler per frame type, each
answered with an ``ack`` or an ``error``; events arrive through the hub. Each frame reads one
committed snapshot."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from choir.actions import inbox, writes
from choir.actions.context import Context, readable_thread, snapshot
from choir.actions.inbox import NOTIFICATIONS_REPLAYED
from choir.actions.refusals import Refusal, unexpected
from choir.actions.views import iso
from choir.auth.ratelimit import TokenBucket
from choir.program import ProgramError, Visibility
from choir.realtime import protocol
from choir.realtime.hub import Connection, Hub
from choir.realtime.protocol import (
    Ask,
    DeleteMessage,
    Divest,
    EditMessage,
    FollowThread,
    Ping,
    Post,
    ProtocolError,
    ReadNotifications,
    ReadThread,
    SpecSubmit,
    SpecVote,
    Subscribe,
    SubscribeNotifications,
    Unsubscribe,
    WithdrawFunds,
)
from choir.realtime.replay import replay

log = logging.getLogger(__name__)
FRAMES_PER_MINUTE: Final = 100


class Session:
    """One connection's reading side: limits, parsing, dispatch."""

    def __init__(self, ctx: Context, hub: Hub, conn: Connection) -> None:
        self.ctx = ctx
        self.hub = hub
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
            EditMessage: self.edit,
            DeleteMessage: self.delete,
            FollowThread: self.follow,
            ReadThread: self.read_thread,
            SubscribeNotifications: self.subscribe_notifications,
            ReadNotifications: self.read_notifications,
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
        except (ProtocolError, Refusal) as exc:
            self.send_error(frame_id, exc.code, exc.message)
        except ProgramError as exc:
            self.send_error(frame_id, exc.code, exc.message)
        except Exception as exc:
            code, message = unexpected(exc)
            if code == "internal":
                log.exception("frame handler failed")
            self.send_error(frame_id, code, message)

    def send_ack(self, frame_id: str, payload: dict[str, Any]) -> None:
        self.conn.offer(protocol.ack(frame_id, payload))

    def send_error(self, frame_id: str | None, code: str, message: str) -> None:
        self.conn.offer(protocol.error(frame_id, code, message))

    # -- handlers: each parses nothing more, calls its action and answers --------------

    @property
    def address(self) -> str:
        return self.conn.address

    async def subscribe(self, frame_id: str, p: Subscribe) -> None:
        snap = self.ctx.writer.snapshot()
        if p.thread_id not in snap.threads:
            snap = await snapshot(self.ctx)
        thread = readable_thread(snap, p.thread_id, self.address)
        private = thread.visibility is Visibility.PRIVATE
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
        try:
            await replay(self.ctx.store, hub, self.conn, sub)
        except Exception:
            # Not subscribed after all (the store failed mid-replay): the client's error frame says
            # whether to retry, and a retried subscribe starts clean.
            if self.conn.subs.get(p.thread_id) is sub:
                hub.unsubscribe(self.conn, p.thread_id)
            raise

    async def unsubscribe(self, frame_id: str, p: Unsubscribe) -> None:
        if not self.hub.unsubscribe(self.conn, p.thread_id):
            raise ProtocolError("not_subscribed", f"not subscribed to {p.thread_id!r}")
        self.send_ack(frame_id, {})

    async def post(self, frame_id: str, p: Post) -> None:
        self.send_ack(frame_id, await writes.post(self.ctx, self.address, p.thread_id, p.content))

    async def edit(self, frame_id: str, p: EditMessage) -> None:
        self.send_ack(frame_id, await writes.edit(self.ctx, self.address, p.message_id, p.content))

    async def delete(self, frame_id: str, p: DeleteMessage) -> None:
        self.send_ack(frame_id, await writes.delete(self.ctx, self.address, p.message_id))

    async def follow(self, frame_id: str, p: FollowThread) -> None:
        self.send_ack(frame_id, await inbox.follow(self.ctx, self.address, p.thread_id, p.follow))

    async def read_thread(self, frame_id: str, p: ReadThread) -> None:
        self.send_ack(frame_id, await inbox.read_thread(self.ctx, self.address, p.thread_id, p.seq))

    async def subscribe_notifications(self, frame_id: str, p: SubscribeNotifications) -> None:
        """Ack with the latest id and the unread count, then replay what came after ``since_id``
        (live ones arrive anyway: a client keeps them by id, so one replayed and live is one)."""
        notes, unread, latest = await inbox.notifications(
            self.ctx, self.address, p.since_id, NOTIFICATIONS_REPLAYED
        )
        self.send_ack(frame_id, {"latest_id": latest, "unread": unread})
        for note in notes:
            self.conn.offer(protocol.event(note.thread_id, None, "notification", note.view(), iso(note.at)))

    async def read_notifications(self, frame_id: str, p: ReadNotifications) -> None:
        self.send_ack(frame_id, await inbox.read_notifications(self.ctx, self.address, p.up_to_id, p.ids))

    async def spec_submit(self, frame_id: str, p: SpecSubmit) -> None:
        result = await writes.spec_submit(self.ctx, self.address, p.thread_id, p.content, p.stake_units)
        self.send_ack(frame_id, result)

    async def spec_vote(self, frame_id: str, p: SpecVote) -> None:
        self.send_ack(frame_id, await writes.spec_vote(self.ctx, self.address, p.spec_id, p.approve))

    async def divest(self, frame_id: str, p: Divest) -> None:
        self.send_ack(frame_id, await writes.divest(self.ctx, self.address, p.thread_id))

    async def withdraw(self, frame_id: str, p: WithdrawFunds) -> None:
        self.send_ack(frame_id, await writes.withdraw(self.ctx, self.address, p.amount_units))

    async def ask(self, frame_id: str, p: Ask) -> None:
        ask_id, task = await writes.ask(self.ctx, self.address, p.thread_id, p.prompt, self.echo)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        self.send_ack(frame_id, {"ask_id": ask_id})

    def echo(self, thread_id: str, kind: str, data: dict[str, Any]) -> None:
        """Show the asker a live event of a thread it is not subscribed to (its answer's phases)."""
        if thread_id not in self.conn.subs:
            self.conn.offer(protocol.event(thread_id, None, kind, data, iso(self.ctx.clock())))

    async def ping(self, frame_id: str, _p: Ping) -> None:
        self.send_ack(frame_id, {})
