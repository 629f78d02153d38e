"""Where every ledger account lives on chain: deterministic custody addresses (DESIGN §9).

Every ledger account except a withdrawal sink is mirrored to an SPL token account at
``create_with_seed(custody_authority, seed, TOKEN_PROGRAM_ID)``. A seed holds at most 32 bytes and a
ledger name can be longer (``user:`` + a 44-character address), so the seed is the first 32 base58
characters of ``sha256("choir/custody/v1:" + name)`` (~187 bits): never a raw id, and fixed-length.

Token-account owners (who may move the tokens):
  * ``treasury``: the SPL Token multisig (m of n); a transfer out of it carries m member signatures;
  * every other custody account: the custody authority, the worker's hot key, which also pays fees.

A withdrawal sink ``withdrawn:<address>`` is not custody: its chain side is the associated token
account of the wallet ``<address>``, which the person controls, so its balance is not reconciled.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

import base58
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address

from choir.chain.programs import TOKEN_PROGRAM_ID

TREASURY: Final = "treasury"
WITHDRAWN_PREFIX: Final = "withdrawn:"
USER_PREFIX: Final = "user:"
_ACCOUNT_KINDS: Final = frozenset({"pool", "thread", "escrow", "user", "withdrawn"})
_SEED_DOMAIN: Final = b"choir/custody/v1:"
# Literal seeds contain '/', which base58 never does, so they cannot collide with a hashed seed.
MINT_SEED: Final = "choir/mint/v1"
MULTISIG_SEED: Final = "choir/treasury-multisig/v1"
SEED_CHARS: Final = 32
# Bounded cache: a settlement batch touches a few hundred accounts; hot ones stay cached.
_ADDRESS_CACHE_MAX: Final = 1 << 16


def validate_account_name(name: str) -> str:
    """Return the name if it is a ledger account name the chain can mirror; raise ValueError if not."""
    if name == TREASURY:
        return name
    kind, sep, rest = name.partition(":")
    if not sep or not rest or kind not in _ACCOUNT_KINDS:
        raise ValueError(f"not a ledger account name: {name!r}")
    if kind in ("user", "withdrawn"):
        wallet_address(rest)  # raises on a malformed address
    return name


def wallet_address(address: str) -> Pubkey:
    try:
        return Pubkey.from_string(address)
    except ValueError:
        raise ValueError(f"not a base58 Solana address: {address!r}") from None


def custody_seed(name: str) -> str:
    """The 32-character create_with_seed seed of a ledger account name."""
    digest = hashlib.sha256(_SEED_DOMAIN + name.encode()).digest()
    return base58.b58encode(digest).decode()[:SEED_CHARS]


@lru_cache(maxsize=_ADDRESS_CACHE_MAX)
def _custody_address(authority: Pubkey, name: str) -> Pubkey:
    validate_account_name(name)
    return Pubkey.create_with_seed(authority, custody_seed(name), TOKEN_PROGRAM_ID)


def is_withdrawal_sink(name: str) -> bool:
    return name.startswith(WITHDRAWN_PREFIX)


@dataclass(frozen=True)
class CustodyLayout:
    """The addresses derived from one custody authority."""

    authority: Pubkey
    mint: Pubkey = field(init=False)
    treasury_multisig: Pubkey = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mint", Pubkey.create_with_seed(self.authority, MINT_SEED, TOKEN_PROGRAM_ID))
        multisig = Pubkey.create_with_seed(self.authority, MULTISIG_SEED, TOKEN_PROGRAM_ID)
        object.__setattr__(self, "treasury_multisig", multisig)

    def custody_address(self, name: str) -> Pubkey:
        """The custody token account of a mirrored ledger account."""
        if is_withdrawal_sink(name):
            raise ValueError(f"{name!r} is a withdrawal sink: it has no custody account")
        return _custody_address(self.authority, name)

    def token_address(self, name: str) -> Pubkey:
        """The token account that holds `name`'s CHOIR on chain (custody, or the wallet's ATA)."""
        if is_withdrawal_sink(name):
            return get_associated_token_address(self.withdrawal_wallet(name), self.mint)
        return self.custody_address(name)

    def token_owner(self, name: str) -> Pubkey:
        """Who may move the tokens of a custody account."""
        return self.treasury_multisig if name == TREASURY else self.authority

    def withdrawal_wallet(self, name: str) -> Pubkey:
        if not is_withdrawal_sink(name):
            raise ValueError(f"{name!r} is not a withdrawal sink")
        validate_account_name(name)
        return wallet_address(name[len(WITHDRAWN_PREFIX) :])
