"""The ``/ws`` endpoint: authenticate the handshake, then read frames, apply limits,
and answer each with an ``ack`` or an ``error``; events arrive through the hub."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from choir import program
from choir.app import Choir, iso
from choir.auth.origin import origin_allowed
from choir.auth.ratelimit import TokenBucket
from choir.observability.metrics import timed_send
from choir.program import PostMessage, ProgramError, SubmitSpec, Visibility, Vote
from choir.realtime import protocol
from choir.realtime.hub import Connection
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
)

log = logging.getLogger(__name__)
COOKIE = "choir_session"
POLICY_VIOLATION = 1008
MAX_CONTENT_BYTES = 16 * 1024
FRAMES_PER_MINUTE = 100
REPLAY_PAGE = 500
# How long a closing socket may take to flush its close frame before it is dropped unread.
CLOSE_TIMEOUT_S = 10.0


async def websocket_endpoint(ws: WebSocket) -> None:
    choir: Choir = ws.app.state.choir
    # Refused before accept: the client sees HTTP 403 and no socket is opened.
    if not origin_allowed(ws.headers.get("origin"), choir.settings.origins):
        await ws.close(POLICY_VIOLATION)
        return
    token = ws.cookies.get(COOKIE)
    address = await asyncio.to_thread(choir.auth.session_user, token) if token else None
    if address is None:
        await ws.close(POLICY_VIOLATION)
        return

    reader: asyncio.Task[None] | None = None

    async def close(code: int, reason: str) -> None:
        try:
            # The close frame queues behind whatever the socket still buffers: a client that
            # reads nothing never gets it, and must not hold its place among the 5 forever.
            await asyncio.wait_for(ws.close(code, reason), CLOSE_TIMEOUT_S)
        except TimeoutError:
            if reader is not None:
                reader.cancel()
        except Exception:
            log.debug("closing a socket failed", exc_info=True)

    conn = choir.hub.connect(address, timed_send(choir, ws.send_text), close)
    try:
        await ws.accept()
    except BaseException:
        # A client gone during the handshake must not keep one of its user's 5 places.
        if conn is not None:
            choir.hub.disconnect(conn)
        raise
    if conn is None:
        await ws.send_text(protocol.error(None, "rate_limited", "at most 5 connections per user"))
        await ws.close(POLICY_VIOLATION, "too many connections")
        return
    session = Session(choir, conn)
    writer = asyncio.create_task(conn.writer())
    reader = asyncio.create_task(session.read_loop(ws))
    try:
        await asyncio.wait({reader})
        if not reader.cancelled():
            reader.result()  # a failure of the read loop is the server's to report
    finally:
        choir.hub.disconnect(conn)
        reader.cancel()
        writer.cancel()
        # An answer nobody is waiting for is not worth its model time.
        for task in session.tasks:
            task.cancel()
        await asyncio.gather(reader, writer, *session.tasks, return_exceptions=True)


class Session:
    """One connection's reading side: limits, parsing, dispatch."""

    def __init__(self, choir: Choir, conn: Connection) -> None:
        self.choir = choir
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

    async def subscribe(self, frame_id: str, p: Subscribe) -> None:
        thread = self.choir.state.threads.get(p.thread_id)
        if thread is None:
            await self._refresh()
            thread = self.choir.state.threads.get(p.thread_id)
        if thread is None:
            raise ProtocolError("thread_not_found", f"no thread {p.thread_id!r}")
        private = thread.visibility is Visibility.PRIVATE
        if private and thread.member(self.conn.address) is None:
            raise ProtocolError("forbidden", "this thread is private to its co-authors")
        hub = self.choir.hub
        # The last committed seq: the state may already hold an event still being written,
        # and a client told of it would look for it in the store in vain.
        latest = self.choir.coordinator.sync.committed_seq.get(p.thread_id)
        if latest is None:
            raise ProtocolError("thread_not_found", f"no thread {p.thread_id!r}")
        if p.since_seq is None:
            hub.subscribe(self.conn, p.thread_id, latest, replaying=False, private=private)
            self.send_ack(frame_id, {"thread_id": p.thread_id, "seq": latest})
            return
        # Subscribe first, holding live events, so none slips between the replay and live.
        sub = hub.subscribe(self.conn, p.thread_id, p.since_seq, replaying=True, private=private)
        self.send_ack(frame_id, {"thread_id": p.thread_id, "seq": latest})
        while True:
            page = await asyncio.to_thread(
                self.choir.store.events_since, p.thread_id, sub.last_seq, REPLAY_PAGE
            )
            for e in page:
                frame = protocol.event(e.thread_id, e.seq, e.kind, e.data, iso(e.at))
                await self.conn.put(frame)
                sub.last_seq = e.seq
                if hub.revoke_if_left(self.conn, sub, frame):
                    return
            if len(page) < REPLAY_PAGE:
                break
        hub.finish_replay(self.conn, sub)

    async def _refresh(self) -> None:
        if self.choir.store.dialect != "sqlite":
            await asyncio.to_thread(self.choir.coordinator.sync.refresh_if_stale)

    async def unsubscribe(self, frame_id: str, p: Unsubscribe) -> None:
        if not self.choir.hub.unsubscribe(self.conn, p.thread_id):
            raise ProtocolError("not_subscribed", f"not subscribed to {p.thread_id!r}")
        self.send_ack(frame_id, {})

    async def post(self, frame_id: str, p: Post) -> None:
        _check_content(p.content)
        message_id = secrets.token_hex(12)
        outcome = await self.choir.execute(
            PostMessage(self.conn.address, p.thread_id, message_id, p.content, novelty_ppm=None)
        )
        self.send_ack(frame_id, outcome.result)

    async def spec_submit(self, frame_id: str, p: SpecSubmit) -> None:
        _check_content(p.content)
        spec_id = secrets.token_hex(12)
        instruction = SubmitSpec(
            self.conn.address, p.thread_id, spec_id, p.content, p.stake_units, novelty_ppm=None
        )
        outcome = await self.choir.execute(instruction)
        self.send_ack(frame_id, outcome.result)

    async def spec_vote(self, frame_id: str, p: SpecVote) -> None:
        outcome = await self.choir.execute(Vote(self.conn.address, p.spec_id, p.approve))
        self.send_ack(frame_id, {"seq": outcome.result["seq"]})

    async def divest(self, frame_id: str, p: Divest) -> None:
        outcome = await self.choir.execute(program.Divest(self.conn.address, p.thread_id))
        self.send_ack(frame_id, {"amount": outcome.result["amount"], "seq": outcome.result["seq"]})

    async def withdraw(self, frame_id: str, p: WithdrawFunds) -> None:
        withdrawal_id = secrets.token_hex(12)
        outcome = await self.choir.execute(program.Withdraw(self.conn.address, p.amount_units, withdrawal_id))
        self.send_ack(frame_id, {"withdrawal_id": withdrawal_id, "amount": outcome.result["amount"]})

    async def ask(self, frame_id: str, p: Ask) -> None:
        chorus = self.choir.extras.get("chorus")
        if chorus is None:
            raise ProtocolError("unavailable", "the Chorus loop is not running on this server")
        from choir.chorus.service import AskRefused

        try:
            ask_id = await chorus.start(self.conn.address, p.thread_id, p.prompt, self)
        except AskRefused as exc:
            raise ProtocolError(exc.code, exc.message) from None
        self.send_ack(frame_id, {"ask_id": ask_id})

    async def ping(self, frame_id: str, _p: Ping) -> None:
        self.send_ack(frame_id, {})


def _check_content(content: str) -> None:
    size = len(content.encode())
    if size > MAX_CONTENT_BYTES:
        raise ProtocolError("too_large", f"content is {size} bytes; the limit is {MAX_CONTENT_BYTES}")
