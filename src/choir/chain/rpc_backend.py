"""A Solana cluster over JSON-RPC (solana-py `AsyncClient`; extra `choir[solana-rpc]`).

Thin on purpose: it only translates `ChainBackend` calls to RPC methods and RPC failures to the chain
errors; retries, expiry and idempotency are the shared logic's. Every call names its commitment:
reads and confirmations use `commitment` (default ``confirmed``, which optimistic confirmation makes
final in practice), preflight simulation uses the same level.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Sequence
from typing import Final, TypeVar

from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment, Confirmed
from solana.rpc.core import RPCException, RPCNoResultException
from solana.rpc.models import TxOpts
from solders.account import Account
from solders.commitment_config import CommitmentConfig, CommitmentLevel
from solders.pubkey import Pubkey
from solders.rpc.errors import SendTransactionPreflightFailureMessage
from solders.signature import Signature

from choir.chain.backend import RecentBlockhash, TxStatus
from choir.chain.errors import ChainError, TransactionRejected, TransientChainError
from choir.chain.wire import SignedTx

RPC_URL_ENV: Final = "CHOIR_SOLANA_RPC_URL"
_T = TypeVar("_T")
# Per-call limits of the RPC methods (getMultipleAccounts: 100 keys, getSignatureStatuses: 256).
_ACCOUNTS_PER_CALL: Final = 100
_STATUSES_PER_CALL: Final = 256
_LEVELS: Final = {
    "processed": CommitmentLevel.Processed,
    "confirmed": CommitmentLevel.Confirmed,
    "finalized": CommitmentLevel.Finalized,
}


def rpc_url_from_env() -> str:
    url = os.environ.get(RPC_URL_ENV, "").strip()
    if not url:
        raise ChainError(f"{RPC_URL_ENV} is not set: no cluster to settle on")
    return url


def classify_send_error(exc: Exception) -> ChainError | None:
    """Map a send failure to a chain error; None when the transaction had already been processed."""
    if isinstance(exc, SolanaRpcException | OSError | RPCNoResultException):
        return TransientChainError(f"RPC unreachable: {exc}")
    if isinstance(exc, RPCException):
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, SendTransactionPreflightFailureMessage):
            error = str(detail.data.err)
            if "AlreadyProcessed" in error:
                return None
            if "BlockhashNotFound" in error:
                # A lagging node may not know a fresh blockhash yet: the landing loop asks the chain
                # whether it really expired before anything is rebuilt.
                return TransientChainError(f"node does not know the blockhash: {error}")
            return TransactionRejected("preflight simulation failed", error)
        return TransientChainError(f"RPC error: {detail}")
    return TransientChainError(f"unexpected send failure: {exc!r}")


class RpcBackend:
    """`ChainBackend` over a cluster's JSON-RPC endpoint."""

    def __init__(self, client: AsyncClient, commitment: Commitment = Confirmed) -> None:
        if str(commitment) not in _LEVELS:
            raise ValueError(f"unknown commitment {commitment!r}")
        self.client = client
        self.commitment = commitment
        self._level = CommitmentConfig(_LEVELS[str(commitment)])

    @classmethod
    def connect(
        cls, url: str | None = None, commitment: Commitment = Confirmed, timeout_s: float = 10.0
    ) -> RpcBackend:
        return cls(
            AsyncClient(url or rpc_url_from_env(), commitment=commitment, timeout=timeout_s), commitment
        )

    async def close(self) -> None:
        await self.client.close()

    async def latest_blockhash(self) -> RecentBlockhash:
        value = (await self._call(self.client.get_latest_blockhash(self.commitment))).value
        return RecentBlockhash(value.blockhash, value.last_valid_block_height)

    async def is_blockhash_valid(self, recent: RecentBlockhash) -> bool:
        height = (await self._call(self.client.get_block_height(self.commitment))).value
        return bool(height <= recent.last_valid_block_height)

    async def send_raw(self, tx: SignedTx) -> TxStatus | None:
        options = TxOpts(skip_confirmation=True, skip_preflight=False, preflight_commitment=self.commitment)
        try:
            await self.client.send_raw_transaction(tx.raw, opts=options)
        except Exception as exc:  # every RPC failure is classified below, none is swallowed
            error = classify_send_error(exc)
            if error is not None:
                raise error from exc
        return None

    async def statuses(self, signatures: Sequence[Signature]) -> list[TxStatus | None]:
        out: list[TxStatus | None] = []
        for start in range(0, len(signatures), _STATUSES_PER_CALL):
            chunk = list(signatures[start : start + _STATUSES_PER_CALL])
            call = self.client.get_signature_statuses(chunk, search_transaction_history=True)
            values = (await self._call(call)).value
            for signature, status in zip(chunk, values, strict=True):
                if status is None or not status.satisfies_commitment(self._level):
                    out.append(None)
                else:
                    out.append(TxStatus(signature, None if status.err is None else str(status.err)))
        return out

    async def get_accounts(self, addresses: Sequence[Pubkey]) -> list[Account | None]:
        out: list[Account | None] = []
        for start in range(0, len(addresses), _ACCOUNTS_PER_CALL):
            chunk = list(addresses[start : start + _ACCOUNTS_PER_CALL])
            out += (await self._call(self.client.get_multiple_accounts(chunk, self.commitment))).value
        return out

    async def transaction_logs(self, signature: Signature) -> list[str] | None:
        call = self.client.get_transaction(
            signature, encoding="json", commitment=self.commitment, max_supported_transaction_version=0
        )
        value = (await self._call(call)).value
        if value is None or value.transaction.meta is None:
            return None
        return list(value.transaction.meta.log_messages or [])

    async def rent_exempt_lamports(self, data_size: int) -> int:
        call = self.client.get_minimum_balance_for_rent_exemption(data_size, self.commitment)
        return int((await self._call(call)).value)

    @staticmethod
    async def _call(awaitable: Awaitable[_T]) -> _T:
        try:
            return await awaitable
        except (SolanaRpcException, OSError, RPCException, RPCNoResultException) as exc:
            raise TransientChainError(f"RPC call failed: {exc}") from exc
