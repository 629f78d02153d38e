"""REST routes (DESIGN §7). Amounts are decimal strings of base units; errors are
``{code, message}``; state-changing calls check ``Origin`` as the socket does."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from choir.app import Choir, iso
from choir.auth.errors import AuthError
from choir.auth.origin import origin_allowed
from choir.auth.ratelimit import SlidingWindow
from choir.errors_http import ApiError
from choir.ledger import POOL_NEW_MESSAGES, SUPPLY, TREASURY, AccountClass, thread_account, user_account
from choir.program import CreateThread, SpecStatus, Thread, Visibility, recommended_stake

router = APIRouter()
COOKIE = "choir_session"
MAX_PAGE = 200
# Nonces plus verifies per client address and minute (a sign-in takes one of each).
SIGN_INS_PER_MINUTE = 240


def choir_of(request: Request) -> Choir:
    choir: Choir = request.app.state.choir
    return choir


def check_origin(request: Request) -> None:
    choir = choir_of(request)
    if not origin_allowed(request.headers.get("origin"), choir.settings.origins):
        raise ApiError(403, "forbidden", "Origin is not allowed for state-changing requests")


async def current_user(request: Request) -> str:
    token = request.cookies.get(COOKIE)
    address = await asyncio.to_thread(choir_of(request).auth.session_user, token) if token else None
    if address is None:
        raise ApiError(401, "unauthorized", "sign in first")
    return address


async def optional_user(request: Request) -> str | None:
    token = request.cookies.get(COOKIE)
    return await asyncio.to_thread(choir_of(request).auth.session_user, token) if token else None


async def fresh(choir: Choir) -> None:
    """Several processes may share PostgreSQL: read what the others committed."""
    if choir.store.dialect != "sqlite":
        await asyncio.to_thread(choir.coordinator.sync.refresh_if_stale)


# -- auth ------------------------------------------------------------------------------


class VerifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(max_length=4096)
    signature: str = Field(max_length=128)
    address: str = Field(max_length=64)


class ProfileBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    display_name: str = Field(max_length=64)


def limit_sign_in(request: Request) -> None:
    """Each nonce is a stored row and each verify a signature check: bound them per client address."""
    choir = choir_of(request)
    window = choir.extras.get("sign_in_window")
    if window is None:
        window = choir.extras["sign_in_window"] = SlidingWindow(SIGN_INS_PER_MINUTE, 60.0)
    client = request.client.host if request.client else "unknown"
    if not window.hit(client):
        raise ApiError(429, "rate_limited", f"at most {SIGN_INS_PER_MINUTE} sign-in requests a minute")


@router.get("/api/auth/nonce", tags=["auth"])
async def nonce(request: Request) -> dict[str, str]:
    limit_sign_in(request)
    return await asyncio.to_thread(choir_of(request).auth.issue_nonce)


@router.post("/api/auth/verify", tags=["auth"])
async def verify(body: VerifyBody, request: Request, response: Response) -> dict[str, Any]:
    check_origin(request)
    limit_sign_in(request)
    choir = choir_of(request)
    try:
        address, token = await asyncio.to_thread(
            choir.auth.verify, body.message, body.signature, body.address
        )
    except AuthError as exc:
        raise ApiError(401, exc.code, exc.message) from None
    await choir.welcome(address)
    secure = choir.settings.base_url.startswith("https://")
    response.set_cookie(
        COOKIE,
        token,
        max_age=choir.settings.session_ttl_s,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )
    return await _me(choir, address)


@router.post("/api/auth/logout", tags=["auth"])
async def logout(request: Request, response: Response) -> dict[str, bool]:
    check_origin(request)
    choir = choir_of(request)
    token = request.cookies.get(COOKIE)
    address = await optional_user(request)
    if token:
        await asyncio.to_thread(choir.auth.logout, token)
    if address:
        await choir.broker.publish_logout(address)
    response.delete_cookie(COOKIE, path="/")
    return {"ok": True}


async def _me(choir: Choir, address: str) -> dict[str, Any]:
    name = await asyncio.to_thread(choir.auth.display_name, address)
    balance = choir.state.ledger.balance(user_account(address))
    return {"address": address, "display_name": name, "balance": str(balance)}


@router.get("/api/me", tags=["auth"])
async def me(request: Request) -> dict[str, Any]:
    return await _me(choir_of(request), await current_user(request))


@router.patch("/api/me", tags=["auth"])
async def update_me(body: ProfileBody, request: Request) -> dict[str, Any]:
    check_origin(request)
    address = await current_user(request)
    choir = choir_of(request)
    try:
        await asyncio.to_thread(choir.auth.set_display_name, address, body.display_name)
    except AuthError as exc:
        raise ApiError(422, exc.code, exc.message) from None
    return await _me(choir, address)


# -- threads ---------------------------------------------------------------------------


class CreateThreadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    thread_id: str | None = Field(None, max_length=64)
    title: str = Field(max_length=400)
    visibility: Literal["public", "private"] = "public"


def thread_view(choir: Choir, thread: Thread) -> dict[str, Any]:
    now = choir.clock()
    balance = choir.state.ledger.balance(thread_account(thread.thread_id))
    age_s = (now - thread.created_at).total_seconds()
    return {
        "thread_id": thread.thread_id,
        "title": thread.title,
        "visibility": str(thread.visibility),
        "creator": thread.creator,
        "created_at": iso(thread.created_at),
        "co_authors": list(thread.co_authors),
        "balance": str(balance),
        "min_stake": str(thread.min_stake),
        "recommended_stake": str(
            recommended_stake(balance, thread.message_count, len(thread.members), age_s)
        ),
        "message_count": thread.message_count,
        # Only what is stored: a client resumes from here with since_seq.
        "last_seq": choir.coordinator.sync.committed_seq.get(thread.thread_id, 0),
    }


def readable(thread: Thread, address: str | None) -> bool:
    return thread.visibility is Visibility.PUBLIC or (
        address is not None and thread.member(address) is not None
    )


def get_thread(choir: Choir, thread_id: str, address: str | None) -> Thread:
    thread: Thread | None = choir.state.threads.get(thread_id)
    if thread is None:
        raise ApiError(404, "thread_not_found", f"no thread {thread_id!r}")
    if not readable(thread, address):
        raise ApiError(403, "forbidden", "this thread is private to its co-authors")
    return thread


@router.get("/api/threads", tags=["threads"])
async def list_threads(request: Request, limit: int = Query(100, ge=1, le=500)) -> dict[str, Any]:
    choir = choir_of(request)
    await fresh(choir)
    address = await optional_user(request)
    # list(): the writer thread may add a thread while this request reads them.
    threads = [t for t in list(choir.state.threads.values()) if readable(t, address)]
    threads.sort(key=lambda t: (t.last_seq, t.created_at), reverse=True)
    return {"threads": [thread_view(choir, t) for t in threads[:limit]]}


@router.post("/api/threads", status_code=201, tags=["threads"])
async def create_thread(body: CreateThreadBody, request: Request) -> dict[str, Any]:
    check_origin(request)
    address = await current_user(request)
    choir = choir_of(request)
    thread_id = body.thread_id or secrets.token_hex(8)
    await choir.execute(CreateThread(address, thread_id, body.title, Visibility(body.visibility)))
    return thread_view(choir, choir.state.threads[thread_id])


@router.get("/api/threads/{thread_id}", tags=["threads"])
async def thread_detail(thread_id: str, request: Request) -> dict[str, Any]:
    choir = choir_of(request)
    await fresh(choir)
    thread = get_thread(choir, thread_id, await optional_user(request))
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
        for spec_id in sorted(list(choir.state.pending.get(thread_id, ())))
        if (s := choir.state.specs[spec_id]).status is SpecStatus.PENDING
    ]
    names = await asyncio.to_thread(choir.auth.display_names, list(thread.co_authors))
    return thread_view(choir, thread) | {"pending_specs": pending, "display_names": names}


@router.get("/api/threads/{thread_id}/messages", tags=["threads"])
async def thread_messages(
    thread_id: str,
    request: Request,
    before: int | None = Query(None, ge=1, description="Only messages with a smaller seq."),
    limit: int = Query(50, ge=1, le=MAX_PAGE),
) -> dict[str, Any]:
    choir = choir_of(request)
    await fresh(choir)
    get_thread(choir, thread_id, await optional_user(request))
    rows = await asyncio.to_thread(choir.store.messages_page, thread_id, before, limit + 1)
    has_more = len(rows) > limit
    rows = rows[-limit:]
    return {"messages": [message_view(r) for r in rows], "has_more": has_more}


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
    }


# -- accounts --------------------------------------------------------------------------


@router.get("/api/accounts/{address}", tags=["accounts"])
async def account(address: str, request: Request) -> dict[str, str]:
    choir = choir_of(request)
    await fresh(choir)
    if not address or len(address) > 64:
        raise ApiError(422, "invalid_payload", "address must be 1 to 64 characters")
    return {"address": address, "balance": str(choir.state.ledger.balance(user_account(address)))}


@router.get("/api/ledger", tags=["accounts"])
async def ledger_summary(request: Request) -> dict[str, Any]:
    """The supply by account class: what the treasury, the pool, threads, escrows and people hold."""
    choir = choir_of(request)
    await fresh(choir)
    ledger = choir.state.ledger
    totals = {str(c): 0 for c in AccountClass} | ledger.by_class()
    by_class = {k: str(v) for k, v in sorted(totals.items())}
    return {
        "supply": str(SUPPLY),
        "treasury": str(ledger.balance(TREASURY)),
        "pool_new_messages": str(ledger.balance(POOL_NEW_MESSAGES)),
        "by_class": by_class,
        "epochs_settled": len(choir.state.epochs),
        "epoch_seconds": choir.state.params.epoch_seconds,
    }


@router.get("/health", tags=["ops"])
async def health(request: Request) -> dict[str, Any]:
    choir = choir_of(request)
    return {
        "status": "ok",
        "version": choir.coordinator.sync.version,
        "connections": choir.hub.connection_count,
    }


# -- messages, search and asking -------------------------------------------------------


@router.get("/api/messages/{message_id}", tags=["threads"])
async def message_detail(message_id: str, request: Request) -> dict[str, Any]:
    choir = choir_of(request)
    rows = await asyncio.to_thread(choir.store.messages_by_id, [message_id])
    row = rows.get(message_id)
    if row is None:
        raise ApiError(404, "message_not_found", f"no message {message_id!r}")
    thread = get_thread(choir, row["thread_id"], await optional_user(request))
    return message_view(row) | {"thread_title": thread.title}


@router.get("/api/search", tags=["search"])
async def search(
    request: Request,
    q: str = Query(min_length=1, max_length=1000, description="What to look for, in plain words."),
    limit: int = Query(20, ge=1, le=50),
) -> dict[str, Any]:
    """Public messages most similar in meaning to ``q`` (AI answers excluded)."""
    choir = choir_of(request)
    embedder, index = choir.extras.get("embedder"), choir.extras.get("index")
    if embedder is None or index is None:
        raise ApiError(503, "unavailable", "search is not running on this server")
    vectors = await asyncio.to_thread(embedder.embed, [q])
    hits = await asyncio.to_thread(index.search, vectors[0], limit, 0.2)
    rows = await asyncio.to_thread(choir.store.messages_by_id, [h.message_id for h in hits])
    results = []
    for hit in hits:
        row = rows.get(hit.message_id)
        thread = choir.state.threads.get(hit.thread_id)
        if row is None or thread is None or thread.visibility is not Visibility.PUBLIC:
            continue
        results.append(message_view(row) | {"score": round(hit.score, 4), "thread_title": thread.title})
    return {"query": q, "results": results}


class AskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(min_length=1, max_length=4096)


@router.post("/api/threads/{thread_id}/ask", status_code=202, tags=["chorus"])
async def ask(thread_id: str, body: AskBody, request: Request) -> dict[str, str]:
    """Start the Chorus loop; its phases stream to the thread's /ws subscribers and the
    answer is posted to the thread as the Choir AI's message carrying this ``ask_id``."""
    check_origin(request)
    address = await current_user(request)
    choir = choir_of(request)
    chorus = choir.extras.get("chorus")
    if chorus is None:
        raise ApiError(503, "unavailable", "the Chorus loop is not running on this server")
    from choir.chorus.service import AskRefused

    try:
        ask_id: str = await chorus.start(address, thread_id, body.prompt, None)
    except AskRefused as exc:
        status = {"thread_not_found": 404, "rate_limited": 429}.get(exc.code, 403)
        raise ApiError(status, exc.code, exc.message) from None
    return {"ask_id": ask_id}
