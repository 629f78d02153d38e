"""Operator routes: ``GET /metrics`` (Prometheus), ``GET /api/stats`` (analytics for the
operator page), ``GET /api/treasury`` (the treasury's ledger) and ``POST /api/audit``
(run ``choir audit`` inside the server, against the live vector index).

The audit reads the whole store, so it is an operator's action: it answers only a client
on the server's own machine (loopback, not forwarded by a proxy) whose ``Origin``, if any,
is allowed, and one audit runs at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any, Final

from fastapi import APIRouter, Request, Response

from choir.audit import AuditReport, audit
from choir.auth.origin import origin_allowed
from choir.errors_http import ApiError
from choir.observability.analytics import stats, treasury
from choir.observability.metrics import CONTENT_TYPE_LATEST, metrics_of

if TYPE_CHECKING:
    from choir.app import Choir

router = APIRouter()
# Stats are recomputed at most this often: a page left open must not reread the store each time.
STATS_TTL_S: Final = 10.0
INDEX_DRAIN_TIMEOUT_S: Final = 10.0
_LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "localhost"})
_AUDIT_LOCK_KEY: Final = "audit_lock"
_STATS_CACHE_KEY: Final = "stats_cache"


def _choir(request: Request) -> Choir:
    choir: Choir = request.app.state.choir
    return choir


@router.get("/metrics", tags=["ops"], include_in_schema=True)
async def metrics(request: Request) -> Response:
    found = metrics_of(_choir(request))
    if found is None:
        raise ApiError(503, "unavailable", "metrics are not installed on this server")
    return Response(found.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/stats", tags=["ops"])
async def get_stats(request: Request) -> dict[str, Any]:
    choir = _choir(request)
    cache: dict[str, Any] = choir.extras.setdefault(_STATS_CACHE_KEY, {})
    version = choir.coordinator.sync.version
    now = time.monotonic()
    if cache and (cache["version"] == version or now - cache["at"] < STATS_TTL_S):
        value: dict[str, Any] = cache["value"]
        return value
    report = await asyncio.to_thread(stats, choir.store)
    value = report.to_json()
    cache.update(version=version, at=now, value=value)
    return value


@router.get("/api/treasury", tags=["ops"])
async def get_treasury(request: Request) -> dict[str, Any]:
    return await asyncio.to_thread(treasury, _choir(request).store)


@router.post("/api/audit", tags=["ops"])
async def post_audit(request: Request) -> dict[str, Any]:
    choir = _choir(request)
    host = request.client.host if request.client else ""
    if host not in _LOOPBACK or "x-forwarded-for" in request.headers:
        raise ApiError(403, "forbidden", "the audit is run from the server's own machine")
    origin = request.headers.get("origin")
    if origin is not None and not origin_allowed(origin, choir.settings.origins):
        raise ApiError(403, "forbidden", "Origin is not allowed")
    report = await run_audit(choir)
    return report.to_json()


async def run_audit(choir: Choir) -> AuditReport:
    """Audit the live store and index, and record the result for /metrics."""
    lock: asyncio.Lock = choir.extras.setdefault(_AUDIT_LOCK_KEY, asyncio.Lock())
    async with lock:
        report = await _audit_live(choir)
        if report.index_checked and report.kinds() and all(k.startswith("index_") for k in report.kinds()):
            # The index trails the store by design (indexing is asynchronous): a post committed
            # between the drain and the scan is a race, not a fault. A real fault stays.
            report = await _audit_live(choir)
    found = metrics_of(choir)
    if found is not None:
        found.record_audit(report)
    return report


async def _audit_live(choir: Choir) -> AuditReport:
    indexer = choir.extras.get("indexer")
    if indexer is not None:
        with contextlib.suppress(TimeoutError):
            await indexer.drain(INDEX_DRAIN_TIMEOUT_S)
    return await asyncio.to_thread(audit, choir.store, choir.extras.get("index"))
