"""The REST API (DESIGN §7) against the real server: threads, their detail and history, balances,
health and the OpenAPI document, and errors as ``{code, message}`` with a fitting status."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from harness import Server, Socket, User, run_server
from nacl.signing import SigningKey

from choir.auth.client import address_of, sign_in_message
from choir.ledger import ONE_CHOIR


class Person(User):
    """harness.User whose HTTP clients skip loading CA certificates: loopback is plain http, and
    loading them costs 20-100 ms of CPU per client."""

    def http(self) -> httpx.AsyncClient:
        return client(self.server, self.cookie)

    async def sign_in(self) -> dict[str, Any]:
        async with client(self.server) as http:
            fields = (await http.get("/api/auth/nonce")).json()
            message, signature, address = sign_in_message(fields, self.key)
            body = {"message": message, "signature": signature, "address": address}
            response = await http.post("/api/auth/verify", json=body)
        assert response.status_code == 200, response.text
        self.cookie, self.address = response.cookies["choir_session"], address
        me: dict[str, Any] = response.json()
        return me


def client(srv: Server, cookie: str = "", origin: str | None = None) -> httpx.AsyncClient:
    """An HTTP client for the server: signed in with ``cookie``, sending ``origin`` (default: the
    server's own) as a browser would."""
    cookies = {"choir_session": cookie} if cookie else {}
    return httpx.AsyncClient(
        base_url=srv.base_url,
        cookies=cookies,
        headers={"Origin": origin or srv.origin},
        timeout=10,
        verify=False,
    )


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("data")) as server:
        yield server


async def signed_in(srv: Server) -> Person:
    person = Person(srv)
    await person.sign_in()
    return person


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message"}, body
    assert body["code"] == code and body["message"], body


def is_amount(value: object) -> bool:
    """A decimal string of base units, as every amount in JSON is."""
    return isinstance(value, str) and value.isdigit() and str(int(value)) == value


async def request(sock: Socket, type_: str, payload: dict[str, Any]) -> dict[str, Any]:
    reply = await sock.request(type_, payload)
    assert reply["type"] == "ack", reply
    body: dict[str, Any] = reply["payload"]
    return body


# -- ops --------------------------------------------------------------------------------------------


