"""The reconciler: chain balances against ledger balances, reported, never corrected.

A drift means the chain and the ledger disagree about money; which one is right is a person's call
(a failed settlement, a bug, a tampered store), so the reconciler only names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from solders.token.state import Mint, TokenAccount

from choir.chain.backend import ChainBackend
from choir.chain.layout import CustodyLayout, is_withdrawal_sink

SUPPLY_ACCOUNT: Final = "mint:supply"


@dataclass(frozen=True, slots=True)
class Drift:
    account: str
    ledger: int
    chain: int

    def __str__(self) -> str:
        return f"{self.account}: ledger {self.ledger}, chain {self.chain}"


async def reconcile(
    backend: ChainBackend, layout: CustodyLayout, ledger_balances: Mapping[str, int], supply: int
) -> list[Drift]:
    """Every mirrored account whose chain balance differs from the ledger's, and the mint's supply.

    Pass the ledger balances as of the settled position (no batch in flight). Withdrawal sinks are
    skipped: their CHOIR sits in wallets that people move freely. An account never created on chain
    holds 0 there.
    """
    names = sorted(n for n in ledger_balances if not is_withdrawal_sink(n))
    addresses = [layout.custody_address(n) for n in names]
    mint_account, *accounts = await backend.get_accounts([layout.mint, *addresses])
    drifts: list[Drift] = []
    chain_supply = 0 if mint_account is None else Mint.from_bytes(bytes(mint_account.data)).supply
    if chain_supply != supply:
        drifts.append(Drift(SUPPLY_ACCOUNT, supply, chain_supply))
    for name, account in zip(names, accounts, strict=True):
        chain = 0 if account is None else TokenAccount.from_bytes(bytes(account.data)).amount
        if chain != ledger_balances[name]:
            drifts.append(Drift(name, ledger_balances[name], chain))
    return drifts
