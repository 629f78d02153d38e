"""The one interface the settlement layer needs from a chain, and the logic shared by every backend.

Two backends implement `ChainBackend`: `LiteSvmBackend` (in process, the embedded default) and
`RpcBackend` (any cluster over JSON-RPC). Everything that is not talking to the chain — building,
packing, signing, retrying, expiry, idempotency — lives outside them, so both behave the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

from solders.account import Account
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.signature import Signature

from choir.chain.errors import BlockhashExpired, TransientChainError
from choir.chain.wire import SignedTx


@dataclass(frozen=True, slots=True)
class TxStatus:
    """A transaction that landed: `error` is None when it succeeded, else the runtime's error."""

    signature: Signature
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class RecentBlockhash:
    blockhash: Hash
    last_valid_block_height: int


@runtime_checkable
class ChainBackend(Protocol):
    async def latest_blockhash(self) -> RecentBlockhash:
        """A blockhash no earlier call returned, with the last block height at which it is valid."""
        ...

    async def is_blockhash_valid(self, recent: RecentBlockhash) -> bool:
        """Whether a transaction signed with this blockhash can still land."""
        ...

    async def send_raw(self, tx: SignedTx) -> TxStatus | None:
        """Submit a signed transaction.

        Returns its status when the backend knows it at once (LiteSVM), None when it is in flight.
        A transaction that already landed is not an error. Raises `BlockhashExpired` when it can
        never land, `TransactionRejected` when the cluster refuses it, `TransientChainError` to retry.
        """
        ...

    async def statuses(self, signatures: Sequence[Signature]) -> list[TxStatus | None]:
        """The status of each landed transaction, None for one the chain does not know."""
        ...

    async def get_accounts(self, addresses: Sequence[Pubkey]) -> list[Account | None]: ...

    async def transaction_logs(self, signature: Signature) -> list[str] | None: ...

    async def rent_exempt_lamports(self, data_size: int) -> int: ...


@runtime_checkable
class SnapshottingBackend(Protocol):
    """A chain that lives in this process: its state must be saved with the settlement cursor."""

    def snapshot(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds of the landing loop: every retry and wait has a limit."""

    send_attempts_max: int = 5
    polls_per_send_max: int = 40
    poll_interval_s: float = 0.5
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 5.0


DEFAULT_RETRY: Final = RetryPolicy()


async def land(
    backend: ChainBackend, tx: SignedTx, recent: RecentBlockhash, policy: RetryPolicy = DEFAULT_RETRY
) -> TxStatus:
    """Send until the transaction has landed (ok or failed) and return its status; see `land_all`."""
    [status] = await land_all(backend, [tx], recent, policy)
    return status


async def land_all(
    backend: ChainBackend,
    txs: Sequence[SignedTx],
    recent: RecentBlockhash,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> list[TxStatus]:
    """Send transactions that may execute in any order, together, until each has landed (ok or failed).

    Resending the same bytes is safe: a cluster processes one signature at most once. Raises
    `BlockhashExpired` only once the chain says the blockhash is no longer valid *and* some transaction
    is still unknown, so it can never land and may be re-signed; `TransientChainError` when the bounds
    are exhausted (their fate is then unknown and the caller must not re-sign them).
    """
    landed: dict[int, TxStatus] = {}
    backoff_s = policy.backoff_initial_s
    for _ in range(policy.send_attempts_max):
        refused = False
        for i, tx in enumerate(txs):
            if i in landed:
                continue
            try:
                status = await backend.send_raw(tx)
            except TransientChainError:
                refused, status = True, None
            if status is not None:
                landed[i] = status
        # After a refused send, look once (they may have landed through an earlier send); else poll.
        for _ in range(1 if refused else policy.polls_per_send_max):
            if await _look(backend, txs, landed, recent):
                return [landed[i] for i in range(len(txs))]
            await asyncio.sleep(policy.poll_interval_s)
        if refused:
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, policy.backoff_max_s)
    raise TransientChainError(
        f"{len(txs) - len(landed)} transactions not confirmed after {policy.send_attempts_max} sends"
    )


async def _look(
    backend: ChainBackend, txs: Sequence[SignedTx], landed: dict[int, TxStatus], recent: RecentBlockhash
) -> bool:
    """Record what landed; True when all did. Raises `BlockhashExpired` when the rest never can."""
    for attempt in range(2):
        pending = [i for i in range(len(txs)) if i not in landed]
        if not pending:
            return True
        found = await backend.statuses([txs[i].signature for i in pending])
        for i, status in zip(pending, found, strict=True):
            if status is not None:
                landed[i] = status
        if len(landed) == len(txs):
            return True
        # Expired: look once more (one may have landed in the last valid block) before calling it dead.
        if attempt == 0 and await backend.is_blockhash_valid(recent):
            return False
    raise BlockhashExpired(f"{len(txs) - len(landed)} transactions expired unlanded")
