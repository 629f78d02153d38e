"""The limits of /ws (DESIGN §7), against the real server: frame and content size, the frame rate,
connections per user, slow consumers, and logout closing a user's sockets.

(Named test_ws_limits.py beside test_ws_bad_input.py; a plain test_bad_input.py exists elsewhere.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
import websockets
from harness import Server, Socket, User, run_server
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.typing import Origin
from websockets.uri import parse_uri

from choir.actions.writes import MAX_CONTENT_BYTES
from choir.auth.client import sign_in_message
from choir.realtime import endpoint as endpoint_module
from choir.realtime import hub as hub_module
from choir.realtime.endpoint import POLICY_VIOLATION
from choir.realtime.hub import (
    LOGGED_OUT_CLOSE_CODE,
    MAX_CONNECTIONS_PER_USER,
    MAX_QUEUE_FRAMES,
    SLOW_CONSUMER_CLOSE_CODE,
    Hub,
)
from choir.realtime.protocol import MAX_FRAME_BYTES
from choir.realtime.session import FRAMES_PER_MINUTE
from choir.server.run import WS_MAX_SIZE_BYTES

MESSAGE_TOO_BIG = 1009
# Bound on waiting for the server to notice something (a close, a dropped connection).
SETTLE_TIMEOUT_S = 15.0


class Person(User):
    """harness.User whose HTTP clients skip loading CA certificates: loopback is plain http, and
    loading them costs 20-100 ms of CPU per client."""

    def http(self) -> httpx.AsyncClient:
        cookies = {"choir_session": self.cookie} if self.cookie else {}
        return httpx.AsyncClient(
            base_url=self.server.base_url,
            cookies=cookies,
            headers={"Origin": self.server.origin},
            timeout=10,
            verify=False,
        )

    async def sign_in(self) -> dict[str, Any]:
        async with self.http() as http:
            fields = (await http.get("/api/auth/nonce")).json()
            message, signature, address = sign_in_message(fields, self.key)
            body = {"message": message, "signature": signature, "address": address}
            response = await http.post("/api/auth/verify", json=body)
        assert response.status_code == 200, response.text
        self.cookie, self.address = response.cookies["choir_session"], address
        me: dict[str, Any] = response.json()
        return me


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("data")) as server:
        yield server


async def signed_in(srv: Server) -> Person:
    person = Person(srv)
    await person.sign_in()
    return person


async def messages(person: Person, thread_id: str) -> list[str]:
    async with person.http() as http:
        page = (await http.get(f"/api/threads/{thread_id}/messages", params={"limit": 200})).json()
    return [m["content"] for m in page["messages"]]


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = SETTLE_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "the server did not settle in time"
        await asyncio.sleep(0.05)


def code_of(frame: dict[str, Any]) -> str:
    assert frame["type"] == "error", frame
    code: str = frame["payload"]["code"]
    return code


async def close_code(sock: Socket) -> int | None:
    """Read until the server closes the socket; its close code."""
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await sock.recv(SETTLE_TIMEOUT_S)
    return sock.ws.close_code


# -- size ---------------------------------------------------------------------------------------


async def test_frame_over_64_kib_is_too_large_and_the_socket_stays_usable(srv: Server) -> None:
    person = await signed_in(srv)
    thread_id = (await person.create_thread())["thread_id"]
    async with person.socket() as sock:
        filler = "x" * MAX_FRAME_BYTES
        frame_id = await sock.send("post", {"thread_id": thread_id, "content": filler})
        reply = await sock.recv()
        assert code_of(reply) == "too_large" and "frame" in reply["payload"]["message"]
        # The limit counts bytes: 40,000 two-byte characters are 80,000 bytes.
        await sock.send("post", {"thread_id": thread_id, "content": "é" * 40_000})
        assert code_of(await sock.recv()) == "too_large"
        posted = await sock.request("post", {"thread_id": thread_id, "content": "small enough"})
        assert posted["type"] == "ack", (frame_id, posted)
    assert await messages(person, thread_id) == ["small enough"]


async def test_frame_over_the_transport_limit_closes_1009_and_hurts_no_one_else(srv: Server) -> None:
    person, other = await signed_in(srv), await signed_in(srv)
    thread_id = (await other.create_thread())["thread_id"]
    async with other.socket() as bystander, person.socket() as sock:
        assert (await bystander.request("subscribe", {"thread_id": thread_id}))["type"] == "ack"
        assert (await bystander.request("post", {"thread_id": thread_id, "content": "before"}))[
            "type"
        ] == "ack"
        await sock.ws.send("x" * (WS_MAX_SIZE_BYTES + 1))
        assert await close_code(sock) == MESSAGE_TOO_BIG
        assert (await bystander.request("post", {"thread_id": thread_id, "content": "after"}))[
            "type"
        ] == "ack"
        assert [e["data"]["content"] for e in await bystander.events(2)] == ["before", "after"]
    async with person.socket() as again:  # the person may come back at once
        assert (await again.request("ping", {}))["type"] == "ack"
    assert await messages(other, thread_id) == ["before", "after"]


async def test_content_over_16_kib_is_too_large(srv: Server) -> None:
    person = await signed_in(srv)
    thread_id = (await person.create_thread())["thread_id"]
    async with person.socket() as sock:
        for content in ("y" * (MAX_CONTENT_BYTES + 1), "é" * (MAX_CONTENT_BYTES // 2 + 1)):
            reply = await sock.request("post", {"thread_id": thread_id, "content": content})
            assert code_of(reply) == "too_large" and "content" in reply["payload"]["message"]
            spec = {"thread_id": thread_id, "content": content, "stake": "1000000000"}
            assert code_of(await sock.request("spec.submit", spec)) == "too_large"
        exactly = "z" * MAX_CONTENT_BYTES
        assert (await sock.request("post", {"thread_id": thread_id, "content": exactly}))["type"] == "ack"
    assert await messages(person, thread_id) == [exactly]


# -- rate -----------------------------------------------------------------------------------------


async def test_the_frame_past_the_burst_is_rate_limited_and_not_processed(srv: Server) -> None:
    person, other = await signed_in(srv), await signed_in(srv)
    thread_id = (await person.create_thread())["thread_id"]
    other_thread = (await other.create_thread())["thread_id"]
    async with person.socket() as sock, other.socket() as bystander:
        # The whole burst goes out before any answer is read, so the bucket has no time to refill
        # (a token takes 0.6 s); pings, so that the burst itself commits nothing.
        for i in range(FRAMES_PER_MINUTE):
            await sock.send("ping", {}, frame_id=f"p{i}")
        await sock.send("post", {"thread_id": thread_id, "content": "over the limit"}, frame_id="over")
        replies = [await sock.recv() for _ in range(FRAMES_PER_MINUTE + 1)]
        assert [r["id"] for r in replies[:-1]] == [f"p{i}" for i in range(FRAMES_PER_MINUTE)]
        assert all(r["type"] == "ack" for r in replies[:-1])
        assert code_of(replies[-1]) == "rate_limited"
        # Other connections have their own buckets.
        reply = await bystander.request("post", {"thread_id": other_thread, "content": "unaffected"})
        assert reply["type"] == "ack"
        # The bucket refills at 100 a minute: a frame later is served again.
        await asyncio.sleep(60 / FRAMES_PER_MINUTE + 0.1)
        assert (await sock.request("post", {"thread_id": thread_id, "content": "later"}))["type"] == "ack"
    assert await messages(person, thread_id) == ["later"]
    assert await messages(other, other_thread) == ["unaffected"]


async def test_a_sixth_connection_is_rate_limited_then_closed(srv: Server) -> None:
    person = await signed_in(srv)
    async with contextlib.AsyncExitStack() as stack:
        socks = [await stack.enter_async_context(person.socket()) for _ in range(MAX_CONNECTIONS_PER_USER)]
        async with person.socket() as sixth:
            assert code_of(await sixth.recv()) == "rate_limited"
            assert await close_code(sixth) == POLICY_VIOLATION
        for sock in socks:
            assert (await sock.request("ping", {}))["type"] == "ack"
        await socks[0].ws.close()

        # Closing one frees its place (once the server has seen the close).
        async def try_again() -> bool:
            with contextlib.suppress(websockets.ConnectionClosed):
                async with person.socket() as sock:
                    await sock.send("ping", {}, frame_id="again")
                    return bool((await sock.recv())["type"] == "ack")
            return False

        await eventually(try_again)


# -- logout ---------------------------------------------------------------------------------------


async def test_logout_closes_the_users_sockets_4001_and_the_cookie_stops_working(srv: Server) -> None:
    person, other = await signed_in(srv), await signed_in(srv)
    thread_id = (await other.create_thread())["thread_id"]
    async with person.socket() as one, person.socket() as two, other.socket() as bystander:
        for sock in (one, two, bystander):
            assert (await sock.request("subscribe", {"thread_id": thread_id}))["type"] == "ack"
        async with person.http() as http:
            assert (await http.post("/api/auth/logout")).status_code == 200
        assert await close_code(one) == LOGGED_OUT_CLOSE_CODE
        assert await close_code(two) == LOGGED_OUT_CLOSE_CODE
        assert (await bystander.request("post", {"thread_id": thread_id, "content": "still here"}))[
            "type"
        ] == "ack"
        (event,) = await bystander.events(1)
        assert event["data"]["content"] == "still here"
    async with person.http() as http:
        assert (await http.get("/api/me")).status_code == 401
        refused = await http.post("/api/threads", json={"title": "after logout"})
        assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
    with pytest.raises(websockets.InvalidStatus) as handshake:
        async with person.socket():
            pass
    assert handshake.value.response.status_code == 403


# -- slow consumers: the hub alone, with sends that block ---------------------------------------


class StuckSocket:
    """The hub's view of a socket whose client reads nothing: every send waits until released."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed: list[int] = []
        self.release = asyncio.Event()

    async def send(self, frame: str) -> None:
        await self.release.wait()
        self.sent.append(frame)

    async def close(self, code: int, _reason: str) -> None:
        self.closed.append(code)


