"""Reading threads and messages: the list, one thread's page, its messages, one message, its
versions and their proofs; and making a thread. A private thread answers an outsider as an id
nobody holds, and so does each of its messages."""

from __future__ import annotations

import asyncio
from typing import Any

from choir.actions.context import Context, readable_thread, readable_threads, snapshot
from choir.actions.refusals import Refusal
from choir.actions.views import iso, message_view, thread_view
from choir.engine import Snapshot
from choir.program import CreateThread, SpecStatus, Thread, Visibility, version_record_id


async def list_threads(ctx: Context, address: str | None, limit: int) -> dict[str, Any]:
    snap = await snapshot(ctx)
    threads = readable_threads(snap, address)
    threads.sort(key=lambda t: (t.last_seq, t.created_at), reverse=True)
    now = ctx.clock()
    return {"threads": [thread_view(snap, t, now) for t in threads[:limit]]}


async def create_thread(
    ctx: Context, address: str, thread_id: str, title: str, visibility: Visibility
) -> dict[str, Any]:
    await ctx.writer.execute(CreateThread(address, thread_id, title, visibility))
    snap = ctx.writer.snapshot()  # taken after the commit: it holds the new thread
    return thread_view(snap, snap.threads[thread_id], ctx.clock())


async def thread_page(ctx: Context, address: str | None, thread_id: str) -> dict[str, Any]:
    """The thread with its pending specs and the names of the people on the page."""
    snap = await snapshot(ctx)
    thread = readable_thread(snap, thread_id, address)
    pending = [
        {
            "spec_id": s.spec_id,
            "author": s.author,
            "content": s.content,
            "stake": str(s.stake),
            "submitted_at": iso(s.submitted_at),
            "expires_at": iso(s.expires_at),
            "voters": list(s.voters),
            "votes": [{"voter": a, "approve": v} for a, v in s.votes],
        }
        for spec_id in sorted(snap.pending.get(thread_id, ()))
        if (s := snap.specs[spec_id]).status is SpecStatus.PENDING
    ]
    # Everyone a reader meets on the page by address: co-authors and the authors of pending specs.
    people = list(dict.fromkeys([*thread.co_authors, *(str(s["author"]) for s in pending)]))
    names = await asyncio.to_thread(ctx.auth.display_names, people)
    return thread_view(snap, thread, ctx.clock()) | {"pending_specs": pending, "display_names": names}


async def messages_page(
    ctx: Context, address: str | None, thread_id: str, before: int | None, limit: int
) -> dict[str, Any]:
    snap = await snapshot(ctx)
    readable_thread(snap, thread_id, address)
    rows = await asyncio.to_thread(ctx.store.messages_page, thread_id, before, limit + 1)
    has_more = len(rows) > limit
    rows = rows[-limit:]
    return {"messages": [message_view(r) for r in rows], "has_more": has_more}


async def message_detail(ctx: Context, address: str | None, message_id: str) -> dict[str, Any]:
    rows = await asyncio.to_thread(ctx.store.messages_by_id, [message_id])
    row = rows.get(message_id)
    thread = _thread_of(await snapshot(ctx), row["thread_id"] if row else None, address, message_id)
    assert row is not None
    return message_view(row) | {"thread_title": thread.title}


async def message_versions(ctx: Context, address: str | None, message_id: str) -> dict[str, Any]:
    """A message's history: every version's commitment (each committed and anchored), with its
    content while the message exists (a deleted message's versions keep their commitments only)."""
    _, versions = await _history(ctx, address, message_id)
    return {
        "message_id": message_id,
        "versions": [
            {
                "version": v["version"],
                "content": v["content"],
                "content_hash": v["content_hash"],
                "at": iso(v["at"]),
                "deleted": v["deleted"],
            }
            for v in versions.values()
        ],
    }


async def message_proof(ctx: Context, address: str | None, message_id: str, version: int) -> dict[str, Any]:
    """The inclusion proof (RFC 6962) of the message's record (of ``version``) in the Merkle root its
    anchoring transaction carries, and whether that root, read back from the chain, proves it."""
    thread_id, versions = await _history(ctx, address, message_id)
    if version not in versions:
        raise Refusal("version_not_found", f"message {message_id!r} has no version {version}")
    chain = ctx.chain
    if chain is None:
        raise Refusal(
            "not_anchored", "this server settles on no chain (CHOIR_CHAIN=none): nothing is anchored"
        )
    try:
        proof = await chain.message_proof(message_id, version)
    except LookupError as exc:
        raise Refusal("not_anchored", f"not anchored yet: {exc}") from None
    try:
        on_chain: bool | None = await chain.verify(proof)
    except Exception:  # the chain cannot be read now: the stored anchor still proves it
        on_chain = None
    return {
        "message_id": message_id,
        "version": version,
        "record_id": version_record_id(message_id, version),
        "thread_id": thread_id,
        "content_hash": versions[version]["content_hash"],
        "leaf": proof.leaf.hex(),
        "index": proof.proof.index,
        "size": proof.proof.size,
        "path": [p.hex() for p in proof.proof.path],
        "root": proof.root.hex(),
        "signature": str(proof.signature),
        "through": proof.through,
        "chain": ctx.settings.chain,
        "verified_on_chain": on_chain,
    }


async def _history(
    ctx: Context, address: str | None, message_id: str
) -> tuple[str, dict[int, dict[str, Any]]]:
    """The message's thread and versions, for a reader who may read that thread."""
    found = await asyncio.to_thread(ctx.store.message_history, message_id)
    _thread_of(await snapshot(ctx), found[0] if found else None, address, message_id)
    assert found is not None
    return found


def _thread_of(snap: Snapshot, thread_id: str | None, address: str | None, message_id: str) -> Thread:
    """A message's thread, for a reader who may read it: otherwise, as for an id nobody holds."""
    thread = snap.threads.get(thread_id) if thread_id is not None else None
    if thread is None or not thread.readable_by(address):
        raise Refusal("message_not_found", f"no message {message_id!r}")
    return thread
