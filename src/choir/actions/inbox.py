"""A person's own view: what they follow, how far they have read, their notifications; and the
people they may @mention. Follows and read marks tell the person's other connections too."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from choir.actions.context import Context, read_store, readable_thread, snapshot, write_store
from choir.store import inbox

# A (re)connecting client gets at most this many notifications replayed; older ones are in the list.
NOTIFICATIONS_REPLAYED: Final = 200
PAGE_MAX: Final = inbox.PAGE_MAX


async def follow(ctx: Context, address: str, thread_id: str, following: bool) -> dict[str, Any]:
    readable_thread(await snapshot(ctx), thread_id, address)
    await write_store(ctx, inbox.follow, address, thread_id, following)
    told = {"thread_id": thread_id, "following": following}
    await ctx.tell_user(address, "thread.followed", thread_id, told)
    return told


async def read_thread(ctx: Context, address: str, thread_id: str, seq: int) -> dict[str, Any]:
    """Move the read mark; the mention and reply notifications of what is now read are read too."""
    thread = readable_thread(await snapshot(ctx), thread_id, address)
    # A mark past the thread's last event would hide messages not written yet.
    read_seq, news = await write_store(ctx, _mark_read, address, thread_id, min(seq, thread.last_seq))
    await ctx.tell_user(address, "thread.read", thread_id, {"thread_id": thread_id, "read_seq": read_seq})
    if news:
        await ctx.tell_user(address, "notifications.read", None, {"ids": news})
    return {"thread_id": thread_id, "read_seq": read_seq, "notifications_read": news}


def _mark_read(conn: Any, address: str, thread_id: str, seq: int) -> tuple[int, list[int]]:
    read_seq = inbox.mark_read(conn, address, thread_id, seq)
    return read_seq, inbox.read_news(conn, address, thread_id, read_seq)


async def notifications(
    ctx: Context, address: str, after: int | None, limit: int
) -> tuple[list[inbox.Notification], int, int]:
    """The person's notifications, oldest first (the latest ``limit``, or those after ``after``),
    with the unread count and the latest id that count covers, read in one snapshot."""
    return await read_store(ctx, _notes, address, after, limit)


def _notes(
    conn: Any, address: str, after: int | None, limit: int
) -> tuple[list[inbox.Notification], int, int]:
    if after is None:
        notes = inbox.latest_notifications(conn, address, limit)
    else:
        notes = inbox.notifications_after(conn, address, after, limit)
    return notes, inbox.unread_count(conn, address), inbox.latest_id(conn, address)


async def read_notifications(
    ctx: Context, address: str, up_to_id: int | None, ids: Sequence[int] | None
) -> dict[str, Any]:
    which: dict[str, Any] = {"up_to_id": up_to_id} if ids is None else {"ids": list(ids)}
    changed = await write_store(ctx, inbox.mark_notifications_read, address, up_to_id, ids)
    await ctx.tell_user(address, "notifications.read", None, which)
    return which | {"changed": changed}


async def threads_inbox(ctx: Context, address: str) -> dict[str, Any]:
    """Per thread the person follows or has read: following, read_seq, unread and first_unread_seq;
    and the unread notifications' count. A private thread they no longer co-author is left out."""
    snap = await snapshot(ctx)
    threads, unread = await read_store(ctx, _inbox, address)
    shown = {
        t: v
        for t, v in threads.items()
        if (th := snap.threads.get(t)) is not None and th.readable_by(address)
    }
    return {"threads": shown, "notifications_unread": unread}


def _inbox(conn: Any, address: str) -> tuple[dict[str, dict[str, Any]], int]:
    return inbox.threads_of(conn, address), inbox.unread_count(conn, address)


async def people(ctx: Context, address: str, q: str, thread_id: str | None, limit: int) -> dict[str, Any]:
    """People to @mention: display name or address beginning with ``q``. With ``thread_id`` of a
    thread the caller may read, its own people first, and in a private thread only its co-authors
    (a mention there reaches nobody else). A thread the caller may not read is no thread."""
    snap = await snapshot(ctx)
    thread = readable_thread(snap, thread_id, address) if thread_id else None
    found: list[dict[str, str]] = await read_store(ctx, inbox.people_like, q, limit * 4)
    if thread is not None:
        found = [p for p in found if thread.readable_by(p["address"])]
        found.sort(key=lambda p: thread.member(p["address"]) is None)
    return {"people": found[:limit]}
