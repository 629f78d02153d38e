"""Instruction builders for System, SPL Token, Associated Token Account and Memo, as raw `Ix`.

The byte layouts are the programs' own (tags from their instruction enums); a test compares each with
an independent encoder. Keys are `Pubkey`s here and raw bytes inside `Ix`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

from solders.pubkey import Pubkey

from choir.chain.programs import (
    ASSOCIATED_TOKEN_PROGRAM_ID,
    MEMO_PROGRAM_ID,
    MULTISIG_SIGNERS_MAX,
    SYSTEM_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
)
from choir.chain.wire import Ix, Meta

_SYSTEM: Final = bytes(SYSTEM_PROGRAM_ID)
_TOKEN: Final = bytes(TOKEN_PROGRAM_ID)
_ATA: Final = bytes(ASSOCIATED_TOKEN_PROGRAM_ID)
_MEMO: Final = bytes(MEMO_PROGRAM_ID)

_SYSTEM_CREATE_ACCOUNT_WITH_SEED: Final = 3
_TOKEN_SET_AUTHORITY: Final = 6
_TOKEN_TRANSFER: Final = 3
_TOKEN_MINT_TO: Final = 7
_TOKEN_INITIALIZE_ACCOUNT3: Final = 18
_TOKEN_INITIALIZE_MULTISIG2: Final = 19
_TOKEN_INITIALIZE_MINT2: Final = 20
_ATA_CREATE_IDEMPOTENT: Final = 1
AUTHORITY_MINT_TOKENS: Final = 0
_TRANSFER_TAG: Final = bytes((_TOKEN_TRANSFER,))
U64_MAX: Final = 2**64 - 1
SEED_BYTES_MAX: Final = 32


def _u64(value: int) -> bytes:
    if not 0 <= value <= U64_MAX:
        raise ValueError(f"amount out of u64 range: {value}")
    return struct.pack("<Q", value)


def create_account_with_seed(
    payer: Pubkey, new_account: Pubkey, base: Pubkey, seed: str, lamports: int, space: int, owner: Pubkey
) -> Ix:
    """System program: create an account at `create_with_seed(base, seed, owner)`; base signs."""
    seed_bytes = seed.encode()
    if len(seed_bytes) > SEED_BYTES_MAX:
        raise ValueError(f"seed is {len(seed_bytes)} bytes; at most {SEED_BYTES_MAX}")
    data = (
        struct.pack("<I", _SYSTEM_CREATE_ACCOUNT_WITH_SEED)
        + bytes(base)
        + struct.pack("<Q", len(seed_bytes))
        + seed_bytes
        + _u64(lamports)
        + _u64(space)
        + bytes(owner)
    )
    metas: tuple[Meta, ...] = (Meta(bytes(payer), True, True), Meta(bytes(new_account), False, True))
    if base != payer:  # as the system program's own builder: the payer already signs as the base
        metas += (Meta(bytes(base), True, False),)
    return Ix(_SYSTEM, metas, data)


def initialize_mint2(mint: Pubkey, decimals: int, mint_authority: Pubkey) -> Ix:
    """SPL Token InitializeMint2 with no freeze authority: nobody can ever freeze a CHOIR account."""
    data = bytes((_TOKEN_INITIALIZE_MINT2, decimals)) + bytes(mint_authority) + b"\x00"
    return Ix(_TOKEN, (Meta(bytes(mint), False, True),), data)


def initialize_account3(account: Pubkey, mint: Pubkey, owner: Pubkey) -> Ix:
    data = bytes((_TOKEN_INITIALIZE_ACCOUNT3,)) + bytes(owner)
    return Ix(_TOKEN, (Meta(bytes(account), False, True), Meta(bytes(mint), False, False)), data)


def initialize_multisig2(multisig: Pubkey, signers: Sequence[Pubkey], threshold: int) -> Ix:
    if not 1 <= threshold <= len(signers) <= MULTISIG_SIGNERS_MAX:
        raise ValueError(f"need 1 <= m <= n <= {MULTISIG_SIGNERS_MAX}, got m={threshold}, n={len(signers)}")
    metas = (Meta(bytes(multisig), False, True), *(Meta(bytes(s), False, False) for s in signers))
    return Ix(_TOKEN, metas, bytes((_TOKEN_INITIALIZE_MULTISIG2, threshold)))


def _authority_metas(authority: Pubkey, multisig_signers: Sequence[Pubkey]) -> tuple[Meta, ...]:
    # A multisig authority is passed read-only and unsigned, followed by its m signing members.
    if not multisig_signers:
        return (Meta(bytes(authority), True, False),)
    return (Meta(bytes(authority), False, False), *(Meta(bytes(s), True, False) for s in multisig_signers))


def token_transfer(
    source: Pubkey,
    destination: Pubkey,
    authority: Pubkey,
    amount: int,
    multisig_signers: Sequence[Pubkey] = (),
) -> Ix:
    metas = (
        Meta(bytes(source), False, True),
        Meta(bytes(destination), False, True),
        *_authority_metas(authority, multisig_signers),
    )
    return Ix(_TOKEN, metas, bytes((_TOKEN_TRANSFER,)) + _u64(amount))


def token_transfer_metas(source: Meta, destination: Meta, authority: Meta, amount: int) -> Ix:
    """The settlement hot path: `token_transfer` from ready-made metas (writable accounts, signing owner)."""
    if not 0 <= amount <= U64_MAX:
        raise ValueError(f"amount out of u64 range: {amount}")
    return Ix(_TOKEN, (source, destination, authority), _TRANSFER_TAG + amount.to_bytes(8, "little"))


def mint_to(mint: Pubkey, destination: Pubkey, authority: Pubkey, amount: int) -> Ix:
    metas = (
        Meta(bytes(mint), False, True),
        Meta(bytes(destination), False, True),
        Meta(bytes(authority), True, False),
    )
    return Ix(_TOKEN, metas, bytes((_TOKEN_MINT_TO,)) + _u64(amount))


def revoke_mint_authority(mint: Pubkey, current_authority: Pubkey) -> Ix:
    """SetAuthority(MintTokens, None): after this the program refuses every MintTo (FixedSupply)."""
    data = bytes((_TOKEN_SET_AUTHORITY, AUTHORITY_MINT_TOKENS, 0))
    return Ix(_TOKEN, (Meta(bytes(mint), False, True), Meta(bytes(current_authority), True, False)), data)


def create_associated_token_account_idempotent(
    payer: Pubkey, wallet: Pubkey, mint: Pubkey, ata: Pubkey
) -> Ix:
    metas = (
        Meta(bytes(payer), True, True),
        Meta(bytes(ata), False, True),
        Meta(bytes(wallet), False, False),
        Meta(bytes(mint), False, False),
        Meta(_SYSTEM, False, False),
        Meta(_TOKEN, False, False),
    )
    return Ix(_ATA, metas, bytes((_ATA_CREATE_IDEMPOTENT,)))


def memo(text: str) -> Ix:
    """SPL Memo with no signer accounts: the text is logged and kept in the transaction."""
    return Ix(_MEMO, (), text.encode())
