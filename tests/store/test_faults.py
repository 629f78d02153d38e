"""The database away for now is told apart from a bug: a retryable ``store_unavailable`` (503 with
Retry-After over REST, the same code over /ws), never ``internal``; ``/health`` says the store is
degraded; nothing acked before is lost."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import httpx
import pytest
import sqlalchemy
from harness import User, run_server
from sqlalchemy import exc as sa

import services
from choir.store.faults import StoreUnavailable, unavailable


def test_a_refused_connection_is_unavailable_and_a_statement_fault_is_not(tmp_path: Path) -> None:
    away = sqlalchemy.create_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{services.free_port()}/x",
        connect_args={"connect_timeout": 2},
    )
    with pytest.raises(sa.OperationalError) as refused:
        away.connect()
    assert unavailable(refused.value)
    local = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with local.connect() as conn, pytest.raises(sa.OperationalError) as missing:
        conn.execute(sqlalchemy.text("SELECT * FROM no_such_table"))
    assert not unavailable(missing.value)  # a bug, not an outage
    locked = sa.OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked"))
    assert unavailable(locked)
    assert not unavailable(sa.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE")))
    assert not unavailable(ValueError("a bug"))
    wrapped = StoreUnavailable("away")
    assert unavailable(RuntimeError("outer")) is False and unavailable(wrapped)


@pytest.mark.timeout(120)
def test_writes_while_the_database_is_away_are_refused_as_retryable(
    tmp_path: Path, postgres_server: services.PostgresServer
) -> None:
    name = postgres_server.create_database()
    with run_server(tmp_path / "data", postgres_server.url(name)) as server:

        async def scenario() -> None:
            alice = User(server)
            await alice.sign_in()
            thread = await alice.create_thread("Before")
            async with alice.socket() as sock:
                ack = await sock.request("post", {"thread_id": thread["thread_id"], "content": "kept"})
                assert ack["type"] == "ack", ack
                # The database goes away under the server (its connections cut, its name gone).
                postgres_server.drop_database(name)
                refused = await sock.request("post", {"thread_id": thread["thread_id"], "content": "lost?"})
                assert refused["type"] == "error", refused
                assert refused["payload"]["code"] == "store_unavailable", refused
                # The connection stays open and usable: the client retries when told the store is back.
                again = await sock.request("post", {"thread_id": thread["thread_id"], "content": "again"})
                assert again["payload"]["code"] == "store_unavailable", again
            async with alice.http() as http:
                created = await http.post("/api/threads", json={"title": "During"})
                assert created.status_code == 503, created.text
                assert created.json()["code"] == "store_unavailable"
                assert created.headers["retry-after"] == "1"
            health = httpx.get(f"{server.base_url}/health", timeout=10).json()
            assert health["status"] == "degraded" and health["dependencies"]["store"] == "degraded"

        asyncio.run(scenario())
