"""`choir proof MESSAGE_ID` and `GET /api/messages/{id}/proof` on a server anchoring on the embedded
chain: the proof walks to the anchored root, the server also checks that root on chain, and a message
that is not anchored, unknown, or private to others is refused clearly."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import Server, User, run_server

from choir.chain.merkle import MerkleProof, verify_proof


async def post_and_wait(server: Server) -> tuple[User, str, str, dict[str, Any]]:
    ada = User(server)
    await ada.sign_in()
    thread = await ada.create_thread("Anchored", visibility="private")
    async with ada.socket() as sock:
        ack = await sock.request("post", {"thread_id": thread["thread_id"], "content": "Prove me."})
    message_id = ack["payload"]["message_id"]
    async with ada.http() as http:
        deadline = time.monotonic() + 60
        while True:
            response = await http.get(f"/api/messages/{message_id}/proof")
            if response.status_code == 200:
                return ada, thread["thread_id"], message_id, response.json()
            assert response.json()["code"] == "not_anchored" and time.monotonic() < deadline
            await asyncio.sleep(0.3)


def test_the_proof_holds_on_chain_and_offline(tmp_path: Path) -> None:
    with run_server(tmp_path / "data", chain="litesvm", sweep_interval_s=0.2) as server:
        _ada, thread_id, message_id, proof = asyncio.run(post_and_wait(server))
        assert proof["verified_on_chain"] is True and proof["thread_id"] == thread_id
        merkle = MerkleProof(proof["index"], proof["size"], tuple(bytes.fromhex(p) for p in proof["path"]))
        assert verify_proof(bytes.fromhex(proof["root"]), bytes.fromhex(proof["leaf"]), merkle)
        # Someone else cannot read a private thread's proof; a stranger's id is unknown.
        bob = User(server)
        asyncio.run(bob.sign_in())

        async def refusals() -> None:
            async with bob.http() as http:
                assert (await http.get(f"/api/messages/{message_id}/proof")).status_code == 403
                missing = await http.get("/api/messages/nope/proof")
                assert missing.status_code == 404 and missing.json()["code"] == "message_not_found"

        asyncio.run(refusals())
    cmd = [sys.executable, "-m", "choir", "proof", message_id, "--data-dir", str(tmp_path / "data")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    offline = json.loads(done.stdout)
    assert (
        offline["verified"] is True and offline["root"] == proof["root"] and offline["leaf"] == proof["leaf"]
    )
    unknown = subprocess.run([*cmd[:4], "nope", *cmd[5:]], capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 1 and "no message 'nope'" in unknown.stderr


def test_a_server_without_a_chain_says_nothing_is_anchored(tmp_path: Path) -> None:
    with run_server(tmp_path / "data") as server:

        async def scenario() -> None:
            ada = User(server)
            await ada.sign_in()
            thread = await ada.create_thread("Plain")
            async with ada.socket() as sock:
                ack = await sock.request(
                    "post", {"thread_id": thread["thread_id"], "content": "Not anchored."}
                )
            async with ada.http() as http:
                response = await http.get(f"/api/messages/{ack['payload']['message_id']}/proof")
            assert response.status_code == 409 and response.json()["code"] == "not_anchored"
            assert "settles on no chain" in response.json()["message"]

        asyncio.run(scenario())
    done = subprocess.run(
        [sys.executable, "-m", "choir", "proof", "x", "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "no message 'x'" in done.stderr
