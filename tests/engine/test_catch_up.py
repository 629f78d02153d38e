"""Catching up from the state log: a process whose state is behind applies what the other processes
committed (the log rows and the records they name) and ends exactly where a full reload would, without
reloading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from choir.engine import Coordinator
from choir.engine.snapshot import Snapshot
from choir.ops.simulate import Simulator
from choir.program import Params
from choir.store import statelog
from choir.store.sql import Store


def no_reloads(coordinator: Coordinator, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    reloads: list[int] = []
    original = coordinator._reload

    def counting() -> None:
        reloads.append(coordinator.version)
        original()

    monkeypatch.setattr(coordinator, "_reload", counting)
    return reloads


def same_snapshot(a: Snapshot, b: Snapshot) -> None:
    for name in ("version", "threads", "specs", "pending", "balances", "epochs", "posted_epochs"):
        assert getattr(a, name) == getattr(b, name), name


def fresh(url: str) -> Coordinator:
    return Coordinator.open(Store(url), Params(epoch_seconds=3600))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), chunks=st.lists(st.integers(1, 60), min_size=1, max_size=6))
def test_a_follower_catches_up_to_what_a_reload_gives(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, seed: int, chunks: list[int]
) -> None:
    url = f"sqlite:///{tmp_path_factory.mktemp('catch') / 'choir.db'}"
    sim = Simulator(seed, actors=6, database_url=url)
    sim.coordinator.store.logs_state = True  # one writer on SQLite keeps no log unless asked
    follower = fresh(url)
    reloads = no_reloads(follower, monkeypatch)
    for steps in chunks:
        sim.run(steps)
        follower.refresh_if_stale()
        assert follower.version == sim.coordinator.version
        assert follower.state == sim.state
        same_snapshot(follower.snapshot, sim.coordinator.snapshot)
    assert reloads == []
    assert follower.state == fresh(url).state


def test_two_writers_on_postgres_catch_up_instead_of_reloading(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two coordinators write one PostgreSQL in turn, as two processes do: each write first applies
    the other's commits from the log."""
    first = Simulator(1, actors=8, database_url=postgres_url)
    second = Simulator(2, actors=8, database_url=postgres_url)
    second.actors = first.actors  # the same people, acting through either process
    # Ids unique across the processes, as the servers' random ones are (two simulators counting from 1
    # would reuse ask ids, and the state log reads an ask's citations by its id).
    second.counter = 1_000_000
    reloads = no_reloads(first.coordinator, monkeypatch) + no_reloads(second.coordinator, monkeypatch)
    for _ in range(15):
        first.run(20)
        second.run(20)
    first.coordinator.refresh_if_stale()
    reloaded = fresh(postgres_url)
    for sim in (first, second):
        assert sim.coordinator.version == reloaded.version
        assert sim.state == reloaded.state
        same_snapshot(sim.coordinator.snapshot, reloaded.snapshot)
    assert reloads == []


def test_a_follower_behind_the_pruned_log_reloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'choir.db'}"
    monkeypatch.setattr(statelog, "LOG_KEEP", 5)
    monkeypatch.setattr(statelog, "PRUNE_EVERY", 5)
    sim = Simulator(3, actors=4, database_url=url)
    sim.coordinator.store.logs_state = True
    follower = fresh(url)
    reloads = no_reloads(follower, monkeypatch)
    sim.run(80)
    follower.refresh_if_stale()
    assert reloads, "the log no longer covers the follower's version: it must reload"
    assert follower.state == sim.state


def test_the_log_names_what_a_batch_wrote() -> None:
    from choir.program import Outcome

    assert statelog.delta_of([Outcome(), Outcome(novelty=[("m1", 5)])]) == {"novelty": [["m1", 5]]}
    delta: dict[str, Any] = statelog.delta_of(
        [Outcome(balances={"a": 1}), Outcome(balances={"a": 2, "b": 3})]
    )
    assert delta == {"accounts": ["a", "b"]}


def test_one_writer_on_sqlite_keeps_no_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'choir.db'}"
    Simulator(4, actors=4, database_url=url).run(30)
    assert Store(url).count("state_log") == 0
