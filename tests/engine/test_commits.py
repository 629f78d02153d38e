"""The commit feed: named subscribers, called in the order they subscribed, each isolated from
the others' failures; and the coordinator emits exactly what it committed, once, after COMMIT."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from choir.engine import Commit, CommitFeed, Coordinator, Refused, Snapshot
from choir.program import CreateThread, Grant, PostMessage, ProgramError, State
from choir.store.sql import Store

AT = datetime(2030, 1, 1, tzinfo=UTC)


def _commit() -> Commit:
    return Commit((), {}, Snapshot.of(State.genesis(AT), 1))


def test_subscribers_hear_in_order_and_a_failing_one_stops_no_other(caplog: pytest.LogCaptureFixture) -> None:
    feed = CommitFeed()
    heard: list[str] = []

    def broken(_commit: Commit) -> None:
        heard.append("publisher")
        raise RuntimeError("boom")

    feed.subscribe("metrics", lambda _c: heard.append("metrics"))
    feed.subscribe("publisher", broken)
    feed.subscribe("indexer", lambda _c: heard.append("indexer"))
    with caplog.at_level(logging.ERROR):
        feed.emit(_commit())
    assert heard == ["metrics", "publisher", "indexer"]
    assert feed.names == ("metrics", "publisher", "indexer")
    assert "commit subscriber 'publisher' failed" in caplog.text


def test_a_name_is_taken_once() -> None:
    feed = CommitFeed()
    feed.subscribe("metrics", lambda _c: None)
    with pytest.raises(ValueError, match="already"):
        feed.subscribe("metrics", lambda _c: None)


def test_the_coordinator_emits_each_commit_once_after_it_is_stored(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    coordinator = Coordinator.open(store, clock=lambda: AT)
    heard: list[Commit] = []

    def subscriber(commit: Commit) -> None:
        # By now the store has the batch and the snapshot is the one the commit carries.
        assert store.version() == commit.snapshot.version == coordinator.version
        heard.append(commit)

    coordinator.feed.subscribe("probe", subscriber)
    results = coordinator.execute_many(
        [
            Grant("alice", 5, "g1"),
            CreateThread("alice", "t", "title"),
            PostMessage("alice", "t", "m1", "*hello*"),
            PostMessage("mallory", "t", "m2", "refused: not a co-author"),
        ]
    )
    refused = results[3]
    assert isinstance(refused, Refused) and refused.error.code == "not_co_author"
    (commit,) = heard
    assert len(commit.outcomes) == 3
    assert [e.kind for e in commit.events()] == ["thread.created", "message.posted"]
    posted = commit.events()[1]
    assert commit.event_data(posted)["html"] == "<p>*hello*</p>"  # plain_html: no markdown here
    assert "html" not in posted.data  # the event itself is never written to
    assert [e.data for e in store.events_since("t", 0)][1]["html"] == "<p>*hello*</p>"
    with pytest.raises(ProgramError):
        coordinator.execute(PostMessage("mallory", "t", "m3", "refused"))
    assert len(heard) == 1  # a refused instruction commits nothing and emits nothing
    store.close()
