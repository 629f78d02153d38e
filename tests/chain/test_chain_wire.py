"""Hand-built transactions: byte-exact sizes, packing limits and agreement with independent encoders."""

from __future__ import annotations

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountWithSeedParams
from solders.system_program import create_account_with_seed as solders_create_with_seed
from solders.transaction import Transaction

from choir.chain.feed import ChainTransfer
from choir.chain.instructions import (
    create_account_with_seed,
    create_associated_token_account_idempotent,
    initialize_account3,
    initialize_mint2,
    initialize_multisig2,
    memo,
    mint_to,
    revoke_mint_authority,
    token_transfer,
)
from choir.chain.layout import SEED_CHARS, CustodyLayout, custody_seed
from choir.chain.plan import BatchPlanner
from choir.chain.programs import TOKEN_PROGRAM_ID
from choir.chain.wire import (
    PACKET_DATA_SIZE,
    TransactionTooLarge,
    TxPacker,
    build_transaction,
    compact_u16,
    resign_with_blockhash,
    to_instruction,
)


def _keys(n: int) -> list[Pubkey]:
    return [Keypair().pubkey() for _ in range(n)]


def test_compact_u16_matches_solanas_short_vec() -> None:
    assert [compact_u16(v) for v in (0, 0x7F, 0x80, 0x3FFF, 0x4000, 0xFFFF)] == [
        b"\x00",
        b"\x7f",
        b"\x80\x01",
        b"\xff\x7f",
        b"\x80\x80\x01",
        b"\xff\xff\x03",
    ]
    with pytest.raises(ValueError):
        compact_u16(0x10000)


def test_compiled_transactions_parse_verify_and_match_the_packers_size() -> None:
    payer, signer = Keypair(), Keypair()
    a, b, mint = _keys(3)
    ixs = [
        token_transfer(a, b, signer.pubkey(), 7),
        mint_to(mint, a, payer.pubkey(), 9),
        memo("choir:v1 test"),
        token_transfer(b, a, payer.pubkey(), 3),
    ]
    packer = TxPacker(bytes(payer.pubkey()))
    assert packer.try_add(ixs)
    signed = build_transaction(payer, ixs, Hash.new_unique(), [signer])
    assert len(signed.raw) == packer.size
    tx = Transaction.from_bytes(signed.raw)
    assert tx.verify_with_results() == [True, True]
    assert tx.signatures[0] == signed.signature
    # Same instructions, decompiled by solders, as built: our account ordering is a valid one.
    message = tx.message
    assert message.account_keys[0] == payer.pubkey()
    decompiled = [
        (
            message.account_keys[c.program_id_index],
            [message.account_keys[i] for i in c.accounts],
            bytes(c.data),
        )
        for c in message.instructions
    ]
    expected = [
        (i.program_id, [m.pubkey for m in i.accounts], bytes(i.data)) for i in map(to_instruction, ixs)
    ]
    assert decompiled == expected
    for key in (signer.pubkey(), payer.pubkey()):
        assert message.is_signer(list(message.account_keys).index(key))
    header = message.header
    assert (header.num_required_signatures, header.num_readonly_signed_accounts) == (2, 1)
    assert header.num_readonly_unsigned_accounts == 2  # the token and memo programs


def test_22_transfers_from_one_source_and_13_between_distinct_pairs_fill_a_transaction() -> None:
    authority = Keypair().pubkey()
    layout = CustodyLayout(authority)
    planner = BatchPlanner(layout, [], rent_lamports_per_account=1)
    users = [f"user:{k}" for k in _keys(60)]
    one_source = [ChainTransfer(i + 1, i, "pool:new_messages", users[i], 5) for i in range(44)]
    pairs = [ChainTransfer(i + 1, i, users[2 * i], users[2 * i + 1], 5) for i in range(26)]
    existing = {layout.token_address(n) for n in [*users, "pool:new_messages"]}
    plan = planner.plan(one_source, existing, None)
    assert [p.end - p.first for p in plan] == [22, 22]
    plan = planner.plan(pairs, existing, None)
    assert [p.end - p.first for p in plan] == [13, 13]
    payer = bytes(authority)
    for p in planner.plan(one_source, existing, None) + planner.plan(pairs, existing, None):
        packer = TxPacker(payer)
        assert packer.try_add(p.ixs)
        assert packer.size <= PACKET_DATA_SIZE


def test_every_packed_transaction_is_within_the_limit_on_the_wire() -> None:
    authority = Keypair()
    treasury = [Keypair(), Keypair()]
    layout = CustodyLayout(authority.pubkey())
    planner = BatchPlanner(layout, [k.pubkey() for k in treasury], rent_lamports_per_account=2_039_280)
    names = ["treasury", "pool:new_messages", *(f"user:{k}" for k in _keys(8)), "thread:t", "escrow:e"]
    transfers = [
        ChainTransfer(i + 1, i, names[i % len(names)], names[(i * 7 + 3) % len(names)], 1 + i)
        for i in range(200)
    ]
    transfers = [t for t in transfers if t.debit != t.credit]
    withdraw = names[2].removeprefix("user:")
    transfers.append(ChainTransfer(999, 999, names[2], f"withdrawn:{withdraw}", 1))
    plan = planner.plan(transfers, set(), "choir:v1 anchor 1..999 transfers=1 leaves=0 root=" + "0" * 64)
    assert plan[-1].anchor and plan[0].first == 0 and plan[-1].end == len(transfers)
    for p in plan:
        signed = build_transaction(authority, p.ixs, Hash.new_unique(), treasury)
        assert len(signed.raw) <= PACKET_DATA_SIZE
        packer = TxPacker(bytes(authority.pubkey()))
        packer.try_add(p.ixs)
        assert packer.size == len(signed.raw)


