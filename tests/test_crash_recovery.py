"""A real `choir serve`, killed with SIGKILL at the moments a derived index trails the store, then
restarted on the same data: start-up reconciles the vector index with the store, and `choir audit`
(store and index) passes on every run after."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from nacl.signing import SigningKey
from websockets.asyncio.client import connect

import services
from choir.auth.client import sign_in_message

START_TIMEOUT_S = 60.0


@contextlib.contextmanager
def choir_serve(data_dir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = services.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHOIR_")} | {"CHOIR_LOG_LEVEL": "WARNING"}
    process = subprocess.Popen(
        [sys.executable, "-m", "choir", "serve", "--port", str(port), "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        services.wait_for_port("127.0.0.1", port, START_TIMEOUT_S)
        yield f"http://127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


async def sign_in(base: str) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=base, headers={"Origin": base}, verify=False) as http:
        fields = (await http.get("/api/auth/nonce")).json()
        message, signature, address = sign_in_message(fields, SigningKey.generate())
        response = await http.post(
            "/api/auth/verify", json={"message": message, "signature": signature, "address": address}
        )
        response.raise_for_status()
        return address, response.cookies["choir_session"]


async def request(ws: Any, frame_id: str, type_: str, payload: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps({"id": frame_id, "type": type_, "payload": payload}))
    while True:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if frame.get("id") == frame_id:
            assert frame["type"] == "ack", frame
            return frame["payload"]


def choir_audit(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "choir", "audit", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )


async def approve_then_kill(base: str, process: subprocess.Popen[bytes]) -> None:
    """Three posts in a public thread, a spec by someone else, approved: SIGKILL at the ack."""
    alice, alice_cookie = await sign_in(base)
    _bob, bob_cookie = await sign_in(base)
    headers = {"Origin": base}
    ws_url = base.replace("http://", "ws://") + "/ws"
    async with httpx.AsyncClient(
        base_url=base, headers=headers, cookies={"choir_session": alice_cookie}
    ) as http:
        thread_id = (await http.post("/api/threads", json={"title": "Killed"})).json()["thread_id"]
    async with connect(ws_url, additional_headers=headers | {"Cookie": f"choir_session={alice_cookie}"}) as a:
        for n in range(3):
            await request(
                a, f"p{n}", "post", {"thread_id": thread_id, "content": f"post number {n} of three"}
            )
        async with connect(
            ws_url, additional_headers=headers | {"Cookie": f"choir_session={bob_cookie}"}
        ) as b:
            spec = await request(
                b, "s", "spec.submit", {"thread_id": thread_id, "content": "let me in", "stake": "1000000000"}
            )
        await request(a, "v", "spec.vote", {"spec_id": spec["spec_id"], "approve": True})
        process.send_signal(signal.SIGKILL)  # right after the approval's ack
    process.wait()
    assert alice


@pytest.mark.slow
def test_a_kill_right_after_an_approval_restarts_to_a_clean_audit(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with choir_serve(data_dir) as (base, process):
        asyncio.run(approve_then_kill(base, process))
    with choir_serve(data_dir) as (base, _process):
        assert httpx.get(f"{base}/health").status_code == 200  # start-up (and its reconciliation) is done
    for _run in range(2):
        audited = choir_audit(data_dir)
        assert audited.returncode == 0, audited.stdout + audited.stderr
        assert audited.stdout.strip().endswith("audit passed")


def test_start_up_repairs_stale_co_authors_and_points_the_store_lacks(tmp_path: Path) -> None:
    """The index as a crash can leave it (an update applied by the store, lost by the index, and a
    point written for a message whose transaction never committed), repaired by the next start."""
    from choir.store.vectors import EdgeVectorIndex

    data_dir = tmp_path / "data"
    with choir_serve(data_dir) as (base, process):
        asyncio.run(approve_then_kill(base, process))
    with choir_serve(data_dir) as (base, _process):
        pass
    index = EdgeVectorIndex(data_dir / "vectors")
    try:
        (point, *_rest) = list(index.scroll_all())
        assert len(point.co_authors) == 2  # the approval reached the index
        index.set_thread_meta(point.thread_id, point.co_authors[:1], "public")  # ... or, say, it did not
        index.upsert([replace(point, message_id="never-committed")])
    finally:
        index.close()
    broken = choir_audit(data_dir)
    assert broken.returncode == 1
    assert "index_co_authors" in broken.stdout and "index_extra" in broken.stdout
    with choir_serve(data_dir) as (base, _process):
        assert httpx.get(f"{base}/health").status_code == 200
    repaired = choir_audit(data_dir)
    assert repaired.returncode == 0, repaired.stdout
