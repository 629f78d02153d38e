"""What REST handlers need, and the checks they share.

``Deps`` is the narrow interface of the running server that handlers read through
``deps(request)``; the composition root's runtime satisfies it. A handler takes ONE committed
snapshot (``snapshot(request)``) and reads only it, so a response never mixes two versions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import Request

from choir.auth.origin import origin_allowed
from choir.auth.ratelimit import SlidingWindow
from choir.auth.service import SESSION_COOKIE, AuthService
from choir.config import Settings
from choir.engine import Clock, Snapshot, Writer
from choir.http.errors import ApiError
from choir.ops.metrics import Metrics
from choir.realtime.broker import Broker
from choir.realtime.hub import Hub
from choir.store.sql import Store

if TYPE_CHECKING:
    from choir.chain.service import ChainService
    from choir.chorus.embed import Embedder
    from choir.chorus.indexer import Indexer
    from choir.chorus.retrieval import Retriever
    from choir.chorus.service import ChorusService
    from choir.store.vectors import VectorIndex

COOKIE = SESSION_COOKIE


@dataclass
class OperatorDesk:
    """What the operator routes keep between requests: the stats cache, and the lock that lets
    one audit run at a time."""

    audit_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    stats_version: int = -1
    stats_at: float = 0.0
    stats_value: dict[str, Any] | None = None


class Deps(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def store(self) -> Store: ...
    @property
    def writer(self) -> Writer: ...
    @property
    def auth(self) -> AuthService: ...
    @property
    def hub(self) -> Hub: ...
    @property
    def broker(self) -> Broker: ...
    @property
    def metrics(self) -> Metrics: ...
    @property
    def embedder(self) -> Embedder | None: ...
    @property
    def index(self) -> VectorIndex | None: ...
    @property
    def indexer(self) -> Indexer | None: ...
    @property
    def retriever(self) -> Retriever | None: ...
    @property
    def chorus(self) -> ChorusService | None: ...
    @property
    def chain(self) -> ChainService | None: ...
    @property
    def sign_in_window(self) -> SlidingWindow: ...
    @property
    def operator(self) -> OperatorDesk: ...


def deps(request: Request) -> Deps:
    found: Deps = request.app.state.runtime
    return found


async def snapshot(request: Request) -> Snapshot:
    """The committed snapshot this request reads (caught up with other processes first, when
    several share PostgreSQL)."""
    d = deps(request)
    if d.store.shared:
        await asyncio.to_thread(d.writer.sync.refresh_if_stale)
    return d.writer.snapshot()


def check_origin(request: Request) -> None:
    if not origin_allowed(request.headers.get("origin"), deps(request).settings.origins):
        raise ApiError(403, "forbidden", "Origin is not allowed for state-changing requests")


async def optional_user(request: Request) -> str | None:
    token = request.cookies.get(COOKIE)
    return await asyncio.to_thread(deps(request).auth.session_user, token) if token else None


async def current_user(request: Request) -> str:
    address = await optional_user(request)
    if address is None:
        raise ApiError(401, "unauthorized", "sign in first")
    return address
