"""Withdrawal: CHOIR leaves custody for the person's own wallet.

It mirrors the ledger transfer ``user:<address> → withdrawn:<address>`` (kind ``withdraw``), amount
> 0 and at most the user's balance. On chain: create the wallet's associated token account if it does
not exist (idempotent; the custody authority pays its rent), then transfer from the user's custody
account to it. Only ``<address>`` itself can ever be credited: the ATA is derived from it.
The settlement worker emits exactly these instructions for such a ledger transfer.
"""

from __future__ import annotations

from solders.instruction import Instruction
from solders.token.associated import get_associated_token_address

from choir.chain.instructions import create_associated_token_account_idempotent, token_transfer
from choir.chain.layout import USER_PREFIX, CustodyLayout, wallet_address
from choir.chain.wire import to_instruction


def withdraw_instructions(
    layout: CustodyLayout, address: str, amount: int, *, create_ata: bool = True
) -> list[Instruction]:
    """Instructions that move `amount` from ``user:<address>``'s custody to the wallet's ATA."""
    if amount <= 0:
        raise ValueError(f"a withdrawal moves a positive amount, got {amount}")
    wallet = wallet_address(address)
    ata = get_associated_token_address(wallet, layout.mint)
    source = layout.custody_address(USER_PREFIX + address)
    ixs = []
    if create_ata:
        ixs.append(create_associated_token_account_idempotent(layout.authority, wallet, layout.mint, ata))
    ixs.append(token_transfer(source, ata, layout.authority, amount))
    return [to_instruction(ix) for ix in ixs]
