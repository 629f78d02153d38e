"""Running the server: check the port and the data directory first, then uvicorn."""

from __future__ import annotations

import errno
import gc
import socket
import sys

import uvicorn

from choir.config import Settings
from choir.ops import logs
from choir.realtime.protocol import MAX_FRAME_BYTES
from choir.server.app import create_app

# Frames past 64 KiB get a `too_large` error from the app; only beyond this does the
# socket layer itself close the connection (1009), so a big frame never costs memory.
WS_MAX_SIZE_BYTES = 16 * MAX_FRAME_BYTES
WS_PING_INTERVAL_S = 30.0
# Silent for 90 s (a ping unanswered for 60 s after the last 30 s tick): closed.
WS_PING_TIMEOUT_S = 60.0
# No permessage-deflate: it compresses every event once per socket (~40% of the fan-out's CPU in
# bench/bench_socket.py) and keeps ~45 KB of zlib state per connection, for small JSON frames.
WS_PER_MESSAGE_DEFLATE = False
# Young-generation collections start after this many new container objects (CPython's default is
# 700): a server allocates steadily and keeps a large, long-lived state, which the default makes the
# collector walk far more often than needed (bench/bench_core.py: group commit +5-10%).
GC_GEN0_THRESHOLD = 50_000
# Connections the kernel queues before accept(): a thousand clients reconnecting at once after a
# process dies must not find the queue full (uvicorn's default is 2048; the kernel caps it at somaxconn).
LISTEN_BACKLOG = 4096


def port_problem(host: str, port: int, reuse_port: bool = False) -> str | None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use (set --port or CHOIR_PORT)"
            return f"cannot listen on {host}:{port}: {exc.strerror}"
    return None


def listening_socket(host: str, port: int) -> socket.socket:
    """A listening socket that other `choir serve --reuse-port` processes may bind too: the kernel
    spreads new connections over them (SO_REUSEPORT), and a dead process's share goes to the rest."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(LISTEN_BACKLOG)
    return sock


def config(settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        ws_max_size=WS_MAX_SIZE_BYTES,
        ws_ping_interval=WS_PING_INTERVAL_S,
        ws_ping_timeout=WS_PING_TIMEOUT_S,
        ws_per_message_deflate=WS_PER_MESSAGE_DEFLATE,
        log_level=settings.log_level.lower(),
        # uvicorn's own text handlers are not installed: its loggers (start-up, errors, the access
        # log) propagate to the JSON handler of choir.ops.logs, like every other record.
        log_config=None,
        access_log=True,
        backlog=LISTEN_BACKLOG,
        # X-Forwarded-For is believed only from the proxies named in CHOIR_TRUSTED_PROXIES (uvicorn
        # would trust it from loopback by default: any same-host proxy passing a client's header on
        # would then let a client choose its own address, and with it its rate limits).
        proxy_headers=bool(settings.proxies),
        forwarded_allow_ips=settings.proxies or [],
    )


def run(settings: Settings, reuse_port: bool = False) -> int:
    if problem := port_problem(settings.host, settings.port, reuse_port):
        print(f"choir: {problem}", file=sys.stderr)
        return 2
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"choir: cannot create data directory {settings.data_dir}: {exc.strerror}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)  # JSON lines from the first record on
    # This process is the server's own: the collector policy is set here, not by the app, which
    # tests and benchmarks also build inside their own processes.
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)
    server = uvicorn.Server(config(settings))
    sockets = [listening_socket(settings.host, settings.port)] if reuse_port else None
    if not reuse_port:
        print(f"Choir is running at {settings.base_url}/ (data in {settings.data_dir.resolve()})", flush=True)
    server.run(sockets=sockets)
    # Start-up failed (a refusal was printed by the app): not a clean run.
    return 0 if server.started else 3