async def test_health(srv: Server) -> None:
    async with client(srv) as http:
        response = await http.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_openapi_lists_the_routes(srv: Server) -> None:
    async with client(srv) as http:
        paths = (await http.get("/openapi.json")).json()["paths"]
    expected = {
        "/api/auth/nonce": {"get"},
        "/api/auth/verify": {"post"},
        "/api/auth/logout": {"post"},
        "/api/me": {"get"},
        "/api/threads": {"get", "post"},
        "/api/threads/{thread_id}": {"get"},
        "/api/threads/{thread_id}/messages": {"get"},
        "/api/accounts/{address}": {"get"},
        "/health": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, f"{path} missing from /openapi.json"
        assert methods <= set(paths[path]), (path, set(paths[path]))


# -- threads ----------------------------------------------------------------------------------------


async def test_create_thread_is_201_with_the_whole_thread(srv: Server) -> None:
    alice = await signed_in(srv)
    async with alice.http() as http:
        response = await http.post("/api/threads", json={"title": "Tide pools", "visibility": "public"})
        assert response.status_code == 201, response.text
        thread = response.json()
        named = await http.post("/api/threads", json={"thread_id": "tide-pools-2", "title": "Again"})
    assert thread["title"] == "Tide pools" and thread["visibility"] == "public"
    assert thread["co_authors"] == [alice.address]
    assert thread["balance"] == "0"
    assert thread["min_stake"] == str(srv.settings.min_stake)
    assert is_amount(thread["recommended_stake"]) and int(thread["recommended_stake"]) > 0
    assert named.status_code == 201 and named.json()["thread_id"] == "tide-pools-2"
    assert named.json()["visibility"] == "public"  # the default


async def test_list_shows_public_threads_to_all_and_private_ones_to_their_co_authors(srv: Server) -> None:
    alice, bob = await signed_in(srv), await signed_in(srv)
    public = (await alice.create_thread("Open to all"))["thread_id"]
    private = (await alice.create_thread("Just us", visibility="private"))["thread_id"]

    async def listed(http: httpx.AsyncClient) -> set[str]:
        response = await http.get("/api/threads", params={"limit": 500})
        assert response.status_code == 200
        return {t["thread_id"] for t in response.json()["threads"]}

    async with alice.http() as http:
        assert {public, private} <= await listed(http)
    async with bob.http() as http:
        seen = await listed(http)
        assert public in seen and private not in seen
        assert_error(await http.get(f"/api/threads/{private}"), 404, "thread_not_found")
        assert_error(await http.get(f"/api/threads/{private}/messages"), 404, "thread_not_found")
    async with client(srv) as anonymous:
        seen = await listed(anonymous)
        assert public in seen and private not in seen
        assert_error(await anonymous.get(f"/api/threads/{private}"), 404, "thread_not_found")
        assert (await anonymous.get(f"/api/threads/{public}")).status_code == 200


async def test_thread_detail_shows_co_authors_balance_stakes_and_pending_specs_with_votes(
    srv: Server,
) -> None:
    alice, bob, carol, dave = [await signed_in(srv) for _ in range(4)]
    thread_id = (await alice.create_thread("Moths"))["thread_id"]
    async with alice.socket() as a, bob.socket() as b, carol.socket() as c, dave.socket() as d:
        # Bob joins; then Carol's spec is denied by both (its stake goes to the thread).
        joined = await request(
            b, "spec.submit", {"thread_id": thread_id, "content": "Bob", "stake": str(ONE_CHOIR)}
        )
        await request(a, "spec.vote", {"spec_id": joined["spec_id"], "approve": True})
        stake = 2 * ONE_CHOIR
        denied = await request(
            c, "spec.submit", {"thread_id": thread_id, "content": "Carol", "stake": str(stake)}
        )
        for sock in (a, b):
            await request(sock, "spec.vote", {"spec_id": denied["spec_id"], "approve": False})
        # Dave's spec stays pending with one vote of two.
        pending = await request(
            d, "spec.submit", {"thread_id": thread_id, "content": "Dave", "stake": str(stake)}
        )
        await request(a, "spec.vote", {"spec_id": pending["spec_id"], "approve": True})
    async with client(srv) as http:
        response = await http.get(f"/api/threads/{thread_id}")
    assert response.status_code == 200
    detail = response.json()
    assert detail["co_authors"] == [alice.address, bob.address]
    assert detail["balance"] == str(stake)
    assert detail["min_stake"] == str(srv.settings.min_stake)
    assert is_amount(detail["recommended_stake"])
    (spec,) = detail["pending_specs"]
    assert spec["spec_id"] == pending["spec_id"]
    assert spec["author"] == dave.address and spec["content"] == "Dave"
    assert spec["stake"] == str(stake)
    assert spec["voters"] == [alice.address, bob.address]
    assert spec["votes"] == [{"voter": alice.address, "approve": True}]
    assert spec["expires_at"] > spec["submitted_at"]


async def test_message_history_pages_back_with_before_and_limit(srv: Server) -> None:
    alice = await signed_in(srv)
    thread_id = (await alice.create_thread())["thread_id"]
    contents = [f"message {i}" for i in range(7)]
    async with alice.socket() as sock:
        for content in contents:
            await request(sock, "post", {"thread_id": thread_id, "content": content})
    pages: list[list[dict[str, Any]]] = []
    before: int | None = None
    async with client(srv) as http:
        while True:
            params: dict[str, int] = {"limit": 3} | ({"before": before} if before else {})
            response = await http.get(f"/api/threads/{thread_id}/messages", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            pages.append(page["messages"])
            if not page["has_more"]:
                break
            before = page["messages"][0]["seq"]
        everything = (await http.get(f"/api/threads/{thread_id}/messages")).json()
    assert [len(p) for p in pages] == [3, 3, 1]
    newest_first = [m["content"] for p in pages for m in reversed(p)]
    assert newest_first == contents[::-1]
    for page in pages:
        seqs = [m["seq"] for m in page]
        assert seqs == sorted(seqs), "each page is oldest first"
    assert [m["content"] for m in everything["messages"]] == contents
    assert everything["has_more"] is False
    first = everything["messages"][0]
    assert first["author"] == alice.address and first["thread_id"] == thread_id
    assert first["citations"] == [] and first["ask_id"] is None and first["html"]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 201}, {"before": 0}, {"limit": "many"}])
async def test_bad_history_parameters_are_422(srv: Server, params: dict[str, Any]) -> None:
    alice = await signed_in(srv)
    thread_id = (await alice.create_thread())["thread_id"]
    async with client(srv) as http:
        assert_error(
            await http.get(f"/api/threads/{thread_id}/messages", params=params), 422, "invalid_payload"
        )


async def test_unknown_thread_is_404(srv: Server) -> None:
    async with client(srv) as http:
        assert_error(await http.get("/api/threads/no-such-thread"), 404, "thread_not_found")
        assert_error(await http.get("/api/threads/no-such-thread/messages"), 404, "thread_not_found")


# -- balances ---------------------------------------------------------------------------------------


