"""Solana settlement: the CHOIR mint, custody accounts, batched transfers, memo anchors, reconciliation.

The RPC backend needs the `solana-rpc` extra: import it from `choir.chain.rpc_backend`.
"""

from choir.chain.anchor import (
    AnchoredBatch,
    AnchorLog,
    AnchorMemo,
    read_anchor,
    verify_on_chain,
)
from choir.chain.backend import ChainBackend, RecentBlockhash, RetryPolicy, SnapshottingBackend, TxStatus
from choir.chain.coherence import coherence_differences
from choir.chain.cursor import Checkpoint, CursorStore, FileCursorStore
from choir.chain.embedded import open_embedded_chain
from choir.chain.errors import (
    BlockhashExpired,
    ChainError,
    SettlementHalted,
    TransactionRejected,
    TransactionTooLarge,
    TransientChainError,
)
from choir.chain.feed import ChainTransfer, FeedBatch, MemoryFeed, SettlementFeed
from choir.chain.genesis import (
    DECIMALS,
    GENESIS_BALANCES,
    SUPPLY,
    GenesisReport,
    TreasuryMultisig,
    ensure_genesis,
)
from choir.chain.layout import CustodyLayout, custody_seed
from choir.chain.litesvm_backend import LiteSvmBackend
from choir.chain.merkle import MerkleProof, MerkleTree, merkle_root, verify_proof
from choir.chain.reconcile import Drift, reconcile
from choir.chain.records import MessageRecord, OwnershipRecord, co_author_set_hash
from choir.chain.settlement import BatchReport, SettlementConfig, SettlementWorker
from choir.chain.wire import PACKET_DATA_SIZE
from choir.chain.withdraw import withdraw_instructions

__all__ = [
    "DECIMALS",
    "GENESIS_BALANCES",
    "PACKET_DATA_SIZE",
    "SUPPLY",
    "AnchorLog",
    "AnchorMemo",
    "AnchoredBatch",
    "BatchReport",
    "BlockhashExpired",
    "ChainBackend",
    "ChainError",
    "ChainTransfer",
    "Checkpoint",
    "CursorStore",
    "CustodyLayout",
    "Drift",
    "FeedBatch",
    "FileCursorStore",
    "GenesisReport",
    "LiteSvmBackend",
    "MemoryFeed",
    "MerkleProof",
    "MerkleTree",
    "MessageRecord",
    "OwnershipRecord",
    "RecentBlockhash",
    "RetryPolicy",
    "SettlementConfig",
    "SettlementFeed",
    "SettlementHalted",
    "SettlementWorker",
    "SnapshottingBackend",
    "TransactionRejected",
    "TransactionTooLarge",
    "TransientChainError",
    "TreasuryMultisig",
    "TxStatus",
    "co_author_set_hash",
    "coherence_differences",
    "custody_seed",
    "ensure_genesis",
    "merkle_root",
    "open_embedded_chain",
    "read_anchor",
    "reconcile",
    "verify_on_chain",
    "verify_proof",
    "withdraw_instructions",
]
