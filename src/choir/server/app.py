"""The composition root, and the only one: it builds every part of a running server, wires
the commit feed in its documented order, and starts and stops them. Nothing imports it but the
CLI, the runner (``server.run``), the public ``choir.create_app`` and tests.

Start-up, in order: the store and the committed snapshot; the writer; auth, the hub, the broker
and the publisher; the vector index and its indexer (catching up with the store), the Chorus
loop; the chain worker when configured; then the feed's subscribers (metrics, publisher,
indexer, chain) and the duties. Shutdown runs the other way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from choir.auth.ratelimit import SlidingWindow
from choir.auth.service import AuthService
from choir.chorus.embed import Embedder
from choir.chorus.embedders import default_embedder
from choir.chorus.indexer import Indexer
from choir.chorus.llm import ExtractiveLLM, OpenAICompatibleLLM
from choir.chorus.loop import ChorusLoop
from choir.chorus.retrieval import Retriever
from choir.chorus.service import ChorusService
from choir.config import Settings
from choir.engine import Clock, Coordinator, Writer, system_clock
from choir.engine.duties import run_duties
from choir.engine.render import render_markdown
from choir.http import errors as http_errors
from choir.http import router
from choir.http.deps import OperatorDesk
from choir.http.hardening import Door
from choir.http.routes.auth import SIGN_INS_PER_MINUTE
from choir.ops import logs
from choir.ops.metrics import Metrics
from choir.program import Params
from choir.realtime.broker import Broker, LocalBroker, RedisBroker
from choir.realtime.endpoint import websocket_endpoint
from choir.realtime.hub import Hub
from choir.realtime.publisher import Publisher
from choir.realtime.replay import GapFiller
from choir.server.preflight import Claims, StartRefused, claim
from choir.server.runtime import Runtime
from choir.store.sql import Store
from choir.store.vectors import (
    EdgeVectorIndex,
    QdrantServerIndex,
    SqlVectorIndex,
    VectorIndex,
)
from choir.store.vectors.edge import NoRoomForShard
from choir.store.vectors.pgvector import PgvectorIndex, engine_for

if TYPE_CHECKING:
    from choir.chain.service import ChainService

WEB_DIR: Final = Path(__file__).parent.parent / "web"
# The commit feed's subscribers, in the order they hear of a commit (docs/architecture.md).
log = logging.getLogger(__name__)
FEED_ORDER: Final = ("metrics", "publisher", "indexer", "chain")


def _params(settings: Settings) -> Params:
    return Params(
        epoch_seconds=settings.epoch_seconds,
        min_stake=settings.min_stake,
        prior_rate_ppm=settings.prior_rate_ppm,
        author_cap_ppm=settings.author_cap_ppm,
    )


def _llm(settings: Settings) -> Any:
    if settings.llm_url:
        return OpenAICompatibleLLM(
            settings.llm_url, settings.llm_model, settings.llm_api_key, timeout_s=settings.llm_timeout_s
        )
    return ExtractiveLLM()


def _open_index(settings: Settings, store: Store) -> VectorIndex:
    engine = engine_for(settings, store.engine)
    if engine == "pgvector":
        return PgvectorIndex(store.engine, hnsw=settings.pgvector_hnsw)
    if engine == "sql":
        return SqlVectorIndex(store.engine)
    if engine == "qdrant":
        if not settings.qdrant_url:
            raise StartRefused("CHOIR_VECTOR_ENGINE=qdrant needs CHOIR_QDRANT_URL, the Qdrant server's URL")
        return QdrantServerIndex.connect(settings.qdrant_url)
    try:
        return EdgeVectorIndex(settings.data_dir / "vectors")
    except NoRoomForShard as exc:
        raise StartRefused(str(exc)) from None


async def start(settings: Settings, clock: Clock = system_clock, embedder: Embedder | None = None) -> Runtime:
    """Build and start every part; returns the frozen runtime the handlers read."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logs.configure(settings.log_level)  # JSON logs, before anything commits
    store = Store(settings.sql_url)
    try:
        claims = await asyncio.to_thread(claim, settings, store)
    except BaseException:
        store.close()
        raise
    try:
        return await _start(settings, clock, embedder, store, claims)
    except BaseException:
        claims.release()
        store.close()
        raise


