"""The database away for now is told apart from a bug: a retryable ``store_unavailable`` (503 with
Retry-After over REST, the same code over /ws), never ``internal``; ``/health`` says the store is
degraded; nothing acked before is lost."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
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


@pytest.mark.timeout(120)
def test_a_process_frozen_inside_a_transaction_holds_no_one_up_for_long(
    tmp_path: Path, postgres_url: str
) -> None:
    """A session that holds the state version and goes quiet (a process frozen mid-write: a GC pause,
    a stopped VM) makes the others' writes wait LOCK_TIMEOUT_MS at most, refused as retryable; after
    IDLE_IN_TRANSACTION_MS PostgreSQL ends it, and writes go through again."""
    from choir.store.sql import IDLE_IN_TRANSACTION_MS, LOCK_TIMEOUT_MS, VERSION_KEY, make_engine

    with run_server(tmp_path / "data", postgres_url) as server:

        async def scenario() -> None:
            alice = User(server)
            await alice.sign_in()
            thread = await alice.create_thread("Frozen")
            frozen = make_engine(postgres_url)
            conn = frozen.connect()
            conn.begin()
            conn.execute(
                sqlalchemy.text("SELECT value FROM meta WHERE key = :k FOR UPDATE"), {"k": VERSION_KEY}
            )
            try:
                async with alice.socket() as sock:
                    started = time.monotonic()
                    refused = await sock.request(
                        "post", {"thread_id": thread["thread_id"], "content": "waits"}
                    )
                    waited_s = time.monotonic() - started
                    assert refused["type"] == "error" and refused["payload"]["code"] == "store_unavailable"
                    assert LOCK_TIMEOUT_MS / 1000 * 0.8 <= waited_s < LOCK_TIMEOUT_MS / 1000 + 5, waited_s
                    await asyncio.sleep(IDLE_IN_TRANSACTION_MS / 1000 - waited_s + 1)
                    # PostgreSQL ended the quiet session; its lock went with it.
                    ack = await sock.request("post", {"thread_id": thread["thread_id"], "content": "goes"})
                    assert ack["type"] == "ack", ack
            finally:
                with contextlib.suppress(Exception):
                    conn.close()
                frozen.dispose()

        asyncio.run(scenario())


@pytest.mark.timeout(120)
def test_start_up_claims_are_retaken_after_the_database_drops_their_sessions(
    tmp_path: Path, postgres_url: str
) -> None:
    """A database restart ends the sessions holding a process's start-up claims. The process takes
    them again; if another process took one meanwhile (one that should have been refused: no Redis),
    it stops writing (store_unavailable) rather than run unguarded, and writes again once it holds it."""
    from choir.server.preflight import FANOUT_LOCK_KEY
    from choir.store.sql import AdvisoryLock, make_engine

    with run_server(tmp_path / "data", postgres_url) as server:

        async def scenario() -> None:
            alice = User(server)
            await alice.sign_in()
            thread = (await alice.create_thread("Guarded"))["thread_id"]
            admin = make_engine(postgres_url)
            database = postgres_url.rsplit("/", 1)[-1]
            intruder = AdvisoryLock(make_engine(postgres_url), FANOUT_LOCK_KEY)
            try:
                with admin.connect() as conn:  # every session of the database ends, as in a restart
                    conn.execute(
                        sqlalchemy.text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = :d AND pid <> pg_backend_pid()"
                        ),
                        {"d": database},
                    )
                    conn.commit()
                assert intruder.held()  # a second process, alone, takes the claim in the gap
                await asyncio.sleep(3.5)
                async with alice.socket() as sock:
                    refused = await sock.request("post", {"thread_id": thread, "content": "unguarded?"})
                    assert refused["type"] == "error" and refused["payload"]["code"] == "store_unavailable"
                    assert "does not write now" in refused["payload"]["message"]
                    intruder.release()
                    await asyncio.sleep(3.5)
                    ack = await sock.request("post", {"thread_id": thread, "content": "guarded again"})
                    assert ack["type"] == "ack", ack
                # And a newcomer without Redis is refused again, naming itself as the one without it.
                second = AdvisoryLock(make_engine(postgres_url), FANOUT_LOCK_KEY)
                assert not second.held()
                second.engine.dispose()
            finally:
                intruder.release()
                intruder.engine.dispose()
                admin.dispose()

        asyncio.run(scenario())
