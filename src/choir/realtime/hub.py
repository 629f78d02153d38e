"""Subscriptions and fan-out to the sockets of this process.

Each connection has a bounded outbound queue drained by its own writer task, so a
slow client never slows the others: when its queue is full it is disconnected (it
resumes later with ``since_seq``). Thread events are delivered at most once per
connection and in seq order; events that arrive while a subscription replays the
store are held and released after the replay, with duplicates dropped by seq.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

from choir.program import IllegalTransition
from choir.realtime.protocol import EVERYONE
from choir.realtime.protocol import error as error_frame

log = logging.getLogger(__name__)

# Frames waiting to be written to one socket; past this the client is too slow.
MAX_QUEUE_FRAMES: Final = 1024
MAX_CONNECTIONS_PER_USER: Final = 5
SLOW_CONSUMER_CLOSE_CODE: Final = 4008
LOGGED_OUT_CLOSE_CODE: Final = 4001
# A frame could not be written (the client is gone): the connection is closed, its reader ends.
SEND_FAILED_CLOSE_CODE: Final = 1011


class ConnState(Enum):
    """open -> closing -> closed, or open -> closed; nothing moves back, nothing leaves closed."""

    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"

    def to(self, target: ConnState) -> ConnState:
        if target not in _MOVES[self]:
            raise IllegalTransition(f"a connection cannot go from {self.value} to {target.value}")
        return target


_MOVES: Final[dict[ConnState, frozenset[ConnState]]] = {
    ConnState.OPEN: frozenset({ConnState.CLOSING, ConnState.CLOSED}),
    ConnState.CLOSING: frozenset({ConnState.CLOSED}),
    ConnState.CLOSED: frozenset(),
}


@dataclass(slots=True)
class Subscription:
    thread_id: str
    last_seq: int
    replaying: bool = False
    held: list[tuple[int | None, str]] = field(default_factory=list)
    # A private thread is readable by its co-authors only: leaving it ends the subscription.
    private: bool = False


Close = Callable[[int, str], Coroutine[object, object, None]]
Send = Callable[[str], Awaitable[None]]


class Connection:
    """One socket's sending side. A frame offered to an idle connection is written at once, in
    the offering call (a send that completes without waiting, as a text frame on an open socket
    does, costs no task switch: at 100 subscribers that is 100 fewer loop iterations per post).
    A send that must wait, and every frame offered while one is in progress or queued, goes
    through the bounded queue and the connection's writer task, in order."""

    def __init__(self, conn_id: int, address: str, send: Send, close: Close, session: str = "") -> None:
        self.conn_id = conn_id
        self.address = address
        # Which sign-in this socket belongs to (a digest of its session token): logging out of one
        # session closes its sockets, not those of the person's other browsers.
        self.session = session
        self._send = send
        self._close = close
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(MAX_QUEUE_FRAMES)
        self.subs: dict[str, Subscription] = {}
        self.state = ConnState.OPEN
        self.close_code: int | None = None
        self.closing: asyncio.Task[None] | None = None
        # A send begun in ``offer`` that had to wait, finished by this task.
        self._finishing: asyncio.Task[None] | None = None
        self._writer_busy = False

    def offer(self, frame: str) -> bool:
        """Send or queue a frame without waiting; a full queue means the client cannot keep up."""
        if self.state is not ConnState.OPEN:
            return False
        if self.queue.empty() and not self._writer_busy and self._finishing is None:
            return self._send_now(frame)
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.shut(SLOW_CONSUMER_CLOSE_CODE, "slow_consumer: resume with since_seq")
            return False
        return True

    def _send_now(self, frame: str) -> bool:
        coro = self._send(frame)
        try:
            waiting = coro.send(None)  # type: ignore[attr-defined]
        except StopIteration:
            return True
        except Exception:
            log.debug("a send failed; closing the connection", exc_info=True)
            self.shut(SEND_FAILED_CLOSE_CODE, "send failed")
            return False
        self._finishing = asyncio.get_running_loop().create_task(self._finish(coro, waiting))
        return True

    async def _finish(self, coro: Any, waiting: Any) -> None:
        try:
            await _Resume(coro, waiting)
        finally:
            self._finishing = None

    async def put(self, frame: str) -> None:
        """Queue a frame, waiting for room: for replays, which the client asked for."""
        if self.state is ConnState.OPEN:
            await self.queue.put(frame)

    def shut(self, code: int, reason: str) -> None:
        """Close with ``code`` (once: a connection already closing keeps its first reason)."""
        if self.state is not ConnState.OPEN:
            return
        self.state = self.state.to(ConnState.CLOSING)
        self.close_code = code
        # Kept, so the task is not collected while it waits for the socket to flush.
        self.closing = asyncio.get_running_loop().create_task(self._close(code, reason))
        # Wake the writer so it can finish.
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    async def writer(self) -> None:
        while True:
            frame = await self.queue.get()
            if frame is None or self.state is not ConnState.OPEN:
                return
            self._writer_busy = True  # from here, offers queue behind this frame
            try:
                if self._finishing is not None:
                    await asyncio.shield(self._finishing)
                    if self.state is not ConnState.OPEN:
                        return  # shut while the earlier send waited: the queued frames are dropped
                await self._send(frame)
            finally:
                self._writer_busy = False


class _Resume:
    """Awaits the rest of a coroutine that was started by hand and suspended on ``waiting``:
    each value it yields goes to the task running this, each result back into it."""

    def __init__(self, coro: Any, waiting: Any) -> None:
        self.coro = coro
        self.waiting = waiting

    def __await__(self) -> Generator[Any, Any, None]:
        waiting = self.waiting
        while True:
            try:
                result = yield waiting
            except BaseException as exc:
                try:
                    waiting = self.coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting = self.coro.send(result)
                except StopIteration:
                    return


