"""Choir: group chat where an AI answers by citing the community's prior messages,
and the people cited, and the co-authors of a thread, earn CHOIR.

This module is the public API; everything else is internal and may change.
"""

from typing import Any as _Any

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
    PostAnswer,
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

__version__ = "0.1.0"

__all__ = [
    "AI_AUTHOR",
    "DECIMALS",
    "ONE_CHOIR",
    "POOL_NEW_MESSAGES",
    "SUPPLY",
    "TREASURY",
    "CitationInput",
    "Coordinator",
    "CreateThread",
    "Divest",
    "Expire",
    "Grant",
    "Ledger",
    "Outcome",
    "Params",
    "PostAnswer",
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
    "Writer",
    "__version__",
    "apply",
    "create_app",
    "recommended_stake",
]


_LAZY = {
    "Coordinator": ("choir.engine.coordinator", "Coordinator"),
    "Settings": ("choir.config", "Settings"),
    "Store": ("choir.store.sql", "Store"),
    "Writer": ("choir.engine.writer", "Writer"),
}


def __getattr__(name: str) -> _Any:
    """The shell's names, imported on first use (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'choir' has no attribute {name!r}")
    import importlib

    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def create_app(settings: _Any = None) -> _Any:
    """The ASGI application (imported lazily: the core needs no web framework)."""
    from choir.server.app import create_app as _create_app

    return _create_app(settings)