async def test_hub_disconnects_a_full_queue_4008_and_keeps_serving_the_others() -> None:
    hub = Hub()
    stuck, quick = StuckSocket(), StuckSocket()
    quick.release.set()
    slow_conn = hub.connect("slow", stuck.send, stuck.close)
    quick_conn = hub.connect("quick", quick.send, quick.close)
    assert slow_conn is not None and quick_conn is not None
    writers = [asyncio.create_task(c.writer()) for c in (slow_conn, quick_conn)]
    for conn in (slow_conn, quick_conn):
        hub.subscribe(conn, "t", last_seq=0, replaying=False)
    total = MAX_QUEUE_FRAMES + 10
    for seq in range(1, total + 1):
        hub.deliver("t", seq, f"frame {seq}")
        await asyncio.sleep(0)  # let the writers run, as the event loop would between events
    await asyncio.sleep(0)
    # The stuck writer holds one frame, its queue the next MAX_QUEUE_FRAMES; the one after overflows.
    assert stuck.closed == [SLOW_CONSUMER_CLOSE_CODE]
    assert slow_conn.close_code == SLOW_CONSUMER_CLOSE_CODE
    assert quick.sent == [f"frame {seq}" for seq in range(1, total + 1)]
    assert quick.closed == []
    # Nothing more is queued for the closed one, and the others are unaffected by it.
    assert slow_conn.offer("late") is False
    hub.deliver("t", total + 1, "frame after")
    await asyncio.sleep(0)
    assert quick.sent[-1] == "frame after"
    stuck.release.set()
    await asyncio.wait_for(asyncio.gather(writers[0]), SETTLE_TIMEOUT_S)
    assert stuck.sent == ["frame 1"]  # the queued frames were dropped: the client resumes with since_seq
    hub.disconnect(slow_conn)
    assert hub.connection_count == 1
    writers[1].cancel()
    await asyncio.gather(*writers, return_exceptions=True)


