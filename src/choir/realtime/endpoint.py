"""The ``/ws`` endpoint: authenticate the handshake, register the connection with the hub, and
run its reading side (``Session``) and its writing side (the connection's queue) until it ends."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Final, Protocol

from starlette.websockets import WebSocket

from choir.actions.context import Context
from choir.auth.origin import origin_allowed
from choir.auth.service import SESSION_COOKIE, session_key
from choir.ops.metrics import Metrics, timed_send
from choir.realtime import protocol
from choir.realtime.broker import Broker
from choir.realtime.hub import Hub
from choir.realtime.session import Session

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)
POLICY_VIOLATION: Final = 1008
# How long a closing socket may take to flush its close frame before it is dropped unread.
CLOSE_TIMEOUT_S: Final = 10.0


class SocketDeps(Context, Protocol):
    """What a socket needs of the running server (the composition root's runtime has it): the
    actions' context, and the hub, broker and metrics of the connection itself."""

    @property
    def hub(self) -> Hub: ...
    @property
    def metrics(self) -> Metrics: ...
    @property
    def broker(self) -> Broker: ...


async def websocket_endpoint(ws: WebSocket) -> None:
    deps: SocketDeps = ws.app.state.runtime
    # Refused before accept: the client sees HTTP 403 and no socket is opened.
    if not origin_allowed(ws.headers.get("origin"), deps.settings.origins):
        await ws.close(POLICY_VIOLATION)
        return
    token = ws.cookies.get(SESSION_COOKIE)
    address = await asyncio.to_thread(deps.auth.session_user, token) if token else None
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

    hub = deps.hub
    conn = hub.connect(address, timed_send(deps.metrics, ws.send_text), close, session_key(token))
    try:
        await ws.accept()
    except BaseException:
        # A client gone during the handshake must not keep one of its user's 5 places.
        if conn is not None:
            hub.disconnect(conn)
        raise
    if conn is None:
        await ws.send_text(protocol.error(None, "rate_limited", "at most 5 connections per user"))
        await ws.close(POLICY_VIOLATION, "too many connections")
        return
    session = Session(deps, hub, conn)
    writer = asyncio.create_task(conn.writer())
    reader = asyncio.create_task(session.read_loop(ws))
    try:
        await asyncio.wait({reader})
        if not reader.cancelled():
            reader.result()  # a failure of the read loop is the server's to report
    finally:
        hub.disconnect(conn)
        reader.cancel()
        writer.cancel()
        # An answer nobody is waiting for is not worth its model time.
        for task in session.tasks:
            task.cancel()
        await asyncio.gather(reader, writer, *session.tasks, return_exceptions=True)
