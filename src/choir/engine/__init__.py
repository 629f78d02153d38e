"""The engine: Choir's write side and its read model, with no HTTP and no sockets.

One writer applies instructions to its own private state, renders what they publish, persists
everything in one SQL transaction, and only after COMMIT swaps in the readers' new immutable
snapshot and hands the commit to the feed's named subscribers, in order. Readers
take one snapshot per request or frame and never see a batch that did not commit.

    ports.py        the narrow interfaces the shell uses: Execute, Snapshots, Publish, Clock
    snapshot.py     Snapshot: what readers read of a committed version, never changed again
    coordinator.py  apply -> render -> persist (one transaction) -> advance and swap the snapshot
    writer.py       the group-commit queue on an event loop, which emits to the feed
    commits.py      Commit and CommitFeed: one ordered, bounded post-commit feed
    render.py       markdown -> sanitised html, before persist
    duties.py       expiring specs and settling epochs, under an advisory lock
    welcome.py      the one-time grant of a new person
"""

from choir.engine.commits import Commit, CommitFeed
from choir.engine.coordinator import Coordinator, Refused, Result, StoreConflict
from choir.engine.ports import Clock, Execute, Publish, Snapshots, system_clock
from choir.engine.snapshot import Snapshot
from choir.engine.writer import Writer

__all__ = [
    "Clock",
    "Commit",
    "CommitFeed",
    "Coordinator",
    "Execute",
    "Publish",
    "Refused",
    "Result",
    "Snapshot",
    "Snapshots",
    "StoreConflict",
    "Writer",
    "system_clock",
]
