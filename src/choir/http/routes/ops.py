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
from typing import Any, Final

from fastapi import APIRouter, Request, Response

from choir.auth.origin import origin_allowed
from choir.http.deps import Deps, deps
from choir.http.errors import ApiError
from choir.ops.analytics import stats, treasury
from choir.ops.audit import AuditReport, audit
from choir.ops.metrics import CONTENT_TYPE_LATEST

router = APIRouter()
# Stats are recomputed at most this often: a page left open must not reread the store each time.
STATS_TTL_S: Final = 10.0
INDEX_DRAIN_TIMEOUT_S: Final = 10.0
_LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "localhost"})


@router.get("/metrics", tags=["ops"], include_in_schema=True)
async def metrics(request: Request) -> Response:
    return Response(deps(request).metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/stats", tags=["ops"])
async def get_stats(request: Request) -> dict[str, Any]:
    d = deps(request)
    desk = d.operator
    version = d.writer.snapshot().version
    now = time.monotonic()
    if desk.stats_value is not None and (desk.stats_version == version or now - desk.stats_at < STATS_TTL_S):
        return desk.stats_value
    report = await asyncio.to_thread(stats, d.store)
    desk.stats_value, desk.stats_version, desk.stats_at = report.to_json(), version, now
    return desk.stats_value


@router.get("/api/treasury", tags=["ops"])
async def get_treasury(request: Request) -> dict[str, Any]:
    return await asyncio.to_thread(treasury, deps(request).store)


@router.post("/api/audit", tags=["ops"])
async def post_audit(request: Request) -> dict[str, Any]:
    d = deps(request)
    host = request.client.host if request.client else ""
    if host not in _LOOPBACK or "x-forwarded-for" in request.headers:
        raise ApiError(403, "forbidden", "the audit is run from the server's own machine")
    origin = request.headers.get("origin")
    if origin is not None and not origin_allowed(origin, d.settings.origins):
        raise ApiError(403, "forbidden", "Origin is not allowed")
    report = await run_audit(d)
    return report.to_json()


async def run_audit(d: Deps) -> AuditReport:
    """Audit the live store and index, and record the result for /metrics."""
    async with d.operator.audit_lock:
        report = await _audit_live(d)
        if report.index_checked and report.kinds() and all(k.startswith("index_") for k in report.kinds()):
            # The index trails the store by design (indexing is asynchronous): a post committed
            # between the drain and the scan is a race, not a fault. A real fault stays.
            report = await _audit_live(d)
    d.metrics.record_audit(report)
    return report


async def _audit_live(d: Deps) -> AuditReport:
    if d.indexer is not None:
        with contextlib.suppress(TimeoutError):
            await d.indexer.drain(INDEX_DRAIN_TIMEOUT_S)
    return await asyncio.to_thread(audit, d.store, d.index)
