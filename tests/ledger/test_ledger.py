"""The CHOIR ledger (DESIGN §3): genesis, idempotent transfer ids, no overdraft,
all-or-nothing batches, 128-bit ids and integer amounts."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from choir.ledger import (
    DECIMALS,
    GENESIS_BALANCES,
    ONE_CHOIR,
    POOL_NEW_MESSAGES,
    SUPPLY,
    TREASURY,
    AccountClass,
    Ledger,
    LedgerError,
    Transfer,
    TransferKind,
    account_class,
    derive_transfer_id,
    escrow_account,
    thread_account,
    user_account,
    withdrawn_account,
)

AT = datetime(2030, 1, 1, tzinfo=UTC)
MAX_ID = 2**128 - 1


def transfer(
    id: int = 1,
    debit: str = TREASURY,
    credit: str = "user:alice",
    amount: object = 10,
    kind: TransferKind = TransferKind.GRANT,
    ref: str = "r",
) -> Transfer:
    return Transfer(id=id, debit=debit, credit=credit, amount=amount, kind=kind, ref=ref, at=AT)  # type: ignore[arg-type]


def refuse(ledger: Ledger, batch: list[Transfer], code: str) -> None:
    before = copy.deepcopy(ledger)
    with pytest.raises(LedgerError) as caught:
        ledger.apply(batch)
    assert caught.value.code == code
    assert ledger == before


def test_genesis_creates_the_whole_supply_and_nothing_else() -> None:
    ledger = Ledger.genesis()
    assert SUPPLY == 10**19 == 10_000_000_000 * 10**DECIMALS
    assert SUPPLY < 2**64  # it fits the chain's u64
    assert ledger.balance(TREASURY) == 7_500_000_000 * ONE_CHOIR
    assert ledger.balance(POOL_NEW_MESSAGES) == 2_500_000_000 * ONE_CHOIR
    assert ledger.total() == SUPPLY and ledger.check() == []
    assert ledger.balance("user:nobody") == 0 and ledger.transfers == {}
    assert sum(GENESIS_BALANCES.values()) == SUPPLY
    ledger.balances[TREASURY] -= 1  # the genesis table itself is not shared
    assert GENESIS_BALANCES[TREASURY] == 7_500_000_000 * ONE_CHOIR


def test_a_transfer_moves_money_and_is_recorded() -> None:
    ledger = Ledger.genesis()
    t = transfer(amount=25)
    assert ledger.apply([t]) == (t,)
    assert ledger.balance("user:alice") == 25
    assert ledger.balance(TREASURY) == GENESIS_BALANCES[TREASURY] - 25
    assert ledger.transfers == {1: t}
    assert ledger.check() == []


def test_the_same_id_with_the_same_fields_is_a_no_op() -> None:
    ledger = Ledger.genesis()
    ledger.apply([transfer()])
    before = copy.deepcopy(ledger)
    retried = _with(transfer())
    assert ledger.apply([retried]) == ()
    # A retry may restate the time: still the same transfer.
    later = _with(transfer(), at=AT + timedelta(hours=1))
    assert ledger.apply([later]) == ()
    assert ledger == before


def test_the_same_id_with_other_fields_is_refused() -> None:
    ledger = Ledger.genesis()
    ledger.apply([transfer()])
    for changed in (
        transfer(amount=11),
        transfer(credit="user:bob"),
        transfer(debit=POOL_NEW_MESSAGES),
        transfer(kind=TransferKind.WITHDRAW),
        transfer(ref="other"),
    ):
        refuse(ledger, [changed], "transfer_id_conflict")


def test_an_id_repeated_inside_one_batch() -> None:
    ledger = Ledger.genesis()
    assert ledger.apply([transfer(), transfer()]) == (transfer(),)
    assert ledger.balance("user:alice") == 10
    refuse(Ledger.genesis(), [transfer(id=5), transfer(id=5, amount=11)], "transfer_id_conflict")


def test_no_balance_goes_below_zero() -> None:
    ledger = Ledger.genesis()
    refuse(ledger, [transfer(debit="user:alice", credit="user:bob", amount=1)], "insufficient_funds")
    ledger.apply([transfer(amount=10)])
    refuse(ledger, [transfer(id=2, debit="user:alice", credit="user:bob", amount=11)], "insufficient_funds")
    ledger.apply([transfer(id=2, debit="user:alice", credit="user:bob", amount=10)])  # exactly all of it
    assert ledger.balance("user:alice") == 0


def test_a_batch_is_all_or_nothing() -> None:
    ledger = Ledger.genesis()
    good = transfer(id=1, amount=10)
    overdraft = transfer(id=2, debit="user:bob", credit="user:carol", amount=1)
    refuse(ledger, [good, overdraft], "insufficient_funds")
    refuse(ledger, [good, transfer(id=3, amount=0)], "invalid_amount")
    assert 1 not in ledger.transfers


def test_later_transfers_of_a_batch_may_spend_what_earlier_ones_credit() -> None:
    ledger = Ledger.genesis()
    chain = [
        transfer(id=1, debit=TREASURY, credit="user:a", amount=7),
        transfer(id=2, debit="user:a", credit="user:b", amount=7),
        transfer(id=3, debit="user:b", credit="thread:t", amount=5),
    ]
    ledger.apply(chain)
    assert (ledger.balance("user:a"), ledger.balance("user:b"), ledger.balance("thread:t")) == (0, 2, 5)
    # ...but not in the other order.
    refuse(Ledger.genesis(), list(reversed(chain)), "insufficient_funds")


@pytest.mark.parametrize("amount", [0, -1, 1.0, 10.5, "10", True, Decimal(10), None, SUPPLY + 1])
def test_amounts_are_positive_integers_within_the_supply(amount: object) -> None:
    refuse(Ledger.genesis(), [transfer(amount=amount)], "invalid_amount")


@pytest.mark.parametrize("id", [-1, 2**128, 2**200, 1.0, "1", True, None])
def test_ids_are_128_bit_unsigned_integers(id: object) -> None:
    refuse(Ledger.genesis(), [transfer(id=id)], "invalid_transfer_id")  # type: ignore[arg-type]


@pytest.mark.parametrize("id", [0, 1, MAX_ID])
def test_the_bounds_of_the_id_range_are_accepted(id: int) -> None:
    ledger = Ledger.genesis()
    ledger.apply([transfer(id=id)])
    assert id in ledger.transfers


def test_a_transfer_to_itself_is_refused() -> None:
    refuse(Ledger.genesis(), [transfer(credit=TREASURY)], "invalid_transfer")


def test_plan_changes_nothing_until_commit() -> None:
    ledger = Ledger.genesis()
    before = copy.deepcopy(ledger)
    plan = ledger.plan([transfer(amount=3)])
    assert ledger == before
    assert plan.balances == {TREASURY: GENESIS_BALANCES[TREASURY] - 3, "user:alice": 3}
    ledger.commit(plan)
    assert ledger.balance("user:alice") == 3


def test_check_reports_broken_conservation_and_negative_balances() -> None:
    ledger = Ledger.genesis()
    ledger.balances["user:mallory"] = 1
    assert any("conservation" in p for p in ledger.check())
    ledger.balances["user:eve"] = -1  # the sum is right again; one balance is not
    problems = ledger.check()
    assert any("negative balance user:eve" in p for p in problems)
    assert not any("conservation" in p for p in problems)


def test_by_class_and_from_rows() -> None:
    ledger = Ledger.genesis()
    ledger.apply(
        [
            transfer(id=1, credit="user:a", amount=5),
            transfer(id=2, credit="thread:t", amount=4),
            transfer(id=3, debit="user:a", credit="escrow:s", amount=2),
            transfer(id=4, debit="user:a", credit="withdrawn:a", amount=1),
        ]
    )
    totals = ledger.by_class()
    assert totals == {
        "treasury": GENESIS_BALANCES[TREASURY] - 9,
        "pool": GENESIS_BALANCES[POOL_NEW_MESSAGES],
        "user": 2,
        "thread": 4,
        "escrow": 2,
        "withdrawn": 1,
    }
    assert sum(totals.values()) == SUPPLY
    rebuilt = Ledger.from_rows(ledger.balances, ledger.transfers.values())
    assert rebuilt.balances == ledger.balances and rebuilt.transfers == ledger.transfers


def test_account_names() -> None:
    assert account_class(TREASURY) is AccountClass.TREASURY
    assert account_class(POOL_NEW_MESSAGES) is AccountClass.POOL
    assert account_class(thread_account("t")) is AccountClass.THREAD
    assert account_class(escrow_account("s")) is AccountClass.ESCROW
    assert account_class(user_account("addr")) is AccountClass.USER
    assert account_class(withdrawn_account("addr")) is AccountClass.WITHDRAWN
    for bad in ("", "treasury:x", "user:", "nobody:x", "user", "pool"):
        with pytest.raises(ValueError, match="not a ledger account"):
            account_class(bad)


def test_derived_ids_are_deterministic_128_bit_and_distinct() -> None:
    a = derive_transfer_id(TransferKind.STAKE, "s1", "user:a", "escrow:s1")
    assert a == derive_transfer_id(TransferKind.STAKE, "s1", "user:a", "escrow:s1")
    assert 0 <= a <= MAX_ID
    others = {
        derive_transfer_id(TransferKind.STAKE, "s2", "user:a", "escrow:s1"),
        derive_transfer_id(TransferKind.SPEC_DENIED, "s1", "user:a", "escrow:s1"),
        derive_transfer_id(TransferKind.STAKE, "s1", "user:b", "escrow:s1"),
        # parts are separated: moving a boundary gives another id
        derive_transfer_id(TransferKind.STAKE, "s1u", "ser:a", "escrow:s1"),
    }
    assert a not in others and len(others) == 4


def _fields(t: Transfer) -> dict[str, object]:
    return {f: getattr(t, f) for f in Transfer.__slots__}


def _with(t: Transfer, **changes: object) -> Transfer:
    return Transfer(**{**_fields(t), **changes})  # type: ignore[arg-type]
