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
from choir.realtime.broker import Broker
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
    iso,
)
from choir.realtime.replay import replay
from choir.store import inbox
from choir.store.sql import Store, read_snapshot

log = logging.getLogger(__name__)
MAX_CONTENT_BYTES: Final = 16 * 1024
FRAMES_PER_MINUTE: Final = 100
# A (re)connecting client gets at most this many notifications replayed; older ones are in the list.
NOTIFICATIONS_REPLAYED: Final = 200


class Session:
    """One connection's reading side: limits, parsing, dispatch."""

    def __init__(
        self,
        writer: Writer,
        store: Store,
        hub: Hub,
        chorus: ChorusService | None,
        conn: Connection,
        broker: Broker | None = None,
    ) -> None:
        self.writer = writer
        # Tells this person's sockets on every process (their other browsers) of a change of their
        # own view: a read mark, a follow. None: this process's sockets only.
        self.broker = broker
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
        mentions: tuple[str, ...] = ()
        if inbox.mention_tokens(p.content):
            thread = self.writer.snapshot().threads.get(p.thread_id)
            co_authors = thread.co_authors if thread is not None else ()
            mentions = await asyncio.to_thread(self._resolve, p.content, co_authors)
        outcome = await self.writer.execute(
            PostMessage(
                self.conn.address, p.thread_id, message_id, p.content, novelty_ppm=None, mentions=mentions
            )
        )
        self.send_ack(frame_id, outcome.result)

    def _resolve(self, content: str, co_authors: tuple[str, ...]) -> tuple[str, ...]:
        with self.store.engine.connect() as conn:
            return inbox.resolve_mentions(conn, content, co_authors)

    async def edit(self, frame_id: str, p: EditMessage) -> None:
        _check_content(p.content)
        outcome = await self.writer.execute(program.EditMessage(self.conn.address, p.message_id, p.content))
        self.send_ack(frame_id, outcome.result)

    async def delete(self, frame_id: str, p: DeleteMessage) -> None:
        outcome = await self.writer.execute(program.DeleteMessage(self.conn.address, p.message_id))
        self.send_ack(frame_id, outcome.result)

    async def _readable(self, thread_id: str) -> program.Thread:
        thread = (await self._snapshot()).threads.get(thread_id)
        if thread is None:
            raise ProtocolError("thread_not_found", f"no thread {thread_id!r}")
        if thread.visibility is Visibility.PRIVATE and thread.member(self.conn.address) is None:
            raise ProtocolError("forbidden", "this thread is private to its co-authors")
        return thread

    async def follow(self, frame_id: str, p: FollowThread) -> None:
        await self._readable(p.thread_id)
        await asyncio.to_thread(self._write_inbox, inbox.follow, p.thread_id, p.follow)
        self.send_ack(frame_id, {"thread_id": p.thread_id, "following": p.follow})
        await self._tell_self(
            "thread.followed", p.thread_id, {"thread_id": p.thread_id, "following": p.follow}
        )

    async def read_thread(self, frame_id: str, p: ReadThread) -> None:
        thread = await self._readable(p.thread_id)
        # A mark past the thread's last event would hide messages not written yet.
        seq = min(p.seq, thread.last_seq)
        read_seq, news = await asyncio.to_thread(self._write_inbox, _mark_read, p.thread_id, seq)
        self.send_ack(frame_id, {"thread_id": p.thread_id, "read_seq": read_seq, "notifications_read": news})
        await self._tell_self("thread.read", p.thread_id, {"thread_id": p.thread_id, "read_seq": read_seq})
        if news:
            await self._tell_self("notifications.read", None, {"ids": news})

    async def subscribe_notifications(self, frame_id: str, p: SubscribeNotifications) -> None:
        """Ack with the latest id and the unread count, then replay what came after ``since_id``
        (live ones arrive anyway: a client keeps them by id, so one replayed and live is one)."""
        notes, unread, latest = await asyncio.to_thread(self._notes_after, p.since_id)
        self.send_ack(frame_id, {"latest_id": latest, "unread": unread})
        for note in notes:
            self.conn.offer(protocol.event(note.thread_id, None, "notification", note.view(), iso(note.at)))

    def _notes_after(self, since_id: int | None) -> tuple[list[inbox.Notification], int, int]:
        """The notifications to replay, and (read in the same snapshot) the unread count and the latest
        id that count covers."""
        with read_snapshot(self.store.engine) as conn:
            if since_id is None:
                notes = inbox.latest_notifications(conn, self.conn.address, NOTIFICATIONS_REPLAYED)
            else:
                notes = inbox.notifications_after(conn, self.conn.address, since_id, NOTIFICATIONS_REPLAYED)
            address = self.conn.address
            return notes, inbox.unread_count(conn, address), inbox.latest_id(conn, address)

    async def read_notifications(self, frame_id: str, p: ReadNotifications) -> None:
        which = {"up_to_id": p.up_to_id} if p.ids is None else {"ids": p.ids}
        changed = await asyncio.to_thread(self._write_inbox, inbox.mark_notifications_read, p.up_to_id, p.ids)
        self.send_ack(frame_id, which | {"changed": changed})
        await self._tell_self("notifications.read", None, which)

    def _write_inbox(self, write: Callable[..., Any], *args: Any) -> Any:
        with self.store.engine.begin() as conn:
            return write(conn, self.conn.address, *args)

    async def _tell_self(self, kind: str, thread_id: str | None, data: dict[str, Any]) -> None:
        frame = protocol.event(thread_id, None, kind, data, iso(self.writer.sync.clock()))
        if self.broker is None:
            self.hub.notify_user(self.conn.address, frame)
        else:
            await self.broker.publish_user(self.conn.address, frame)

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


def _mark_read(conn: Any, address: str, thread_id: str, seq: int) -> tuple[int, list[int]]:
    """Move the read mark; the mention and reply notifications of what is now read are read too."""
    read_seq = inbox.mark_read(conn, address, thread_id, seq)
    return read_seq, inbox.read_news(conn, address, thread_id, read_seq)


def _check_content(content: str) -> None:
    size = len(content.encode())
    if size > MAX_CONTENT_BYTES:
        raise ProtocolError("too_large", f"content is {size} bytes; the limit is {MAX_CONTENT_BYTES}")
