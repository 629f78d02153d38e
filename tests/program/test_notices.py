"""Who is told what, at the program's speed: `program.notices.derive` over any history of the pure
program, with any followers. Nobody is told of their own doing; nothing of a thread reaches anyone who
may not read it (a spec's outcome names the thread only to those who may); one event tells one
person once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.program.conftest import World

from choir.ledger import ONE_CHOIR
from choir.program import (
    CreateThread,
    Grant,
    Outcome,
    PostMessage,
    ProgramError,
    SubmitSpec,
    Visibility,
    Vote,
    notices,
)

PEOPLE = ["ann", "ben", "cat", "dan"]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("thread"), st.sampled_from(PEOPLE), st.sampled_from(list(Visibility))),
        st.tuples(
            st.just("post"), st.sampled_from(PEOPLE), st.integers(0, 3), st.lists(st.sampled_from(PEOPLE))
        ),
        st.tuples(st.just("spec"), st.sampled_from(PEOPLE), st.integers(0, 3)),
        st.tuples(st.just("vote"), st.sampled_from(PEOPLE), st.booleans()),
    ),
    max_size=30,
)
followers = st.dictionaries(
    st.integers(0, 3), st.dictionaries(st.sampled_from(PEOPLE), st.sampled_from([True, False, None]))
)


def _run(world: World, history: list[tuple[Any, ...]]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    threads: list[str] = []
    for n, step in enumerate(history):
        kind, who = step[0], step[1]
        world.advance(1)
        try:
            if kind == "thread":
                ins: Any = CreateThread(who, f"t{len(threads)}", f"title {len(threads)}", step[2])
                threads.append(ins.thread_id)
            elif kind == "post" and threads:
                ins = PostMessage(
                    who, threads[step[2] % len(threads)], f"m{n}", f"words {n}", mentions=tuple(step[3])
                )
            elif kind == "spec" and threads:
                ins = SubmitSpec(who, threads[step[2] % len(threads)], f"s{n}", f"spec {n}", ONE_CHOIR)
            elif kind == "vote":
                pending = sorted(s for s, spec in world.state.specs.items() if who in spec.voters)
                if not pending:
                    continue
                ins = Vote(who, pending[0], step[2])
            else:
                continue
            outcomes.append(world.do(ins))
        except ProgramError:
            continue
    return outcomes


@settings(max_examples=200, deadline=None)
@given(history=steps, chosen=followers)
def test_nobody_hears_of_a_thread_they_may_not_read_nor_of_their_own_doing(
    history: list[tuple[Any, ...]], chosen: dict[int, dict[str, bool | None]]
) -> None:
    world = World()
    for person in PEOPLE:
        world.do(Grant(person, 10 * ONE_CHOIR, f"g-{person}"))
    world.advance(timedelta(days=1).total_seconds())
    for outcome in _run(world, history):
        follow = {f"t{t}": f for t, f in chosen.items()}
        derived = notices.derive([outcome], follow)
        told = [(r["address"], r["kind"], r["ref"]) for r in derived.rows]
        assert len(told) == len(set(told)), told  # one event tells one person once
        for row in derived.rows:
            thread = world.state.threads.get(row["thread_id"] or "")
            data = row["data"]
            assert data.get("author") != row["address"] or row["kind"] == "spec.outcome"
            if thread is None:
                continue
            if row["kind"] == "spec.outcome":
                # The author is told the outcome of their own spec; its thread's title only if readable.
                assert (data["title"] != "") == thread.readable_by(row["address"])
            elif row["kind"] != "reward":
                assert thread.readable_by(row["address"]), row
