"""One ordered post-commit feed.

Every committed batch becomes one ``Commit``; the feed hands it to its named subscribers in the
order they subscribed, which the composition root fixes and docs/architecture.md states:

    1. metrics    remembers the commit time of each post (for the delivery histogram)
    2. publisher  encodes each event and notification once and fans it out (broker -> hub -> sockets)
    3. indexer    queues new messages and co-author changes for the vector index
    4. chain      wakes the settlement worker

A subscriber is called on the thread that emits (the event loop, in a server) and must not
block: each one that has slow work keeps its own bounded queue (the indexer's, the chain's).
A subscriber that raises is logged and the others still run: a bug there must never undo or
hide a commit that is already durable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from choir.engine.snapshot import Snapshot
from choir.program import Event, Outcome
from choir.store.inbox import Notification
from choir.store.sql import with_html

log = logging.getLogger(__name__)
# A feed with more subscribers than this is a wiring bug (each is named and documented).
MAX_SUBSCRIBERS: Final = 16


@dataclass(frozen=True, slots=True)
class Commit:
    """One committed batch: its outcomes in commit order, the html rendered for its messages
    before persist, the snapshot swapped in by it, and when it committed."""

    outcomes: tuple[Outcome, ...]
    html: Mapping[str, str]
    snapshot: Snapshot
    committed_at: float = field(default_factory=time.perf_counter)
    # What the batch told whom (written in its transaction: ``store.inbox``).
    notifications: tuple[Notification, ...] = ()

    def events(self) -> list[Event]:
        return [e for o in self.outcomes for e in o.events]

    def event_data(self, event: Event) -> dict[str, Any]:
        """The event's data as stored and as sent: a post or an edit carries its rendered html."""
        return with_html(event, self.html)


Subscriber = Callable[[Commit], None]


class CommitFeed:
    def __init__(self) -> None:
        self._subscribers: list[tuple[str, Subscriber]] = []

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self._subscribers)

    def subscribe(self, name: str, subscriber: Subscriber) -> None:
        if name in self.names:
            raise ValueError(f"a subscriber named {name!r} is already on the feed")
        if len(self._subscribers) >= MAX_SUBSCRIBERS:
            raise ValueError(f"at most {MAX_SUBSCRIBERS} subscribers")
        self._subscribers.append((name, subscriber))

    def emit(self, commit: Commit) -> None:
        for name, subscriber in self._subscribers:
            try:
                subscriber(commit)
            except Exception:
                log.exception("commit subscriber %r failed", name)
