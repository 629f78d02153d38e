"""Search: messages found by their words and by their meaning (hybrid retrieval, `chorus.retrieval`),
among the threads the reader may read and ranked by statistics of those threads alone: what a
reader finds, and in which order, tells nothing of a thread they may not read."""

from __future__ import annotations

import asyncio
from typing import Any

from choir.actions.context import Context, readable_threads, snapshot
from choir.actions.refusals import Refusal
from choir.actions.views import message_view
from choir.store.keywords import terms


async def search(ctx: Context, reader: str | None, q: str, limit: int, mode: str) -> dict[str, Any]:
    """Messages matching ``q`` by words or meaning, best first, of the threads ``reader`` may read
    (AI answers excluded). ``terms`` are the query's words, for highlighting; ``display_names``
    name the results' authors."""
    retriever = ctx.retriever
    if retriever is None:
        raise Refusal("unavailable", "search is not running on this server")
    snap = await snapshot(ctx)
    readable = {t.thread_id for t in readable_threads(snap, reader)}
    found = await retriever.find(q, limit, readable=readable, vector_only=mode == "vector")
    rows = await asyncio.to_thread(ctx.store.messages_by_id, [f.message_id for f in found])
    results = []
    for hit in found:
        row = rows.get(hit.message_id)
        thread = snap.threads.get(hit.thread_id)
        if row is None or thread is None or hit.thread_id not in readable:
            continue
        results.append(
            message_view(row)
            | {
                "score": round(hit.score, 6),
                "similarity": round(hit.cosine, 4),
                "matched_words": hit.keyword_rank is not None,
                "thread_title": thread.title,
                "thread_visibility": thread.visibility.value,
            }
        )
    authors = sorted({r["author"] for r in results})
    names = await asyncio.to_thread(ctx.auth.display_names, authors) if authors else {}
    return {"query": q, "terms": terms(q), "results": results, "display_names": names}
