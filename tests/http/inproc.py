"""The in-process tier: the real app, its real lifespan and store, driven through httpx's ASGI
transport with no socket and no uvicorn (as Starlette's TestClient and Datasette's ``ds.client``
do). Fast, for the REST logic; the protocol and the browser keep their real-server tiers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from nacl.signing import SigningKey
from sqlalchemy import event

from choir.auth.client import sign_in_message
from choir.config import Settings
from choir.realtime.session import Session
from choir.server.app import create_app
from choir.server.runtime import Runtime

BASE_URL = "http://choir.test"


@dataclass
class InProcess:
    app: Any
    settings: Settings

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    def client(self, cookie: str | None = None) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=("127.0.0.1", 50000))
        cookies = {"choir_session": cookie} if cookie else None
        return httpx.AsyncClient(
            transport=transport, base_url=BASE_URL, cookies=cookies, headers={"Origin": BASE_URL}
        )

    async def sign_in(self, key: SigningKey | None = None) -> tuple[str, str]:
        """A real SIWS sign-in with a new Ed25519 key; returns (address, session cookie)."""
        async with self.client() as http:
            fields = (await http.get("/api/auth/nonce")).json()
            message, signature, address = sign_in_message(fields, key or SigningKey.generate())
            response = await http.post(
                "/api/auth/verify", json={"message": message, "signature": signature, "address": address}
            )
            assert response.status_code == 200, response.text
            return address, response.cookies["choir_session"]


@contextlib.asynccontextmanager
async def in_process(
    data_dir: Path, clock: Callable[[], datetime] | None = None, **overrides: Any
) -> AsyncIterator[InProcess]:
    limits = {"reads_per_minute": 0, "searches_per_minute": 0}  # one client address for every test
    settings = Settings(data_dir=data_dir, public_url=BASE_URL, sweep_interval_s=3600, **(limits | overrides))
    app = create_app(settings, clock) if clock is not None else create_app(settings)
    async with app.router.lifespan_context(app):
        yield InProcess(app, settings)


class Frames:
    """A connection of the real hub whose frames are kept, driven through the real Session."""

    def __init__(self, ip: InProcess, address: str) -> None:
        self.sent: list[dict[str, Any]] = []

        async def send(frame: str) -> None:
            self.sent.append(json.loads(frame))

        async def close(_code: int, _reason: str) -> None:
            return None

        runtime = ip.runtime
        conn = runtime.hub.connect(address, send, close, "test")
        assert conn is not None
        self.session = Session(runtime, runtime.hub, conn)
        # The connection's writing side, as the endpoint runs it (replays and queued frames go through it).
        self.writer = asyncio.get_running_loop().create_task(conn.writer())
        self.n = 0

    async def request(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.n += 1
        frame_id = f"f{self.n}"
        await self.session.handle(json.dumps({"id": frame_id, "type": kind, "payload": payload}))
        for _ in range(200):
            reply = next((f for f in self.sent if f.get("id") == frame_id), None)
            if reply is not None:
                return reply
            await asyncio.sleep(0.005)
        raise AssertionError(f"no reply to {kind}")


class StatementCounter:
    """Counts the SQL statements an engine executes while counting (Zulip's query-count tests)."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.on = False

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if self.on:
            self.statements.append(statement)

    @contextlib.contextmanager
    def counting(self) -> Iterator[list[str]]:
        self.statements = []
        self.on = True
        try:
            yield self.statements
        finally:
            self.on = False


@contextlib.contextmanager
def count_statements(runtime: Runtime) -> Iterator[StatementCounter]:
    counter = StatementCounter()
    engine = runtime.store.engine
    event.listen(engine, "before_cursor_execute", counter)
    try:
        yield counter
    finally:
        event.remove(engine, "before_cursor_execute", counter)
