"""Prometheus metrics of one server, in its own registry (several servers in one process,
as in the tests, never share a series).

Metric                              what is measured, and where
choir_connections                   open /ws connections of this process (read from the hub at scrape)
choir_messages_total                messages committed by this process (the commit feed's ``metrics``)
choir_transfers_total{kind}         ledger transfers committed by this process, by kind
choir_post_delivery_seconds         from the commit of a post (``Commit.committed_at``, taken in the writer
                                    thread right after the SQL transaction) to the moment its
                                    ``message.posted`` frame is handed to a subscriber's socket (the
                                    connection's writer): one observation per receiving socket. So it
                                    counts the publisher, the hub's fan-out and each socket's queue, and
                                    not the time before commit. Only deliveries in the committing process
                                    are observed (with Redis fan-out, other processes have no commit time).
choir_chorus_phase_seconds{phase}   wall time of each Chorus phase of an answered question
choir_chorus_first_event_seconds    from the start of a question to its first streamed phase event
choir_retrieval_seconds             one vector search of the Chorus loop (the experience step)
choir_audit_ok                      1 passed, 0 failed, -1 never run in this process
choir_audit_findings                findings of the last audit run in this process

The server's composition root makes one ``Metrics``, subscribes ``on_commit`` to the commit feed and
hands the object to the parts that observe; the wrappers below (``timed_send``, ``timed_retrieval``)
take ``None`` for a component built without a server (a test, a benchmark), which then needs no
registry.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from choir.engine.commits import Commit
from choir.ledger import TransferKind

if TYPE_CHECKING:
    from choir.ops.audit import AuditReport

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "timed_retrieval", "timed_send"]

# Posts whose commit time is remembered for the delivery histogram; older ones are forgotten
# (their late deliveries go unobserved) so memory stays bounded under any load.
MAX_PENDING_DELIVERIES: Final = 65_536
_DELIVERY_BUCKETS_S: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_PHASE_BUCKETS_S: Final = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_RETRIEVAL_BUCKETS_S: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
# A message.posted frame starts with these fields in this order (protocol.event); reading them
# from the prefix costs far less than parsing every frame of every socket.
_POSTED_PREFIX: Final = re.compile(
    r'\{"type":"event","payload":\{"thread_id":"([A-Za-z0-9._~-]{1,32})","seq":(\d+),"kind":"message\.posted"'
)
_PREFIX_CHARS: Final = 160


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge("choir_connections", "Open /ws connections of this process.", registry=r)
        self.messages = Counter("choir_messages", "Messages committed by this process.", registry=r)
        self.transfers = Counter(
            "choir_transfers", "Ledger transfers committed by this process.", ["kind"], registry=r
        )
        for kind in TransferKind:
            self.transfers.labels(kind.value)
        self.post_delivery = Histogram(
            "choir_post_delivery_seconds",
            "From a post's commit to its event frame handed to a subscriber's socket.",
            buckets=_DELIVERY_BUCKETS_S,
            registry=r,
        )
        self.chorus_phase = Histogram(
            "choir_chorus_phase_seconds",
            "Wall time of a Chorus phase.",
            ["phase"],
            buckets=_PHASE_BUCKETS_S,
            registry=r,
        )
        self.chorus_first_event = Histogram(
            "choir_chorus_first_event_seconds",
            "From the start of a question to its first streamed event.",
            buckets=_PHASE_BUCKETS_S,
            registry=r,
        )
        self.retrieval = Histogram(
            "choir_retrieval_seconds",
            "One vector search of the Chorus loop.",
            buckets=_RETRIEVAL_BUCKETS_S,
            registry=r,
        )
        self.audit_ok = Gauge("choir_audit_ok", "Last audit: 1 passed, 0 failed, -1 never run.", registry=r)
        self.audit_ok.set(-1)
        self.audit_findings = Gauge("choir_audit_findings", "Findings of the last audit.", registry=r)
        self.index_backlog = Gauge(
            "choir_index_backlog",
            "Committed changes this process has yet to index (queued or retried).",
            registry=r,
        )
        self._committed: OrderedDict[tuple[str, int], float] = OrderedDict()
        # The listener runs in the coordinator's writer thread, deliveries on the event loop.
        self._committed_lock = threading.Lock()
        self._last_frame: str | None = None
        self._last_committed: float | None = None

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)

    def count_connections(self, count: Callable[[], int]) -> None:
        self.connections.set_function(lambda: float(count()))

    def count_index_backlog(self, count: Callable[[], int]) -> None:
        self.index_backlog.set_function(lambda: float(count()))

    # -- hooks ----------------------------------------------------------------------------

    def on_commit(self, commit: Commit) -> None:
        """The commit feed's ``metrics`` subscriber: called once per committed batch."""
        for outcome in commit.outcomes:
            if outcome.messages:
                self.messages.inc(len(outcome.messages))
            for transfer in outcome.transfers:
                self.transfers.labels(str(transfer.kind)).inc()
        posted = [(e.thread_id, e.seq) for e in commit.events() if e.kind == "message.posted"]
        if posted:
            with self._committed_lock:
                for key in posted:
                    self._committed[key] = commit.committed_at
                while len(self._committed) > MAX_PENDING_DELIVERIES:
                    self._committed.popitem(last=False)

    def on_frame_sent(self, frame: str) -> None:
        """A frame is about to be written to a socket: time it if it delivers a post.
        Called on the event loop only."""
        if frame is self._last_frame:
            # Fan-out hands the same string to every subscriber: read it once.
            committed = self._last_committed
        else:
            committed = self._commit_time_of(frame)
            self._last_frame, self._last_committed = frame, committed
        if committed is not None:
            self.post_delivery.observe(time.perf_counter() - committed)

    def _commit_time_of(self, frame: str) -> float | None:
        if not frame.startswith('{"type":"event"'):
            return None
        match = _POSTED_PREFIX.match(frame, 0, _PREFIX_CHARS)
        if match is None:
            return None
        with self._committed_lock:
            return self._committed.get((match[1], int(match[2])))

    def observe_answer(self, phase_ms: dict[str, float], first_event_ms: float | None) -> None:
        for phase, ms in phase_ms.items():
            self.chorus_phase.labels(phase).observe(ms / 1000)
        if first_event_ms is not None:
            self.chorus_first_event.observe(first_event_ms / 1000)

    def record_audit(self, report: AuditReport) -> None:
        self.audit_ok.set(1 if report.ok else 0)
        self.audit_findings.set(report.finding_count)


# -- wrappers for the parts that observe ------------------------------------------------------

Send = Callable[[str], Awaitable[None]]


def timed_send(metrics: Metrics | None, send: Send) -> Send:
    """Wrap a socket's send so that a delivered post is timed (see choir_post_delivery_seconds)."""
    if metrics is None:
        return send

    async def timed(frame: str) -> None:
        metrics.on_frame_sent(frame)
        await send(frame)

    return timed


class _TimedSearch:
    """A retriever whose ``find`` (hybrid retrieval) is timed; everything else passes through."""

    def __init__(self, inner: Any, histogram: Histogram) -> None:
        self._inner = inner
        self._histogram = histogram

    async def find(self, query: str, limit: int, *args: Any, **kwargs: Any) -> Sequence[Any]:
        started = time.perf_counter()
        try:
            hits: Sequence[Any] = await self._inner.find(query, limit, *args, **kwargs)
            return hits
        finally:
            self._histogram.observe(time.perf_counter() - started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def timed_retrieval(metrics: Metrics | None, retriever: Any) -> Any:
    """The Chorus loop's retriever with its searches timed (the retriever itself when no metrics)."""
    return retriever if metrics is None else _TimedSearch(retriever, metrics.retrieval)
