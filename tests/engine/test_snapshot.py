"""The readers' snapshot: advancing it never changes the one before (property), and it always
agrees with the writer's state on everything readers read."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from choir.engine import Snapshot
from choir.ledger import ONE_CHOIR
from choir.program import (
    CreateThread,
    Grant,
    PostAnswer,
    PostMessage,
    ProgramError,
    SettleEpoch,
    State,
    SubmitSpec,
    Vote,
    apply,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
STEP = st.tuples(
    st.sampled_from(["post", "thread", "grant", "answer", "spec", "vote", "settle"]), st.integers(0, 4)
)


def _instruction(kind: str, n: int, k: int) -> object:
    return {
        "post": PostMessage("alice", "t0", f"m{k}", f"post {k} {n}"),
        "thread": CreateThread("alice", f"t{k + 1}", f"thread {k}"),
        "grant": Grant(f"u{n}", 10 * ONE_CHOIR, f"g{k}"),
        "answer": PostAnswer(f"q{k}", "bob", "t0", f"a{k}", f"answer {k}", ()),
        "spec": SubmitSpec(f"u{n}", "t0", f"s{k}", f"spec {k}", ONE_CHOIR),
        "vote": Vote("alice", f"s{max(0, k - 1)}", n % 2 == 0),
        "settle": SettleEpoch(n),
    }[kind]


@settings(max_examples=80, deadline=None)
@given(steps=st.lists(STEP, min_size=1, max_size=40))
def test_advancing_a_snapshot_never_changes_it_and_it_matches_the_state(steps: list[tuple[str, int]]) -> None:
    now = T0
    state = State.genesis(T0)
    for ins in (Grant("alice", 10 * ONE_CHOIR, "g"), CreateThread("alice", "t0", "zero")):
        state.commit(apply(state, ins, now))
    snapshot = Snapshot.of(state, 1)
    for k, (kind, n) in enumerate(steps):
        now += timedelta(minutes=20 * (n + 1))
        try:
            outcome = apply(state, _instruction(kind, n, k), now)  # type: ignore[arg-type]
        except ProgramError:
            continue
        state.commit(outcome)
        before = copy.deepcopy(snapshot)
        advanced = snapshot.advanced([outcome], snapshot.version + 1)
        assert snapshot == before  # the old snapshot is as it was
        snapshot = advanced
        assert dict(snapshot.threads) == state.threads
        assert dict(snapshot.specs) == state.specs
        assert dict(snapshot.balances) == state.ledger.balances
        assert dict(snapshot.epochs) == state.epochs
        assert {t: set(ids) for t, ids in snapshot.pending.items() if ids} == {
            t: ids for t, ids in state.pending.items() if ids
        }
        assert set(snapshot.posted_epochs) == set(state.epoch_posts)
    assert snapshot == Snapshot.of(state, snapshot.version)
