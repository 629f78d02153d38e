"""Search: messages found by their words and by their meaning (hybrid retrieval, `chorus.retrieval`)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request

from choir.http.deps import deps, optional_user, snapshot
from choir.http.errors import ApiError
from choir.http.views import message_view
from choir.program import Visibility
from choir.store.keywords import terms

router = APIRouter()


@router.get("/api/search", tags=["search"])
async def search(
    request: Request,
    q: str = Query(min_length=1, max_length=1000, description="What to look for, in plain words."),
    limit: int = Query(20, ge=1, le=50),
    mode: str = Query(
        "hybrid", pattern="^(hybrid|vector)$", description="hybrid (words and meaning) or vector."
    ),
) -> dict[str, Any]:
    """Messages matching ``q`` by words or meaning, best first: public ones, and those of the private
    threads the signed-in reader co-authors (AI answers excluded). ``terms`` are the query's words, for
    highlighting; ``display_names`` name the results' authors."""
    d = deps(request)
    if d.retriever is None:
        raise ApiError(503, "unavailable", "search is not running on this server")
    reader = await optional_user(request)
    snap = await snapshot(request)
    private = (
        [
            t.thread_id
            for t in snap.threads.values()
            if t.visibility is Visibility.PRIVATE and t.member(reader)
        ]
        if reader
        else []
    )
    found = await d.retriever.find(q, limit, private_threads=private, vector_only=mode == "vector")
    rows = await asyncio.to_thread(d.store.messages_by_id, [f.message_id for f in found])
    results = []
    for hit in found:
        row = rows.get(hit.message_id)
        thread = snap.threads.get(hit.thread_id)
        if row is None or thread is None:
            continue
        if thread.visibility is not Visibility.PUBLIC and (reader is None or thread.member(reader) is None):
            continue  # a thread made private since it was indexed
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
    names = await asyncio.to_thread(d.auth.display_names, authors) if authors else {}
    return {"query": q, "terms": terms(q), "results": results, "display_names": names}
