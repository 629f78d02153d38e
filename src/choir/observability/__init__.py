"""Observability: Prometheus metrics, structured JSON logs, analytics read from the store,
and the operator routes that serve them (``/metrics``, ``/api/stats``, ``/api/treasury``,
``/api/audit``, and the page ``/operator.html``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from choir.observability import logs
from choir.observability.metrics import Metrics, metrics_of
from choir.observability.metrics import install as install_metrics
from choir.observability.routes import router, run_audit

if TYPE_CHECKING:
    from choir.app import Choir

__all__ = ["Metrics", "install", "metrics_of", "router", "run_audit"]


def install(choir: Choir) -> Metrics:
    """What a starting server calls once: JSON logs at the configured level, and its metrics."""
    logs.configure(choir.settings.log_level)
    return install_metrics(choir)
