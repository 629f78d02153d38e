"""What an action needs of the running server, and the reads every action shares: the one snapshot
it takes, and the thread or message it may read (through ``Thread.readable_by``, the one rule).

The composition root's runtime satisfies ``Context``; REST routes and ``/ws`` handlers hand it to
the actions and never reach past them into the store or the writer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from choir.actions.refusals import Refusal
from choir.auth.service import AuthService
from choir.config import Settings
from choir.engine import Clock, Snapshot, Writer
from choir.program import Thread
from choir.store.sql import Store, read_snapshot

if TYPE_CHECKING:
    from choir.chain.service import ChainService
    from choir.chorus.retrieval import Retriever
    from choir.chorus.service import ChorusService

T = TypeVar("T")


class Context(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def store(self) -> Store: ...
    @property
    def writer(self) -> Writer: ...
    @property
    def auth(self) -> AuthService: ...
    @property
    def retriever(self) -> Retriever | None: ...
    @property
    def chorus(self) -> ChorusService | None: ...
    @property
    def chain(self) -> ChainService | None: ...

    async def tell_user(self, address: str, kind: str, thread_id: str | None, data: dict[str, Any]) -> None:
        """Tell every connection of ``address``, on every process, of a change of their own view."""
        ...


async def snapshot(ctx: Context) -> Snapshot:
    """The committed snapshot an action reads (caught up with other processes first, when several
    share PostgreSQL). An action takes one and reads only it."""
    if ctx.store.shared:
        await asyncio.to_thread(ctx.writer.sync.refresh_if_stale)
    return ctx.writer.snapshot()


def readable_thread(snap: Snapshot, thread_id: str, address: str | None) -> Thread:
    """The thread, for a reader who may read it; to anyone else a private thread answers as an id
    nobody holds (as GitHub answers for a private repository)."""
    thread = snap.threads.get(thread_id)
    if thread is None or not thread.readable_by(address):
        raise Refusal("thread_not_found", f"no thread {thread_id!r}")
    return thread


def readable_threads(snap: Snapshot, address: str | None) -> list[Thread]:
    return [t for t in snap.threads.values() if t.readable_by(address)]


def require_user(address: str | None) -> str:
    if address is None:
        raise Refusal("unauthorized", "sign in first")
    return address


def read_store(ctx: Context, read: Callable[..., T], *args: Any) -> Awaitable[T]:
    """Run a store read in one snapshot, off the event loop."""

    def run() -> T:
        with read_snapshot(ctx.store.engine) as conn:
            return read(conn, *args)

    return asyncio.to_thread(run)


def write_store(ctx: Context, write: Callable[..., T], *args: Any) -> Awaitable[T]:
    """Run a write of a person's own view (follows, read marks) in one transaction, off the loop."""

    def run() -> T:
        with ctx.store.engine.begin() as conn:
            return write(conn, *args)

    return asyncio.to_thread(run)
