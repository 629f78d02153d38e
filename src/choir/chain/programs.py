"""Addresses and account sizes of the programs the settlement layer uses (DESIGN §9).

Only programs that exist on every cluster: no custom program can be compiled here, so custody is
built from System, SPL Token, the Associated Token Account program and SPL Memo.
"""

from __future__ import annotations

from typing import Final

from solders.pubkey import Pubkey

SYSTEM_PROGRAM_ID: Final = Pubkey.from_string("11111111111111111111111111111111")
TOKEN_PROGRAM_ID: Final = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
ASSOCIATED_TOKEN_PROGRAM_ID: Final = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
MEMO_PROGRAM_ID: Final = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")

# Account data sizes fixed by the SPL Token program's state layouts.
MINT_SIZE: Final = 82
TOKEN_ACCOUNT_SIZE: Final = 165
MULTISIG_SIZE: Final = 355
MULTISIG_SIGNERS_MAX: Final = 11

# SPL Token error codes we rely on (TokenError in the program's source).
TOKEN_ERROR_INSUFFICIENT_FUNDS: Final = 1
TOKEN_ERROR_FIXED_SUPPLY: Final = 5
