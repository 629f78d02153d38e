"""What a server process claims before it serves: the parts of a deployment only one process may own.

Several `choir serve` processes may share one PostgreSQL, but only if they also share everything else
that holds state: the fan-out (Redis, or every other process's clients miss this one's events) and the
vector index (or the same question gets different citations on each process). A process that would
open its own copy of either beside another process refuses to start, before it writes anything:

    SQLite                  one process only (a lock file beside the database)
    PostgreSQL, no Redis    one process only (an exclusive advisory lock; with Redis, a shared one)
    PostgreSQL, edge index  one process only (an exclusive advisory lock; sql or qdrant, a shared one)

The claims are held for the life of the process; PostgreSQL releases them when it dies.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from sqlalchemy.engine import make_url

from choir.config import Settings
from choir.store.sql import AdvisoryLock, Store
from choir.store.vectors.pgvector import engine_for

FANOUT_LOCK_KEY: Final = 0x43484F495246  # "CHOIRF"
INDEX_LOCK_KEY: Final = 0x43484F495249  # "CHOIRI"

SHARE_FANOUT: Final = (
    "another Choir process already serves this database without Redis: processes that share a "
    "database must share their fan-out; set CHOIR_REDIS_URL to one Redis server for all of them"
)
# The refusals of a process that would run alone (no Redis; its own embedded index) beside others.
OWN_FANOUT: Final = (
    "another Choir process already serves this database, and this one has no CHOIR_REDIS_URL: processes "
    "that share a database must share their fan-out; set CHOIR_REDIS_URL to one Redis server for all"
)
OWN_INDEX: Final = (
    "another Choir process already serves this database, and this one would keep its own embedded vector "
    "index (CHOIR_VECTOR_ENGINE=edge): set CHOIR_VECTOR_ENGINE=pgvector, CHOIR_VECTOR_ENGINE=sql or "
    "CHOIR_QDRANT_URL for every process"
)
SHARE_INDEX: Final = (
    "another Choir process already serves this database with its own embedded vector index "
    "(CHOIR_VECTOR_ENGINE=edge): processes that share a database must share one index, or the same "
    "question gets different citations on each; set CHOIR_VECTOR_ENGINE=pgvector (PostgreSQL with "
    "pgvector), CHOIR_VECTOR_ENGINE=sql (the index in this database) or CHOIR_QDRANT_URL (a Qdrant "
    "server) for every process"
)


class StartRefused(RuntimeError):
    """This process must not serve with this configuration; nothing was written."""


@dataclass
class Claims:
    """What this process holds while it serves; `release` lets the next process take them."""

    releases: list[Callable[[], None]] = field(default_factory=list)
    # The advisory locks among them, with what losing each means (checked and retaken while serving).
    locks: list[tuple[AdvisoryLock, str]] = field(default_factory=list)

    def lost(self) -> str | None:
        """Why this process must not write now: a claim it lost and could not take again (another
        process took it while the database restarted). None: every claim is held."""
        for lock, meaning in self.locks:
            if not lock.check():
                return meaning
        return None

    def release(self) -> None:
        while self.releases:
            with contextlib.suppress(Exception):
                self.releases.pop()()


def claim(settings: Settings, store: Store) -> Claims:
    """Take this process's claims on the store, or raise StartRefused (holding none of them)."""
    claims = Claims()
    try:
        if store.dialect == "sqlite":
            _claim_sqlite_file(store, claims)
        else:
            with_redis = settings.redis_url is not None
            _claim_advisory(
                store, FANOUT_LOCK_KEY, with_redis, SHARE_FANOUT if with_redis else OWN_FANOUT, claims
            )
            shared_index = engine_for(settings, store.engine) != "edge"
            _claim_advisory(
                store, INDEX_LOCK_KEY, shared_index, SHARE_INDEX if shared_index else OWN_INDEX, claims
            )
    except BaseException:
        claims.release()
        raise
    return claims


def _claim_advisory(store: Store, key: int, shared: bool, refusal: str, claims: Claims) -> None:
    lock = AdvisoryLock(store.engine, key, shared=shared)
    if not lock.held():
        raise StartRefused(refusal)
    claims.releases.append(lock.release)
    claims.locks.append((lock, refusal))


def _claim_sqlite_file(store: Store, claims: Claims) -> None:
    database = make_url(store.url).database
    if not database or database == ":memory:":
        return
    path = Path(database)
    lock_file: IO[str] = open(path.with_name(path.name + ".owner"), "a")  # noqa: SIM115 - held while serving
    try:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.close()
        raise StartRefused(
            f"another Choir process already serves the SQLite database {path}: SQLite has one server "
            "process; to run several, use PostgreSQL (CHOIR_DATABASE_URL), Redis (CHOIR_REDIS_URL) and "
            "a shared vector index (CHOIR_VECTOR_ENGINE=sql)"
        ) from None
    claims.releases.append(lock_file.close)
