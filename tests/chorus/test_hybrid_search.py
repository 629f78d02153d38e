"""Hybrid search on a real server, on SQLite (FTS5) and on PostgreSQL (full-text search): an exact rare
word is found among messages on the same topic, private threads stay out of both indexes' results for
anyone who is not a co-author, and the audit checks the keyword index."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from harness import Server, User
from sqlalchemy import text

from choir.ops.audit import audit
from choir.store.sql import Store

TOPIC = [
    "Cherry tomatoes ripen faster on a sunny balcony.",
    "Water tomatoes deeply twice a week rather than a little every day.",
    "Tomato leaves curl when the nights are cold.",
    "Pinch the side shoots of cordon tomatoes every week.",
    "Blossom end rot on tomatoes comes from uneven watering.",
    "Grafted tomato plants crop earlier and for longer.",
    "Tomatoes in pots need feeding every week once they flower.",
    "Red plastic mulch warms the soil under tomato plants.",
]
RARE = "My Sungold plants split after the storm, the rest did not."
SECRET = "The Zanzibar vault code is behind the blue tomato crate."


async def search(user: User | None, server: Server, q: str, mode: str = "hybrid") -> dict[str, Any]:
    if user is None:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            return (await http.get("/api/search", params={"q": q, "mode": mode})).json()  # type: ignore[no-any-return]
    async with user.http() as http:
        return (await http.get("/api/search", params={"q": q, "mode": mode})).json()  # type: ignore[no-any-return]


def ids(found: dict[str, Any]) -> list[str]:
    return [r["message_id"] for r in found["results"]]


async def scenario(server: Server) -> None:
    alice, bob = User(server), User(server)
    await alice.sign_in()
    await bob.sign_in()
    garden = await alice.create_thread("Tomatoes")
    secrets = await alice.create_thread("Alice's notes", visibility="private")
    posted: dict[str, str] = {}
    async with alice.socket() as sock:
        for content in [*TOPIC, RARE]:
            ack = await sock.request("post", {"thread_id": garden["thread_id"], "content": content})
            posted[content] = ack["payload"]["message_id"]
        ack = await sock.request("post", {"thread_id": secrets["thread_id"], "content": SECRET})
        secret_id = ack["payload"]["message_id"]
    # The vector index catches up just after the commits (the keyword index is written with them):
    # wait until meaning alone finds every message, so the fused ranking is the settled one.
    for content in [*TOPIC, RARE]:
        for _ in range(200):
            if posted[content] in ids(await search(bob, server, content, "vector")):
                break
            await asyncio.sleep(0.1)
    rare = await search(bob, server, "Sungold")
    assert ids(rare)[0] == posted[RARE], rare
    assert rare["terms"] == ["sungold"] and rare["results"][0]["matched_words"] is True
    assert rare["results"][0]["thread_title"] == "Tomatoes"
    # A word and a topic: the message with the word near the top, the topic's around it.
    mixed = ids(await search(bob, server, "why did my sungold tomatoes split"))
    assert posted[RARE] in mixed[:3] and len(mixed) > 3
    # The private thread's message: never for Bob or a signed-out reader, by words or by meaning.
    for reader in (bob, None):
        for q in ("Zanzibar", "vault code", "Zanzibar vault code behind the blue tomato crate"):
            for mode in ("hybrid", "vector"):
                assert secret_id not in ids(await search(reader, server, q, mode)), (q, mode)
    # Its co-author finds it by its words.
    mine = await search(alice, server, "Zanzibar")
    assert ids(mine) == [secret_id] and mine["results"][0]["thread_visibility"] == "private"


def test_hybrid_search_finds_rare_words_and_keeps_private_threads_private(server: Server) -> None:
    asyncio.run(scenario(server))
    store = Store(server.settings.sql_url)
    try:
        assert "keyword_index" not in audit(store).kinds()
    finally:
        store.close()


def test_bad_search_input_is_refused_clearly(server: Server) -> None:
    with httpx.Client(base_url=server.base_url) as http:
        for params in ({"q": ""}, {"q": "x", "mode": "fuzzy"}, {"q": "x", "limit": 0}):
            response = http.get("/api/search", params=params)
            assert response.status_code == 422 and response.json()["code"] == "invalid_payload", params
        # FTS5 and tsquery syntax in a query are read as words, not operators.
        for q in (
            '"unbalanced',
            "NEAR(a b)",
            "a AND OR NOT",
            "tomato*",
            "a & b | !c",
            "'; DROP TABLE messages; --",
            "…",
        ):
            response = http.get("/api/search", params={"q": q})
            assert response.status_code == 200, (q, response.text)


def test_the_audit_finds_a_keyword_index_out_of_step(tmp_path: Any) -> None:
    from harness import run_server

    with run_server(tmp_path / "data") as server:
        asyncio.run(scenario(server))
    store = Store(server.settings.sql_url)
    try:
        with store.engine.begin() as conn:
            row = conn.execute(text("SELECT rowid, content FROM messages LIMIT 1")).one()
            conn.execute(
                text("INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', :r, :c)"),
                {"r": row.rowid, "c": row.content},
            )
        assert "keyword_index" in audit(store).kinds()
    finally:
        store.close()
