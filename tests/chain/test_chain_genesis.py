"""Genesis on LiteSVM with the real SPL Token program and signature verification on."""

from __future__ import annotations

from pathlib import Path

import pytest
from chain_harness import make_chain
from solders.keypair import Keypair
from solders.token.associated import get_associated_token_address
from solders.token.state import Mint, Multisig, TokenAccount

from choir.chain import (
    GENESIS_BALANCES,
    SUPPLY,
    ChainError,
    MemoryFeed,
    TreasuryMultisig,
    ensure_genesis,
    withdraw_instructions,
)
from choir.chain.backend import land
from choir.chain.instructions import mint_to, token_transfer
from choir.chain.layout import CustodyLayout
from choir.chain.programs import TOKEN_ERROR_FIXED_SUPPLY
from choir.chain.wire import build_transaction, to_ix


async def test_genesis_mints_the_whole_supply_and_revokes_the_mint_authority() -> None:
    chain = await make_chain()
    assert chain.backend.svm.get_sigverify()
    account = chain.backend.svm.get_account(chain.layout.mint)
    assert account is not None
    mint = Mint.from_bytes(bytes(account.data))
    assert (mint.supply, mint.decimals) == (SUPPLY, 9)
    assert mint.mint_authority is None and mint.freeze_authority is None
    assert chain.balance("treasury") == 7_500_000_000 * 10**9
    assert chain.balance("pool:new_messages") == 2_500_000_000 * 10**9


async def test_treasury_is_owned_by_an_m_of_n_multisig() -> None:
    chain = await make_chain(threshold=2, signers=3)
    account = chain.backend.svm.get_account(chain.layout.treasury_multisig)
    assert account is not None
    multisig = Multisig.from_bytes(bytes(account.data))
    assert (multisig.m, multisig.n) == (2, 3)
    assert list(multisig.signers[:3]) == [k.pubkey() for k in chain.treasury_keys]


async def test_the_mint_refuses_to_mint_again_with_fixed_supply() -> None:
    chain = await make_chain()
    recent = await chain.backend.latest_blockhash()
    tx = build_transaction(
        chain.authority,
        [mint_to(chain.layout.mint, chain.layout.custody_address("treasury"), chain.authority.pubkey(), 1)],
        recent.blockhash,
    )
    status = await land(chain.backend, tx, recent)
    assert status.error is not None
    assert f"Custom({TOKEN_ERROR_FIXED_SUPPLY})" in status.error


async def test_a_treasury_transfer_needs_m_signatures() -> None:
    chain = await make_chain(threshold=2, signers=3)
    treasury = chain.layout.custody_address("treasury")
    pool = chain.layout.custody_address("pool:new_messages")
    multisig = chain.layout.treasury_multisig
    one = chain.treasury_keys[:1]
    recent = await chain.backend.latest_blockhash()
    short = token_transfer(treasury, pool, multisig, 5, [k.pubkey() for k in one])
    status = await land(
        chain.backend, build_transaction(chain.authority, [short], recent.blockhash, one), recent
    )
    assert status.error is not None  # NotEnoughSigners / missing signature
    two = chain.treasury_keys[1:3]  # any two of the three
    enough = token_transfer(treasury, pool, multisig, 5, [k.pubkey() for k in two])
    status = await land(
        chain.backend, build_transaction(chain.authority, [enough], recent.blockhash, two), recent
    )
    assert status.ok, status.error
    assert chain.balance("pool:new_messages") == 2_500_000_000 * 10**9 + 5


async def test_genesis_again_is_a_verified_no_op() -> None:
    chain = await make_chain()
    report = await ensure_genesis(chain.backend, chain.authority, chain.multisig, GENESIS_BALANCES)
    assert report.already_done
    other = TreasuryMultisig(1, chain.multisig.signers)
    with pytest.raises(ChainError, match="multisig"):
        await ensure_genesis(chain.backend, chain.authority, other, GENESIS_BALANCES)


async def test_genesis_refuses_balances_that_are_not_the_supply() -> None:
    chain = await make_chain()
    with pytest.raises(ValueError, match="supply"):
        await ensure_genesis(chain.backend, Keypair(), chain.multisig, {"treasury": SUPPLY - 1})


def test_layout_addresses_are_deterministic_and_seeded_from_a_hash() -> None:
    authority = Keypair().pubkey()
    a, b = CustodyLayout(authority), CustodyLayout(authority)
    long_name = "thread:" + "x" * 200
    assert a.custody_address(long_name) == b.custody_address(long_name)
    assert a.custody_address("thread:a") != a.custody_address("thread:b")
    assert a.custody_address("treasury") != CustodyLayout(Keypair().pubkey()).custody_address("treasury")
    with pytest.raises(ValueError):
        a.custody_address("nonsense")
    with pytest.raises(ValueError):
        a.custody_address("user:not-an-address")


async def test_withdraw_instructions_move_custody_to_the_wallets_own_token_account(tmp_path: Path) -> None:
    chain = await make_chain()
    feed = MemoryFeed(GENESIS_BALANCES)
    wallet = Keypair().pubkey()
    feed.transfer("pool:new_messages", f"user:{wallet}", 40)
    await chain.worker(chain.backend, feed, tmp_path).settle_once()

    ixs = [to_ix(i) for i in withdraw_instructions(chain.layout, str(wallet), 15)]
    recent = await chain.backend.latest_blockhash()
    status = await land(chain.backend, build_transaction(chain.authority, ixs, recent.blockhash), recent)
    assert status.ok, status.error
    ata = chain.backend.svm.get_account(get_associated_token_address(wallet, chain.layout.mint))
    assert ata is not None
    token_account = TokenAccount.from_bytes(bytes(ata.data))
    assert (token_account.owner, token_account.amount) == (wallet, 15)
    assert chain.balance(f"user:{wallet}") == 25 == chain.balance(f"withdrawn:{wallet}") + 10
    with pytest.raises(ValueError):
        withdraw_instructions(chain.layout, str(wallet), 0)
