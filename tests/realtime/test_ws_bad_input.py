"""Bad input to the real server, one kind per test: each gets its own clear error code, the
connection that sent it stays usable (unless the input was a refused handshake), another client
goes on being served, and nothing committed before is lost.

(Named test_ws_bad_input.py: tests/program/test_bad_input.py already holds the plain name.)
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import base58
import httpx
import pytest
import pytest_asyncio
import websockets
from harness import Server, Socket, User, run_server
from nacl.signing import SigningKey
from websockets.asyncio.client import connect

import services
from choir.auth.client import sign_in_message
from choir.config import Settings
from choir.ledger import ONE_CHOIR
from choir.realtime.protocol import MAX_CLIENT_ID_CHARS
from choir.server.app import create_app


class Person(User):
    """harness.User whose HTTP clients skip loading CA certificates: loopback is plain http, and
    loading them costs 20-100 ms of CPU per client, most of these tests' time otherwise."""

    def http(self) -> httpx.AsyncClient:
        return plain_http(self.server, self.cookie)

    async def sign_in(self) -> dict[str, Any]:
        async with plain_http(self.server) as http:
            response = await verify(http, self.server, await signed_body(http, self.key))
            assert response.status_code == 200, response.text
        self.cookie = response.cookies["choir_session"]
        self.address = response.json()["address"]
        body: dict[str, Any] = response.json()
        return body


def plain_http(srv: Server, cookie: str = "") -> httpx.AsyncClient:
    cookies = {"choir_session": cookie} if cookie else {}
    return httpx.AsyncClient(
        base_url=srv.base_url, cookies=cookies, headers={"Origin": srv.origin}, timeout=10, verify=False
    )


async def verify(http: httpx.AsyncClient, srv: Server, body: dict[str, str]) -> httpx.Response:
    return await http.post("/api/auth/verify", json=body, headers={"Origin": srv.origin})