# -- slow consumers, end to end -------------------------------------------------------------------


class RawClient:
    """A /ws client on a plain socket with a tiny receive buffer, which reads only when told to:
    a client library would go on reading into its own buffers, hiding the slowness from the server."""

    RECV_BUFFER_BYTES = 4096

    def __init__(self, srv: Server, cookie: str) -> None:
        self.srv = srv
        self.cookie = cookie
        self.protocol = ClientProtocol(parse_uri(srv.ws_url), origin=Origin(srv.origin), max_size=None)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Set before connecting, so the kernel does not grow it: the server's buffers fill instead.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.RECV_BUFFER_BYTES)
        self.sock.setblocking(False)
        self.frames: list[dict[str, Any]] = []

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.srv.base_url.removeprefix("http://").split(":")
        await loop.sock_connect(self.sock, (host, int(port)))
        request = self.protocol.connect()
        request.headers["Cookie"] = f"choir_session={self.cookie}"
        self.protocol.send_request(request)
        await self._flush()
        while True:
            events = await self._receive()
            if events:
                assert isinstance(events[0], Response) and events[0].status_code == 101, events[0]
                self._keep(events[1:])
                return

    async def send(self, type_: str, payload: dict[str, Any], frame_id: str) -> None:
        self.protocol.send_text(json.dumps({"id": frame_id, "type": type_, "payload": payload}).encode())
        await self._flush()

    async def read_until_closed(self) -> int | None:
        """Read everything the server sent, up to its close; the close code."""
        while self.protocol.close_code is None:
            await asyncio.wait_for(self._receive_and_keep(), SETTLE_TIMEOUT_S)
        return self.protocol.close_code

    async def until_reply(self, frame_id: str) -> dict[str, Any]:
        while True:
            for frame in self.frames:
                if frame.get("id") == frame_id:
                    return frame
            await asyncio.wait_for(self._receive_and_keep(), SETTLE_TIMEOUT_S)

    def close(self) -> None:
        self.sock.close()

    async def _receive_and_keep(self) -> None:
        self._keep(await self._receive())

    async def _receive(self) -> list[Any]:
        data = await asyncio.get_running_loop().sock_recv(self.sock, 1 << 16)
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        await self._flush()  # pongs and the close reply
        return list(self.protocol.events_received())

    def _keep(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self.frames.append(json.loads(bytes(event.data)))

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        for chunk in self.protocol.data_to_send():
            if chunk:
                with contextlib.suppress(OSError):  # the server may be gone already
                    await loop.sock_sendall(self.sock, chunk)


@contextlib.asynccontextmanager
async def raw_client(srv: Server, cookie: str) -> AsyncIterator[RawClient]:
    client = RawClient(srv, cookie)
    try:
        await client.open()
        yield client
    finally:
        client.close()


# Big messages fill the kernel's socket buffers (~4 MB here) in ~130 events, so that the server's
# own queue is what overflows; the sizes keep a post frame under 64 KiB.
BIG_CONTENT_CHARS = 16_000
# The end-to-end test shrinks the queue so that a few hundred posts overflow it, not thousands (the
# hub test above holds the real MAX_QUEUE_FRAMES); what it checks does not depend on the bound.
E2E_QUEUE_FRAMES = 64
POSTERS = 2  # each with its own thread and every connection it may open
POSTS_PER_CONNECTION = 40  # 400 posts of 32 KB events: ~13 MB, three times what the buffers hold


async def flood(posters: list[tuple[Person, str]], posts_per_connection: int) -> dict[str, list[str]]:
    """Every poster posts big messages to its thread from all its connections; what each thread got."""
    posted: dict[str, list[str]] = {thread_id: [] for _, thread_id in posters}

    async def pump(sock: Socket, thread_id: str, tag: str) -> None:
        for i in range(posts_per_connection):
            content = f"{tag} {i} " + "x" * BIG_CONTENT_CHARS
            reply = await sock.request("post", {"thread_id": thread_id, "content": content})
            assert reply["type"] == "ack", reply
            posted[thread_id].append(content)

    async with contextlib.AsyncExitStack() as stack:
        jobs = []
        for person, thread_id in posters:
            for c in range(MAX_CONNECTIONS_PER_USER):
                sock = await stack.enter_async_context(person.socket())
                jobs.append(pump(sock, thread_id, f"{person.address[:6]}/{c}"))
        await asyncio.gather(*jobs)
    return posted


async def test_slow_consumer_is_dropped_4008_without_slowing_others_and_resumes_exactly(
    srv: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "MAX_QUEUE_FRAMES", E2E_QUEUE_FRAMES)
    slow_person = await signed_in(srv)
    posters = [
        (p, (await p.create_thread())["thread_id"]) for p in [await signed_in(srv) for _ in range(POSTERS)]
    ]
    thread_ids = [t for _, t in posters]
    async with raw_client(srv, slow_person.cookie) as slow, slow_person.socket() as reader:
        for thread_id in thread_ids:
            await slow.send("subscribe", {"thread_id": thread_id}, frame_id=thread_id)
            assert (await slow.until_reply(thread_id))["type"] == "ack"
            assert (await reader.request("subscribe", {"thread_id": thread_id}))["type"] == "ack"
        # From here the slow client reads nothing while the others post.
        posted = await flood(posters, POSTS_PER_CONNECTION)
        total = sum(len(v) for v in posted.values())
        # The reading subscriber got every event, in order per thread.
        seen = await reader.events(total, timeout_s=SETTLE_TIMEOUT_S)
        for thread_id in thread_ids:
            assert [e["data"]["content"] for e in seen if e["thread_id"] == thread_id] == posted[thread_id]
        # The slow one now reads what reached it, then finds itself disconnected.
        assert await slow.read_until_closed() == SLOW_CONSUMER_CLOSE_CODE
    got = [f["payload"] for f in slow.frames if f["type"] == "event"]
    assert len(got) < total
    last_seq = {}
    for thread_id in thread_ids:
        seqs = [e["seq"] for e in got if e["thread_id"] == thread_id]
        first = 2  # seq 1 is thread.created, before the subscription
        assert seqs == list(range(first, first + len(seqs))), "what it got is a gap-free prefix"
        last_seq[thread_id] = first - 1 + len(seqs)
    # It resumes with since_seq and receives exactly what it missed, nothing twice.
    async with slow_person.socket() as again:
        for thread_id in thread_ids:
            ack = await again.request("subscribe", {"thread_id": thread_id, "since_seq": last_seq[thread_id]})
            assert ack["type"] == "ack", ack
        missed = await again.events(total - len(got), timeout_s=SETTLE_TIMEOUT_S)
        assert (await again.request("ping", {}))["type"] == "ack"
        assert not [f for f in again.pending if f["type"] == "event"]
    for thread_id in thread_ids:
        mine = [e for e in got if e["thread_id"] == thread_id]
        rest = [e for e in missed if e["thread_id"] == thread_id]
        assert [e["data"]["content"] for e in mine + rest] == posted[thread_id]


async def test_a_client_that_reads_nothing_is_dropped_when_its_close_cannot_be_sent(
    srv: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The close frame waits behind the unread data; the server gives up on it after CLOSE_TIMEOUT_S,
    # so the stuck connection stops counting among the user's five.
    monkeypatch.setattr(endpoint_module, "CLOSE_TIMEOUT_S", 0.5)
    stuck_person = await signed_in(srv)
    poster = await signed_in(srv)
    thread_id = (await poster.create_thread())["thread_id"]

    async def connections() -> int:
        async with poster.http() as http:
            count: int = (await http.get("/health")).json()["connections"]
        return count

    async with raw_client(srv, stuck_person.cookie) as stuck:
        await stuck.send("subscribe", {"thread_id": thread_id}, frame_id="s")
        assert (await stuck.until_reply("s"))["type"] == "ack"
        # 200 events of 32 KB: more than the socket buffers hold, well short of the queue limit.
        await flood([(poster, thread_id)], posts_per_connection=40)
        before = await connections()
        async with stuck_person.http() as http:
            assert (await http.post("/api/auth/logout")).status_code == 200

        async def dropped() -> bool:
            return await connections() == before - 1

        await eventually(dropped)


async def test_logout_closes_that_sessions_sockets_only(srv: Server) -> None:
    """Two sign-ins of one key (two browsers): logging out of one leaves the other's sockets open."""
    laptop = await signed_in(srv)
    phone = Person(srv, key=laptop.key)
    await phone.sign_in()
    assert phone.address == laptop.address and phone.cookie != laptop.cookie
    async with laptop.socket() as on_laptop, phone.socket() as on_phone:
        async with laptop.http() as http:
            assert (await http.post("/api/auth/logout")).status_code == 200
        assert await close_code(on_laptop) == LOGGED_OUT_CLOSE_CODE
        assert (await on_phone.request("ping", {}))["type"] == "ack"
    async with phone.http() as http:
        assert (await http.get("/api/me")).status_code == 200


def test_an_idle_socket_is_pinged_and_closed_when_it_stops_answering() -> None:
    """Idle timeout: the server pings every 30 s and closes a socket silent for 60 s after that ping."""
    from choir.config import Settings
    from choir.server.run import WS_PING_INTERVAL_S, WS_PING_TIMEOUT_S, config

    uvicorn_config = config(Settings())
    assert (uvicorn_config.ws_ping_interval, uvicorn_config.ws_ping_timeout) == (
        WS_PING_INTERVAL_S,
        WS_PING_TIMEOUT_S,
    )
    assert 0 < WS_PING_INTERVAL_S <= 30 and 0 < WS_PING_TIMEOUT_S <= 60


async def test_a_session_token_in_the_url_signs_no_one_in(srv: Server) -> None:
    """No token in URLs: the handshake reads the session from its cookie only."""
    person = await signed_in(srv)
    url = f"{srv.ws_url}?choir_session={person.cookie}&token={person.cookie}"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(url, additional_headers={"Origin": srv.origin}):
            pass
    assert refused.value.response.status_code == 403
