"""The settlement worker in the running server: the chain's own thread, woken by commits.

    coordinator commit ──wake()──▶ chain thread (its own event loop)
                                     │  open once: keys, checkpoint, chain (LiteSVM restored from the
                                     │  checkpoint's snapshot, or a cluster over RPC), genesis verified
                                     ▼
                             settle_once() × ≤ batches_per_wake_max ─▶ idle until a commit or idle_wait_s

Why a thread: LiteSVM runs the SPL Token program synchronously, and a batch (up to ~100 transactions and
a snapshot of every account) would stall the server's event loop for its whole length. Everything that
touches the chain runs on the chain thread's loop, so LiteSVM is only ever used from one thread; other
threads reach it through `reconcile()` / `verify()`, which hop onto that loop.

Bounded everywhere: batches per wake, a pause after a commit so that close commits share a batch,
a poll when idle (commits by other server processes wake nobody here), a capped back-off after a
failure, a stop that waits for the batch in progress and then cancels (safe: the journal finishes it
on the next start). Only what passes by itself is retried (a cluster or a database out of reach); a
batch that fails on chain, a change the chain cannot mirror or a chain that does not match its genesis
halts settlement: the worker stops, says so in its status and the log, and keeps its journal, since
going on could hide a drift.

With PostgreSQL, only the process holding the settlement advisory lock settles (as the duties do).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from choir.chain.anchor import verify_on_chain
from choir.chain.backend import ChainBackend
from choir.chain.embedded import open_embedded_chain
from choir.chain.errors import ChainError, SettlementHalted, TransientChainError
from choir.chain.genesis import ensure_genesis
from choir.chain.keys import ChainKeys, load_or_create_keys
from choir.chain.layout import CustodyLayout
from choir.chain.reconcile import Drift, reconcile
from choir.chain.settlement import SettlementConfig, SettlementWorker
from choir.chain.sqlfeed import SqlFeed, ledger_balances_at
from choir.chain.sqlstate import InclusionProof, SqlAnchorLog, SqlCursorStore
from choir.config import Settings
from choir.ledger import GENESIS_BALANCES, SUPPLY
from choir.program import Outcome
from choir.store.sql import AdvisoryLock, read_snapshot

log = logging.getLogger(__name__)
_T = TypeVar("_T")
CHAIN_KINDS: Final = ("litesvm", "rpc")
SETTLEMENT_LOCK_KEY: Final = 0x43484F495253  # "CHOIRS"; the duties hold "CHOIR"
_WAIT_POLL_S: Final = 0.02
# Failures that pass by themselves (a cluster or a database out of reach): retried with back-off.
_RETRYABLE: Final = (TransientChainError, OperationalError, OSError)


def chain_name(kind: str, authority: str) -> str:
    """The key of a chain's checkpoint and anchors: new keys make a new chain."""
    if kind not in CHAIN_KINDS:
        raise ValueError(f"unknown chain kind {kind!r}")
    return f"{kind}:{authority}"


def keys_path(settings: Settings) -> Path:
    """Where the settlement keys live: under the data directory, beside the embedded stores."""
    return settings.data_dir / "chain" / "keys.json"


@dataclass(frozen=True)
class ChainServiceConfig:
    settlement: SettlementConfig = field(default_factory=SettlementConfig)
    batches_per_wake_max: int = 32
    # After a commit, wait this long before settling: the commits of a burst share one batch.
    coalesce_s: float = 0.2
    idle_wait_s: float = 1.0
    retry_wait_s: float = 0.5
    retry_wait_max_s: float = 30.0
    stop_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.batches_per_wake_max < 1:
            raise ValueError("settle at least one batch per wake")
        if min(self.coalesce_s, self.idle_wait_s, self.retry_wait_s, self.stop_timeout_s) < 0:
            raise ValueError("waits cannot be negative")


@dataclass(frozen=True)
class ChainStatus:
    chain: str
    authority: str
    mint: str
    state: str  # starting | standby | running | halted | stopped
    settled_through: int
    error: str | None


