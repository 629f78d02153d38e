"""Search: messages found by their words and by their meaning (hybrid retrieval, `chorus.retrieval`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from choir.actions import search as searching
from choir.http.deps import deps, optional_user

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
    """Messages matching ``q`` by words or meaning, best first, of the threads the reader may read
    (AI answers excluded). ``terms`` are the query's words, for highlighting; ``display_names`` name
    the results' authors."""
    return await searching.search(deps(request), await optional_user(request), q, limit, mode)