async def signed_body(http: httpx.AsyncClient, key: SigningKey) -> dict[str, str]:
    fields = (await http.get("/api/auth/nonce")).json()
    message, signature, address = sign_in_message(fields, key)
    return {"message": message, "signature": signature, "address": address}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module: every test signs in its own fresh users."""
    with run_server(tmp_path_factory.mktemp("data")) as server:
        yield server


@dataclass
class Witness:
    """Another client, connected throughout, with a thread and a committed message. After each bad
    input it must still be served, and every message it committed must still be there."""

    user: Person
    sock: Socket
    thread_id: str
    posted: list[str] = field(default_factory=list)

    async def post(self, content: str) -> None:
        reply = await self.sock.request("post", {"thread_id": self.thread_id, "content": content})
        assert reply["type"] == "ack", reply
        (event,) = await self.sock.events(1)
        assert event["data"]["content"] == content
        self.posted.append(content)

    async def check(self) -> None:
        await self.post(f"still served after {len(self.posted)} messages")
        async with self.user.http() as http:
            page = (await http.get(f"/api/threads/{self.thread_id}/messages")).json()
        assert [m["content"] for m in page["messages"]] == self.posted


@pytest_asyncio.fixture
async def witness(srv: Server) -> AsyncIterator[Witness]:
    user = Person(srv)
    await user.sign_in()
    thread_id = (await user.create_thread("The witness's thread"))["thread_id"]
    async with user.socket() as sock:
        ack = await sock.request("subscribe", {"thread_id": thread_id})
        assert ack["type"] == "ack", ack
        w = Witness(user, sock, thread_id)
        await w.post("committed before the bad input")
        yield w


async def signed_in(srv: Server) -> Person:
    user = Person(srv)
    await user.sign_in()
    return user


def error_code(frame: dict[str, Any]) -> str:
    assert frame["type"] == "error", frame
    assert frame["payload"]["message"], frame
    code: str = frame["payload"]["code"]
    return code


async def raw_reply(sock: Socket, text: str | bytes) -> dict[str, Any]:
    """Send one raw frame; the next frame back (no other traffic on this socket)."""
    await sock.ws.send(text)
    return await sock.recv()


async def still_usable(sock: Socket) -> None:
    assert (await sock.request("ping", {}))["type"] == "ack"


# -- frames that are not a valid envelope --------------------------------------------------


async def test_malformed_json_is_bad_json(srv: Server, witness: Witness) -> None:
    async with (await signed_in(srv)).socket() as sock:
        reply = await raw_reply(sock, '{"id": "a", "type": "ping", "payload": {')
        assert error_code(reply) == "bad_json" and reply["id"] is None
        await still_usable(sock)
    await witness.check()


@pytest.mark.parametrize("text", ['[{"id": "a", "type": "ping", "payload": {}}]', "42", '"ping"', "null"])
async def test_json_that_is_not_an_object_is_bad_json(srv: Server, witness: Witness, text: str) -> None:
    async with (await signed_in(srv)).socket() as sock:
        assert error_code(await raw_reply(sock, text)) == "bad_json"
        await still_usable(sock)
    await witness.check()


async def test_binary_frame_is_refused_even_holding_valid_json(srv: Server, witness: Witness) -> None:
    async with (await signed_in(srv)).socket() as sock:
        reply = await raw_reply(sock, json.dumps({"id": "b", "type": "ping", "payload": {}}).encode())
        assert error_code(reply) == "bad_json"
        await still_usable(sock)
    await witness.check()


async def test_unknown_type_is_named_with_the_frame_id(srv: Server, witness: Witness) -> None:
    async with (await signed_in(srv)).socket() as sock:
        reply = await raw_reply(sock, json.dumps({"id": "u1", "type": "delete_everything", "payload": {}}))
        assert error_code(reply) == "unknown_type" and reply["id"] == "u1"
        assert "delete_everything" in reply["payload"]["message"]
        reply = await raw_reply(sock, json.dumps({"id": "u2", "payload": {}}))
        assert error_code(reply) == "unknown_type" and reply["id"] == "u2"
        await still_usable(sock)
    await witness.check()


@pytest.mark.parametrize(
    ("type_", "payload", "missing"),
    [
        ("post", {"thread_id": "t"}, "content"),
        ("post", {"content": "hello"}, "thread_id"),
        ("subscribe", {}, "thread_id"),
        ("spec.submit", {"thread_id": "t", "content": "c"}, "stake"),
        ("spec.vote", {"approve": True}, "spec_id"),
    ],
)
async def test_missing_field_is_invalid_payload_naming_it(
    srv: Server, witness: Witness, type_: str, payload: dict[str, Any], missing: str
) -> None:
    async with (await signed_in(srv)).socket() as sock:
        reply = await sock.request(type_, payload)
        assert error_code(reply) == "invalid_payload"
        assert missing in reply["payload"]["message"]
        await still_usable(sock)
    await witness.check()


async def test_missing_id_is_invalid_payload_without_an_id(srv: Server, witness: Witness) -> None:
    async with (await signed_in(srv)).socket() as sock:
        reply = await raw_reply(sock, json.dumps({"type": "ping", "payload": {}}))
        assert error_code(reply) == "invalid_payload" and reply["id"] is None
    await witness.check()


@pytest.mark.parametrize(
    ("type_", "payload", "code"),
    [
        ("spec.vote", {"spec_id": "s", "approve": "yes"}, "invalid_payload"),
        ("spec.vote", {"spec_id": "s", "approve": 1}, "invalid_payload"),
        ("spec.submit", {"thread_id": "t", "content": "c", "stake": 1000000000}, "invalid_amount"),
        ("spec.submit", {"thread_id": "t", "content": "c", "stake": "1.5"}, "invalid_amount"),
        ("spec.submit", {"thread_id": "t", "content": "c", "stake": "1e9"}, "invalid_amount"),
        ("post", {"thread_id": 7, "content": "hello"}, "invalid_payload"),
        ("post", {"thread_id": "t", "content": None}, "invalid_payload"),
        ("subscribe", {"thread_id": "t", "since_seq": "3"}, "invalid_payload"),
        ("subscribe", {"thread_id": "t", "since_seq": -1}, "invalid_payload"),
        ("subscribe", {"thread_id": "t", "since_seq": 1.5}, "invalid_payload"),
    ],
)
async def test_wrong_type_is_refused_with_its_code(
    srv: Server, witness: Witness, type_: str, payload: dict[str, Any], code: str
) -> None:
    async with (await signed_in(srv)).socket() as sock:
        reply = await sock.request(type_, payload)
        assert error_code(reply) == code
        await still_usable(sock)
    await witness.check()


async def test_payload_that_is_not_an_object_is_invalid_payload(srv: Server, witness: Witness) -> None:
    async with (await signed_in(srv)).socket() as sock:
        reply = await raw_reply(sock, json.dumps({"id": "p", "type": "post", "payload": ["t", "hi"]}))
        assert error_code(reply) == "invalid_payload" and reply["id"] == "p"
    await witness.check()


async def test_extra_fields_are_refused_in_payload_and_envelope(srv: Server, witness: Witness) -> None:
    user = await signed_in(srv)
    thread_id = (await user.create_thread())["thread_id"]
    async with user.socket() as sock:
        reply = await sock.request("post", {"thread_id": thread_id, "content": "hi", "author": "someone"})
        assert error_code(reply) == "invalid_payload" and "author" in reply["payload"]["message"]
        frame = {"id": "e", "type": "ping", "payload": {}, "sudo": True}
        reply = await raw_reply(sock, json.dumps(frame))
        assert error_code(reply) == "invalid_payload" and "sudo" in reply["payload"]["message"]
        await still_usable(sock)
    async with user.http() as http:
        assert (await http.get(f"/api/threads/{thread_id}/messages")).json()["messages"] == []
    await witness.check()


@pytest.mark.parametrize("frame_id", ["x" * (MAX_CLIENT_ID_CHARS + 1), "", 17, None])
async def test_bad_id_is_invalid_payload(srv: Server, witness: Witness, frame_id: object) -> None:
    async with (await signed_in(srv)).socket() as sock:
        reply = await raw_reply(sock, json.dumps({"id": frame_id, "type": "ping", "payload": {}}))
        assert error_code(reply) == "invalid_payload" and reply["id"] is None
        longest = "x" * MAX_CLIENT_ID_CHARS
        assert (await sock.reply(await sock.send("ping", {}, frame_id=longest)))["type"] == "ack"
    await witness.check()


# -- refused handshakes ---------------------------------------------------------------------


async def handshake_status(srv: Server, headers: dict[str, str]) -> int:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(srv.ws_url, additional_headers=headers, open_timeout=10):
            pass
    return refused.value.response.status_code


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:1", None])
async def test_handshake_from_a_foreign_origin_is_403(
    srv: Server, witness: Witness, origin: str | None
) -> None:
    user = await signed_in(srv)
    headers = {"Cookie": f"choir_session={user.cookie}"}
    if origin is not None:
        headers["Origin"] = origin
    assert await handshake_status(srv, headers) == 403
    await witness.check()


@pytest.mark.parametrize("cookie", [None, "choir_session=not-a-session", "choir_session=" + "x" * 500])
async def test_handshake_without_a_session_is_403(srv: Server, witness: Witness, cookie: str | None) -> None:
    headers = {"Origin": srv.origin}
    if cookie is not None:
        headers["Cookie"] = cookie
    assert await handshake_status(srv, headers) == 403
    await witness.check()


# -- sign-in ------------------------------------------------------------------------------------


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@contextlib.contextmanager
def clocked_server(data_dir: Path, clock: Callable[[], datetime]) -> Iterator[Server]:
    port = services.free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(host="127.0.0.1", port=port, data_dir=data_dir, public_url=base)
    with services.run_uvicorn(create_app(settings, clock), port) as url:
        assert url == base
        yield Server(base, settings)


async def test_expired_nonce_is_401_nonce_expired(tmp_path: Path) -> None:
    clock = Clock()
    with clocked_server(tmp_path / "data", clock) as srv:
        async with plain_http(srv) as http:
            body = await signed_body(http, SigningKey.generate())
            clock.now += timedelta(minutes=5, seconds=1)
            response = await verify(http, srv, body)
            assert response.status_code == 401
            assert response.json()["code"] == "nonce_expired"
            assert "choir_session" not in response.cookies
            # The same server still signs in whoever brings a fresh nonce.
            assert (
                await verify(http, srv, await signed_body(http, SigningKey.generate()))
            ).status_code == 200


async def test_replayed_nonce_is_401_nonce_used(srv: Server, witness: Witness) -> None:
    async with plain_http(srv) as http:
        body = await signed_body(http, SigningKey.generate())
        first = await verify(http, srv, body)
        assert first.status_code == 200
        replay = await verify(http, srv, body)
        assert replay.status_code == 401 and replay.json()["code"] == "nonce_used"
        assert "choir_session" not in replay.cookies
    await witness.check()


def forged(body: dict[str, str]) -> str:
    """A real signature of the same text, by another key than the one the address names."""
    return base58.b58encode(SigningKey.generate().sign(body["message"].encode()).signature).decode()


@pytest.mark.parametrize("signature", [forged, lambda _: "1" * 88, lambda _: "not base58 0OIl"])
async def test_bad_signature_is_401_bad_signature(
    srv: Server, witness: Witness, signature: Callable[[dict[str, str]], str]
) -> None:
    async with plain_http(srv) as http:
        body = await signed_body(http, SigningKey.generate())
        response = await verify(http, srv, dict(body, signature=signature(body)))
        assert response.status_code == 401 and response.json()["code"] == "bad_signature"
        assert "choir_session" not in response.cookies
        assert (await http.get("/api/me")).status_code == 401
    await witness.check()


# -- refusals of the Thread Program --------------------------------------------------------


async def thread_with_spec(srv: Server, voters: int) -> tuple[list[Person], str, str]:
    """A thread with ``voters`` co-authors and a pending spec; returns (co-authors, thread id, spec id)."""
    owners = [await signed_in(srv)]
    thread_id = (await owners[0].create_thread())["thread_id"]
    while True:
        author = await signed_in(srv)
        async with author.socket() as sock:
            reply = await sock.request(
                "spec.submit",
                {"thread_id": thread_id, "content": f"spec {len(owners)}", "stake": str(ONE_CHOIR)},
            )
            assert reply["type"] == "ack", reply
        spec_id: str = reply["payload"]["spec_id"]
        if len(owners) == voters:
            return owners, thread_id, spec_id
        for owner in owners:
            async with owner.socket() as sock:
                vote = await sock.request("spec.vote", {"spec_id": spec_id, "approve": True})
                assert vote["type"] == "ack", vote
        owners.append(author)


async def test_vote_by_a_non_voter_is_not_voter(srv: Server, witness: Witness) -> None:
    _, _, spec_id = await thread_with_spec(srv, voters=1)
    async with (await signed_in(srv)).socket() as sock:
        reply = await sock.request("spec.vote", {"spec_id": spec_id, "approve": True})
        assert error_code(reply) == "not_voter"
        await still_usable(sock)
    await witness.check()


async def test_voting_twice_is_already_voted_and_the_first_vote_stands(srv: Server, witness: Witness) -> None:
    (alice, bob), thread_id, spec_id = await thread_with_spec(srv, voters=2)
    async with alice.socket() as sock:
        assert (await sock.request("spec.vote", {"spec_id": spec_id, "approve": True}))["type"] == "ack"
        reply = await sock.request("spec.vote", {"spec_id": spec_id, "approve": False})
        assert error_code(reply) == "already_voted"
    async with alice.http() as http:
        (spec,) = (await http.get(f"/api/threads/{thread_id}")).json()["pending_specs"]
    assert spec["votes"] == [{"voter": alice.address, "approve": True}]
    assert sorted(spec["voters"]) == sorted([alice.address, bob.address])
    await witness.check()


async def test_post_by_a_non_co_author_is_not_co_author(srv: Server, witness: Witness) -> None:
    async with (await signed_in(srv)).socket() as sock:
        reply = await sock.request("post", {"thread_id": witness.thread_id, "content": "let me in"})
        assert error_code(reply) == "not_co_author"
        await still_usable(sock)
    await witness.check()  # also checks the refused post is not in the thread


async def test_subscribe_to_a_private_thread_by_a_stranger_answers_as_for_no_thread(
    srv: Server, witness: Witness
) -> None:
    owner = await signed_in(srv)
    thread_id = (await owner.create_thread("Secrets", visibility="private"))["thread_id"]
    async with owner.socket() as mine:
        assert (await mine.request("subscribe", {"thread_id": thread_id}))["type"] == "ack"
        async with (await signed_in(srv)).socket() as sock:
            reply = await sock.request("subscribe", {"thread_id": thread_id})
            assert error_code(reply) == "thread_not_found"
            reply = await sock.request("subscribe", {"thread_id": thread_id, "since_seq": 0})
            assert error_code(reply) == "thread_not_found"
            # Nothing of the thread reaches the stranger afterwards.
            assert (await mine.request("post", {"thread_id": thread_id, "content": "hush"}))["type"] == "ack"
            await mine.events(1)
            await still_usable(sock)
            assert not [f for f in sock.pending if f["type"] == "event"]
    await witness.check()


@pytest.mark.parametrize(
    ("type_", "payload"),
    [
        ("subscribe", {"thread_id": "no-such-thread"}),
        ("post", {"thread_id": "no-such-thread", "content": "hello?"}),
        ("spec.submit", {"thread_id": "no-such-thread", "content": "c", "stake": str(ONE_CHOIR)}),
    ],
)
async def test_unknown_thread_is_thread_not_found(
    srv: Server, witness: Witness, type_: str, payload: dict[str, Any]
) -> None:
    async with (await signed_in(srv)).socket() as sock:
        assert error_code(await sock.request(type_, payload)) == "thread_not_found"
        await still_usable(sock)
    await witness.check()


@pytest.mark.parametrize("stake", ["0", "-1", str(-ONE_CHOIR)])
async def test_zero_or_negative_stake_is_invalid_amount(srv: Server, witness: Witness, stake: str) -> None:
    user = await signed_in(srv)
    async with user.socket() as sock:
        payload = {"thread_id": witness.thread_id, "content": "take my money", "stake": stake}
        assert error_code(await sock.request("spec.submit", payload)) == "invalid_amount"
    async with user.http() as http:
        me = (await http.get("/api/me")).json()
        detail = (await http.get(f"/api/threads/{witness.thread_id}")).json()
    assert int(me["balance"]) == srv.settings.welcome_grant
    assert detail["pending_specs"] == []
    await witness.check()


async def test_stake_over_the_balance_is_insufficient_funds(srv: Server, witness: Witness) -> None:
    user = await signed_in(srv)
    over = srv.settings.welcome_grant + 1
    async with user.socket() as sock:
        payload = {"thread_id": witness.thread_id, "content": "more than I have", "stake": str(over)}
        assert error_code(await sock.request("spec.submit", payload)) == "insufficient_funds"
        await still_usable(sock)
    async with user.http() as http:
        assert int((await http.get("/api/me")).json()["balance"]) == srv.settings.welcome_grant
        assert (await http.get(f"/api/threads/{witness.thread_id}")).json()["pending_specs"] == []
    await witness.check()