OnGap = Callable[["Connection", Subscription], None]


class Hub:
    def __init__(self, on_gap: OnGap | None = None) -> None:
        self.by_thread: dict[str, set[Connection]] = {}
        self.by_user: dict[str, set[Connection]] = {}
        self._next_id = 0
        # Called when a live event skips seqs a subscription has not had (realtime.replay.GapFiller):
        # the subscription then holds its live events until the gap is filled from the store.
        self.on_gap = on_gap

    def connect(self, address: str, send: Send, close: Close, session: str = "") -> Connection | None:
        """A new connection, or None when the user already has the most allowed."""
        if len(self.by_user.get(address, ())) >= MAX_CONNECTIONS_PER_USER:
            return None
        self._next_id += 1
        conn = Connection(self._next_id, address, send, close, session)
        self.by_user.setdefault(address, set()).add(conn)
        return conn

    def disconnect(self, conn: Connection) -> None:
        """The socket is gone; called once per connection (a second call is a bug, and raises)."""
        conn.state = conn.state.to(ConnState.CLOSED)
        for thread_id in conn.subs:
            self._drop(thread_id, conn)
        conn.subs.clear()
        users = self.by_user.get(conn.address)
        if users is not None:
            users.discard(conn)
            if not users:
                del self.by_user[conn.address]

    def subscribe(
        self, conn: Connection, thread_id: str, last_seq: int, replaying: bool, private: bool = False
    ) -> Subscription:
        sub = Subscription(thread_id, last_seq, replaying, private=private)
        conn.subs[thread_id] = sub
        self.by_thread.setdefault(thread_id, set()).add(conn)
        return sub

    def unsubscribe(self, conn: Connection, thread_id: str) -> bool:
        if conn.subs.pop(thread_id, None) is None:
            return False
        self._drop(thread_id, conn)
        return True

    def _drop(self, thread_id: str, conn: Connection) -> None:
        conns = self.by_thread.get(thread_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.by_thread[thread_id]

    def deliver(self, thread_id: str, seq: int | None, frame: str) -> None:
        """Fan one serialized event out to this thread's subscribers."""
        for conn in list(self.by_thread.get(thread_id, ())):
            sub = conn.subs.get(thread_id)
            if sub is None:
                continue
            if sub.replaying:
                if len(sub.held) >= MAX_QUEUE_FRAMES:
                    # A replay that cannot keep up with the live thread: resume later.
                    conn.shut(SLOW_CONSUMER_CLOSE_CODE, "slow_consumer: resume with since_seq")
                    continue
                sub.held.append((seq, frame))
            elif seq is not None and seq > sub.last_seq + 1 and self.on_gap is not None:
                sub.replaying = True
                sub.held.append((seq, frame))
                self.on_gap(conn, sub)
            elif seq is None or seq > sub.last_seq:
                if seq is not None:
                    sub.last_seq = seq
                conn.offer(frame)
                self.revoke_if_left(conn, sub, frame)

    def resync(self) -> int:
        """Fill every live subscription's gap from the store (after the fan-out lost events: Redis came
        back). Each holds its live events meanwhile, as for a gap a live event revealed."""
        filled = 0
        if self.on_gap is None:
            return 0
        for conns in list(self.by_thread.values()):
            for conn in list(conns):
                for sub in list(conn.subs.values()):
                    if not sub.replaying:
                        sub.replaying = True
                        self.on_gap(conn, sub)
                        filled += 1
        return filled

    def revoke_if_left(self, conn: Connection, sub: Subscription, frame: str) -> bool:
        """The event of this connection's user leaving a private thread is the last it gets.
        Returns True when the subscription ended."""
        if not sub.private or '"coauthor.left"' not in frame:
            return False
        payload = json.loads(frame)["payload"]
        if payload["kind"] != "coauthor.left" or payload["data"].get("address") != conn.address:
            return False
        self.unsubscribe(conn, sub.thread_id)
        message = f"you left the private thread {sub.thread_id!r}: unsubscribed"
        conn.offer(error_frame(None, "forbidden", message))
        return True

    def finish_replay(self, conn: Connection, sub: Subscription) -> None:
        for seq, frame in sub.held:
            if seq is None or seq > sub.last_seq:
                if seq is not None:
                    sub.last_seq = seq
                conn.offer(frame)
                self.revoke_if_left(conn, sub, frame)
                if sub.thread_id not in conn.subs:
                    break
        sub.held.clear()
        sub.replaying = False

    def notify_user(self, address: str, frame: str) -> None:
        """A live frame to one person's sockets, or to everyone's when ``address`` is ``EVERYONE``
        (``*`` is no address: addresses are base58)."""
        if address == EVERYONE:
            for conns in list(self.by_user.values()):
                for conn in list(conns):
                    conn.offer(frame)
            return
        for conn in list(self.by_user.get(address, ())):
            conn.offer(frame)

    def close_session(
        self, address: str, session: str, code: int = LOGGED_OUT_CLOSE_CODE, reason: str = "logged out"
    ) -> int:
        """Close the sockets of one session (a logout); the person's other sessions stay open."""
        conns = [c for c in self.by_user.get(address, ()) if c.session == session]
        for conn in conns:
            conn.shut(code, reason)
        return len(conns)

    @property
    def connection_count(self) -> int:
        return sum(len(c) for c in self.by_user.values())
