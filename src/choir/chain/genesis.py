"""Genesis on chain: the CHOIR mint, the treasury multisig, the whole supply, and no mint authority after.

Three steps, each checked against the chain first so that running genesis again (after a crash, or on
every start) does nothing twice:

1. create the mint (9 decimals, no freeze authority) and the treasury's SPL Token multisig (m of n);
2. create the custody token account of every account with a genesis balance;
3. in ONE transaction: mint each genesis balance and revoke the mint authority. Being atomic, it either
   happened or not; once it has, the program refuses any further MintTo (`Custom(5)`, FixedSupply).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from solders.account import Account
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.token.state import Mint, Multisig

from choir.chain.backend import DEFAULT_RETRY, ChainBackend, RetryPolicy, land
from choir.chain.errors import ChainError
from choir.chain.instructions import (
    create_account_with_seed,
    initialize_account3,
    initialize_mint2,
    initialize_multisig2,
    mint_to,
    revoke_mint_authority,
)
from choir.chain.layout import MINT_SEED, MULTISIG_SEED, CustodyLayout, custody_seed, validate_account_name
from choir.chain.programs import (
    MINT_SIZE,
    MULTISIG_SIGNERS_MAX,
    MULTISIG_SIZE,
    TOKEN_ACCOUNT_SIZE,
    TOKEN_PROGRAM_ID,
)
from choir.chain.wire import Ix, TxPacker, build_transaction

# Mirrors of the ledger's constants (DESIGN §3); the coordinator passes the ledger's own values.
SUPPLY: Final = 10**19
DECIMALS: Final = 9
GENESIS_BALANCES: Final[Mapping[str, int]] = {
    "treasury": 7_500_000_000 * 10**DECIMALS,
    "pool:new_messages": 2_500_000_000 * 10**DECIMALS,
}


@dataclass(frozen=True)
class TreasuryMultisig:
    """The treasury's owner: `threshold` of `signers` must sign every transfer out of it."""

    threshold: int
    signers: tuple[Pubkey, ...]

    def __post_init__(self) -> None:
        n = len(self.signers)
        if not 1 <= self.threshold <= n <= MULTISIG_SIGNERS_MAX:
            raise ValueError(f"need 1 <= m <= n <= {MULTISIG_SIGNERS_MAX}, got m={self.threshold}, n={n}")
        if len(set(self.signers)) != n:
            raise ValueError("treasury multisig signers must be distinct")


@dataclass(frozen=True)
class GenesisReport:
    mint: Pubkey
    signatures: tuple[Signature, ...]

    @property
    def already_done(self) -> bool:
        return not self.signatures


def _check_balances(balances: Mapping[str, int], supply: int) -> None:
    for name, amount in balances.items():
        validate_account_name(name)
        if name.startswith("withdrawn:") or amount <= 0:
            raise ValueError(f"genesis balance of {name!r} must be a positive amount in custody")
    if sum(balances.values()) != supply:
        raise ValueError(f"genesis balances sum to {sum(balances.values())}, not the supply {supply}")


async def ensure_genesis(
    backend: ChainBackend,
    authority: Keypair,
    treasury: TreasuryMultisig,
    balances: Mapping[str, int],
    *,
    supply: int = SUPPLY,
    decimals: int = DECIMALS,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> GenesisReport:
    """Bring the chain to the genesis state; a chain already there is only verified."""
    _check_balances(balances, supply)
    layout = CustodyLayout(authority.pubkey())
    holders = {name: layout.custody_address(name) for name in balances}
    mint_account, multisig_account, *holder_accounts = await backend.get_accounts(
        [layout.mint, layout.treasury_multisig, *holders.values()]
    )
    if mint_account is not None:
        mint = Mint.from_bytes(bytes(mint_account.data))
        if mint.mint_authority is None:
            _verify_done(mint, multisig_account, treasury, supply, decimals)
            return GenesisReport(layout.mint, ())
    owner = authority.pubkey()
    signatures: list[Signature] = []
    step1: list[list[Ix]] = []
    if mint_account is None:
        rent = await backend.rent_exempt_lamports(MINT_SIZE)
        step1.append(
            [
                create_account_with_seed(
                    owner, layout.mint, owner, MINT_SEED, rent, MINT_SIZE, TOKEN_PROGRAM_ID
                ),
                initialize_mint2(layout.mint, decimals, owner),
            ]
        )
    if multisig_account is None:
        rent = await backend.rent_exempt_lamports(MULTISIG_SIZE)
        multisig = layout.treasury_multisig
        step1.append(
            [
                create_account_with_seed(
                    owner, multisig, owner, MULTISIG_SEED, rent, MULTISIG_SIZE, TOKEN_PROGRAM_ID
                ),
                initialize_multisig2(multisig, treasury.signers, treasury.threshold),
            ]
        )
    rent = await backend.rent_exempt_lamports(TOKEN_ACCOUNT_SIZE)
    step2 = [
        [
            create_account_with_seed(
                owner, address, owner, custody_seed(name), rent, TOKEN_ACCOUNT_SIZE, TOKEN_PROGRAM_ID
            ),
            initialize_account3(address, layout.mint, layout.token_owner(name)),
        ]
        for (name, address), existing in zip(holders.items(), holder_accounts, strict=True)
        if existing is None
    ]
    step3 = [mint_to(layout.mint, holders[name], owner, amount) for name, amount in balances.items()]
    step3.append(revoke_mint_authority(layout.mint, owner))
    signatures += await _send_groups(backend, authority, step1 + step2, retry)
    # One group, hence one transaction: the supply is minted exactly once, with the revocation.
    signatures += await _send_groups(backend, authority, [step3], retry)
    return GenesisReport(layout.mint, tuple(signatures))


def _verify_done(
    mint: Mint, multisig_account: Account | None, treasury: TreasuryMultisig, supply: int, decimals: int
) -> None:
    if mint.supply != supply or mint.decimals != decimals:
        raise ChainError(f"the CHOIR mint holds supply {mint.supply} with {mint.decimals} decimals")
    if multisig_account is None:
        raise ChainError("the CHOIR mint exists but the treasury multisig does not")
    multisig = Multisig.from_bytes(bytes(multisig_account.data))
    if multisig.m != treasury.threshold or tuple(multisig.signers[: multisig.n]) != treasury.signers:
        raise ChainError("the treasury multisig on chain differs from the configured one")


async def _send_groups(
    backend: ChainBackend, payer: Keypair, groups: Sequence[list[Ix]], retry: RetryPolicy
) -> list[Signature]:
    """Pack the groups into transactions and land them in order; any failure stops genesis."""
    signatures: list[Signature] = []
    packer = TxPacker(bytes(payer.pubkey()))
    pending: list[list[Ix]] = []
    batches: list[list[Ix]] = []
    for group in groups:
        if not packer.try_add(group):
            batches.append([ix for g in pending for ix in g])
            packer, pending = TxPacker(bytes(payer.pubkey())), []
            if not packer.try_add(group):
                raise ChainError("a genesis step does not fit one transaction")
        pending.append(group)
    if pending:
        batches.append([ix for g in pending for ix in g])
    for ixs in batches:
        recent = await backend.latest_blockhash()
        tx = build_transaction(payer, ixs, recent.blockhash)
        status = await land(backend, tx, recent, retry)
        if not status.ok:
            raise ChainError(f"genesis transaction {tx.signature} failed: {status.error}")
        signatures.append(tx.signature)
    return signatures
