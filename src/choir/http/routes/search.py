"""Search over public messages by meaning."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request

from choir.http.deps import deps, snapshot
from choir.http.errors import ApiError
from choir.http.views import message_view
from choir.program import Visibility

router = APIRouter()
# Hits below this cosine similarity are noise, not results.
MIN_SCORE = 0.2


@router.get("/api/search", tags=["search"])
async def search(
    request: Request,
    q: str = Query(min_length=1, max_length=1000, description="What to look for, in plain words."),
    limit: int = Query(20, ge=1, le=50),
) -> dict[str, Any]:
    """Public messages most similar in meaning to ``q`` (AI answers excluded)."""
    d = deps(request)
    embedder, index = d.embedder, d.index
    if embedder is None or index is None:
        raise ApiError(503, "unavailable", "search is not running on this server")
    vectors = await asyncio.to_thread(embedder.embed, [q])
    hits = await asyncio.to_thread(index.search, vectors[0], limit, MIN_SCORE)
    rows = await asyncio.to_thread(d.store.messages_by_id, [h.message_id for h in hits])
    snap = await snapshot(request)
    results = []
    for hit in hits:
        row = rows.get(hit.message_id)
        thread = snap.threads.get(hit.thread_id)
        if row is None or thread is None or thread.visibility is not Visibility.PUBLIC:
            continue
        results.append(message_view(row) | {"score": round(hit.score, 4), "thread_title": thread.title})
    return {"query": q, "results": results}