async def test_balances_are_decimal_strings_and_zero_for_an_unknown_address(srv: Server) -> None:
    alice = await signed_in(srv)
    stranger = address_of(SigningKey.generate())
    async with client(srv) as http:
        unknown = (await http.get(f"/api/accounts/{stranger}")).json()
        mine = (await http.get(f"/api/accounts/{alice.address}")).json()
        assert_error(await http.get("/api/accounts/" + "1" * 65), 422, "invalid_payload")
    assert unknown == {"address": stranger, "balance": "0"}
    assert mine == {"address": alice.address, "balance": str(srv.settings.welcome_grant)}


# -- errors -----------------------------------------------------------------------------------------


async def test_signed_out_is_401(srv: Server) -> None:
    async with client(srv) as http:
        assert_error(await http.get("/api/me"), 401, "unauthorized")
        assert_error(await http.post("/api/threads", json={"title": "Anyone?"}), 401, "unauthorized")
    async with client(srv, cookie="forged-session-token") as http:
        assert_error(await http.get("/api/me"), 401, "unauthorized")


@pytest.mark.parametrize("origin", ["http://evil.example", "null"])
async def test_state_changing_calls_from_a_foreign_origin_are_403(srv: Server, origin: str) -> None:
    alice = await signed_in(srv)
    async with client(srv, alice.cookie, origin=origin) as http:
        assert_error(await http.post("/api/threads", json={"title": "Forged"}), 403, "forbidden")
        assert_error(await http.post("/api/auth/logout"), 403, "forbidden")
        # Reading is not state-changing: allowed from anywhere.
        assert (await http.get("/api/me")).status_code == 200
    async with alice.http() as http:
        assert (await http.get("/api/me")).status_code == 200, "the refused logout did nothing"
        titles = {
            t["title"] for t in (await http.get("/api/threads", params={"limit": 500})).json()["threads"]
        }
        assert "Forged" not in titles


async def test_state_changing_call_without_an_origin_is_403(srv: Server) -> None:
    alice = await signed_in(srv)
    async with httpx.AsyncClient(
        base_url=srv.base_url, cookies={"choir_session": alice.cookie}, verify=False
    ) as http:
        assert_error(await http.post("/api/threads", json={"title": "No origin"}), 403, "forbidden")
        fields = (await http.get("/api/auth/nonce")).json()
        message, signature, address = sign_in_message(fields, SigningKey.generate())
        body = {"message": message, "signature": signature, "address": address}
        assert_error(await http.post("/api/auth/verify", json=body), 403, "forbidden")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"title": 5},
        {"title": "t", "visibility": "secret"},
        {"title": "t", "owner": "me"},
        {"title": "t" * 401},
        ["title"],
    ],
)
async def test_bad_body_is_422_invalid_payload(srv: Server, body: Any) -> None:
    alice = await signed_in(srv)
    async with alice.http() as http:
        assert_error(await http.post("/api/threads", json=body), 422, "invalid_payload")


async def test_malformed_json_body_is_422(srv: Server) -> None:
    alice = await signed_in(srv)
    async with alice.http() as http:
        response = await http.post(
            "/api/threads", content=b'{"title": ', headers={"Content-Type": "application/json"}
        )
        assert_error(response, 422, "invalid_payload")


async def test_bad_thread_id_and_taken_thread_id_are_refused_with_their_codes(srv: Server) -> None:
    alice = await signed_in(srv)
    async with alice.http() as http:
        assert_error(
            await http.post("/api/threads", json={"thread_id": "no spaces", "title": "t"}), 422, "invalid_id"
        )
        assert (
            await http.post("/api/threads", json={"thread_id": "taken-id", "title": "t"})
        ).status_code == 201
        assert_error(
            await http.post("/api/threads", json={"thread_id": "taken-id", "title": "t"}),
            409,
            "thread_exists",
        )


async def test_unknown_route_and_wrong_method_are_json_errors(srv: Server) -> None:
    async with client(srv) as http:
        assert_error(await http.get("/api/no-such-route"), 404, "not_found")
        assert_error(await http.delete("/api/threads"), 405, "method_not_allowed")


async def test_sign_in_requests_are_rate_limited_per_client(sqlite_server: Server) -> None:
    from choir.http.routes.auth import SIGN_INS_PER_MINUTE

    async with httpx.AsyncClient(base_url=sqlite_server.base_url, timeout=10, verify=False) as http:
        codes = [(await http.get("/api/auth/nonce")).status_code for _ in range(SIGN_INS_PER_MINUTE + 1)]
        assert codes[:-1] == [200] * SIGN_INS_PER_MINUTE
        refused = await http.get("/api/auth/nonce")
        assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
