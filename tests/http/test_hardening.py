"""The door of every request (`choir.http.hardening`), in process: security headers on every page and
answer, body limits before any parsing, the Origin of a state-changing call before its body, read and
search limits per client, and text that is not text refused with a code on every path."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from inproc import BASE_URL, Frames, InProcess, in_process

import services
from choir.config import Settings
from choir.http.hardening import CONTENT_SECURITY_POLICY, body_limit
from choir.server import run
from choir.server.app import create_app


@pytest.fixture
async def ip(tmp_path: Path) -> AsyncIterator[InProcess]:
    async with in_process(tmp_path / "data", reads_per_minute=60, searches_per_minute=10) as server:
        yield server


async def test_every_page_and_answer_carries_the_security_headers(ip: InProcess) -> None:
    async with ip.client() as http:
        answers = [
            await http.get(path)
            for path in (
                "/",
                "/index.html",
                "/operator.html",
                "/js/app.js",
                "/api/threads",
                "/nope",
                "/health",
            )
        ]
        answers.append(await http.post("/api/threads", json={"title": "x"}))  # a refusal too (401)
    for answer in answers:
        headers = answer.headers
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY, answer.url
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "'unsafe-inline'" not in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
        assert "camera=()" in headers["permissions-policy"]


async def test_a_body_over_its_limit_is_refused_before_it_is_read(ip: InProcess) -> None:
    limit = body_limit("/api/threads")
    big = b'{"title": "' + b"x" * (limit + 10) + b'"}'
    _address, cookie = await ip.sign_in()

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    async with ip.client() as anonymous:
        declared = await anonymous.post(
            "/api/threads", content=big, headers={"content-type": "application/json"}
        )
        streamed = await anonymous.post(
            "/api/threads", content=chunked(), headers={"content-type": "application/json"}
        )
    async with ip.client(cookie) as http:
        signed_in = await http.post("/api/threads", content=big, headers={"content-type": "application/json"})
        sign_in = await http.post("/api/auth/verify", content=b"{" + b" " * 9000 + b"}")
        fits = await http.post("/api/threads", json={"title": "small enough"})
    for refused in (declared, streamed, signed_in, sign_in):
        assert refused.status_code == 413 and refused.json()["code"] == "too_large", refused.text
    assert fits.status_code == 201


async def test_a_foreign_origin_is_refused_before_the_body_is_read(ip: InProcess) -> None:
    _address, cookie = await ip.sign_in()
    async with ip.client(cookie) as http:
        http.headers["Origin"] = "https://evil.example"
        huge = await http.post("/api/threads", content=b"x" * 10_000_000)
        none = await http.post("/api/threads", json={"title": "x"}, headers={"Origin": ""})
    assert huge.status_code == 403 and huge.json()["code"] == "forbidden"
    assert none.status_code == 403 and none.json()["code"] == "forbidden"


async def test_reads_and_searches_are_limited_per_client(ip: InProcess) -> None:
    _a, alice = await ip.sign_in()
    _b, bob = await ip.sign_in()
    async with ip.client(alice) as http:
        searches = [(await http.get("/api/search", params={"q": "tomato"})).status_code for _ in range(4)]
        reads = [(await http.get("/api/threads")).status_code for _ in range(14)]
        limited = await http.get("/api/threads")
    async with ip.client(bob) as other:
        bobs = await other.get("/api/search", params={"q": "tomato"})
    # A burst of a fifth of the minute's allowance: 2 searches of 10, 12 reads of 60.
    assert searches[:2] == [200, 200] and searches[2:] == [429, 429], searches
    assert reads[:12] == [200] * 12 and reads[12:] == [429, 429], reads
    assert limited.json()["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
    assert bobs.status_code == 200  # one client's flood is not another's wait


@pytest.mark.parametrize("trusted", ["", "127.0.0.1"])
def test_x_forwarded_for_is_believed_only_from_a_named_proxy(tmp_path: Path, trusted: str) -> None:
    """uvicorn as `choir serve` configures it (`server.run.config`), on loopback: with no proxy named, a
    random X-Forwarded-For is not a new client (the read limit holds); with loopback named as the
    proxy, each forwarded address is its own client."""
    settings = Settings(
        data_dir=tmp_path / "data", public_url=BASE_URL, reads_per_minute=60, trusted_proxies=trusted
    )
    served = run.config(settings)
    app = create_app(settings)
    with services.run_uvicorn(
        app, proxy_headers=served.proxy_headers, forwarded_allow_ips=served.forwarded_allow_ips
    ) as url:
        codes = [
            httpx.get(f"{url}/api/threads", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
            for i in range(14)
        ]
    if trusted:
        assert codes == [200] * 14, codes
    else:
        assert codes[:12] == [200] * 12 and codes[12:] == [429, 429], codes


async def test_text_that_is_not_text_is_refused_with_a_code(ip: InProcess) -> None:
    """A lone UTF-16 surrogate (valid JSON, no valid text) in a post, a spec, an edit or a title."""
    address, cookie = await ip.sign_in()
    async with ip.client(cookie) as http:
        title = await http.post(
            "/api/threads", content=b'{"title": "a \\ud800 b"}', headers={"content-type": "application/json"}
        )
        made = await http.post("/api/threads", json={"thread_id": "t", "title": "ok"})
    assert title.status_code == 422 and title.json()["code"] in {"invalid_payload", "invalid_text"}
    assert made.status_code == 201
    frames = Frames(ip, address)
    posted = await frames.request("post", {"thread_id": "t", "content": "fine"})
    assert posted["type"] == "ack"
    message_id = posted["payload"]["message_id"]
    stranger, _c = await ip.sign_in()
    outsider = Frames(ip, stranger)
    for who, kind, payload in (
        (frames, "post", {"thread_id": "t", "content": "bad \ud800 text"}),
        (frames, "message.edit", {"message_id": message_id, "content": "\udfff"}),
        (outsider, "spec.submit", {"thread_id": "t", "content": "x\ud83d", "stake": "1000000000"}),
        (frames, "ask", {"thread_id": "t", "prompt": "why \ud800?"}),
    ):
        reply = await who.request(kind, payload)
        assert reply["type"] == "error" and reply["payload"]["code"] == "invalid_text", (kind, reply)
    assert (await frames.request("ping", {}))["type"] == "ack"  # the socket lives on


@pytest.mark.timeout(60)
def test_read_limits_are_shared_by_the_processes_of_one_redis(tmp_path: Path, redis_url: str) -> None:
    from harness import run_server

    limits = {"reads_per_minute": 60, "redis_url": redis_url}
    with (
        run_server(tmp_path / "a", **limits) as a,
        run_server(tmp_path / "b", **limits) as b,
        httpx.Client(base_url=a.base_url, timeout=10) as to_a,
        httpx.Client(base_url=b.base_url, timeout=10) as to_b,
    ):
        # One client (by its address: no session) alternating between two processes: one allowance.
        started = time.monotonic()
        statuses = [client.get("/api/threads").status_code for _ in range(15) for client in (to_a, to_b)]
        elapsed_s = time.monotonic() - started
    allowed = statuses.count(200)
    # A burst of 12 of the minute's 60 in all, and one more a second while the 30 go; two allowances
    # (one per process) would let 24 through.
    assert 12 <= allowed <= 12 + math.ceil(elapsed_s) + 1 < 24, (allowed, elapsed_s, statuses)
    assert statuses.count(429) == 30 - allowed


@pytest.mark.timeout(60)
def test_read_limits_hold_per_process_while_redis_is_away(tmp_path: Path) -> None:
    from harness import run_server

    away = f"redis://127.0.0.1:{services.free_port()}/0"
    with (
        run_server(tmp_path / "a", reads_per_minute=60, redis_url=away) as a,
        httpx.Client(base_url=a.base_url, timeout=10) as http,
    ):
        started = time.monotonic()
        statuses = [http.get("/api/threads").status_code for _ in range(20)]
        elapsed_s = time.monotonic() - started
    allowed = statuses.count(200)
    assert statuses[:12] == [200] * 12, statuses
    assert allowed <= 12 + math.ceil(elapsed_s) + 1 < 20, (allowed, elapsed_s, statuses)
