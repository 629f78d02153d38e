"""The ``Origin`` check for the WebSocket handshake and state-changing REST calls.

An origin is ``scheme://host[:port]`` and nothing else (RFC 6454). Two origins match when their schemes
and hosts are equal ignoring case and their ports are equal once a scheme's default port is filled in,
so ``https://Choir.example`` and ``https://choir.example:443`` are one origin. A missing origin, and the
opaque ``null`` origin of sandboxed frames and files, match nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalize_origin(origin: str) -> str:
    """The canonical ``scheme://host:port`` of an origin; ValueError if it is not exactly an origin."""
    parts = urlsplit(origin.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"not an http(s) or ws(s) origin: {origin!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in origin or "#" in origin:
        raise ValueError(f"an origin has no path, query or fragment: {origin!r}")
    if parts.username is not None or parts.password is not None or not parts.hostname:
        raise ValueError(f"an origin is scheme://host[:port]: {origin!r}")
    port = parts.port or DEFAULT_PORTS[scheme]  # .port raises ValueError when out of range
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6
    return f"{scheme}://{host}:{port}"


def origin_allowed(origin: str | None, allowed: Sequence[str]) -> bool:
    """True when ``origin`` is one of ``allowed``. A malformed ``origin`` is refused, never raised;
    a malformed entry of ``allowed`` is a configuration error and raises ValueError."""
    if origin is None:
        return False
    wanted = {normalize_origin(a) for a in allowed}
    try:
        return normalize_origin(origin) in wanted
    except ValueError:
        return False