class ChainService:
    """Settles the store's change log on one chain, from its own thread."""

    def __init__(
        self,
        engine: Engine,
        kind: str,
        keys: ChainKeys,
        *,
        rpc_url: str | None = None,
        config: ChainServiceConfig | None = None,
    ) -> None:
        if kind == "rpc" and not rpc_url:
            raise ChainError("CHOIR_CHAIN=rpc needs CHOIR_SOLANA_RPC_URL: the cluster to settle on")
        self.engine = engine
        self.kind = kind
        self.keys = keys
        self.rpc_url = rpc_url
        self.config = config or ChainServiceConfig()
        self.layout = CustodyLayout(keys.authority.pubkey())
        self.name = chain_name(kind, str(keys.authority.pubkey()))
        self.feed = SqlFeed(engine)
        self.cursor = SqlCursorStore(engine, self.name)
        self.anchors = SqlAnchorLog(engine, self.name)
        self._settled = 0
        self._state = "starting"
        self._error: str | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._closed = False
        # Created on the chain thread's loop.
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._batch_lock: asyncio.Lock | None = None
        self._backend: ChainBackend | None = None
        self._worker: SettlementWorker | None = None
        self._db_lock = AdvisoryLock(engine, SETTLEMENT_LOCK_KEY)

    # -- life --------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the chain service was already started")
        self._thread = threading.Thread(target=self._thread_main, name="chain-settlement", daemon=True)
        self._thread.start()
        self._ready.wait()

    async def stop(self) -> None:
        """Let the batch in progress finish (up to stop_timeout_s), then cancel it; idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None or self._closed:
            return
        self._closed = True
        with contextlib.suppress(RuntimeError):  # the loop already ended
            loop.call_soon_threadsafe(self._request_stop)
        await asyncio.to_thread(thread.join, self.config.stop_timeout_s)
        if thread.is_alive() and self._main is not None:
            log.warning(
                "settlement did not stop within %s s: cancelling its batch", self.config.stop_timeout_s
            )
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._main.cancel)
            await asyncio.to_thread(thread.join, self.config.stop_timeout_s)

    def wake(self, outcome: Outcome | None = None) -> None:
        """A coordinator listener (any thread): something may be ready to settle."""
        if outcome is not None and not (outcome.transfers or outcome.messages or outcome.threads):
            return
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not self._closed:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    def status(self) -> ChainStatus:
        return ChainStatus(
            self.name,
            str(self.layout.authority),
            str(self.layout.mint),
            self._state,
            self._settled,
            self._error,
        )

    # -- what others may ask (any thread, any loop) -------------------------------------------

    async def wait_settled(self, position: int | None = None, timeout_s: float = 10.0) -> int:
        """Wait until every change up to `position` (default: the store's head now) is settled."""
        target = await asyncio.to_thread(self.feed.head) if position is None else position
        deadline = time.monotonic() + timeout_s
        while self._settled < target:
            if self._state == "halted":
                raise SettlementHalted(self._error or "settlement halted")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"settled through {self._settled}, not {target}, after {timeout_s} s")
            self.wake()
            await asyncio.sleep(_WAIT_POLL_S)
        return self._settled

    async def reconcile(self) -> list[Drift]:
        """Chain balances against the ledger at the settled position: every difference, none fixed."""
        return await self._on_chain_loop(self._reconcile)

    async def message_proof(self, message_id: str, version: int = 1) -> InclusionProof:
        return await asyncio.to_thread(self.anchors.message_proof, message_id, version)

    async def ownership_proof(self, thread_id: str) -> InclusionProof:
        return await asyncio.to_thread(self.anchors.ownership_proof, thread_id)

    async def verify(self, proof: InclusionProof) -> bool:
        """Whether the proof holds against the root read back from the chain."""

        async def check() -> bool:
            return await verify_on_chain(self._opened()[0], proof.signature, proof.leaf, proof.proof)

        return await self._on_chain_loop(check)

    # -- the chain thread ---------------------------------------------------------------------

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException:
            log.exception("the settlement thread died")
            self._state = "stopped"
            self._ready.set()

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake, self._stop, self._batch_lock = asyncio.Event(), asyncio.Event(), asyncio.Lock()
        self._main = asyncio.current_task()
        self._ready.set()
        try:
            await self._serve()
        except asyncio.CancelledError:
            pass  # stop() gave up waiting: the journal finishes the batch at the next start
        finally:
            self._state = "stopped" if self._state != "halted" else self._state
            await asyncio.to_thread(self._db_lock.release)
            close = getattr(self._backend, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()

    def _request_stop(self) -> None:
        assert self._stop is not None and self._wake is not None
        self._stop.set()
        self._wake.set()

    async def _serve(self) -> None:
        assert self._stop is not None
        cfg = self.config
        backoff_s = cfg.retry_wait_s
        while not self._stop.is_set():
            try:
                if self._worker is None and not await self._open():
                    self._state = "standby"  # another process holds the settlement lock
                    await self._pause(cfg.idle_wait_s)
                    continue
                drained = await self._settle_some()
                self._error = None
                backoff_s = cfg.retry_wait_s
                if drained:
                    await self._idle()
            except _RETRYABLE as exc:
                self._error = f"{exc.__class__.__name__}: {exc}"
                log.warning(
                    "settlement on %s failed, retrying in %.1f s: %s", self.name, backoff_s, self._error
                )
                await self._pause(backoff_s)
                backoff_s = min(backoff_s * 2, cfg.retry_wait_max_s)
            except Exception as exc:
                # A batch that failed on chain, a change the chain cannot mirror, a genesis that does
                # not match: going on could hide a drift, so a person must look.
                self._state, self._error = "halted", f"{exc.__class__.__name__}: {exc}"
                log.error("settlement halted on %s: %s", self.name, self._error, exc_info=exc)
                await self._stop.wait()
                return

    async def _open(self) -> bool:
        if not await asyncio.to_thread(self._db_lock.check):
            return False
        keys = self.keys
        backend: ChainBackend
        if self.kind == "litesvm":
            backend = await open_embedded_chain(self.cursor, keys.authority, keys.multisig, GENESIS_BALANCES)
        else:
            from choir.chain.rpc_backend import RpcBackend

            backend = RpcBackend.connect(self.rpc_url)
            self._backend = backend  # closed on stop even if genesis fails
            retry = self.config.settlement.retry
            await ensure_genesis(backend, keys.authority, keys.multisig, GENESIS_BALANCES, retry=retry)
        worker = SettlementWorker(
            backend,
            keys.authority,
            keys.signing,
            self.feed,
            self.cursor,
            config=self.config.settlement,
            anchor_log=self.anchors,
        )
        checkpoint = await worker.start()
        self._backend, self._worker = backend, worker
        self._settled = checkpoint.position
        self._state = "running"
        log.info(
            "settling on %s (custody authority %s) from position %d",
            self.kind,
            keys.authority.pubkey(),
            self._settled,
        )
        return True

    async def _settle_some(self) -> bool:
        """Settle up to batches_per_wake_max batches; True when nothing is left."""
        assert self._batch_lock is not None
        _, worker = self._opened()
        for _ in range(self.config.batches_per_wake_max):
            async with self._batch_lock:
                report = await worker.settle_once()
            if report is None:
                return True
            self._settled = report.through
        return False

    async def _idle(self) -> None:
        assert self._wake is not None and self._stop is not None
        if await _wait(self._wake, self.config.idle_wait_s) and not self._stop.is_set():
            await _wait(self._stop, self.config.coalesce_s)
        self._wake.clear()

    async def _pause(self, seconds: float) -> None:
        assert self._stop is not None
        await _wait(self._stop, seconds)

    def _opened(self) -> tuple[ChainBackend, SettlementWorker]:
        if self._backend is None or self._worker is None:
            raise ChainError(
                f"the chain {self.name} is not open ({self._state}): {self._error or 'starting'}"
            )
        return self._backend, self._worker

    async def _reconcile(self) -> list[Drift]:
        assert self._batch_lock is not None
        async with self._batch_lock:
            backend, worker = self._opened()
            checkpoint = await self.cursor.load()
            if checkpoint.in_flight is not None:
                raise ChainError(
                    f"a batch through {checkpoint.in_flight.batch.through} is in flight: reconcile after it lands"
                )
            ledger = await asyncio.to_thread(self._ledger_at, checkpoint.position)
            return await reconcile(backend, worker.layout, ledger, SUPPLY)

    def _ledger_at(self, position: int) -> dict[str, int]:
        with read_snapshot(self.engine) as conn:
            return ledger_balances_at(conn, position)

    async def _on_chain_loop(self, make: Callable[[], Awaitable[_T]]) -> _T:
        loop = self._loop
        if loop is None or self._closed:
            raise ChainError("the chain service is not running")

        async def call() -> _T:
            return await make()

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(), loop))


async def _wait(event: asyncio.Event, timeout_s: float) -> bool:
    """Whether `event` was set within `timeout_s`."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout_s)
    return event.is_set()


def chain_service_for(
    settings: Settings, engine: Engine, config: ChainServiceConfig | None = None
) -> ChainService:
    """The settlement service `CHOIR_CHAIN` asks for, with the keys under the data directory."""
    if settings.chain not in CHAIN_KINDS:
        raise ValueError(f"CHOIR_CHAIN={settings.chain} settles nothing")
    keys = load_or_create_keys(keys_path(settings))
    return ChainService(engine, settings.chain, keys, rpc_url=settings.solana_rpc_url, config=config)
