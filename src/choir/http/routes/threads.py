"""Threads: the list, a new thread, one thread with its pending specs, and its messages."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, Final, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from choir.http.deps import check_origin, current_user, deps, optional_user, snapshot
from choir.http.errors import ApiError
from choir.http.views import get_thread, message_view, readable, thread_view
from choir.program import CreateThread, SpecStatus, Visibility, version_record_id
from choir.realtime.protocol import iso

router = APIRouter()
MAX_PAGE: Final = 200


class CreateThreadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    thread_id: str | None = Field(None, max_length=64)
    title: str = Field(max_length=400)
    visibility: Literal["public", "private"] = "public"


@router.get("/api/threads", tags=["threads"])
async def list_threads(request: Request, limit: int = Query(100, ge=1, le=500)) -> dict[str, Any]:
    snap = await snapshot(request)
    address = await optional_user(request)
    threads = [t for t in snap.threads.values() if readable(t, address)]
    threads.sort(key=lambda t: (t.last_seq, t.created_at), reverse=True)
    now = deps(request).clock()
    return {"threads": [thread_view(snap, t, now) for t in threads[:limit]]}


@router.post("/api/threads", status_code=201, tags=["threads"])
async def create_thread(body: CreateThreadBody, request: Request) -> dict[str, Any]:
    check_origin(request)
    address = await current_user(request)
    d = deps(request)
    thread_id = body.thread_id or secrets.token_hex(8)
    await d.writer.execute(CreateThread(address, thread_id, body.title, Visibility(body.visibility)))
    snap = d.writer.snapshot()  # taken after the commit: it holds the new thread
    return thread_view(snap, snap.threads[thread_id], d.clock())


@router.get("/api/threads/{thread_id}", tags=["threads"])
async def thread_detail(thread_id: str, request: Request) -> dict[str, Any]:
    snap = await snapshot(request)
    d = deps(request)
    thread = get_thread(snap, thread_id, await optional_user(request))
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
    names = await asyncio.to_thread(d.auth.display_names, people)
    return thread_view(snap, thread, d.clock()) | {"pending_specs": pending, "display_names": names}


@router.get("/api/threads/{thread_id}/messages", tags=["threads"])
async def thread_messages(
    thread_id: str,
    request: Request,
    before: int | None = Query(None, ge=1, description="Only messages with a smaller seq."),
    limit: int = Query(50, ge=1, le=MAX_PAGE),
) -> dict[str, Any]:
    snap = await snapshot(request)
    get_thread(snap, thread_id, await optional_user(request))
    rows = await asyncio.to_thread(deps(request).store.messages_page, thread_id, before, limit + 1)
    has_more = len(rows) > limit
    rows = rows[-limit:]
    return {"messages": [message_view(r) for r in rows], "has_more": has_more}


@router.get("/api/messages/{message_id}/versions", tags=["threads"])
async def message_versions(message_id: str, request: Request) -> dict[str, Any]:
    """A message's history: every version's hash (each committed and anchored), with its content
    while the message exists (a deleted message's versions keep their hashes only)."""
    _, versions = await _history(request, message_id)
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


@router.get("/api/messages/{message_id}/proof", tags=["threads"])
async def message_proof(
    message_id: str,
    request: Request,
    version: int = Query(1, ge=1, le=1_000_000, description="Which version: 1 as published."),
) -> dict[str, Any]:
    """The inclusion proof (RFC 6962) of the message's record (of ``version``) in the Merkle root its
    anchoring transaction carries, and whether that root, read back from the chain, proves it."""
    d = deps(request)
    thread_id, versions = await _history(request, message_id)
    if version not in versions:
        raise ApiError(404, "version_not_found", f"message {message_id!r} has no version {version}")
    chain = d.chain
    if chain is None:
        raise ApiError(
            409, "not_anchored", "this server settles on no chain (CHOIR_CHAIN=none): nothing is anchored"
        )
    try:
        proof = await chain.message_proof(message_id, version)
    except LookupError as exc:
        raise ApiError(409, "not_anchored", f"not anchored yet: {exc}") from None
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
        "chain": d.settings.chain,
        "verified_on_chain": on_chain,
    }


async def _history(request: Request, message_id: str) -> tuple[str, dict[int, dict[str, Any]]]:
    """The message's thread and versions, for a reader who may read that thread."""
    found = await asyncio.to_thread(deps(request).store.message_history, message_id)
    if found is None:
        raise ApiError(404, "message_not_found", f"no message {message_id!r}")
    get_thread(await snapshot(request), found[0], await optional_user(request))
    return found


@router.get("/api/messages/{message_id}", tags=["threads"])
async def message_detail(message_id: str, request: Request) -> dict[str, Any]:
    d = deps(request)
    rows = await asyncio.to_thread(d.store.messages_by_id, [message_id])
    row = rows.get(message_id)
    if row is None:
        raise ApiError(404, "message_not_found", f"no message {message_id!r}")
    thread = get_thread(await snapshot(request), row["thread_id"], await optional_user(request))
    return message_view(row) | {"thread_title": thread.title}