async def _start(
    settings: Settings, clock: Clock, embedder: Embedder | None, store: Store, claims: Claims
) -> Runtime:
    coordinator = await asyncio.to_thread(Coordinator.open, store, _params(settings), clock, render_markdown)
    writer = Writer(coordinator)
    auth = AuthService(
        store,
        domain=settings.base_url.split("://", 1)[1],
        uri=settings.base_url,
        session_ttl_s=settings.session_ttl_s,
        clock=clock,
    )
    hub = Hub()
    hub.on_gap = GapFiller(store, hub)
    broker: Broker = (
        RedisBroker(settings.redis_url, on_resubscribed=hub.resync) if settings.redis_url else LocalBroker()
    )
    publisher = Publisher(broker, clock)
    metrics = Metrics()
    metrics.count_connections(lambda: hub.connection_count)
    embedder = embedder or default_embedder(settings.model_cache_dir)
    # The model loads (and the ONNX graph is built) before serving: on first use it would hold the
    # GIL for seconds while the first people post.
    load = getattr(embedder, "load", None)
    if callable(load):
        await asyncio.to_thread(load)
    index = await asyncio.to_thread(_open_index, settings, store)
    indexer = Indexer(store, index, embedder, writer.snapshot, writer.execute_all)
    metrics.count_index_backlog(lambda: indexer.backlog)
    retriever = Retriever(embedder, index, store)
    chorus_loop = ChorusLoop(_llm(settings), embedder, retriever, _fetcher(store))
    chorus = ChorusService(chorus_loop, writer.execute, writer.snapshot, publisher.thread_event, metrics)
    chain: ChainService | None = None
    if settings.chain != "none":
        # Imported here: without a chain, the settlement stack (solders, its SQL feed) never loads.
        from choir.chain.service import chain_service_for

        chain = chain_service_for(settings, store.engine)
    runtime = Runtime(
        settings=settings,
        clock=clock,
        store=store,
        writer=writer,
        feed=writer.feed,
        auth=auth,
        hub=hub,
        broker=broker,
        publisher=publisher,
        metrics=metrics,
        sign_in_window=SlidingWindow(SIGN_INS_PER_MINUTE, 60.0),
        operator=OperatorDesk(),
        embedder=embedder,
        index=index,
        indexer=indexer,
        retriever=retriever,
        chorus=chorus,
        chain=chain,
        claims=claims,
    )
    _wire(runtime)
    await broker.start(hub.deliver, hub.notify_user, hub.close_session)
    publisher.start()
    writer.start()
    loop = asyncio.get_running_loop()
    runtime.tasks.append(loop.create_task(indexer.run(), name="indexer"))
    await indexer.record(await asyncio.to_thread(indexer.catch_up))
    if chain is not None:
        chain.start()
    runtime.tasks.append(loop.create_task(watch_claims(claims, writer), name="claims"))
    runtime.tasks.append(
        loop.create_task(
            run_duties(store.engine, writer.snapshot, writer.execute, clock, settings.sweep_interval_s),
            name="duties",
        )
    )
    return runtime


# How often the start-up claims are checked (and retaken after a database restart).
CLAIM_CHECK_INTERVAL_S: Final = 2.0


async def watch_claims(claims: Claims, writer: Writer) -> None:
    """Keep the start-up claims: a database restart ends the sessions that held them, so each is
    taken again; one another process took meanwhile makes this process stop writing (its writes are
    refused as store_unavailable) until it holds it again, rather than write unguarded."""
    while True:
        await asyncio.sleep(CLAIM_CHECK_INTERVAL_S)
        lost = await asyncio.to_thread(claims.lost)
        if lost != writer.refusing:
            if lost is None:
                log.warning("start-up claims held again: writing resumes")
            else:
                log.error("a start-up claim is lost and cannot be taken again; writes are refused: %s", lost)
            writer.refusing = lost


def _wire(runtime: Runtime) -> None:
    """The commit feed's subscribers, in FEED_ORDER."""
    feed = runtime.feed
    feed.subscribe("metrics", runtime.metrics.on_commit)
    feed.subscribe("publisher", runtime.publisher.on_commit)
    if runtime.indexer is not None:
        feed.subscribe("indexer", runtime.indexer.on_commit)
    if runtime.chain is not None:
        chain = runtime.chain
        feed.subscribe("chain", lambda _commit: chain.wake())
    assert feed.names == FEED_ORDER[: len(feed.names)], feed.names


def _fetcher(store: Store) -> Any:
    async def fetch(message_ids: list[str]) -> Any:
        return await asyncio.to_thread(store.messages_by_id, message_ids)

    return fetch


async def stop(runtime: Runtime) -> None:
    """Stop every part, the other way round from ``start``."""
    if runtime.chain is not None:
        await runtime.chain.stop()  # the batch in progress lands (bounded), the journal covers the rest
    if runtime.chorus is not None:
        await runtime.chorus.stop()
    for task in runtime.tasks:
        task.cancel()
    await asyncio.gather(*runtime.tasks, return_exceptions=True)
    if runtime.indexer is not None:
        runtime.indexer.close()
    await runtime.writer.stop()
    await runtime.publisher.stop()
    await runtime.broker.close()
    if runtime.index is not None:
        await asyncio.to_thread(runtime.index.close)
    runtime.claims.release()
    runtime.store.close()


def create_app(
    settings: Settings | None = None, clock: Clock = system_clock, embedder: Embedder | None = None
) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            runtime = await start(settings, clock, embedder)
        except StartRefused as refused:
            print(f"choir: {refused}", file=sys.stderr, flush=True)
            raise
        app.state.runtime = runtime
        try:
            yield
        finally:
            await stop(runtime)

    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN (blank offline, and a third
    # party on the page); the API is described at /openapi.json and in docs/protocol.md.
    app = FastAPI(title="Choir", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    http_errors.install(app)
    app.include_router(router)
    app.add_api_websocket_route("/ws", websocket_endpoint)
    if WEB_DIR.is_dir():
        app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    # Outermost: headers, body limits, Origin and read limits come before any route reads a byte.
    app.add_middleware(
        Door,
        origins=settings.origins,
        reads_per_minute=settings.reads_per_minute,
        searches_per_minute=settings.searches_per_minute,
        redis_url=settings.redis_url,
    )
    return app
