"""What REST handlers need, and the checks they share.

``Deps`` is the narrow interface of the running server that handlers read through
``deps(request)``; the composition root's runtime satisfies it. A handler takes ONE committed
snapshot (``snapshot(request)``) and reads only it, so a response never mixes two versions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import Request

from choir.actions.context import Context
from choir.actions.context import snapshot as actions_snapshot
from choir.auth.origin import origin_allowed
from choir.auth.ratelimit import SlidingWindow
from choir.auth.service import SESSION_COOKIE
from choir.engine import Snapshot
from choir.http.errors import ApiError
from choir.ops.metrics import Metrics
from choir.realtime.broker import Broker
from choir.realtime.hub import Hub

if TYPE_CHECKING:
    from choir.chorus.embed import Embedder
    from choir.chorus.indexer import Indexer
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


class Deps(Context, Protocol):
    """The actions' context, and what the routes that are not actions read (auth, operator)."""

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
    def sign_in_window(self) -> SlidingWindow: ...
    @property
    def operator(self) -> OperatorDesk: ...


def deps(request: Request) -> Deps:
    found: Deps = request.app.state.runtime
    return found


async def snapshot(request: Request) -> Snapshot:
    """The committed snapshot this request reads (caught up with other processes first, when
    several share PostgreSQL)."""
    return await actions_snapshot(deps(request))


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


async def current_operator(request: Request) -> str:
    """The signed-in operator (an address named in CHOIR_OPERATORS); anyone else is refused."""
    address = await current_user(request)
    if address not in deps(request).settings.operator_addresses:
        raise ApiError(403, "forbidden", "only an operator (CHOIR_OPERATORS) may do this")
    return address