def test_a_transaction_over_the_limit_is_refused() -> None:
    payer = Keypair()
    with pytest.raises(TransactionTooLarge):
        build_transaction(payer, [memo("x" * 1200)], Hash.new_unique())


def test_withdrawals_only_leave_to_the_owners_own_wallet() -> None:
    layout = CustodyLayout(Keypair().pubkey())
    planner = BatchPlanner(layout, [], 1)
    alice, bob = _keys(2)
    with pytest.raises(ValueError, match="own user account"):
        planner.plan([ChainTransfer(1, 1, f"user:{alice}", f"withdrawn:{bob}", 5)], set(), None)
    with pytest.raises(ValueError, match="wallet"):
        planner.plan([ChainTransfer(1, 1, f"withdrawn:{bob}", f"user:{bob}", 5)], set(), None)


def test_custody_seeds_fit_create_with_seed() -> None:
    for name in ("treasury", "thread:" + "é" * 100, f"user:{Keypair().pubkey()}"):
        seed = custody_seed(name)
        assert len(seed.encode()) == SEED_CHARS <= 32
    authority = Keypair().pubkey()
    ix = to_instruction(
        create_account_with_seed(
            authority, Keypair().pubkey(), authority, custody_seed("treasury"), 5, 165, TOKEN_PROGRAM_ID
        )
    )
    theirs = solders_create_with_seed(
        CreateAccountWithSeedParams(
            from_pubkey=authority,
            to_pubkey=ix.accounts[1].pubkey,
            base=authority,
            seed=custody_seed("treasury"),
            lamports=5,
            space=165,
            owner=TOKEN_PROGRAM_ID,
        )
    )
    assert bytes(ix.data) == bytes(theirs.data)
    assert [(m.pubkey, m.is_signer, m.is_writable) for m in ix.accounts] == [
        (m.pubkey, m.is_signer, m.is_writable) for m in theirs.accounts
    ]


def test_token_instructions_match_solana_pys_encoders() -> None:
    spl = pytest.importorskip("spl.token.instructions")
    mint, account, owner, dest, ms = _keys(5)
    signers = _keys(3)

    def same(ours: object, theirs: object) -> None:
        a, b = to_instruction(ours), theirs  # type: ignore[arg-type]
        data, their_data = bytes(a.data), bytes(b.data)  # type: ignore[attr-defined]
        # solana-py pads an absent COption<Pubkey> with 32 zero bytes; the program ignores them, and
        # the Rust builders (like ours) send the one-byte tag only.
        assert their_data[: len(data)] == data and not their_data[len(data) :].strip(b"\0")
        assert a.program_id == b.program_id  # type: ignore[attr-defined]
        assert [(m.pubkey, m.is_signer, m.is_writable) for m in a.accounts] == [
            (m.pubkey, m.is_signer, m.is_writable)
            for m in b.accounts  # type: ignore[attr-defined]
        ]

    models = pytest.importorskip("spl.token.models")
    program = TOKEN_PROGRAM_ID
    same(
        token_transfer(account, dest, owner, 12345),
        spl.transfer(
            models.TransferParams(program_id=program, source=account, dest=dest, owner=owner, amount=12345)
        ),
    )
    same(
        token_transfer(account, dest, ms, 9, signers[:2]),
        spl.transfer(
            models.TransferParams(
                program_id=program, source=account, dest=dest, owner=ms, amount=9, signers=signers[:2]
            )
        ),
    )
    same(
        mint_to(mint, dest, owner, 77),
        spl.mint_to(
            models.MintToParams(program_id=program, mint=mint, dest=dest, mint_authority=owner, amount=77)
        ),
    )
    same(
        initialize_account3(account, mint, owner),
        spl.initialize_account3(
            models.InitializeAccount3Params(program_id=program, account=account, mint=mint, owner=owner)
        ),
    )
    same(
        initialize_mint2(mint, 9, owner),
        spl.initialize_mint2(
            models.InitializeMint2Params(decimals=9, program_id=program, mint=mint, mint_authority=owner)
        ),
    )
    same(
        initialize_multisig2(ms, signers, 2),
        spl.initialize_multisig2(
            models.InitializeMultisig2Params(program_id=program, multisig=ms, m=2, signers=signers)
        ),
    )
    same(
        revoke_mint_authority(mint, owner),
        spl.set_authority(
            models.SetAuthorityParams(
                program_id=program,
                account=mint,
                authority=models.AuthorityType.MINT_TOKENS,
                current_authority=owner,
                new_authority=None,
            )
        ),
    )
    ata = spl.get_associated_token_address(dest, mint)
    same(
        create_associated_token_account_idempotent(owner, dest, mint, ata),
        spl.create_idempotent_associated_token_account(owner, dest, mint),
    )


def test_re_signing_keeps_the_instructions_and_changes_only_the_blockhash() -> None:
    payer, member = Keypair(), Keypair()
    a, b, ms = _keys(3)
    ixs = [token_transfer(a, b, ms, 5, [member.pubkey()]), memo("choir:v1 nonce 7")]
    old = build_transaction(payer, ixs, Hash.new_unique(), [member])
    fresh = Hash.new_unique()
    new = resign_with_blockhash(old.raw, bytes(fresh), [payer, member])
    before, after = Transaction.from_bytes(old.raw), Transaction.from_bytes(new.raw)
    assert after.message.recent_blockhash == fresh != before.message.recent_blockhash
    assert after.message.instructions == before.message.instructions
    assert after.message.account_keys == before.message.account_keys
    assert after.verify_with_results() == [True, True] and new.signature != old.signature
