"""Prometheus /metrics scraped from a real server after real traffic, parsed with the
Prometheus client's own parser."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from harness import OPERATOR_KEY, Server, Socket, User, operator_audit
from prometheus_client.parser import text_string_to_metric_families

from choir.ops.metrics import Metrics

POSTS = 4


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as {(sample name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


async def answer_of(sock: Socket, ask_id: str) -> dict[str, object]:
    while True:
        frame = await sock.recv(timeout_s=60)
        payload = frame["payload"]
        posted = frame["type"] == "event" and payload["kind"] == "message.posted"
        if posted and payload["data"]["ask_id"] == ask_id:
            data: dict[str, object] = payload["data"]
            return data


@pytest.mark.timeout(120)
async def test_metrics_count_real_traffic(sqlite_server: Server) -> None:
    before = await scrape(sqlite_server)
    assert before[("choir_audit_ok", ())] == -1  # never run
    assert before[("choir_messages_total", ())] == 0
    assert before[("choir_post_delivery_seconds_count", ())] == 0

    alice, bob = User(sqlite_server), User(sqlite_server)
    await alice.sign_in()
    await bob.sign_in()
    thread = await alice.create_thread("Metrics")
    tid = thread["thread_id"]
    async with alice.socket() as a, bob.socket() as b:
        for sock in (a, b):
            assert (await sock.request("subscribe", {"thread_id": tid}))["type"] == "ack"
        for i in range(POSTS):
            ack = await a.request("post", {"thread_id": tid, "content": f"measured post {i}"})
            assert ack["type"] == "ack", ack
        await b.events(POSTS)
        await a.events(POSTS)
        ask = await b.request("ask", {"thread_id": tid, "prompt": "What was measured?"})
        assert ask["type"] == "ack", ask
        await answer_of(b, ask["payload"]["ask_id"])
        during = await scrape(sqlite_server)

    assert during[("choir_connections", ())] == 2
    # Alice's posts and the Choir AI's answer.
    assert during[("choir_messages_total", ())] == POSTS + 1
    # One welcome grant per person who signed in.
    assert during[("choir_transfers_total", (("kind", "grant"),))] == 2
    assert during[("choir_transfers_total", (("kind", "stake"),))] == 0
    # Each post reached two subscribed sockets, and so did the answer.
    assert during[("choir_post_delivery_seconds_count", ())] == 2 * (POSTS + 1)
    assert 0 < during[("choir_post_delivery_seconds_sum", ())] < 2 * (POSTS + 1) * 5
    assert during[("choir_post_delivery_seconds_bucket", (("le", "+Inf"),))] == 2 * (POSTS + 1)
    for phase in ("action", "experience", "intention", "observation", "update", "yield"):
        assert during[("choir_chorus_phase_seconds_count", (("phase", phase),))] >= 1, phase
    assert during[("choir_chorus_first_event_seconds_count", ())] == 1
    assert during[("choir_retrieval_seconds_count", ())] >= 1

    audited = await operator_audit(sqlite_server)
    assert audited["ok"] is True
    assert audited["index_checked"] is True
    after = await scrape(sqlite_server)
    assert after[("choir_audit_ok", ())] == 1
    assert after[("choir_audit_findings", ())] == 0
    # The sockets closed; the hub says so at the next scrape.
    for _ in range(50):
        if after[("choir_connections", ())] == 0:
            break
        await asyncio.sleep(0.1)
        after = await scrape(sqlite_server)
    assert after[("choir_connections", ())] == 0


async def test_the_audit_is_the_operators_alone_whatever_the_peer_address(sqlite_server: Server) -> None:
    """Loopback is no credential: behind a proxy every request comes from loopback. Only a signed-in
    operator (CHOIR_OPERATORS) from an allowed Origin runs the audit."""
    stranger = User(sqlite_server)
    await stranger.sign_in()
    async with httpx.AsyncClient(base_url=sqlite_server.base_url, timeout=10) as http:
        anonymous = await http.post("/api/audit", headers={"Origin": sqlite_server.origin})
    async with stranger.http() as http:
        signed_in = await http.post("/api/audit")
    operator = User(sqlite_server, OPERATOR_KEY)
    await operator.sign_in()
    async with operator.http() as http:
        http.headers["Origin"] = "https://evil.example"
        foreign = await http.post("/api/audit")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthorized"
    assert signed_in.status_code == 403 and signed_in.json()["code"] == "forbidden"
    assert foreign.status_code == 403 and foreign.json()["code"] == "forbidden"
    assert (await scrape(sqlite_server))[("choir_audit_ok", ())] == -1
    assert (await operator_audit(sqlite_server))["ok"] is True


def test_each_metrics_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.messages.inc(3)
    assert parse(first.exposition().decode())[("choir_messages_total", ())] == 3
    assert parse(second.exposition().decode())[("choir_messages_total", ())] == 0


def test_a_delivered_post_is_timed_from_its_commit_and_other_frames_are_not() -> None:
    from datetime import UTC, datetime

    from choir.engine import Commit, Snapshot
    from choir.program import Event, Outcome, State
    from choir.realtime import protocol

    metrics = Metrics()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    outcome = Outcome(events=[Event("t1", 7, "message.posted", {"message_id": "m"}, at)])
    metrics.on_commit(Commit((outcome,), {}, Snapshot.of(State.genesis(at), 1)))
    metrics.on_frame_sent(
        protocol.event("t1", 7, "message.posted", {"message_id": "m"}, "2026-01-01T00:00:00Z")
    )
    metrics.on_frame_sent(protocol.event("t1", 8, "message.posted", {}, "2026-01-01T00:00:00Z"))  # unknown
    metrics.on_frame_sent(protocol.event("t1", None, "chorus.phase", {}, "2026-01-01T00:00:00Z"))
    metrics.on_frame_sent(protocol.ack("c1", {"seq": 7}))
    samples = parse(metrics.exposition().decode())
    assert samples[("choir_post_delivery_seconds_count", ())] == 1
