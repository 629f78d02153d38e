"""A person's inbox: notifications, and per thread what they follow and have not read; people to
mention. Changes (follow, read marks, marking notifications read) go over /ws, which tells the
person's other browsers too; these reads serve a page loading and a client resuming."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from choir.actions import inbox
from choir.actions.inbox import PAGE_MAX
from choir.http.deps import current_user, deps

router = APIRouter()


@router.get("/api/notifications", tags=["inbox"])
async def notifications(
    request: Request,
    after: int | None = Query(None, ge=0, description="Only notifications with a larger id (resume)."),
    limit: int = Query(50, ge=1, le=PAGE_MAX),
) -> dict[str, Any]:
    """The signed-in person's notifications, oldest first: the latest ``limit``, or those after
    ``after``; with how many are unread."""
    address = await current_user(request)
    notes, unread, latest = await inbox.notifications(deps(request), address, after, limit)
    # `unread` counts every notification up to `latest_id` (read in one snapshot).
    return {"notifications": [n.view() for n in notes], "unread": unread, "latest_id": latest}


@router.get("/api/inbox", tags=["inbox"])
async def threads_inbox(request: Request) -> dict[str, Any]:
    """Per thread the signed-in person follows or has read: following, read_seq, unread (others'
    messages after the read mark) and first_unread_seq; and the unread notifications' count. A
    private thread they no longer co-author is left out."""
    return await inbox.threads_inbox(deps(request), await current_user(request))


@router.get("/api/people", tags=["inbox"])
async def people(
    request: Request,
    q: str = Query(min_length=1, max_length=64, description="The start of a display name or address."),
    thread_id: str | None = Query(None, max_length=64, description="Only those who may read this thread."),
    limit: int = Query(8, ge=1, le=20),
) -> dict[str, Any]:
    """People to @mention: display name or address beginning with ``q``. With ``thread_id`` of a
    private thread the caller co-authors, only its co-authors (a mention there reaches nobody else);
    a thread the caller may not read answers 404 ``thread_not_found``."""
    address = await current_user(request)
    return await inbox.people(deps(request), address, q, thread_id, limit)
