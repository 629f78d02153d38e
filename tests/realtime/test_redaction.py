"""A deleted message leaves no copy in the AI answers that quoted it: in the same commit each answer
citing it gets its next version with the quote removed (the citation marker stays), the answer's
earlier versions and their events lose their text, and the audit stays clean. On SQLite and
PostgreSQL, through a real server and socket."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from harness import Server, User, operator_audit

from choir.chorus.citations import REMOVED_QUOTE, redact_quotes

PRIOR = "Sungold cherry tomatoes split when they are watered unevenly after a dry spell."
OTHER = "Basil wilts in cold nights, so bring the pots in below ten degrees."


def test_a_quote_line_and_a_repeated_sentence_are_removed_and_the_rest_kept() -> None:
    answer = f"Here is what I found.\n\n> {PRIOR} [1]\n\n> {OTHER} [2]\n\nIn short: {PRIOR} [1]"
    redacted = redact_quotes(answer, [1], PRIOR)
    assert PRIOR not in redacted and OTHER in redacted
    assert redacted.count(REMOVED_QUOTE) == 2 and "[1]" in redacted and "[2]" in redacted
    assert redact_quotes(answer, [3], "nothing quoted here at all") == answer


async def _answer_citing(user: User, thread_id: str, prompt: str, cited: str) -> dict[str, Any]:
    async with user.socket() as ws:
        await ws.request("subscribe", {"thread_id": thread_id})
        ack = await ws.request("ask", {"thread_id": thread_id, "prompt": prompt})
        assert ack["type"] == "ack", ack
        while True:
            frame = await ws.recv(timeout_s=60)
            data = frame["payload"].get("data") or {}
            if (
                frame["type"] == "event"
                and data.get("ask_id") == ack["payload"]["ask_id"]
                and "citations" in data
            ):
                assert cited in [c["message_id"] for c in data["citations"]], data
                return data


async def test_deleting_a_quoted_message_redacts_the_answers_that_quoted_it(server: Server) -> None:
    alice, bob = User(server), User(server)
    await alice.sign_in()
    await bob.sign_in()
    garden = (await alice.create_thread("Garden"))["thread_id"]
    questions = (await bob.create_thread("Questions"))["thread_id"]
    async with alice.socket() as ws:
        prior = (await ws.request("post", {"thread_id": garden, "content": PRIOR}))["payload"]["message_id"]
        await ws.request("post", {"thread_id": garden, "content": OTHER})
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        while prior not in [
            r["message_id"]
            for r in (await http.get("/api/search", params={"q": PRIOR, "mode": "vector"})).json()["results"]
        ]:
            assert time.monotonic() < deadline, "never indexed"
            await asyncio.sleep(0.2)
    answer = await _answer_citing(bob, questions, "Why do my cherry tomatoes split?", prior)
    assert "watered unevenly" in answer["content"]  # the answer (no model here) quotes the prior
    answer_id = answer["message_id"]

    async with bob.socket() as watching, alice.socket() as ws:
        await watching.request("subscribe", {"thread_id": questions})
        deleted = await ws.request("message.delete", {"message_id": prior})
        assert deleted["type"] == "ack" and deleted["payload"]["message_id"] == prior, deleted
        edited = next(e for e in await watching.events(1) if e["kind"] == "message.edited")
    assert edited["data"]["message_id"] == answer_id and edited["data"]["version"] == 2
    assert "watered unevenly" not in edited["data"]["content"] and REMOVED_QUOTE in edited["data"]["content"]

    async with bob.http() as http:
        page = (await http.get(f"/api/threads/{questions}/messages")).json()["messages"]
        versions = (await http.get(f"/api/messages/{answer_id}/versions")).json()["versions"]
    shown = next(m for m in page if m["message_id"] == answer_id)
    assert "watered unevenly" not in json.dumps(shown) and shown["version"] == 2
    assert [v["content"] for v in versions if v["version"] == 1] == [None]
    # Nothing replayed from the store holds the quote either.
    async with bob.socket() as replaying:
        await replaying.request("subscribe", {"thread_id": questions, "since_seq": 0})
        frames = []
        try:
            while True:
                frames.append(await replaying.recv(timeout_s=1.5))
        except TimeoutError:
            pass
    assert frames and "watered unevenly" not in json.dumps(frames)
    report = await operator_audit(server)
    assert report["ok"], report
