"""Operator routes: ``GET /metrics`` (Prometheus), ``GET /api/stats`` (analytics for the
operator page), ``GET /api/treasury`` (the treasury's ledger) and ``POST /api/audit``
(run ``choir audit`` inside the server, against the live vector index).

The audit reads the whole store, so it is an operator's action: it answers only a signed-in
operator (an address named in ``CHOIR_OPERATORS``) from an allowed ``Origin``, whatever the peer's
address, and one audit runs at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Final

from fastapi import APIRouter, Request, Response

from choir.http.deps import Deps, check_origin, current_operator, deps
from choir.ops.analytics import stats, treasury
from choir.ops.audit import AuditReport, audit
from choir.ops.metrics import CONTENT_TYPE_LATEST

router = APIRouter()
# Stats are recomputed at most this often: a page left open must not reread the store each time.
STATS_TTL_S: Final = 10.0
INDEX_DRAIN_TIMEOUT_S: Final = 10.0


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
    check_origin(request)
    await current_operator(request)
    report = await run_audit(deps(request))
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
