"""Records as JSON, the same for REST and ``/ws``. Every view reads the one snapshot its action took."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from choir.engine import Snapshot
from choir.ledger import thread_account
from choir.program import Thread, recommended_stake


def iso(at: datetime) -> str:
    """A time on the wire: ISO 8601 in UTC with a ``Z``."""
    return at.isoformat().replace("+00:00", "Z")


def thread_view(snap: Snapshot, thread: Thread, now: datetime) -> dict[str, Any]:
    balance = snap.balance(thread_account(thread.thread_id))
    age_s = (now - thread.created_at).total_seconds()
    return {
        "thread_id": thread.thread_id,
        "title": thread.title,
        "visibility": str(thread.visibility),
        "creator": thread.creator,
        "created_at": iso(thread.created_at),
        "co_authors": list(thread.co_authors),
        # The co-authors who may not leave (divest) yet, and from when they may: the lock runs from
        # the day each joined (judged by the server's clock, not the reader's).
        "leave_locked_until": {
            m.address: iso(opens)
            for m in thread.members
            if (opens := m.joined_at + timedelta(seconds=snap.params.divest_lock_s)) > now
        },
        "balance": str(balance),
        "min_stake": str(thread.min_stake),
        "recommended_stake": str(
            recommended_stake(balance, thread.message_count, len(thread.members), age_s)
        ),
        "message_count": thread.message_count,
        # A snapshot holds only committed events: a client resumes from here with since_seq.
        "last_seq": thread.last_seq,
    }


def message_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "message_id": row["message_id"],
        "thread_id": row["thread_id"],
        "author": row["author"],
        "content": row["content"],
        "html": row["html"],
        "content_hash": row["content_hash"],
        "seq": row["seq"],
        "published_at": iso(row["published_at"]),
        "ask_id": row["ask_id"],
        "citations": [{"n": n, "message_id": m, "score": s / 1e6} for n, m, s in row["citations"]],
        "question": row.get("question"),
        # 1 as published; "edited" when above 1. A deleted message is a tombstone without content.
        "version": row.get("version") or 1,
        "edited_at": iso(row["edited_at"]) if row.get("edited_at") else None,
        "deleted": row.get("deleted_at") is not None,
        "mentions": row.get("mentions") or [],
    }
