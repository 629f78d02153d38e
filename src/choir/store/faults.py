"""When the database is away: which errors mean "unreachable for now" rather than a bug.

A PostgreSQL restart or outage surfaces as a driver error on whatever statement was running (a
refused connection, a connection cut mid-transaction, a pool that timed out waiting); SQLite's
equivalent is a database locked past its busy timeout or a disk that failed. None of them changed
anything (the transaction did not commit), so the caller may retry: they are answered with the
retryable code ``store_unavailable``, never ``internal``, which stays for bugs."""

from __future__ import annotations

from typing import Final

from sqlalchemy import exc as sa

# SQLite reports these as OperationalError too; everything else it reports so is a bug (no such table).
_SQLITE_TRANSIENT: Final = (
    "database is locked",
    "disk i/o error",
    "unable to open database",
    "database or disk is full",  # ENOSPC: the transaction rolled back; writes go on once there is room
)


class StoreUnavailable(Exception):
    """The database is unreachable for now; nothing was changed and the same request may be retried."""

    code: Final = "store_unavailable"


def unavailable(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) says the database is unreachable for now."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StoreUnavailable | sa.TimeoutError | sa.DisconnectionError):
            return True
        if isinstance(current, sa.DBAPIError) and (current.connection_invalidated or _transient(current)):
            return True
        current = current.__cause__ or current.__context__
    return False


def _transient(error: sa.DBAPIError) -> bool:
    if not isinstance(error, sa.OperationalError | sa.InterfaceError):
        return False
    module = type(error.orig).__module__ if error.orig is not None else ""
    if module.startswith("sqlite3"):
        return any(part in str(error.orig).lower() for part in _SQLITE_TRANSIENT)
    # psycopg's OperationalError is the connection failing (refused, cut, server shutting down);
    # a statement's own faults are ProgrammingError, IntegrityError, DataError.
    return True
