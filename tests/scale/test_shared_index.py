"""One vector index for every process, or a refusal.

A process that would keep its own embedded index (or its own fan-out) beside another process on the
same database refuses to start, names the setting that fixes it, and writes nothing. Processes that
share the SQL vector engine answer the same question with the same citations and search alike.
`choir serve --workers N` runs N of them on one port."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from harness import Server, User, run_server
from sqlalchemy import create_engine, text
from test_two_processes import as_server, choir_process, server_env

import services
from choir.config import Settings
from choir.server.app import start
from choir.server.preflight import StartRefused

PRIORS = [
    "Tomatoes need at least six hours of direct sun a day to fruit well.",
    "Sungold cherry tomatoes split when watered unevenly after a dry spell.",
    "Basil wilts in cold nights; bring the pots in below ten degrees.",
    "A sourdough starter wants feeding twice a day at room temperature.",
]


def table_counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        names = ("messages", "transfers", "users", "events", "vector_points")
        counts = {t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in names}
    engine.dispose()
    return counts


async def refused(settings: Settings) -> str:
    with pytest.raises(StartRefused) as info:
        await start(settings)
    return str(info.value)


def test_a_second_embedded_index_on_a_shared_database_is_refused(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    with run_server(tmp_path / "one", postgres_url, redis_url=redis_url) as one:
        asyncio.run(User(one).sign_in())
        before = table_counts(postgres_url)
        second = Settings(data_dir=tmp_path / "two", database_url=postgres_url, redis_url=redis_url)
        message = asyncio.run(refused(second))
        assert "CHOIR_QDRANT_URL" in message and "CHOIR_VECTOR_ENGINE=sql" in message
        # A shared engine on the second does not help while the first keeps its own index.
        shared = second.model_copy(update={"vector_engine": "sql"})
        assert "embedded vector index" in asyncio.run(refused(shared))
        assert table_counts(postgres_url) == before  # nothing written
        assert httpx.get(f"{one.base_url}/health").status_code == 200  # the first serves on
        asyncio.run(User(one).sign_in())


def test_a_second_process_without_redis_is_refused(postgres_url: str, tmp_path: Path) -> None:
    with run_server(tmp_path / "one", postgres_url, vector_engine="sql"):
        second = Settings(data_dir=tmp_path / "two", database_url=postgres_url, vector_engine="sql")
        assert "CHOIR_REDIS_URL" in asyncio.run(refused(second))


def test_a_second_process_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    with run_server(tmp_path / "one") as one:
        url = f"sqlite:///{one.settings.data_dir / 'choir.db'}"
        second = Settings(data_dir=tmp_path / "two", database_url=url)
        assert "CHOIR_DATABASE_URL" in asyncio.run(refused(second))
    # Stopped, the first lets the next one in.
    with run_server(tmp_path / "one"):
        pass


def test_the_refusal_is_one_clear_line_and_exit_status(postgres_url: str, tmp_path: Path) -> None:
    port = services.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHOIR_")}
    env |= {"CHOIR_DATABASE_URL": postgres_url, "CHOIR_LOG_LEVEL": "WARNING"}
    with run_server(tmp_path / "one", postgres_url):
        cmd = [sys.executable, "-m", "choir", "serve", "--port", str(port), "--data-dir", str(tmp_path / "b")]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3
    assert "choir: another Choir process already serves this database" in done.stderr


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "CHOIR_DATABASE_URL"),
        ({"CHOIR_DATABASE_URL": "postgresql+psycopg://x@127.0.0.1:1/x"}, "CHOIR_REDIS_URL"),
        (
            {"CHOIR_DATABASE_URL": "postgresql+psycopg://x@127.0.0.1:1/x", "CHOIR_REDIS_URL": "redis://x"},
            "CHOIR_VECTOR_ENGINE=sql",
        ),
    ],
)
def test_workers_need_shared_engines(env: dict[str, str], named: str, tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHOIR_")} | env
    cmd = [sys.executable, "-m", "choir", "serve", "--workers", "2", "--data-dir", str(tmp_path)]
    done = subprocess.run(cmd, env=clean, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert named in done.stderr
    assert not (tmp_path / "choir.db").exists()


async def ask(server: Server, prompt: str) -> list[str]:
    user = User(server)
    await user.sign_in()
    thread = await user.create_thread("Questions")
    async with user.socket() as sock:
        await sock.request("subscribe", {"thread_id": thread["thread_id"]})
        ack = await sock.request("ask", {"thread_id": thread["thread_id"], "prompt": prompt})
        assert ack["type"] == "ack", ack
        while True:
            frame = await sock.recv(timeout_s=60)
            data = frame["payload"].get("data") or {}
            if (
                frame["type"] == "event"
                and data.get("ask_id") == ack["payload"]["ask_id"]
                and "citations" in data
            ):
                return [c["message_id"] for c in data["citations"]]


async def search(server: Server, query: str, mode: str = "hybrid") -> list[str]:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        answer = (await http.get("/api/search", params={"q": query, "mode": mode})).json()
        assert "results" in answer, answer
        found = answer["results"]
        return [r["message_id"] for r in found]


async def same_answers(a: Server, b: Server) -> None:
    alice = User(a)
    await alice.sign_in()
    thread = await alice.create_thread("Garden notes")
    posted: dict[str, str] = {}
    async with alice.socket() as sock:
        for prior in PRIORS:
            ack = await sock.request("post", {"thread_id": thread["thread_id"], "content": prior})
            assert ack["type"] == "ack", ack
            posted[prior] = ack["payload"]["message_id"]
    deadline = time.monotonic() + 60
    # The writing process indexes its posts just after committing them: wait until meaning finds each
    # (itself, not merely something) on both, so that neither answers from an index still filling.
    for server in (a, b):
        for prior, message_id in posted.items():
            while message_id not in await search(server, prior, "vector"):
                assert time.monotonic() < deadline, f"{prior!r} never indexed"
                await asyncio.sleep(0.2)
    for query in ("Sungold tomatoes split", "feeding a starter"):
        assert await search(a, query) == await search(b, query) != []
    prompt = "How much sun do tomatoes need?"
    on_a, on_b = await ask(a, prompt), await ask(b, prompt)
    assert on_a == on_b != []


@pytest.mark.timeout(240)
def test_processes_sharing_the_sql_index_give_the_same_citations(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    ports = [services.free_port(), services.free_port()]
    env = server_env(postgres_url, redis_url, ports)
    with choir_process(ports[0], tmp_path / "a", env), choir_process(ports[1], tmp_path / "b", env):
        asyncio.run(same_answers(as_server(ports[0]), as_server(ports[1])))


@pytest.mark.timeout(240)
def test_workers_share_one_port_and_a_dead_worker_is_replaced(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    port = services.free_port()
    env = server_env(postgres_url, redis_url, [port])
    log = (tmp_path / "workers.log").open("wb")
    cmd = [
        sys.executable,
        "-m",
        "choir",
        "serve",
        "--workers",
        "2",
        "--port",
        str(port),
        "--data-dir",
        str(tmp_path),
    ]
    supervisor = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        pids = serving_pids(port, 2)
        killed = pids.pop()
        os.kill(killed, signal.SIGKILL)
        # The survivor serves at once (a connection queued at the dead one is reset, and a client
        # tries again, as browsers do); the supervisor starts a replacement.
        assert killed not in serving_pids(port, 1, timeout_s=10)
        replaced = serving_pids(port, 2)
        assert pids < replaced and len(replaced) == 2
        asyncio.run(same_answers(as_server(port), as_server(port)))
    finally:
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(60) == 0
        log.close()
    assert "exited with -9" in (tmp_path / "workers.log").read_text()


def serving_pids(port: int, count: int, timeout_s: float = 90.0) -> set[int]:
    """The pids of the processes answering on the port (each connection lands on one of them)."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while len(seen) < count:
        assert time.monotonic() < deadline, f"only {seen} answer on port {port}"
        try:
            with httpx.Client() as http:  # a new connection each time: the kernel picks a process
                seen.add(int(http.get(f"http://127.0.0.1:{port}/health", timeout=2).json()["pid"]))
        except (httpx.HTTPError, KeyError):
            time.sleep(0.2)
    return seen


@pytest.mark.timeout(240)
def test_processes_on_pgvector_chosen_by_auto_give_the_same_citations(
    pgvector_url: str, redis_url: str, tmp_path: Path
) -> None:
    """On a PostgreSQL with pgvector created, ``auto`` shares one index in the database (no replica
    in the processes, so nothing to drift): the same question gets the same citations on either."""
    services.require_full_pgvector(pgvector_url)
    ports = [services.free_port(), services.free_port()]
    env = server_env(pgvector_url, redis_url, ports) | {"CHOIR_VECTOR_ENGINE": "auto"}
    with choir_process(ports[0], tmp_path / "a", env), choir_process(ports[1], tmp_path / "b", env):
        asyncio.run(same_answers(as_server(ports[0]), as_server(ports[1])))
    engine = create_engine(pgvector_url)
    with engine.connect() as conn:
        points = int(conn.execute(text("SELECT count(*) FROM pgvector_points")).scalar_one())
        replica = int(conn.execute(text("SELECT count(*) FROM vector_points")).scalar_one())
    engine.dispose()
    assert points >= len(PRIORS) and replica == 0
