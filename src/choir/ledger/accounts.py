"""Ledger account names and the genesis allocation (DESIGN §3).

Accounts are plain strings so that they read the same in the store, in logs and
on chain: ``treasury``, ``pool:new_messages``, ``thread:<id>``, ``escrow:<spec_id>``,
``user:<address>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final

DECIMALS: Final = 9
ONE_CHOIR: Final = 10**DECIMALS
# 10 billion CHOIR in base units: 10^19 fits in a u64 (max ~1.8e19), which the chain needs.
SUPPLY: Final = 10_000_000_000 * ONE_CHOIR

TREASURY: Final = "treasury"
POOL_NEW_MESSAGES: Final = "pool:new_messages"

GENESIS_BALANCES: Final[dict[str, int]] = {
    TREASURY: 7_500_000_000 * ONE_CHOIR,
    POOL_NEW_MESSAGES: 2_500_000_000 * ONE_CHOIR,
}
assert sum(GENESIS_BALANCES.values()) == SUPPLY


class AccountClass(StrEnum):
    TREASURY = "treasury"
    POOL = "pool"
    THREAD = "thread"
    ESCROW = "escrow"
    USER = "user"
    # CHOIR moved out of the app to the owner's own wallet: still part of the supply.
    WITHDRAWN = "withdrawn"


def thread_account(thread_id: str) -> str:
    return f"thread:{thread_id}"


def escrow_account(spec_id: str) -> str:
    return f"escrow:{spec_id}"


def user_account(address: str) -> str:
    return f"user:{address}"


def withdrawn_account(address: str) -> str:
    return f"withdrawn:{address}"


_PREFIXES: Final = {
    "pool": AccountClass.POOL,
    "thread": AccountClass.THREAD,
    "escrow": AccountClass.ESCROW,
    "user": AccountClass.USER,
    "withdrawn": AccountClass.WITHDRAWN,
}


def account_class(account: str) -> AccountClass:
    """The class of an account name; raises ValueError for a name no rule produces."""
    if account == TREASURY:
        return AccountClass.TREASURY
    prefix, sep, rest = account.partition(":")
    if not sep or not rest or prefix not in _PREFIXES:
        raise ValueError(f"not a ledger account: {account!r}")
    return _PREFIXES[prefix]


def totals_by_class(balances: Mapping[str, int]) -> dict[str, int]:
    """The sum of the balances of each account class (what the supply is split into)."""
    totals: dict[str, int] = {}
    for account, amount in balances.items():
        key = account_class(account).value
        totals[key] = totals.get(key, 0) + amount
    return totals
