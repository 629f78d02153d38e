"""Helpers for the chain tests: a genesis'd LiteSVM chain, and backends that record or crash."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from solders.account import Account
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.token.state import TokenAccount

from choir.chain import (
    GENESIS_BALANCES,
    SUPPLY,
    AnchorLog,
    CustodyLayout,
    FileCursorStore,
    LiteSvmBackend,
    MemoryFeed,
    SettlementConfig,
    SettlementWorker,
    TreasuryMultisig,
    ensure_genesis,
    reconcile,
)
from choir.chain.backend import RecentBlockhash, TxStatus
from choir.chain.wire import PACKET_DATA_SIZE, SignedTx

FEE_PAYER_LAMPORTS = 10**12


class SimulatedCrash(BaseException):
    """The process dies here: nothing after it runs, no handler catches it."""


class RecordingBackend:
    """A LiteSVM backend that records every transaction sent and checks its size on the wire."""

    def __init__(self, inner: LiteSvmBackend) -> None:
        self.inner = inner
        self.sent: list[SignedTx] = []

    async def latest_blockhash(self) -> RecentBlockhash:
        return await self.inner.latest_blockhash()

    async def is_blockhash_valid(self, recent: RecentBlockhash) -> bool:
        return await self.inner.is_blockhash_valid(recent)

    async def send_raw(self, tx: SignedTx) -> TxStatus | None:
        assert len(tx.raw) <= PACKET_DATA_SIZE, f"{len(tx.raw)}-byte transaction"
        assert len(bytes(tx.to_transaction())) == len(tx.raw)
        self.sent.append(tx)
        return await self.inner.send_raw(tx)

    async def statuses(self, signatures: Sequence[Signature]) -> list[TxStatus | None]:
        return await self.inner.statuses(signatures)

    async def get_accounts(self, addresses: Sequence[Pubkey]) -> list[Account | None]:
        return await self.inner.get_accounts(addresses)

    async def transaction_logs(self, signature: Signature) -> list[str] | None:
        return await self.inner.transaction_logs(signature)

    async def rent_exempt_lamports(self, data_size: int) -> int:
        return await self.inner.rent_exempt_lamports(data_size)

    def snapshot(self) -> bytes:
        return self.inner.snapshot()


class CrashingBackend(RecordingBackend):
    """Dies right after its `crash_after`-th send has landed on chain."""

    def __init__(self, inner: LiteSvmBackend, crash_after: int) -> None:
        super().__init__(inner)
        self.crash_after = crash_after

    async def send_raw(self, tx: SignedTx) -> TxStatus | None:
        status = await super().send_raw(tx)
        if len(self.sent) == self.crash_after:
            raise SimulatedCrash(f"crash after send {self.crash_after}")
        return status


class DroppingBackend(RecordingBackend):
    """Loses the `drop`-th send in the network: it never reaches the chain.

    The next time the blockhash's validity is asked, time has passed on the cluster and the blockhash
    is too old: the lost transaction can never land, while the others sent with it did.
    """

    def __init__(self, inner: LiteSvmBackend, drop: int) -> None:
        super().__init__(inner)
        self.drop = drop
        self.dropped: list[SignedTx] = []
        self._expire_next_check = False

    async def send_raw(self, tx: SignedTx) -> TxStatus | None:
        if len(self.sent) + 1 == self.drop and not self.dropped:
            self.sent.append(tx)
            self.dropped.append(tx)
            self._expire_next_check = True
            return None
        return await super().send_raw(tx)

    async def is_blockhash_valid(self, recent: RecentBlockhash) -> bool:
        if self._expire_next_check:
            self._expire_next_check = False
            self.inner.svm.expire_blockhash()
        return await super().is_blockhash_valid(recent)


@dataclass
class Chain:
    backend: LiteSvmBackend
    authority: Keypair
    treasury_keys: list[Keypair]
    multisig: TreasuryMultisig
    layout: CustodyLayout = field(init=False)

    def __post_init__(self) -> None:
        self.layout = CustodyLayout(self.authority.pubkey())

    @property
    def signing_keys(self) -> list[Keypair]:
        return self.treasury_keys[: self.multisig.threshold]

    def worker(
        self,
        backend: object,
        feed: MemoryFeed,
        directory: Path,
        config: SettlementConfig | None = None,
    ) -> SettlementWorker:
        return SettlementWorker(
            backend,  # type: ignore[arg-type]
            self.authority,
            self.signing_keys,
            feed,
            FileCursorStore(directory / "checkpoint.json"),
            config=config,
            anchor_log=AnchorLog(directory / "anchors.jsonl"),
        )

    def balance(self, name: str) -> int:
        account = self.backend.svm.get_account(self.layout.token_address(name))
        return 0 if account is None else TokenAccount.from_bytes(bytes(account.data)).amount

    async def drifts(self, feed: MemoryFeed) -> list[str]:
        return [str(d) for d in await reconcile(self.backend, self.layout, feed.balances, SUPPLY)]


async def make_chain(threshold: int = 2, signers: int = 3, backend: LiteSvmBackend | None = None) -> Chain:
    backend = backend or LiteSvmBackend()
    authority = Keypair()
    backend.fund(authority.pubkey(), FEE_PAYER_LAMPORTS)
    keys = [Keypair() for _ in range(signers)]
    multisig = TreasuryMultisig(threshold, tuple(k.pubkey() for k in keys))
    await ensure_genesis(backend, authority, multisig, GENESIS_BALANCES)
    return Chain(backend, authority, keys, multisig)


def new_address() -> str:
    return str(Keypair().pubkey())
