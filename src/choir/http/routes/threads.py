"""Threads: the list, a new thread, one thread with its pending specs, its messages, and one
message with its versions and proofs. Each route parses, calls its action, answers."""

from __future__ import annotations

import secrets
from typing import Any, Final, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from choir.actions import threads
from choir.http.deps import check_origin, current_user, deps, optional_user
from choir.program import Visibility

router = APIRouter()
MAX_PAGE: Final = 200


class CreateThreadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    thread_id: str | None = Field(None, max_length=64)
    title: str = Field(max_length=400)
    visibility: Literal["public", "private"] = "public"


@router.get("/api/threads", tags=["threads"])
async def list_threads(request: Request, limit: int = Query(100, ge=1, le=500)) -> dict[str, Any]:
    return await threads.list_threads(deps(request), await optional_user(request), limit)


@router.post("/api/threads", status_code=201, tags=["threads"])
async def create_thread(body: CreateThreadBody, request: Request) -> dict[str, Any]:
    check_origin(request)
    address = await current_user(request)
    thread_id = body.thread_id or secrets.token_hex(8)
    return await threads.create_thread(
        deps(request), address, thread_id, body.title, Visibility(body.visibility)
    )


@router.get("/api/threads/{thread_id}", tags=["threads"])
async def thread_detail(thread_id: str, request: Request) -> dict[str, Any]:
    return await threads.thread_page(deps(request), await optional_user(request), thread_id)


@router.get("/api/threads/{thread_id}/messages", tags=["threads"])
async def thread_messages(
    thread_id: str,
    request: Request,
    before: int | None = Query(None, ge=1, description="Only messages with a smaller seq."),
    limit: int = Query(50, ge=1, le=MAX_PAGE),
) -> dict[str, Any]:
    reader = await optional_user(request)
    return await threads.messages_page(deps(request), reader, thread_id, before, limit)


@router.get("/api/messages/{message_id}/versions", tags=["threads"])
async def message_versions(message_id: str, request: Request) -> dict[str, Any]:
    """A message's history: every version's hash (each committed and anchored), with its content
    while the message exists (a deleted message's versions keep their hashes only)."""
    return await threads.message_versions(deps(request), await optional_user(request), message_id)


@router.get("/api/messages/{message_id}/proof", tags=["threads"])
async def message_proof(
    message_id: str,
    request: Request,
    version: int = Query(1, ge=1, le=1_000_000, description="Which version: 1 as published."),
) -> dict[str, Any]:
    """The inclusion proof (RFC 6962) of the message's record (of ``version``) in the Merkle root its
    anchoring transaction carries, and whether that root, read back from the chain, proves it."""
    reader = await optional_user(request)
    return await threads.message_proof(deps(request), reader, message_id, version)


@router.get("/api/messages/{message_id}", tags=["threads"])
async def message_detail(message_id: str, request: Request) -> dict[str, Any]:
    return await threads.message_detail(deps(request), await optional_user(request), message_id)
