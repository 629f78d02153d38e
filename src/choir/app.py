"""The ASGI application: wires the store, the coordinator, auth, the hub and the
broker, the REST routes, ``/ws``, background duties and the static web UI."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from choir import errors_http, observability
from choir.auth.service import AuthService
from choir.config import Settings
from choir.coordinator import AsyncCoordinator, Clock, Coordinator, system_clock
from choir.duties import run_duties
from choir.program import Grant, Outcome, Params, ProgramError, State
from choir.realtime import protocol
from choir.realtime.broker import Broker, LocalBroker, RedisBroker
from choir.realtime.hub import Hub
from choir.store.sql import Store

log = logging.getLogger(__name__)
WEB_DIR = Path(__file__).parent / "web"


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@dataclass
class Choir:
    """The running server's parts, shared by the routes and the socket handler."""

    settings: Settings
    store: Store
    coordinator: AsyncCoordinator
    auth: AuthService
    hub: Hub
    broker: Broker
    clock: Clock
    outbox: asyncio.Queue[Outcome | None] = field(default_factory=asyncio.Queue)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> State:
        return self.coordinator.state

    async def execute(self, instruction: Any) -> Outcome:
        return await self.coordinator.execute(instruction)

    async def welcome(self, address: str) -> None:
        """The one-time grant that lets a new person stake at once (idempotent by ref)."""
        if self.settings.welcome_grant <= 0:
            return
        ref = "w" + hashlib.sha256(address.encode()).hexdigest()[:24]
        with contextlib.suppress(ProgramError):
            await self.execute(Grant(address, self.settings.welcome_grant, ref))


def _listener(loop: asyncio.AbstractEventLoop, outbox: asyncio.Queue[Outcome | None]) -> Any:
    def on_commit(outcome: Outcome) -> None:
        # Called in the writer thread after commit; order is kept by the loop's queue.
        loop.call_soon_threadsafe(outbox.put_nowait, outcome)

    return on_commit


async def _publisher(choir: Choir) -> None:
    """Publish committed events in commit order (never before commit)."""
    while True:
        outcome = await choir.outbox.get()
        if outcome is None:
            return
        try:
            for e in outcome.events:
                frame = protocol.event(e.thread_id, e.seq, e.kind, e.data, iso(e.at))
                await choir.broker.publish_thread(e.thread_id, e.seq, frame)
            for notice in outcome.notices:
                at = iso(outcome.at or choir.clock())
                frame = protocol.event(notice.data.get("thread_id"), None, notice.kind, notice.data, at)
                await choir.broker.publish_user(notice.address, frame)
        except Exception:
            log.exception("publishing failed")


def build(settings: Settings, clock: Clock = system_clock) -> Choir:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    from choir.web_render import render_markdown

    store = Store(settings.sql_url, render=render_markdown)
    params = Params(
        epoch_seconds=settings.epoch_seconds,
        min_stake=settings.min_stake,
        prior_rate_ppm=settings.prior_rate_ppm,
        author_cap_ppm=settings.author_cap_ppm,
    )
    coordinator = Coordinator.open(store, params, clock)
    auth = AuthService(
        store,
        domain=settings.base_url.split("://", 1)[1],
        uri=settings.base_url,
        session_ttl_s=settings.session_ttl_s,
        clock=clock,
    )
    broker: Broker = RedisBroker(settings.redis_url) if settings.redis_url else LocalBroker()
    return Choir(settings, store, AsyncCoordinator(coordinator), auth, Hub(), broker, clock)


def create_app(settings: Settings | None = None, clock: Clock = system_clock) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        choir = build(settings, clock)
        app.state.choir = choir
        observability.install(choir)  # JSON logs and this server's metrics, before anything commits
        loop = asyncio.get_running_loop()
        choir.coordinator.sync.listeners.append(_listener(loop, choir.outbox))
        choir.coordinator.start()
        hub = choir.hub
        await choir.broker.start(hub.deliver, hub.notify_user, hub.close_user)
        choir.tasks.append(loop.create_task(_publisher(choir), name="publisher"))
        choir.tasks.append(loop.create_task(run_duties(choir), name="duties"))
        from choir.services import start_services

        await start_services(choir)
        try:
            yield
        finally:
            from choir.services import stop_services

            await stop_services(choir)
            await choir.outbox.put(None)
            for task in choir.tasks:
                task.cancel()
            await asyncio.gather(*choir.tasks, return_exceptions=True)
            await choir.coordinator.stop()
            await choir.broker.close()
            choir.store.close()

    app = FastAPI(title="Choir", version="0.1.0", lifespan=lifespan)
    app.add_exception_handler(errors_http.ApiError, errors_http.api_error)
    app.add_exception_handler(ProgramError, errors_http.program_error)
    app.add_exception_handler(RequestValidationError, errors_http.validation_error)
    app.add_exception_handler(StarletteHTTPException, errors_http.http_error)
    from choir.api import router
    from choir.realtime.socket import websocket_endpoint

    app.include_router(router)
    app.include_router(observability.router)  # /metrics, /api/stats, /api/treasury, /api/audit
    app.add_api_websocket_route("/ws", websocket_endpoint)
    if WEB_DIR.is_dir():
        app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app
