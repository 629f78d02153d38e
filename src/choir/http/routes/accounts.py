"""Balances: one person's, and the whole supply by account class; and the server's health."""

from __future__ import annotations

import asyncio
import os
from typing import Any, Final

from fastapi import APIRouter, Request

from choir.http.deps import Deps, deps, snapshot
from choir.http.errors import ApiError
from choir.ledger import POOL_NEW_MESSAGES, SUPPLY, TREASURY, AccountClass, user_account

router = APIRouter()
# /health answers within about this long even when the database hangs (a paused host).
HEALTH_PROBE_TIMEOUT_S: Final = 2.0


@router.get("/api/accounts/{address}", tags=["accounts"])
async def account(address: str, request: Request) -> dict[str, str]:
    snap = await snapshot(request)
    if not address or len(address) > 64:
        raise ApiError(422, "invalid_payload", "address must be 1 to 64 characters")
    return {"address": address, "balance": str(snap.balance(user_account(address)))}


@router.get("/api/ledger", tags=["accounts"])
async def ledger_summary(request: Request) -> dict[str, Any]:
    """The supply by account class: what the treasury, the pool, threads, escrows and people hold."""
    snap = await snapshot(request)
    totals = {str(c): 0 for c in AccountClass} | snap.by_class()
    return {
        "supply": str(SUPPLY),
        "treasury": str(snap.balance(TREASURY)),
        "pool_new_messages": str(snap.balance(POOL_NEW_MESSAGES)),
        "by_class": {k: str(v) for k, v in sorted(totals.items())},
        "epochs_settled": len(snap.epochs),
        "epoch_seconds": snap.params.epoch_seconds,
    }


async def _store_health(d: Deps) -> str:
    try:
        await asyncio.wait_for(asyncio.to_thread(d.store.ping), HEALTH_PROBE_TIMEOUT_S)
    except Exception:
        return "degraded"
    return "ok"


@router.get("/health", tags=["ops"])
async def health(request: Request) -> dict[str, Any]:
    d = deps(request)
    # Fan-out between processes down (Redis unreachable): writes are stored, live delivery across
    # processes waits for it; the process still answers, "degraded".
    fan_out = "ok" if d.broker.connected else "degraded"
    # The database away: writes are refused with store_unavailable (retryable) until it returns.
    store = await _store_health(d)
    # The pid tells which of several processes on one port answered (`choir serve --workers N`).
    return {
        "status": "ok" if fan_out == store == "ok" else "degraded",
        "dependencies": {"fan_out": fan_out, "store": store},
        # Derived work waiting (indexing and novelty): it is retried until it lands, never dropped.
        "backlog": {"index": d.indexer.backlog if d.indexer is not None else 0},
        "version": d.writer.snapshot().version,
        "connections": d.hub.connection_count,
        "pid": os.getpid(),
    }
