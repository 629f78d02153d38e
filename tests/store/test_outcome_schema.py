"""``Outcome`` is the one declared schema of a change: every field is kept by the state log (so a
process catching up rebuilds it) or named as not needed there, with the reason; a field added to
``Outcome`` and forgotten here fails this guard. And what the log keeps rebuilds the writer's state:
a second process catching up from the log after a simulated history holds the same state."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from choir.engine import Coordinator
from choir.ops.simulate import Simulator
from choir.program import Outcome
from choir.store import statelog
from choir.store.sql import Store


def test_every_outcome_field_is_logged_or_said_not_to_be() -> None:
    fields = {f.name for f in dataclasses.fields(Outcome)}
    logged = [entry.field for entry in statelog.LOGGED]
    assert len(logged) == len(set(logged)), "a field logged twice"
    assert set(logged).isdisjoint(statelog.NOT_LOGGED)
    assert set(logged) | set(statelog.NOT_LOGGED) == fields
    assert all(reason for reason in statelog.NOT_LOGGED.values())
    keys = [entry.key for entry in statelog.LOGGED]
    assert len(keys) == len(set(keys)), "two fields under one key"


def test_a_process_catching_up_from_the_log_holds_the_writers_state(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'choir.db'}"
    sim = Simulator(seed=5, actors=12, database_url=url)
    sim.coordinator.store.logs_state = True
    follower = Coordinator.open(Store(url))
    start = follower.version
    sim.run(600)
    with follower.store.engine.connect() as conn:
        outcomes = statelog.outcomes_since(conn, start, sim.coordinator.version)
    assert outcomes is not None and len(outcomes) == sim.coordinator.version - start
    ours, theirs = follower.state, sim.coordinator.state
    for outcome in outcomes:
        ours.commit(outcome)
    for name in ("threads", "specs", "messages", "epochs", "epoch_posts", "epoch_citations", "hashes"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.ledger.balances == theirs.ledger.balances
