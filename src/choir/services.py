"""Services started with the server beside the coordinator: the vector index and its
indexer, the Chorus loop, and chain settlement when configured. Each registers itself in
``Choir.extras``."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from choir.program import Outcome

if TYPE_CHECKING:
    from choir.app import Choir

log = logging.getLogger(__name__)


def make_llm(choir: Choir) -> Any:
    from choir.chorus.llm import ExtractiveLLM, OpenAICompatibleLLM

    s = choir.settings
    if s.llm_url:
        return OpenAICompatibleLLM(s.llm_url, s.llm_model, s.llm_api_key, timeout_s=s.llm_timeout_s)
    return ExtractiveLLM()


def make_index(choir: Choir) -> Any:
    from choir.store.vectors import EdgeVectorIndex, QdrantServerIndex

    if choir.settings.qdrant_url:
        return QdrantServerIndex.connect(choir.settings.qdrant_url)
    return EdgeVectorIndex(choir.settings.data_dir / "vectors")


async def start_services(choir: Choir) -> None:
    from choir.chorus.embed import default_embedder
    from choir.chorus.indexer import Indexer
    from choir.chorus.loop import ChorusLoop
    from choir.chorus.service import ChorusService, fetch_rows
    from choir.store.vectors import AsyncVectorIndex

    embedder = choir.extras.get("embedder") or default_embedder()
    index = await asyncio.to_thread(make_index, choir)
    indexer = Indexer(choir.store, index, embedder, lambda: choir.state, choir.execute)
    loop = asyncio.get_running_loop()

    def on_commit(outcome: Outcome) -> None:
        loop.call_soon_threadsafe(indexer.offer, outcome)

    choir.coordinator.sync.listeners.append(on_commit)
    choir.tasks.append(loop.create_task(indexer.run(), name="indexer"))
    measured = await asyncio.to_thread(indexer.catch_up)
    await indexer.record(measured)

    async def fetch(message_ids: list[str]) -> Any:
        return await fetch_rows(choir, message_ids)

    chorus_loop = ChorusLoop(make_llm(choir), embedder, AsyncVectorIndex(index), fetch)
    choir.extras.update(
        embedder=embedder, index=index, indexer=indexer, chorus=ChorusService(choir, chorus_loop)
    )
    if choir.settings.chain != "none":
        start_chain(choir)


def start_chain(choir: Choir) -> None:
    """The settlement worker (`CHOIR_CHAIN=litesvm|rpc`), on its own thread, woken by every commit."""
    from choir.chain.service import chain_service_for

    chain = chain_service_for(choir.settings, choir.store.engine)
    chain.start()
    choir.coordinator.sync.listeners.append(chain.wake)
    choir.extras["chain"] = chain


async def stop_services(choir: Choir) -> None:
    chain = choir.extras.get("chain")
    if chain is not None:
        await chain.stop()  # the batch in progress lands (bounded), the journal covers the rest
    chorus = choir.extras.get("chorus")
    if chorus is not None:
        for task in list(chorus.running.values()):
            task.cancel()
    index = choir.extras.get("index")
    if index is not None:
        await asyncio.to_thread(index.close)
