"""A real Choir server on loopback and real clients for it: httpx for REST, websockets for /ws,
SIWS sign-in with real Ed25519 keys."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import base58
import httpx
from nacl.signing import SigningKey
from websockets.asyncio.client import ClientConnection, connect

import services
from choir.auth.client import sign_in_message
from choir.config import Settings
from choir.server.app import create_app

RECV_TIMEOUT_S = 10.0
# The operator of every test server (CHOIR_OPERATORS): only they may run the audit over REST.
OPERATOR_KEY = SigningKey(bytes(range(32)))
OPERATOR = base58.b58encode(bytes(OPERATOR_KEY.verify_key)).decode()


@dataclass
class Server:
    base_url: str
    settings: Settings
    # The ASGI app served (in this process, on uvicorn's thread): tests reach its runtime through it.
    app: Any = None

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/ws"

    @property
    def origin(self) -> str:
        return self.base_url


class Clock:
    """A clock the test moves by hand: pass it to run_server and set or advance ``now``."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2027, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@contextlib.contextmanager
def run_server(
    data_dir: Path,
    database_url: str | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    port: int | None = None,
    **overrides: Any,
) -> Iterator[Server]:
    port = port or services.free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(
        host="127.0.0.1",
        port=port,
        data_dir=data_dir,
        public_url=base,
        database_url=database_url,
        # Tests share one loopback address: read limits are off unless a test sets them.
        **({"operators": OPERATOR, "reads_per_minute": 0, "searches_per_minute": 0} | overrides),
    )
    app = create_app(settings, clock) if clock is not None else create_app(settings)
    with services.run_uvicorn(app, port, ws_max_size=16 * 64 * 1024) as url:
        assert url == base
        yield Server(base, settings, app)


@dataclass
class User:
    server: Server
    key: SigningKey = field(default_factory=SigningKey.generate)
    cookie: str = ""
    address: str = ""

    async def sign_in(self) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.server.base_url, timeout=10, verify=False) as http:
            fields = (await http.get("/api/auth/nonce")).json()
            message, signature, address = sign_in_message(fields, self.key)
            response = await http.post(
                "/api/auth/verify",
                json={"message": message, "signature": signature, "address": address},
                headers={"Origin": self.server.origin},
            )
            assert response.status_code == 200, response.text
            self.cookie = response.cookies["choir_session"]
            self.address = address
            body: dict[str, Any] = response.json()
            return body

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.server.base_url,
            cookies={"choir_session": self.cookie},
            headers={"Origin": self.server.origin},
            timeout=10,
            # Loopback http only: skip loading the CA bundle (20-100 ms of CPU per client).
            verify=False,
        )

    async def create_thread(self, title: str = "A thread", visibility: str = "public") -> dict[str, Any]:
        async with self.http() as http:
            response = await http.post("/api/threads", json={"title": title, "visibility": visibility})
            assert response.status_code == 201, response.text
            body: dict[str, Any] = response.json()
            return body

    @contextlib.asynccontextmanager
    async def socket(self, origin: str | None = None) -> AsyncIterator[Socket]:
        headers = {"Cookie": f"choir_session={self.cookie}", "Origin": origin or self.server.origin}
        async with connect(
            self.server.ws_url, additional_headers=headers, max_size=2**22, max_queue=None
        ) as ws:
            yield Socket(ws)


class Socket:
    """A /ws client that keeps acks, errors and events apart."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.counter = 0
        self.pending: list[dict[str, Any]] = []

    async def send(self, type_: str, payload: dict[str, Any], frame_id: str | None = None) -> str:
        self.counter += 1
        frame_id = frame_id or f"c{self.counter}"
        await self.ws.send(json.dumps({"id": frame_id, "type": type_, "payload": payload}))
        return frame_id

    async def recv(self, timeout_s: float = RECV_TIMEOUT_S) -> dict[str, Any]:
        if self.pending:
            return self.pending.pop(0)
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), timeout_s))
        return frame

    async def reply(self, frame_id: str, timeout_s: float = RECV_TIMEOUT_S) -> dict[str, Any]:
        """The ack or error answering frame_id; events met on the way are kept for later."""
        kept: list[dict[str, Any]] = []
        try:
            while True:
                frame: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), timeout_s))
                if frame["type"] in ("ack", "error") and frame.get("id") == frame_id:
                    return frame
                kept.append(frame)
        finally:
            self.pending.extend(kept)

    async def request(self, type_: str, payload: dict[str, Any]) -> dict[str, Any]:
        return await self.reply(await self.send(type_, payload))

    async def events(self, count: int, timeout_s: float = RECV_TIMEOUT_S) -> list[dict[str, Any]]:
        """The next ``count`` thread events (acks and errors skipped)."""
        found: list[dict[str, Any]] = []
        while len(found) < count:
            frame = await self.recv(timeout_s)
            if frame["type"] == "event" and frame["payload"]["seq"] is not None:
                found.append(frame["payload"])
        return found


async def operator_audit(server: Server) -> dict[str, Any]:
    """POST /api/audit as the server's operator (signed in with SIWS), the report as JSON."""
    operator = User(server, OPERATOR_KEY)
    await operator.sign_in()
    async with operator.http() as http:
        http.timeout = httpx.Timeout(120)
        response = await http.post("/api/audit")
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report
