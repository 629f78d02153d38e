"""The embedded chain: LiteSVM in this process, running the real SPL Token and Memo programs.

Signature verification stays on. LiteSVM has no slots that pass by themselves, so every
`latest_blockhash()` expires the current one first: each plan then gets a blockhash no earlier plan
used, as on a cluster, and a journaled transaction of an earlier plan is known to be dead.

State lives in memory; `snapshot()` / `restore()` round-trip every account the settlement layer made
(everything the SPL Token program owns, plus the funded system accounts such as the fee payer) through
`get_account` / `set_account`. The worker saves the snapshot together with its cursor.

LiteSVM remembers only its most recent transactions (32 by default; `history_capacity` here), and none
across a restore. Two consequences, both handled: the history must cover a batch in flight (statuses of
its journaled signatures, and the runtime's own duplicate check), so it is sized well above the
transactions of a batch; and anchors must stay readable for ever, so the backend keeps each anchor memo
it saw (one line per batch) and carries them in its snapshot.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Final

from solders.account import Account
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata

from choir.chain.anchor import ANCHOR_PREFIX
from choir.chain.backend import RecentBlockhash, TxStatus
from choir.chain.errors import BlockhashExpired, ChainError, TransactionRejected
from choir.chain.programs import TOKEN_PROGRAM_ID
from choir.chain.wire import SignedTx

_SNAPSHOT_MAGIC: Final = b"CHOIRSVM\x02"
# A batch is at most a few hundred transactions (1408 transfers / 13 per transaction ~ 109, plus
# account creations); 8192 keeps dozens of batches, a few tens of MB of metadata.
HISTORY_CAPACITY: Final = 8192
_HISTORY_CAPACITY_MIN: Final = 1024
_ANCHOR_MARK: Final = ANCHOR_PREFIX.encode()
_LOG_PREFIX: Final = "Program log: "
_MEMOS_MAX: Final = 10_000_000
# LiteSVM counts no block height; a constant keeps RecentBlockhash meaningful for the journal.
_LITESVM_HEIGHT: Final = 0
_ACCOUNTS_MAX: Final = 10_000_000


def _error_text(result: FailedTransactionMetadata) -> str:
    return str(result.err())


class LiteSvmBackend:
    """`ChainBackend` over an in-process LiteSVM."""

    def __init__(self, svm: LiteSVM | None = None, history_capacity: int = HISTORY_CAPACITY) -> None:
        if history_capacity < _HISTORY_CAPACITY_MIN:
            raise ValueError(f"a history of {history_capacity} cannot cover a batch in flight")
        self.svm = svm if svm is not None else LiteSVM()
        self.svm.with_transaction_history(history_capacity)
        if not self.svm.get_sigverify():
            raise ChainError("LiteSVM must verify signatures: settlement is only tested that way")
        self._funded: set[Pubkey] = set()
        # Anchor memo text by signature: kept past LiteSVM's bounded history, and in snapshots.
        self._anchors: dict[Signature, str] = {}

    # -- ChainBackend -------------------------------------------------------------------------

    async def latest_blockhash(self) -> RecentBlockhash:
        self.svm.expire_blockhash()
        return RecentBlockhash(self.svm.latest_blockhash(), _LITESVM_HEIGHT)

    async def is_blockhash_valid(self, recent: RecentBlockhash) -> bool:
        return recent.blockhash == self.svm.latest_blockhash()

    async def send_raw(self, tx: SignedTx) -> TxStatus | None:
        result = self.svm.send_transaction(tx.to_transaction())
        if isinstance(result, TransactionMetadata):
            if _ANCHOR_MARK in tx.raw:
                self._remember_anchor(tx.signature, result.logs())
            return TxStatus(tx.signature)
        landed = self.svm.get_transaction(tx.signature)
        if landed is not None:
            # Executed and failed (the fee was charged), or a resend of one that already landed.
            return _status(tx.signature, landed)
        error = _error_text(result)
        if "BlockhashNotFound" in error:
            raise BlockhashExpired(f"transaction {tx.signature}: {error}")
        raise TransactionRejected(f"transaction {tx.signature} refused", error)

    async def statuses(self, signatures: Sequence[Signature]) -> list[TxStatus | None]:
        out: list[TxStatus | None] = []
        for signature in signatures:
            landed = self.svm.get_transaction(signature)
            out.append(None if landed is None else _status(signature, landed))
        return out

    async def get_accounts(self, addresses: Sequence[Pubkey]) -> list[Account | None]:
        return [self.svm.get_account(a) for a in addresses]

    async def transaction_logs(self, signature: Signature) -> list[str] | None:
        landed = self.svm.get_transaction(signature)
        if landed is None:
            anchor = self._anchors.get(signature)
            # Older than the history: only its anchor memo line is known, which is all that is asked.
            return None if anchor is None else [_LOG_PREFIX + anchor]
        meta = landed.meta() if isinstance(landed, FailedTransactionMetadata) else landed
        return list(meta.logs())

    async def rent_exempt_lamports(self, data_size: int) -> int:
        return self.svm.minimum_balance_for_rent_exemption(data_size)

    # -- embedded only ------------------------------------------------------------------------

    def _remember_anchor(self, signature: Signature, logs: Sequence[str]) -> None:
        for line in logs:
            if line.startswith(_LOG_PREFIX + ANCHOR_PREFIX):
                self._anchors[signature] = line[len(_LOG_PREFIX) :]

    def fund(self, address: Pubkey, lamports: int) -> None:
        """Give a system account lamports (the fee payer); it is then part of every snapshot."""
        result = self.svm.airdrop(address, lamports)
        if isinstance(result, FailedTransactionMetadata):
            raise ChainError(f"airdrop to {address} failed: {_error_text(result)}")
        self._funded.add(address)

    def snapshot(self, extra: Iterable[Pubkey] = ()) -> bytes:
        """Every account the settlement layer made, as bytes: magic, count, (key, length, account)*."""
        accounts = dict(self.svm.get_program_accounts(TOKEN_PROGRAM_ID))
        for address in {*self._funded, *extra}:
            account = self.svm.get_account(address)
            if account is not None:
                accounts[address] = account
        parts = [_SNAPSHOT_MAGIC, struct.pack("<I", len(accounts))]
        for address in sorted(accounts, key=bytes):
            raw = bytes(accounts[address])
            parts += [bytes(address), struct.pack("<I", len(raw)), raw]
        parts.append(struct.pack("<I", len(self._anchors)))
        for signature, text in self._anchors.items():
            encoded = text.encode()
            parts += [bytes(signature), struct.pack("<I", len(encoded)), encoded]
        return b"".join(parts)

    @classmethod
    def restore(cls, snapshot: bytes) -> LiteSvmBackend:
        """A fresh LiteSVM holding exactly the accounts of the snapshot."""
        backend = cls()
        accounts, anchors = _parse_snapshot(snapshot)
        for address, account in accounts:
            backend.svm.set_account(address, account)
            if account.owner != TOKEN_PROGRAM_ID:
                backend._funded.add(address)
        backend._anchors.update(anchors)
        return backend


def _status(signature: Signature, landed: TransactionMetadata | FailedTransactionMetadata) -> TxStatus:
    if isinstance(landed, FailedTransactionMetadata):
        return TxStatus(signature, _error_text(landed))
    return TxStatus(signature)


def _parse_snapshot(snapshot: bytes) -> tuple[list[tuple[Pubkey, Account]], dict[Signature, str]]:
    if not snapshot.startswith(_SNAPSHOT_MAGIC):
        raise ValueError("not a Choir LiteSVM snapshot")
    offset = len(_SNAPSHOT_MAGIC)
    try:
        accounts, offset = _read_records(snapshot, offset, 32, _ACCOUNTS_MAX)
        anchors, offset = _read_records(snapshot, offset, 64, _MEMOS_MAX)
        parsed_accounts = [(Pubkey.from_bytes(key), Account.from_bytes(raw)) for key, raw in accounts]
        parsed_anchors = {Signature.from_bytes(key): raw.decode() for key, raw in anchors}
    except (struct.error, ValueError) as exc:
        raise ValueError(f"truncated or corrupt LiteSVM snapshot: {exc}") from None
    if offset != len(snapshot):
        raise ValueError("trailing bytes after the LiteSVM snapshot")
    return parsed_accounts, parsed_anchors


def _read_records(
    data: bytes, offset: int, key_size: int, count_max: int
) -> tuple[list[tuple[bytes, bytes]], int]:
    """A u32 count, then (key, u32 length, value) records."""
    (count,) = struct.unpack_from("<I", data, offset)
    if count > count_max:
        raise ValueError(f"snapshot claims {count} records")
    offset += 4
    out: list[tuple[bytes, bytes]] = []
    for _ in range(count):
        key = data[offset : offset + key_size]
        (length,) = struct.unpack_from("<I", data, offset + key_size)
        offset += key_size + 4
        value = data[offset : offset + length]
        if len(key) != key_size or len(value) != length:
            raise ValueError("record runs past the end")
        out.append((key, value))
        offset += length
    return out, offset
