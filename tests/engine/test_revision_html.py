"""A batch may publish a message and edit it (group commit): each event keeps the html of its own
version, and the message row the latest."""

from __future__ import annotations

from choir.engine import Coordinator
from choir.program import CreateThread, EditMessage, PostMessage
from choir.store.sql import Store


def test_a_post_and_its_edit_in_one_batch_keep_their_own_html() -> None:
    coordinator = Coordinator.open(Store("sqlite://"))
    coordinator.execute(CreateThread("ada", "t", "a thread"))
    results = coordinator.execute_many(
        [
            PostMessage("ada", "t", "m1", "first words"),
            EditMessage("ada", "m1", "second words"),
            EditMessage("ada", "m1", "third words"),
        ]
    )
    assert all(not hasattr(r, "error") for r in results)
    events = coordinator.store.events_since("t", 1)
    assert [(e.kind, e.data["html"]) for e in events] == [
        ("message.posted", "<p>first words</p>"),
        ("message.edited", "<p>second words</p>"),
        ("message.edited", "<p>third words</p>"),
    ]
    assert coordinator.store.messages_by_id(["m1"])["m1"]["html"] == "<p>third words</p>"
