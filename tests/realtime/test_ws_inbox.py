"""The inbox and message revisions over a real /ws connection, on SQLite and PostgreSQL: notifications
resumed by id after a reconnection, read marks that never move back nor past the thread, follows refused
on a private thread one is not in, marking read only one's own notifications, and edits and deletions
with their refusals. Every bad payload gets its code and the connection goes on."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from harness import Server, Socket, User


async def people(server: Server, *names: str) -> list[User]:
    users = [User(server) for _ in names]
    for user in users:
        await user.sign_in()
    return users


async def note_events(ws: Socket, count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while len(found) < count:
        frame = await ws.recv()
        if frame["type"] == "event" and frame["payload"]["kind"] == "notification":
            found.append(frame["payload"]["data"])
    return found


async def test_notifications_resume_after_the_last_id_held(server: Server) -> None:
    ada, bob = await people(server, "ada", "bob")
    thread = (await ada.create_thread("Resumable"))["thread_id"]
    async with bob.socket() as ws:
        ack = await ws.request("thread.follow", {"thread_id": thread, "follow": True})
        assert ack["type"] == "ack" and ack["payload"] == {"thread_id": thread, "following": True}
        sub = await ws.request("notifications.subscribe", {"since_id": None})
        assert sub["payload"] == {"latest_id": 0, "unread": 0}
    async with ada.socket() as ws:
        for n in range(3):
            assert (await ws.request("post", {"thread_id": thread, "content": f"news {n}"}))["type"] == "ack"
    # Bob was away for all three; he held none: all three come back, in order, once each.
    async with bob.socket() as ws:
        sub = await ws.request("notifications.subscribe", {"since_id": 0})
        assert sub["payload"]["unread"] == 3
        notes = await note_events(ws, 3)
        assert [n["kind"] for n in notes] == ["reply"] * 3
        assert [n["data"]["excerpt"] for n in notes] == ["news 0", "news 1", "news 2"]
        ids = [n["id"] for n in notes]
        assert ids == sorted(ids) and sub["payload"]["latest_id"] == ids[-1]
        # Holding the second, only the third is replayed.
        await ws.request("notifications.subscribe", {"since_id": ids[1]})
        assert [n["id"] for n in await note_events(ws, 1)] == [ids[2]]
        # Reading the thread up to the second message reads the news of the first two.
        read = await ws.request("thread.read", {"thread_id": thread, "seq": notes[1]["data"]["seq"]})
        assert read["payload"]["notifications_read"] == ids[:2]
    async with bob.http() as http:
        assert (await http.get("/api/notifications")).json()["unread"] == 1


async def test_read_marks_never_move_back_nor_past_the_thread(server: Server) -> None:
    (ada,) = await people(server, "ada")
    thread = await ada.create_thread("Marks")
    async with ada.socket() as ws:
        await ws.request("post", {"thread_id": thread["thread_id"], "content": "one"})
        past = await ws.request("thread.read", {"thread_id": thread["thread_id"], "seq": 10_000})
        assert past["payload"]["read_seq"] == 2  # the thread's last seq
        back = await ws.request("thread.read", {"thread_id": thread["thread_id"], "seq": 1})
        assert back["payload"]["read_seq"] == 2


async def test_a_private_thread_refuses_outsiders_follows_and_marks(server: Server) -> None:
    ada, eve = await people(server, "ada", "eve")
    secret = (await ada.create_thread("Secret", "private"))["thread_id"]
    async with eve.socket() as ws:
        for kind, payload in (
            ("thread.follow", {"thread_id": secret, "follow": True}),
            ("thread.read", {"thread_id": secret, "seq": 1}),
        ):
            reply = await ws.request(kind, payload)
            assert reply["type"] == "error" and reply["payload"]["code"] == "thread_not_found"
        missing = await ws.request("thread.follow", {"thread_id": "nope", "follow": True})
        assert missing["payload"]["code"] == "thread_not_found"
    async with eve.http() as http:
        inbox = (await http.get("/api/inbox")).json()
        assert secret not in inbox["threads"]
        # Completion scoped to a thread she may not read tells her nothing of its people: no such thread.
        scoped = await http.get("/api/people", params={"q": "a", "thread_id": secret})
        assert scoped.status_code == 404 and scoped.json()["code"] == "thread_not_found"


async def test_marking_read_touches_only_ones_own(server: Server) -> None:
    ada, bob, eve = await people(server, "ada", "bob", "eve")
    thread = (await ada.create_thread("Mentions"))["thread_id"]
    async with ada.socket() as ws:
        content = f"hello @{bob.address[:8]} and @{eve.address[:8]}"
        assert (await ws.request("post", {"thread_id": thread, "content": content}))["type"] == "ack"
    async with bob.http() as http:
        bobs = (await http.get("/api/notifications")).json()["notifications"]
    assert [n["kind"] for n in bobs] == ["mention"]
    async with eve.socket() as ws:
        # Eve marks Bob's notification by its id: nothing of Bob's changes.
        ack = await ws.request("notifications.read", {"ids": [bobs[0]["id"]]})
        assert ack["payload"]["changed"] == 0
        mine = await ws.request("notifications.read", {"up_to_id": 10_000})
        assert mine["payload"]["changed"] == 1
    async with bob.http() as http:
        assert (await http.get("/api/notifications")).json()["unread"] == 1


@pytest.mark.parametrize(
    ("kind", "payload", "code"),
    [
        ("message.edit", {"message_id": "m", "content": 5}, "invalid_payload"),
        ("message.edit", {"message_id": "", "content": "x"}, "invalid_payload"),
        ("message.edit", {"message_id": "nope", "content": "x"}, "message_not_found"),
        ("message.edit", {"message_id": "m", "content": "x" * (16 * 1024 + 1)}, "too_large"),
        ("message.delete", {"message_id": "nope"}, "message_not_found"),
        ("message.delete", {}, "invalid_payload"),
        ("thread.follow", {"thread_id": "t", "follow": "yes"}, "invalid_payload"),
        ("thread.read", {"thread_id": "t", "seq": -1}, "invalid_payload"),
        ("thread.read", {"thread_id": "t", "seq": 1.5}, "invalid_payload"),
        ("notifications.subscribe", {"since_id": "0"}, "invalid_payload"),
        ("notifications.read", {}, "invalid_payload"),
        ("notifications.read", {"up_to_id": 1, "ids": [1]}, "invalid_payload"),
        ("notifications.read", {"ids": []}, "invalid_payload"),
        ("notifications.read", {"ids": list(range(201))}, "invalid_payload"),
    ],
)
async def test_bad_inbox_and_revision_frames_get_their_code(
    sqlite_server: Server, kind: str, payload: dict[str, Any], code: str
) -> None:
    (ada,) = await people(sqlite_server, "ada")
    async with ada.socket() as ws:
        reply = await ws.request(kind, payload)
        assert reply["type"] == "error" and reply["payload"]["code"] == code, reply
        assert (await ws.request("ping", {}))["type"] == "ack"  # the connection goes on


async def test_edits_and_deletions_over_the_socket(server: Server) -> None:
    ada, bob = await people(server, "ada", "bob")
    thread = (await ada.create_thread("Revised"))["thread_id"]
    async with ada.socket() as ws, bob.socket() as watcher:
        await watcher.request("subscribe", {"thread_id": thread})
        posted = (await ws.request("post", {"thread_id": thread, "content": "first words"}))["payload"]
        mid = posted["message_id"]
        await ws.request("post", {"thread_id": thread, "content": "other words"})
        for payload, code in (
            ({"message_id": mid, "content": "first words"}, "unchanged"),
            ({"message_id": mid, "content": "other words"}, "duplicate_content"),
        ):
            reply = await ws.request("message.edit", payload)
            assert reply["payload"]["code"] == code
        edited = await ws.request("message.edit", {"message_id": mid, "content": "better words"})
        assert edited["payload"]["version"] == 2
        runtime = server.app.state.runtime
        await runtime.indexer.drain()
        point = runtime.index.get(mid)  # the edit re-embedded: the point holds the new content's hash
        assert point is not None and point.content_hash == hashlib.sha256(b"better words").hexdigest()
        assert any(
            hit.message_id == mid for hit in runtime.store.keyword_search("better words", 10, [thread])
        )
        refused = await watcher.request("message.delete", {"message_id": mid})
        assert refused["payload"]["code"] == "not_author"
        deleted = await ws.request("message.delete", {"message_id": mid})
        assert deleted["payload"]["version"] == 3
        again = await ws.request("message.delete", {"message_id": mid})
        assert again["payload"]["code"] == "message_deleted"
        kinds = [(e["kind"], e["data"].get("version")) for e in await watcher.events(4)]
        assert kinds == [
            ("message.posted", None),
            ("message.posted", None),
            ("message.edited", 2),
            ("message.deleted", 3),
        ]
    # Gone from the vector index and from the keyword index too, once the indexer has caught up.
    await runtime.indexer.drain()
    assert runtime.index.get(mid) is None
    assert all(hit.message_id != mid for hit in runtime.store.keyword_search("better words", 10, [thread]))
    # A reconnecting reader replays the same history, with the deleted content gone from it.
    async with bob.socket() as again_ws:
        await again_ws.request("subscribe", {"thread_id": thread, "since_seq": 1})
        replayed = await again_ws.events(4)
        first = replayed[0]
        assert (
            first["data"]["message_id"] == mid and first["data"]["content"] == "" and first["data"]["deleted"]
        )
        assert replayed[2]["kind"] == "message.edited" and replayed[2]["data"]["content"] == ""
