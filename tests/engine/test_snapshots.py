"""Readers see only what committed. A batch is held inside its transaction (after the program
applied it, before COMMIT) while REST requests and socket frames read the server; then it fails,
or finds the version moved and is applied again. No response and no frame ever shows the batch
that did not commit, and the retried one arrives exactly once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness import Server, User, run_server

from choir.ledger import ONE_CHOIR, user_account
from choir.program import PostMessage, Withdraw
from choir.server.runtime import Runtime

HOLD_TIMEOUT_S = 10.0


@pytest.fixture
def srv(tmp_path: Path) -> Any:
    with run_server(tmp_path / "data", sweep_interval_s=3600) as server:
        yield server


def runtime_of(server: Server) -> Runtime:
    runtime: Runtime = server.app.state.runtime
    return runtime


def on_server(runtime: Runtime, instructions: list[Any]) -> asyncio.Future[Any]:
    """Submit a batch on the server's own event loop (uvicorn's thread), awaitable from the test's."""
    task = runtime.writer._task
    assert task is not None
    return asyncio.wrap_future(
        asyncio.run_coroutine_threadsafe(runtime.writer.execute_all(instructions), task.get_loop())
    )


class Hold:
    """Wraps a store method so that its next call waits (in the writer thread) until released,
    then runs ``then`` instead of the method, once."""

    def __init__(self, then: Callable[..., Any]) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.then = then
        self.used = False

    def wrap(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def held(*args: Any, **kwargs: Any) -> Any:
            if self.used:
                return real(*args, **kwargs)
            self.used = True
            self.entered.set()
            assert self.release.wait(HOLD_TIMEOUT_S)
            return self.then(real, *args, **kwargs)

        return held


async def observe(alice: User, thread_id: str) -> dict[str, Any]:
    async with alice.http() as http:
        me = (await http.get("/api/me")).json()
        thread = (await http.get(f"/api/threads/{thread_id}")).json()
        messages = (await http.get(f"/api/threads/{thread_id}/messages")).json()["messages"]
        ledger = (await http.get("/api/ledger")).json()
        health = (await http.get("/health")).json()
        account = (await http.get(f"/api/accounts/{alice.address}")).json()
    return {
        "balance": me["balance"],
        "account": account["balance"],
        "last_seq": thread["last_seq"],
        "message_count": thread["message_count"],
        "messages": [m["message_id"] for m in messages],
        "by_class": ledger["by_class"],
        "version": health["version"],
    }


async def test_a_batch_that_fails_before_commit_is_never_seen(srv: Server) -> None:
    alice = User(srv)
    await alice.sign_in()
    thread_id = (await alice.create_thread("Held"))["thread_id"]
    runtime = runtime_of(srv)
    store = runtime.store

    def fail(_real: Callable[..., Any], *_args: Any) -> None:
        raise RuntimeError("disk full")

    hold = Hold(fail)
    store.persist = hold.wrap(store.persist)  # type: ignore[method-assign]
    async with alice.socket() as watcher:
        ack = await watcher.request("subscribe", {"thread_id": thread_id})
        before = await observe(alice, thread_id)
        batch = on_server(
            runtime,
            [
                PostMessage(alice.address, thread_id, "m-held", "never committed"),
                Withdraw(alice.address, ONE_CHOIR, "w-held"),
            ],
        )
        assert await asyncio.to_thread(hold.entered.wait, HOLD_TIMEOUT_S)
        # The program has applied the batch to the writer's fork; the store has not committed it.
        during = await observe(alice, thread_id)
        async with alice.socket() as late:
            late_ack = await late.request("subscribe", {"thread_id": thread_id, "since_seq": 0})
        hold.release.set()
        with pytest.raises(RuntimeError, match="disk full"):
            await batch
        after = await observe(alice, thread_id)
        assert before == during == after
        assert late_ack["payload"]["seq"] == ack["payload"]["seq"] == before["last_seq"]
        assert runtime.writer.snapshot().balance(user_account(alice.address)) == int(before["balance"])
        # The socket got no frame of the failed batch; its next frame is the next real post's.
        posted = await watcher.request("post", {"thread_id": thread_id, "content": "this one commits"})
        assert posted["type"] == "ack"
        (event,) = await watcher.events(1)
        assert event["seq"] == before["last_seq"] + 1
        assert event["data"]["content"] == "this one commits"


async def test_a_batch_applied_again_after_a_version_move_is_seen_once(srv: Server) -> None:
    alice = User(srv)
    await alice.sign_in()
    thread_id = (await alice.create_thread("Moved"))["thread_id"]
    runtime = runtime_of(srv)
    store = runtime.store

    def moved(_real: Callable[..., Any], *_args: Any) -> bool:
        return False  # another writer claimed this version first

    hold = Hold(moved)
    store.claim_version = hold.wrap(store.claim_version)  # type: ignore[method-assign]
    async with alice.socket() as watcher:
        await watcher.request("subscribe", {"thread_id": thread_id})
        before = await observe(alice, thread_id)
        batch = on_server(
            runtime,
            [
                PostMessage(alice.address, thread_id, "m-moved", "applied twice, committed once"),
                Withdraw(alice.address, ONE_CHOIR, "w-moved"),
            ],
        )
        assert await asyncio.to_thread(hold.entered.wait, HOLD_TIMEOUT_S)
        during = await observe(alice, thread_id)
        hold.release.set()
        results = await batch
        assert [type(r).__name__ for r in results] == ["Outcome", "Outcome"]
        after = await observe(alice, thread_id)
        assert during == before
        assert int(after["balance"]) == int(before["balance"]) - ONE_CHOIR  # debited once
        assert after["last_seq"] == before["last_seq"] + 1
        assert after["messages"] == [*before["messages"], "m-moved"]
        assert after["version"] == before["version"] + 1
        (event,) = await watcher.events(1)
        assert event["seq"] == before["last_seq"] + 1 and event["data"]["message_id"] == "m-moved"
        with pytest.raises(TimeoutError):
            await watcher.events(1, timeout_s=0.5)  # and nothing twice
