"""Sign-In With Solana, the session cookie, and the signed-in person's profile."""

from __future__ import annotations

import asyncio
from typing import Any, Final

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from choir.auth.errors import AuthError
from choir.auth.service import session_key
from choir.engine.welcome import welcome
from choir.http.deps import COOKIE, Deps, check_origin, current_user, deps, optional_user
from choir.http.errors import ApiError
from choir.ledger import user_account

router = APIRouter()
# Nonces plus verifies per client address and minute (a sign-in takes one of each).
SIGN_INS_PER_MINUTE: Final = 240


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
    client = request.client.host if request.client else "unknown"
    if not deps(request).sign_in_window.hit(client):
        raise ApiError(429, "rate_limited", f"at most {SIGN_INS_PER_MINUTE} sign-in requests a minute")


@router.get("/api/auth/nonce", tags=["auth"])
async def nonce(request: Request) -> dict[str, str]:
    limit_sign_in(request)
    return await asyncio.to_thread(deps(request).auth.issue_nonce)


@router.post("/api/auth/verify", tags=["auth"])
async def verify(body: VerifyBody, request: Request, response: Response) -> dict[str, Any]:
    check_origin(request)
    limit_sign_in(request)
    d = deps(request)
    try:
        address, token = await asyncio.to_thread(d.auth.verify, body.message, body.signature, body.address)
    except AuthError as exc:
        raise ApiError(401, exc.code, exc.message) from None
    await welcome(d.writer.execute, address, d.settings.welcome_grant)
    response.set_cookie(
        COOKIE,
        token,
        max_age=d.settings.session_ttl_s,
        httponly=True,
        samesite="strict",
        secure=d.settings.base_url.startswith("https://"),
        path="/",
    )
    return await _me(d, address)


@router.post("/api/auth/logout", tags=["auth"])
async def logout(request: Request, response: Response) -> dict[str, bool]:
    check_origin(request)
    d = deps(request)
    token = request.cookies.get(COOKIE)
    address = await optional_user(request)
    if token:
        await asyncio.to_thread(d.auth.logout, token)
    if address and token:
        await d.broker.publish_logout(address, session_key(token))
    response.delete_cookie(COOKIE, path="/")
    return {"ok": True}


async def _me(d: Deps, address: str) -> dict[str, Any]:
    name = await asyncio.to_thread(d.auth.display_name, address)
    balance = d.writer.snapshot().balance(user_account(address))
    # Where a withdrawal goes: "none" (the ledger only), "litesvm" (an in-process test chain) or "rpc".
    return {"address": address, "display_name": name, "balance": str(balance), "settlement": d.settings.chain}


@router.get("/api/me", tags=["auth"])
async def me(request: Request) -> dict[str, Any]:
    return await _me(deps(request), await current_user(request))


@router.patch("/api/me", tags=["auth"])
async def update_me(body: ProfileBody, request: Request) -> dict[str, Any]:
    check_origin(request)
    address = await current_user(request)
    d = deps(request)
    try:
        await asyncio.to_thread(d.auth.set_display_name, address, body.display_name)
    except AuthError as exc:
        raise ApiError(409 if exc.code == "name_taken" else 422, exc.code, exc.message) from None
    return await _me(d, address)
