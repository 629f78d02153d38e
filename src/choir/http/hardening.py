"""The door of every HTTP request, before any route reads it: security headers on every response, a
body limit enforced while the body arrives (never read whole first), the Origin check of
state-changing calls before their body is read, and per-client rate limits on the reads.

Raw ASGI (not a BaseHTTPMiddleware): it sees the body's chunks as they come, so a 50 MB body without
a cookie costs a 413 at once when it declares its length and after its first 64 KiB when it does
not, never 50 MB of memory and a JSON parse."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from choir.auth.origin import origin_allowed
from choir.auth.ratelimit import TokenBucket
from choir.auth.service import SESSION_COOKIE
from choir.http.shared_limits import SharedLimits

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

# The UI is static ES modules and one stylesheet from this origin: no inline script or style, no
# third party; the socket is this origin's. Markdown images may be data: URLs.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
# Body limits by route prefix, the first that matches (docs/protocol.md, "Limits"). Every JSON body
# of the API is small: a thread's title, a profile, a sign-in, a question.
BODY_LIMITS: Final = (
    ("/api/auth/", 8 * 1024),
    ("/api/", 64 * 1024),
)
BODY_LIMIT_DEFAULT: Final = 8 * 1024
STATE_CHANGING: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# A client may spend its minute's reads (or searches) in one burst of at most this share of them.
BURST_SHARE: Final = 0.2
CLIENTS_REMEMBERED: Final = 10_000


def body_limit(path: str) -> int:
    return next((limit for prefix, limit in BODY_LIMITS if path.startswith(prefix)), BODY_LIMIT_DEFAULT)


class Buckets:
    """A token bucket per client and kind, the least recently seen forgotten past a bound."""

    def __init__(self, burst: float, per_minute: float) -> None:
        self.burst = burst
        self.per_s = per_minute / 60
        self.buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, client: str) -> float:
        """0 when the client may go on; else the seconds to wait."""
        bucket = self.buckets.get(client)
        if bucket is None:
            bucket = self.buckets[client] = TokenBucket(self.burst, self.per_s)
            if len(self.buckets) > CLIENTS_REMEMBERED:
                self.buckets.popitem(last=False)
        else:
            self.buckets.move_to_end(client)
        return 0.0 if bucket.take() else bucket.retry_after_s()


class Door:
    def __init__(
        self,
        app: App,
        origins: list[str],
        reads_per_minute: int,
        searches_per_minute: int,
        redis_url: str | None = None,
    ) -> None:
        self.app = app
        self.origins = origins
        self.reads_per_minute = reads_per_minute
        self.searches_per_minute = searches_per_minute
        # Shared by every process when Redis is configured; these buckets serve while it is away.
        self.shared = SharedLimits(redis_url) if redis_url else None
        self.reads = (
            Buckets(max(1.0, reads_per_minute * BURST_SHARE), reads_per_minute) if reads_per_minute else None
        )
        self.searches = (
            Buckets(max(1.0, searches_per_minute * BURST_SHARE), searches_per_minute)
            if searches_per_minute
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        method, path = scope["method"], scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        if method in STATE_CHANGING and path.startswith("/api/"):
            if not origin_allowed(headers.get("origin"), self.origins):
                await _refuse(send, 403, "forbidden", "Origin is not allowed for state-changing requests")
                return
        elif method == "GET" and (path.startswith("/api/") or path == "/metrics"):
            wait_s = await self._wait_s(path == "/api/search", _client_key(scope, headers))
            if wait_s:
                retry = str(max(1, int(wait_s + 0.999)))
                await _refuse(
                    send,
                    429,
                    "rate_limited",
                    f"too many requests; retry in {retry} s",
                    [(b"retry-after", retry.encode())],
                )
                return
        limit = body_limit(path)
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(send, 413, "too_large", f"the body is over its limit of {limit} bytes")
            return
        if method not in STATE_CHANGING:
            await self.app(scope, receive, send)
            return
        # The body is read here, chunk by chunk, up to its limit (so at most that much is ever held),
        # and handed on whole: a route never starts on a body that turns out too large.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _refuse(send, 413, "too_large", f"the body is over its limit of {limit} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _wait_s(self, search: bool, client: str) -> float:
        """0 when the client may read on; else the seconds until it may."""
        buckets = self.searches if search else self.reads
        if buckets is None:
            return 0.0
        if self.shared is not None:
            per_minute = self.searches_per_minute if search else self.reads_per_minute
            shared = await self.shared.take("search" if search else "read", client, buckets.burst, per_minute)
            if shared is not None:
                return shared
        return buckets.take(client)


def _client_key(scope: Scope, headers: dict[str, str]) -> str:
    """Who is counted: a session (its cookie's digest), else the client's address (as believed by
    CHOIR_TRUSTED_PROXIES: a forged X-Forwarded-For is not)."""
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == SESSION_COOKIE and value:
            return "s:" + hashlib.sha256(value.encode()).hexdigest()[:32]
    return "a:" + str((scope.get("client") or ("", 0))[0])


def _with_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return sending


async def _refuse(
    send: Send, status: int, code: str, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"code": code, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
