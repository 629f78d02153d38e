"""The CHOIR ledger: accounts, transfers, balances; conservation by construction.

Pure: no clock, no I/O. The coordinator persists what this computes.
"""

from choir.ledger.accounts import (
    DECIMALS,
    GENESIS_BALANCES,
    ONE_CHOIR,
    POOL_NEW_MESSAGES,
    SUPPLY,
    TREASURY,
    AccountClass,
    account_class,
    escrow_account,
    thread_account,
    totals_by_class,
    user_account,
    withdrawn_account,
)
from choir.ledger.ledger import Ledger, LedgerError
from choir.ledger.transfer import Transfer, TransferKind, derive_transfer_id

__all__ = [
    "DECIMALS",
    "GENESIS_BALANCES",
    "ONE_CHOIR",
    "POOL_NEW_MESSAGES",
    "SUPPLY",
    "TREASURY",
    "AccountClass",
    "Ledger",
    "LedgerError",
    "Transfer",
    "TransferKind",
    "account_class",
    "derive_transfer_id",
    "escrow_account",
    "thread_account",
    "totals_by_class",
    "user_account",
    "withdrawn_account",
]
