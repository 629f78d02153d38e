"""Replaying a thread's committed events from the store to one subscription: after a subscribe with
``since_seq``, and whenever a live event reveals a gap.

Live events reach a process through its broker in publication order, which is not always commit order:
two processes commit seq 5 and then seq 6 of a thread, but 6 may be published first, and an event whose
process died between its COMMIT and its publication is never published at all. Commit order is what the
store holds, so a subscription that receives seq n+k (k > 1) after n holds its live events, reads
n+1.. from the store, and then releases what it held, duplicates dropped by seq: every committed event
arrives exactly once, in seq order."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from choir.actions.views import iso
from choir.realtime import protocol
from choir.realtime.hub import Connection, ConnState, Hub, Subscription
from choir.store.faults import unavailable
from choir.store.sql import Store

log = logging.getLogger(__name__)
REPLAY_PAGE: Final = 500
# While the database is away, a gap waits for it (its live events held) this long before the
# connection is closed so that its client resumes.
GAP_WAIT_S: Final = 60.0
GAP_RETRY_S: Final = 0.5


async def replay(store: Store, hub: Hub, conn: Connection, sub: Subscription) -> None:
    """Send the stored events after ``sub.last_seq``, then release the live events held meanwhile."""
    while True:
        page = await asyncio.to_thread(store.events_since, sub.thread_id, sub.last_seq, REPLAY_PAGE)
        for e in page:
            if conn.subs.get(sub.thread_id) is not sub:
                return  # unsubscribed meanwhile
            frame = protocol.event(e.thread_id, e.seq, e.kind, e.data, iso(e.at))
            await conn.put(frame)
            sub.last_seq = e.seq
            if hub.revoke_if_left(conn, sub, frame):
                return
        if len(page) < REPLAY_PAGE:
            break
    if conn.subs.get(sub.thread_id) is sub:
        hub.finish_replay(conn, sub)


class GapFiller:
    """The hub's ``on_gap``: fills a subscription's gap from the store, off the delivery path."""

    def __init__(self, store: Store, hub: Hub) -> None:
        self.store = store
        self.hub = hub
        self.tasks: set[asyncio.Task[Any]] = set()
        self.filled = 0

    def __call__(self, conn: Connection, sub: Subscription) -> None:
        self.filled += 1
        task = asyncio.get_running_loop().create_task(self._fill(conn, sub))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _fill(self, conn: Connection, sub: Subscription) -> None:
        waited_s = 0.0
        while True:
            try:
                # Resumable: the replay goes on from the last seq it sent.
                await replay(self.store, self.hub, conn, sub)
                return
            except Exception as exc:
                if unavailable(exc) and waited_s < GAP_WAIT_S and conn.state is ConnState.OPEN:
                    await asyncio.sleep(GAP_RETRY_S)
                    waited_s += GAP_RETRY_S
                    continue
                # The connection is closing, or the store failed for good: the client resumes with since_seq.
                log.warning("filling a gap failed; closing the connection so that it resumes", exc_info=True)
                conn.shut(1011, "resume with since_seq")
                return
