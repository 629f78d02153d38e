"""Property tests: whatever batches arrive, the supply is conserved, no balance goes
negative, a refused batch changes nothing and a replayed batch pays nothing again."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from choir.ledger import POOL_NEW_MESSAGES, SUPPLY, TREASURY, Ledger, LedgerError, Transfer, TransferKind

AT = datetime(2030, 1, 1, tzinfo=UTC)
ACCOUNTS = [TREASURY, POOL_NEW_MESSAGES, "user:a", "user:b", "thread:t", "escrow:s"]

valid_amounts = st.one_of(
    st.integers(min_value=1, max_value=1_000), st.integers(min_value=1, max_value=SUPPLY)
)
bad_amounts = st.sampled_from([0, -1, SUPPLY + 1, 1.0, True])
# A small id space, so that retries and conflicts happen often.
valid_ids = st.integers(min_value=0, max_value=12)
bad_ids = st.sampled_from([-1, 2**128, 1.0])
transfers = st.builds(
    Transfer,
    # Mostly well-formed (weighted by repeating the branch), sometimes not.
    id=st.one_of(valid_ids, valid_ids, valid_ids, valid_ids, st.just(2**128 - 1), bad_ids),
    # Mostly from the accounts that hold money at genesis, so that batches often apply.
    debit=st.sampled_from([TREASURY, TREASURY, POOL_NEW_MESSAGES, *ACCOUNTS]),
    credit=st.sampled_from(ACCOUNTS),
    amount=st.one_of(valid_amounts, valid_amounts, valid_amounts, valid_amounts, bad_amounts),
    kind=st.sampled_from([TransferKind.GRANT, TransferKind.STAKE]),
    ref=st.sampled_from(["r1", "r2"]),
    at=st.just(AT),
)
batches = st.lists(st.lists(transfers, max_size=4), max_size=12)


def model_apply(balances: dict[str, int], done: dict[int, Transfer], batch: list[Transfer]) -> bool:
    """The rules of DESIGN §3, one transfer at a time, on copies; True if the batch applies."""
    new_balances, new_done = dict(balances), dict(done)
    for t in batch:
        if type(t.amount) is not int or not 0 < t.amount <= SUPPLY:
            return False
        if type(t.id) is not int or not 0 <= t.id < 2**128 or t.debit == t.credit:
            return False
        if t.id in new_done:
            if (new_done[t.id].debit, new_done[t.id].credit, new_done[t.id].amount) != (
                t.debit,
                t.credit,
                t.amount,
            ):
                return False
            if (new_done[t.id].kind, new_done[t.id].ref) != (t.kind, t.ref):
                return False
            continue
        if new_balances.get(t.debit, 0) < t.amount:
            return False
        new_balances[t.debit] = new_balances.get(t.debit, 0) - t.amount
        new_balances[t.credit] = new_balances.get(t.credit, 0) + t.amount
        new_done[t.id] = t
    balances.clear()
    balances.update(new_balances)
    done.clear()
    done.update(new_done)
    return True


@settings(max_examples=300, deadline=None)
@given(batches)
def test_batches_conserve_the_supply_and_match_the_rules(batch_list: list[list[Transfer]]) -> None:
    ledger = Ledger.genesis()
    balances, done = dict(ledger.balances), {}
    for batch in batch_list:
        before = copy.deepcopy(ledger)
        expected_ok = model_apply(balances, done, batch)
        try:
            ledger.apply(batch)
        except LedgerError:
            assert not expected_ok
            assert ledger == before  # a refused batch changes nothing
        else:
            assert expected_ok
        assert ledger.check() == []
        assert ledger.total() == SUPPLY
        assert all(b >= 0 for b in ledger.balances.values())
        assert {a: b for a, b in ledger.balances.items() if b} == {a: b for a, b in balances.items() if b}
        assert ledger.transfers == done


@settings(max_examples=200, deadline=None)
@given(batches)
def test_a_replayed_batch_pays_nothing_again(batch_list: list[list[Transfer]]) -> None:
    ledger = Ledger.genesis()
    for batch in batch_list:
        try:
            ledger.apply(batch)
        except LedgerError:
            continue
        after = copy.deepcopy(ledger)
        assert ledger.apply(batch) == ()
        assert ledger.balances == after.balances and ledger.transfers == after.transfers
