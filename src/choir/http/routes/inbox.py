"""A person's inbox: notifications, and per thread what they follow and have not read; people to
mention. Changes (follow, read marks, marking notifications read) go over /ws, which tells the
person's other browsers too; these reads serve a page loading and a client resuming."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request

from choir.http.deps import current_user, deps, snapshot
from choir.http.views import readable
from choir.store import inbox
from choir.store.sql import read_snapshot

router = APIRouter()


@router.get("/api/notifications", tags=["inbox"])
async def notifications(
    request: Request,
    after: int | None = Query(None, ge=0, description="Only notifications with a larger id (resume)."),
    limit: int = Query(50, ge=1, le=inbox.PAGE_MAX),
) -> dict[str, Any]:
    """The signed-in person's notifications, oldest first: the latest ``limit``, or those after
    ``after``; with how many are unread."""
    address = await current_user(request)

    def read() -> tuple[list[inbox.Notification], int, int]:
        with read_snapshot(deps(request).store.engine) as conn:
            if after is None:
                notes = inbox.latest_notifications(conn, address, limit)
            else:
                notes = inbox.notifications_after(conn, address, after, limit)
            return notes, inbox.unread_count(conn, address), inbox.latest_id(conn, address)

    notes, unread, latest = await asyncio.to_thread(read)
    # `unread` counts every notification up to `latest_id` (read in one snapshot).
    return {"notifications": [n.view() for n in notes], "unread": unread, "latest_id": latest}


@router.get("/api/inbox", tags=["inbox"])
async def threads_inbox(request: Request) -> dict[str, Any]:
    """Per thread the signed-in person follows or has read: following, read_seq, unread (others'
    messages after the read mark) and first_unread_seq; and the unread notifications' count. A
    private thread they no longer co-author is left out."""
    address = await current_user(request)
    snap = await snapshot(request)

    def read() -> tuple[dict[str, dict[str, Any]], int]:
        with deps(request).store.engine.connect() as conn:
            return inbox.threads_of(conn, address), inbox.unread_count(conn, address)

    threads, unread = await asyncio.to_thread(read)
    shown = {
        t: v for t, v in threads.items() if (th := snap.threads.get(t)) is not None and readable(th, address)
    }
    return {"threads": shown, "notifications_unread": unread}


@router.get("/api/people", tags=["inbox"])
async def people(
    request: Request,
    q: str = Query(min_length=1, max_length=64, description="The start of a display name or address."),
    thread_id: str | None = Query(None, max_length=64, description="Only those who may read this thread."),
    limit: int = Query(8, ge=1, le=20),
) -> dict[str, Any]:
    """People to @mention: display name or address beginning with ``q``. With ``thread_id`` of a
    private thread, only its co-authors (a mention there reaches nobody else)."""
    await current_user(request)
    snap = await snapshot(request)
    thread = snap.threads.get(thread_id) if thread_id else None

    def read() -> list[dict[str, str]]:
        with deps(request).store.engine.connect() as conn:
            return inbox.people_like(conn, q, limit * 4)

    found = await asyncio.to_thread(read)
    if thread is not None:
        found = [p for p in found if readable(thread, p["address"])]
        # The thread's own people first: who one mentions is mostly who is there.
        found.sort(key=lambda p: thread.member(p["address"]) is None)
    return {"people": found[:limit]}
