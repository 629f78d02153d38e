"""Asking the Choir AI end to end: a real server, real MiniLM embeddings, the embedded
Qdrant shard, the extractive answerer, and real WebSocket clients."""

from __future__ import annotations

import asyncio

import pytest
from harness import Server, Socket, User

PRIORS = {
    "Gardening": [
        "Tomatoes need at least six hours of direct sunlight every day to ripen well.",
        "Water tomato plants deeply twice a week rather than a little every day.",
    ],
    "Cycling": [
        "Keep your bicycle chain clean and oiled so the gears shift smoothly.",
        "Inflate road bike tyres to about 80 psi for a comfortable ride.",
    ],
    "Baking": [
        "Sourdough bread rises slowly because wild yeast ferments the dough over many hours.",
    ],
}
SECRET = "Tomatoes need sunlight, and the secret vault code is 4471, hidden in our private garden plan."


async def wait_searchable(user: User, text: str, timeout_s: float = 10.0) -> None:
    async with user.http() as http:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            results = (await http.get("/api/search", params={"q": text})).json()["results"]
            if any(r["content"] == text for r in results):
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"not searchable after {timeout_s} s: {text!r}")


async def post_all(sock: Socket, thread_id: str, texts: list[str]) -> dict[str, str]:
    ids = {}
    for text in texts:
        ack = await sock.request("post", {"thread_id": thread_id, "content": text})
        assert ack["type"] == "ack", ack
        ids[text] = ack["payload"]["message_id"]
    return ids


@pytest.mark.timeout(120)
async def test_answer_cites_the_right_public_priors_and_never_a_private_one(sqlite_server: Server) -> None:
    alice, bob = User(sqlite_server), User(sqlite_server)
    await alice.sign_in()
    await bob.sign_in()
    ids: dict[str, str] = {}
    async with alice.socket() as a:
        for title, texts in PRIORS.items():
            thread = await alice.create_thread(title)
            ids |= await post_all(a, thread["thread_id"], texts)
        private = await alice.create_thread("Secrets", visibility="private")
        secret_id = (await post_all(a, private["thread_id"], [SECRET]))[SECRET]
    for text in ids:
        await wait_searchable(alice, text)
    asking = await bob.create_thread("Questions")
    async with bob.socket() as b:
        await b.request("subscribe", {"thread_id": asking["thread_id"]})
        ack = await b.request(
            "ask", {"thread_id": asking["thread_id"], "prompt": "How much sun do tomatoes need?"}
        )
        assert ack["type"] == "ack", ack
        ask_id = ack["payload"]["ask_id"]
        phases: list[tuple[str, str]] = []
        answer = None
        while answer is None:
            frame = await b.recv(timeout_s=60)
            payload = frame["payload"]
            if frame["type"] != "event":
                continue
            if payload["kind"] == "chorus.phase":
                assert payload["seq"] is None and payload["data"]["ask_id"] == ask_id
                phases.append((payload["data"]["phase"], payload["data"]["state"]))
            elif payload["kind"] == "message.posted" and payload["data"]["ask_id"] == ask_id:
                answer = payload["data"]
    starts = [p for p, state in phases if state == "start"]
    assert starts[:5] == ["action", "experience", "intention", "observation", "update"]
    assert starts[-1] == "yield" and len(starts) <= 6 + 2 * 4
    assert ("yield", "delta") in phases and ("yield", "end") in phases
    assert answer["author"] == "choir-ai"
    cited = {c["message_id"] for c in answer["citations"]}
    assert cited, answer
    assert secret_id not in cited
    assert "4471" not in answer["content"]
    sun = ids[PRIORS["Gardening"][0]]
    assert answer["citations"][0]["message_id"] == sun
    assert cited <= set(ids.values())
    for c in answer["citations"]:
        assert f"[{c['n']}]" in answer["content"]
        assert 0.2 <= c["score"] <= 1.0
    # The stored answer carries the same citations, and the search never shows the private message.
    async with bob.http() as http:
        stored = (await http.get(f"/api/threads/{asking['thread_id']}/messages")).json()["messages"][-1]
        assert stored["citations"] == answer["citations"]
        results = (await http.get("/api/search", params={"q": "secret vault code"})).json()["results"]
        assert secret_id not in {r["message_id"] for r in results}
        prior = (await http.get(f"/api/messages/{sun}")).json()
        assert prior["content"] == PRIORS["Gardening"][0]


async def test_ask_over_rest_and_errors(sqlite_server: Server) -> None:
    alice = User(sqlite_server)
    await alice.sign_in()
    thread = await alice.create_thread("Q")
    async with alice.http() as http:
        missing = await http.post("/api/threads/nope/ask", json={"prompt": "hi"})
        assert missing.status_code == 404 and missing.json()["code"] == "thread_not_found"
        empty = await http.post(f"/api/threads/{thread['thread_id']}/ask", json={"prompt": ""})
        assert empty.status_code == 422 and empty.json()["code"] == "invalid_payload"
        ok = await http.post(f"/api/threads/{thread['thread_id']}/ask", json={"prompt": "anything?"})
        assert ok.status_code == 202 and len(ok.json()["ask_id"]) == 16
    async with alice.socket() as a:
        err = await a.request("ask", {"thread_id": "nope", "prompt": "hi"})
        assert err["type"] == "error" and err["payload"]["code"] == "thread_not_found"


async def test_asks_are_limited_per_asker(sqlite_server: Server) -> None:
    from choir.chorus.service import ASKS_PER_MINUTE

    alice = User(sqlite_server)
    await alice.sign_in()
    thread = await alice.create_thread("Many questions")
    async with alice.http() as http:
        url = f"/api/threads/{thread['thread_id']}/ask"
        codes = [(await http.post(url, json={"prompt": f"q{i}"})).status_code for i in range(ASKS_PER_MINUTE)]
        assert codes == [202] * ASKS_PER_MINUTE
        refused = await http.post(url, json={"prompt": "one more"})
        assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
