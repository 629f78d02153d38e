"""The running server's engines, built once by the composition root (``server.app``) and
frozen: handlers read them through the narrow interfaces they declare (``http.deps.Deps``,
``realtime.endpoint.SocketDeps``), never through a string-keyed registry."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from choir.actions.views import iso
from choir.auth.ratelimit import SlidingWindow
from choir.auth.service import AuthService
from choir.chorus.embed import Embedder
from choir.chorus.indexer import Indexer
from choir.chorus.retrieval import Retriever
from choir.chorus.service import ChorusService
from choir.config import Settings
from choir.engine import Clock, CommitFeed, Writer
from choir.http.deps import OperatorDesk
from choir.ops.metrics import Metrics
from choir.realtime import protocol
from choir.realtime.broker import Broker
from choir.realtime.hub import Hub
from choir.realtime.publisher import Publisher
from choir.server.preflight import Claims
from choir.store.sql import Store
from choir.store.vectors import VectorIndex

if TYPE_CHECKING:
    # The settlement stack loads only where a chain is configured (CHOIR_CHAIN): it costs start-up time.
    from choir.chain.service import ChainService


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    clock: Clock
    store: Store
    writer: Writer
    feed: CommitFeed
    auth: AuthService
    hub: Hub
    broker: Broker
    publisher: Publisher
    metrics: Metrics
    sign_in_window: SlidingWindow
    operator: OperatorDesk
    embedder: Embedder | None = None
    index: VectorIndex | None = None
    indexer: Indexer | None = None
    retriever: Retriever | None = None
    chorus: ChorusService | None = None
    chain: ChainService | None = None
    # What this process owns among processes sharing the store (server.preflight), released last.
    claims: Claims = field(default_factory=Claims)
    # Background tasks the composition root started and cancels at shutdown.
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def tell_user(self, address: str, kind: str, thread_id: str | None, data: dict[str, Any]) -> None:
        """Tell every connection of ``address``, on every process (through the broker), of a change
        of their own view: a read mark, a follow."""
        frame = protocol.event(thread_id, None, kind, data, iso(self.clock()))
        await self.broker.publish_user(address, frame)
