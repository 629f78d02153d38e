"""Choir: group chat where an AI answers by citing the community's prior messages,
and the people cited, and the co-authors of a thread, earn CHOIR.

This module is the public API; everything else is internal and may change.
"""

from typing import Any as _Any

from choir.config import Settings
from choir.coordinator import AsyncCoordinator, Coordinator
from choir.ledger import (
    DECIMALS,
    ONE_CHOIR,
    POOL_NEW_MESSAGES,
    SUPPLY,
    TREASURY,
    Ledger,
    Transfer,
    TransferKind,
)
from choir.program import (
    AI_AUTHOR,
    CitationInput,
    CreateThread,
    Divest,
    Expire,
    Grant,
    Outcome,
    Params,
    PostMessage,
    ProgramError,
    RecordCitations,
    SettleEpoch,
    SpecStatus,
    State,
    SubmitSpec,
    Visibility,
    Vote,
    Withdraw,
    apply,
    recommended_stake,
)
from choir.store.sql import Store

__version__ = "0.1.0"

__all__ = [
    "AI_AUTHOR",
    "DECIMALS",
    "ONE_CHOIR",
    "POOL_NEW_MESSAGES",
    "SUPPLY",
    "TREASURY",
    "AsyncCoordinator",
    "CitationInput",
    "Coordinator",
    "CreateThread",
    "Divest",
    "Expire",
    "Grant",
    "Ledger",
    "Outcome",
    "Params",
    "PostMessage",
    "ProgramError",
    "RecordCitations",
    "Settings",
    "SettleEpoch",
    "SpecStatus",
    "State",
    "Store",
    "SubmitSpec",
    "Transfer",
    "TransferKind",
    "Visibility",
    "Vote",
    "Withdraw",
    "__version__",
    "apply",
    "create_app",
    "recommended_stake",
]


def create_app(settings: Settings | None = None) -> _Any:
    """The ASGI application (imported lazily: the core needs no web framework)."""
    from choir.app import create_app as _create_app

    return _create_app(settings)
