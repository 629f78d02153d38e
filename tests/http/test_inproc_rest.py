"""REST in process: the real app, lifespan and store through the ASGI transport, no socket. The
same behaviours the real-server tier checks over TCP, at a fraction of the cost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from inproc import InProcess, in_process

from choir.ledger import SUPPLY


@pytest.fixture
async def ip(tmp_path: Path) -> AsyncIterator[InProcess]:
    async with in_process(tmp_path / "data") as server:
        yield server


async def test_sign_in_grants_the_welcome_once_and_me_shows_it(ip: InProcess) -> None:
    key_address, cookie = await ip.sign_in()
    async with ip.client(cookie) as http:
        me = (await http.get("/api/me")).json()
    assert me["address"] == key_address
    assert int(me["balance"]) == ip.settings.welcome_grant > 0


async def test_a_thread_is_created_listed_and_private_ones_hidden(ip: InProcess) -> None:
    _alice, alice = await ip.sign_in()
    _bob, bob = await ip.sign_in()
    async with ip.client(alice) as http:
        public = await http.post("/api/threads", json={"title": "Open"})
        private = await http.post("/api/threads", json={"title": "Closed", "visibility": "private"})
    assert public.status_code == private.status_code == 201
    assert public.json()["last_seq"] == 1 and public.json()["message_count"] == 0
    async with ip.client(bob) as http:
        listed = {t["title"] for t in (await http.get("/api/threads")).json()["threads"]}
        hidden = await http.get(f"/api/threads/{private.json()['thread_id']}")
    assert listed == {"Open"}
    # A private thread answers an outsider as an id nobody holds.
    assert hidden.status_code == 404 and hidden.json()["code"] == "thread_not_found"


async def test_errors_are_code_and_message_with_their_status(ip: InProcess) -> None:
    _address, cookie = await ip.sign_in()
    async with ip.client(cookie) as http:
        missing = await http.get("/api/threads/nope")
        bad = await http.post("/api/threads", json={"title": "x", "visibility": "secret"})
        taken = await http.post("/api/threads", json={"thread_id": "same", "title": "one"})
        again = await http.post("/api/threads", json={"thread_id": "same", "title": "two"})
    async with ip.client() as anonymous:
        signed_out = await anonymous.post("/api/threads", json={"title": "x"})
    async with ip.client(cookie) as http:
        http.headers["Origin"] = "http://elsewhere.test"
        foreign = await http.post("/api/threads", json={"title": "x"})
    assert (missing.status_code, missing.json()["code"]) == (404, "thread_not_found")
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_payload")
    assert taken.status_code == 201
    assert again.status_code == 409 and again.json()["code"] == "thread_exists"
    assert (signed_out.status_code, signed_out.json()["code"]) == (401, "unauthorized")
    assert (foreign.status_code, foreign.json()["code"]) == (403, "forbidden")


async def test_the_ledger_adds_up_to_the_supply(ip: InProcess) -> None:
    await ip.sign_in()
    async with ip.client() as http:
        ledger = (await http.get("/api/ledger")).json()
        health = (await http.get("/health")).json()
    assert sum(int(v) for v in ledger["by_class"].values()) == SUPPLY == int(ledger["supply"])
    assert health["status"] == "ok" and health["version"] == ip.runtime.writer.snapshot().version >= 1


async def test_a_deeply_nested_body_is_422_invalid_payload(ip: InProcess) -> None:
    _address, cookie = await ip.sign_in()
    body = '{"title":' + "[" * 5000 + "]" * 5000 + "}"
    async with ip.client(cookie) as http:
        response = await http.post("/api/threads", content=body, headers={"content-type": "application/json"})
    assert (response.status_code, response.json()["code"]) == (422, "invalid_payload")
