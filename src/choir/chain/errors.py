"""Errors of the settlement layer.

ChainError
 ├── TransactionTooLarge      a transaction would exceed the 1232-byte packet limit
 ├── BlockhashExpired         a transaction can no longer land: rebuild it with a fresh blockhash
 ├── TransientChainError      the cluster or the connection failed for now: retry later
 ├── TransactionRejected      the cluster refused or failed a transaction (carries its error)
 └── SettlementHalted         the worker stopped because going on could pay something twice or
                              hide a drift; a person must look (the journal is kept as it is)
"""

from __future__ import annotations


class ChainError(Exception):
    """Base of every error the chain layer raises on purpose."""


class TransactionTooLarge(ChainError):
    pass


class BlockhashExpired(ChainError):
    pass


class TransientChainError(ChainError):
    pass


class TransactionRejected(ChainError):
    def __init__(self, message: str, error: str) -> None:
        super().__init__(f"{message}: {error}")
        self.error = error


class SettlementHalted(ChainError):
    pass
