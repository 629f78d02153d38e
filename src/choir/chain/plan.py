"""Planning a batch: ledger transfers → groups of instructions → as few legacy transactions as fit.

Order is kept: transfers are packed in ledger order and transactions are sent one after the other, so
the chain never sees a debit before the credit that funds it. A group is one transfer plus whatever
makes it possible (creating the credited custody account or the wallet's associated token account the
first time it is credited); groups are never split across transactions.

Two transactions of one plan never carry the same instructions (same instructions + same payer + same
blockhash = same signature, and a cluster would drop the second as already processed, losing a
transfer). When packing produces a repeat, it gets a nonce memo naming its first ledger position.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final

from solders.pubkey import Pubkey

from choir.chain.anchor import NONCE_PREFIX
from choir.chain.errors import TransactionTooLarge
from choir.chain.feed import ChainTransfer
from choir.chain.instructions import (
    create_account_with_seed,
    create_associated_token_account_idempotent,
    initialize_account3,
    memo,
    token_transfer,
    token_transfer_metas,
)
from choir.chain.layout import TREASURY, USER_PREFIX, CustodyLayout, custody_seed, is_withdrawal_sink
from choir.chain.programs import TOKEN_ACCOUNT_SIZE, TOKEN_PROGRAM_ID
from choir.chain.wire import Ix, Meta, TxPacker

_ADDRESS_CACHE_MAX: Final = 1 << 16


@dataclass(frozen=True, slots=True)
class PlannedTx:
    """Instructions of one transaction: transfers [first, end) of the plan's list, maybe the anchor."""

    ixs: tuple[Ix, ...]
    first: int
    end: int
    anchor: bool


class BatchPlanner:
    def __init__(
        self, layout: CustodyLayout, treasury_signers: Sequence[Pubkey], rent_lamports_per_account: int
    ) -> None:
        self.layout = layout
        self._payer = bytes(layout.authority)
        self._treasury_signers = tuple(treasury_signers)
        self._rent = rent_lamports_per_account
        # name -> (address, raw address, the address as a writable instruction account)
        self._addresses: dict[str, tuple[Pubkey, bytes, Meta]] = {}
        self._authority_meta = Meta(self._payer, True, False)

    def plan(
        self,
        transfers: Sequence[ChainTransfer],
        existing: Collection[Pubkey],
        anchor_memo: str | None,
    ) -> list[PlannedTx]:
        """Pack the transfers (and the anchor memo, last) into transactions.

        `existing`: token accounts known to exist on chain; every other credited account is created by
        the group of the first transfer that credits it.
        """
        created: set[Pubkey] = set()
        groups = [self._group(t, existing, created) for t in transfers]
        txs: list[PlannedTx] = []
        seen: set[tuple[Ix, ...]] = set()
        start = 0
        while start < len(groups):
            packer = TxPacker(self._payer)
            end = start
            while end < len(groups) and packer.try_add(groups[end]):
                end += 1
            if end == start:
                raise TransactionTooLarge(f"transfer {transfers[start].id} alone does not fit a transaction")
            is_anchor = end == len(groups) and anchor_memo is not None and packer.try_add([memo(anchor_memo)])
            ixs = tuple(packer.instructions)
            if ixs in seen and not is_anchor:
                ixs, end = self._unique(groups, start, end, transfers[start].position)
            seen.add(ixs)
            txs.append(PlannedTx(ixs, start, end, is_anchor))
            start = end
        if anchor_memo is not None and not (txs and txs[-1].anchor):
            txs.append(PlannedTx((memo(anchor_memo),), len(groups), len(groups), True))
        return txs

    def _unique(
        self, groups: list[list[Ix]], start: int, end: int, position: int
    ) -> tuple[tuple[Ix, ...], int]:
        # The nonce names a ledger position no other transaction starts at, so the result is unique.
        nonce = [memo(f"{NONCE_PREFIX}{position}")]
        while end > start:
            packer = TxPacker(self._payer)
            for group in groups[start:end]:
                packer.try_add(group)
            if packer.try_add(nonce):
                return tuple(packer.instructions), end
            end -= 1
        raise TransactionTooLarge(f"transaction at position {position} cannot take a nonce memo")

    def token_address(self, name: str) -> Pubkey:
        return self._entry(name)[0]

    def _entry(self, name: str) -> tuple[Pubkey, bytes, Meta]:
        entry = self._addresses.get(name)
        if entry is None:
            if len(self._addresses) >= _ADDRESS_CACHE_MAX:
                self._addresses.clear()
            address = self.layout.token_address(name)
            raw = bytes(address)
            entry = self._addresses[name] = (address, raw, Meta(raw, False, True))
        return entry

    def _group(self, transfer: ChainTransfer, existing: Collection[Pubkey], created: set[Pubkey]) -> list[Ix]:
        debit, credit = transfer.debit, transfer.credit
        if is_withdrawal_sink(debit):
            raise ValueError(f"transfer {transfer.id}: CHOIR in a wallet cannot be moved back by the ledger")
        if is_withdrawal_sink(credit) and debit != USER_PREFIX + credit.partition(":")[2]:
            raise ValueError(
                f"transfer {transfer.id}: a withdrawal to {credit} must come from its own user account"
            )
        group: list[Ix] = []
        destination, target, target_meta = self._entry(credit)
        if destination not in existing and destination not in created:
            group += self._create(credit, destination)
            created.add(destination)
        _, source, source_meta = self._entry(debit)
        if debit == TREASURY:
            multisig = self.layout.treasury_multisig
            group.append(
                token_transfer(
                    Pubkey.from_bytes(source),
                    Pubkey.from_bytes(target),
                    multisig,
                    transfer.amount,
                    self._treasury_signers,
                )
            )
        else:
            group.append(
                token_transfer_metas(source_meta, target_meta, self._authority_meta, transfer.amount)
            )
        return group

    def _create(self, name: str, address: Pubkey) -> list[Ix]:
        authority = self.layout.authority
        if is_withdrawal_sink(name):
            wallet = self.layout.withdrawal_wallet(name)
            return [create_associated_token_account_idempotent(authority, wallet, self.layout.mint, address)]
        return [
            create_account_with_seed(
                authority,
                address,
                authority,
                custody_seed(name),
                self._rent,
                TOKEN_ACCOUNT_SIZE,
                TOKEN_PROGRAM_ID,
            ),
            initialize_account3(address, self.layout.mint, self.layout.token_owner(name)),
        ]
