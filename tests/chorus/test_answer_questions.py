"""Answers as people see them, on a real server with the zero-configuration answerer: the question is
stored with its answer (and shown after a reload, to others too); the same question asked again is
answered again without noise; a question nobody wrote about gets no citation; the answer cites the prior
that answers, not the one asking the same thing; the phase trace carries no internal words."""

from __future__ import annotations

import asyncio
from typing import Any

from harness import Server, Socket, User

ANSWER = "To patch a puncture, take the tube out, find the hole by listening for air, and glue a patch on it."
ASKING = "I got a flat tyre on my bike this morning, how do I fix it?"
NEIGHBOUR = "Flat roads along the canal make it the easiest ride in town."


async def ask(sock: Socket, thread_id: str, prompt: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    ack = await sock.request("ask", {"thread_id": thread_id, "prompt": prompt})
    assert ack["type"] == "ack", ack
    phases: list[dict[str, Any]] = []
    while True:
        frame = await sock.recv(timeout_s=60)
        if frame["type"] != "event":
            continue
        payload = frame["payload"]
        data = payload["data"]
        if data.get("ask_id") != ack["payload"]["ask_id"]:
            continue
        if payload["kind"] == "chorus.phase":
            phases.append(data)
        elif payload["kind"] == "message.posted":
            return data, phases


async def wait_indexed(user: User, text: str) -> None:
    async with user.http() as http:
        for _ in range(200):
            found = (await http.get("/api/search", params={"q": text, "mode": "vector"})).json()["results"]
            if any(r["content"] == text for r in found):
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"never indexed: {text}")


async def scenario(server: Server) -> None:
    alice, bob = User(server), User(server)
    await alice.sign_in()
    await bob.sign_in()
    cycling = await alice.create_thread("Cycling")
    async with alice.socket() as sock:
        posted = {}
        for text in (ANSWER, ASKING, NEIGHBOUR):
            ack = await sock.request("post", {"thread_id": cycling["thread_id"], "content": text})
            posted[text] = ack["payload"]["message_id"]
    for text in posted:
        await wait_indexed(alice, text)
    questions = await bob.create_thread("Bob's questions")
    async with bob.socket() as sock:
        await sock.request("subscribe", {"thread_id": questions["thread_id"]})
        first, phases = await ask(sock, questions["thread_id"], "How do I fix a flat bike tyre?")
        again, _ = await ask(sock, questions["thread_id"], "How do I fix a flat bike tyre?")
        unknown, _ = await ask(sock, questions["thread_id"], "How do I prune an olive tree?")
    # Cites the answer, not the message asking the same thing nor the flat roads.
    assert [c["message_id"] for c in first["citations"]] == [posted[ANSWER]], first
    assert first["question"] == "How do I fix a flat bike tyre?"
    # Asked again: answered again, the same way, without a note about it.
    assert again["content"] == first["content"] and "asked again" not in again["content"]
    assert again["message_id"] != first["message_id"]
    # Nobody wrote about olive trees: said plainly, nothing cited.
    assert unknown["citations"] == [] and "not written about this" in unknown["content"]
    # The trace speaks to people: no decision words, no Markdown quote marks in the update phase.
    update = [p["text"] for p in phases if p["phase"] == "update" and p["state"] == "end"]
    assert update and all("RETURN" not in t and "LOOP" not in t for t in update)
    # After a reload (REST), and for someone else: each answer shows its question.
    async with alice.http() as http:
        stored = (await http.get(f"/api/threads/{questions['thread_id']}/messages")).json()["messages"]
    answers = [m for m in stored if m["ask_id"]]
    assert [m["question"] for m in answers] == [
        "How do I fix a flat bike tyre?",
        "How do I fix a flat bike tyre?",
        "How do I prune an olive tree?",
    ]
    assert all(m["question"] is None for m in stored if not m["ask_id"])


def test_answers_keep_their_questions_and_cite_only_what_supports_them(sqlite_server: Server) -> None:
    asyncio.run(scenario(sqlite_server))
