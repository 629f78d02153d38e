"""The test infrastructure itself: real PostgreSQL, Redis, Chromium and uvicorn, started and stopped."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
import redis.asyncio
import sqlalchemy
from playwright.async_api import async_playwright

import services
from services import LOOPBACK, PostgresServer, RedisServer

MESSAGE_WAIT_S = 5.0
PAGE_TIMEOUT_MS = 15_000

# --- skipping, and refusing to skip under CI ---------------------------------------------------------


@pytest.mark.parametrize("value", ["", "0", "false", "False", "no"])
def test_missing_dependency_skips_outside_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match="redis-server is not installed"):
        services.require_executable(None, "redis-server")


@pytest.mark.parametrize("value", ["true", "1", "yes"])
def test_missing_dependency_fails_under_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        services.require_executable(Path("/nonexistent/redis-server"), "redis-server")


def test_missing_module_skips_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"choir\.no_such_module"):
        services.require_module("choir.no_such_module")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"choir\.no_such_module"):
        services.require_module("choir.no_such_module")


def test_a_module_with_a_broken_import_is_an_error_not_a_skip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "choir_test_broken_module.py").write_text("import choir_test_absent_dependency\n")
    monkeypatch.syspath_prepend(tmp_path)
    with pytest.raises(ModuleNotFoundError, match="choir_test_absent_dependency"):
        services.require_module("choir_test_broken_module")


# --- ports ------------------------------------------------------------------------------------------


def test_free_port_can_be_bound() -> None:
    port = services.free_port()
    with socket.socket() as sock:
        sock.bind((LOOPBACK, port))


def test_wait_for_port_sees_a_listener_and_times_out_without_one() -> None:
    with socket.socket() as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen()
        services.wait_for_port(LOOPBACK, listener.getsockname()[1], timeout_s=5.0)
    started_s = time.monotonic()
    with pytest.raises(TimeoutError, match=r"within 0\.2 s"):
        services.wait_for_port(LOOPBACK, services.free_port(), timeout_s=0.2)
    assert time.monotonic() - started_s < 5.0


# --- PostgreSQL -------------------------------------------------------------------------------------


def test_postgres_creates_inserts_and_selects(postgres_url: str) -> None:
    engine = sqlalchemy.create_engine(postgres_url)
    try:
        with engine.begin() as connection:
            version = connection.execute(sqlalchemy.text("SHOW server_version")).scalar_one()
            connection.execute(sqlalchemy.text("CREATE TABLE notes (id integer PRIMARY KEY, body text)"))
            connection.execute(
                sqlalchemy.text("INSERT INTO notes (id, body) VALUES (:id, :body)"),
                [{"id": 2, "body": "second"}, {"id": 1, "body": "first"}],
            )
        with engine.connect() as connection:
            rows = connection.execute(sqlalchemy.text("SELECT id, body FROM notes ORDER BY id")).all()
    finally:
        engine.dispose()
    assert version.startswith("15.")
    assert [tuple(row) for row in rows] == [(1, "first"), (2, "second")]


def test_fresh_databases_are_empty_isolated_and_dropped(postgres_server: PostgresServer) -> None:
    with postgres_server.fresh_database() as first_url, postgres_server.fresh_database() as second_url:
        assert first_url != second_url
        first = sqlalchemy.create_engine(first_url)
        second = sqlalchemy.create_engine(second_url)
        try:
            with first.begin() as connection:
                connection.execute(sqlalchemy.text("CREATE TABLE only_in_first (id integer)"))
            # Left open on purpose: dropping must not wait for a connection a test forgot to close.
            lingering = second.connect()
            assert sqlalchemy.inspect(lingering).get_table_names() == []
        finally:
            first.dispose()
    assert _database_names(postgres_server) & {_database_of(first_url), _database_of(second_url)} == set()
    lingering.invalidate()  # the server ended it when the database was dropped
    second.dispose()


def test_database_names_are_checked() -> None:
    server = PostgresServer(host=LOOPBACK, port=1, socket_dir=Path("/nonexistent"))
    with pytest.raises(ValueError, match="database name"):
        server.url('x"; DROP DATABASE postgres; --')


def _database_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _database_names(server: PostgresServer) -> set[str]:
    dsn = f"host={server.host} port={server.port} user=postgres dbname=postgres"
    with psycopg.connect(dsn) as connection:
        return {row[0] for row in connection.execute("SELECT datname FROM pg_database")}


# --- Redis ------------------------------------------------------------------------------------------


async def test_redis_pubsub_round_trip(redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        async with client.pubsub() as pubsub:
            await pubsub.subscribe("choir-test")
            receivers = await client.publish("choir-test", b"hello over redis")
            message = await _next_message(pubsub)
    finally:
        await client.aclose()
    assert receivers == 1
    assert message["channel"] == b"choir-test"
    assert message["data"] == b"hello over redis"


async def _next_message(pubsub: redis.asyncio.client.PubSub) -> dict[str, Any]:
    deadline = time.monotonic() + MESSAGE_WAIT_S
    while time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            return dict(message)
    raise TimeoutError(f"no pub/sub message within {MESSAGE_WAIT_S} s")


def test_redis_flush_empties_every_database(redis_server: RedisServer) -> None:
    for db in (0, 3):
        with redis.Redis.from_url(redis_server.url(db)) as client:
            client.set("key", "value")
    redis_server.flush()
    for db in (0, 3):
        with redis.Redis.from_url(redis_server.url(db)) as client:
            assert client.dbsize() == 0


def test_fixtures_mark_their_tests(request: pytest.FixtureRequest, redis_server: RedisServer) -> None:
    assert request.node.get_closest_marker("redis") is not None
    assert request.node.get_closest_marker("postgres") is None


# --- uvicorn and Chromium ---------------------------------------------------------------------------

PAGE = b"""<!doctype html>
<html><head><title>loading</title></head>
<body><script>document.title = "choir " + (6 * 7);</script></body></html>"""


async def page_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A one-page ASGI app whose title is only right when the page's script runs."""
    assert scope["type"] == "http"
    headers = [(b"content-type", b"text/html; charset=utf-8")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": PAGE})


async def failing_lifespan_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    message = await receive()
    assert message["type"] == "lifespan.startup"
    await send({"type": "lifespan.startup.failed", "message": "refusing to start"})


def test_run_uvicorn_serves_then_frees_its_port() -> None:
    with services.run_uvicorn(page_app, lifespan="off") as base_url:
        response = httpx.get(base_url + "/", timeout=5.0)
    assert response.status_code == 200
    assert b"<title>loading</title>" in response.content
    with pytest.raises(httpx.ConnectError):
        httpx.get(base_url + "/", timeout=5.0)


def test_run_uvicorn_reports_a_failed_startup() -> None:
    with (
        pytest.raises(services.ServerStartError, match="startup"),
        services.run_uvicorn(failing_lifespan_app, lifespan="on"),
    ):
        pass  # pragma: no cover - the server never starts


async def test_chromium_runs_a_served_page(chromium_launch_options: services.ChromiumLaunch) -> None:
    with services.run_uvicorn(page_app, lifespan="off") as base_url:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(**chromium_launch_options)
            try:
                page = await browser.new_page()
                await page.goto(base_url + "/", timeout=PAGE_TIMEOUT_MS)
                title = await page.title()
            finally:
                await browser.close()
    assert title == "choir 42"


async def test_event_loop_is_free_while_uvicorn_serves() -> None:
    """The server runs in its own thread, so an async test can talk to it without deadlocking."""
    with services.run_uvicorn(page_app, lifespan="off") as base_url:
        async with httpx.AsyncClient(timeout=5.0) as client:
            responses = await asyncio.gather(*(client.get(base_url + "/") for _ in range(3)))
    assert [response.status_code for response in responses] == [200, 200, 200]
