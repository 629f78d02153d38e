"""`choir proof MESSAGE_ID` and `GET /api/messages/{id}/proof` on a server anchoring on the embedded
chain: the proof walks to the anchored root, the server also checks that root on chain, and a message
that is not anchored, unknown, or private to others is refused clearly."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import Server, User, run_server

from choir.chain.merkle import MerkleProof, verify_proof
from choir.program import tombstone_hash


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
        # Someone else cannot read a private thread's proof: its message answers as an unknown id does.
        bob = User(server)
        asyncio.run(bob.sign_in())

        async def refusals() -> None:
            async with bob.http() as http:
                hidden = await http.get(f"/api/messages/{message_id}/proof")
                assert hidden.status_code == 404 and hidden.json()["code"] == "message_not_found"
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


async def wait_proof(user: User, message_id: str, version: int) -> dict[str, Any]:
    async with user.http() as http:
        deadline = time.monotonic() + 60
        while True:
            response = await http.get(f"/api/messages/{message_id}/proof", params={"version": version})
            if response.status_code == 200:
                body: dict[str, Any] = response.json()
                return body
            assert response.json()["code"] == "not_anchored" and time.monotonic() < deadline, response.text
            await asyncio.sleep(0.3)


def test_every_version_of_an_edited_and_deleted_message_is_anchored(tmp_path: Path) -> None:
    """Published, edited, deleted: three leaves anchored on chain, each provable; the deleted content
    is gone, and the tombstone's hash is the one anyone can recompute from the id."""
    with run_server(tmp_path / "data", chain="litesvm", sweep_interval_s=0.2) as server:

        async def history() -> tuple[str, list[dict[str, Any]]]:
            ada = User(server)
            await ada.sign_in()
            thread = await ada.create_thread("History")
            async with ada.socket() as sock:
                ack = await sock.request(
                    "post", {"thread_id": thread["thread_id"], "content": "As first said."}
                )
                message_id = ack["payload"]["message_id"]
                await sock.request("message.edit", {"message_id": message_id, "content": "As said later."})
                await sock.request("message.delete", {"message_id": message_id})
            proofs = [await wait_proof(ada, message_id, v) for v in (1, 2, 3)]
            async with ada.http() as http:
                assert (await http.get(f"/api/messages/{message_id}/proof?version=4")).json()["code"] == (
                    "version_not_found"
                )
            return message_id, proofs

        message_id, proofs = asyncio.run(history())
    assert [p["record_id"] for p in proofs] == [message_id, f"{message_id}~v2", f"{message_id}~v3"]
    assert all(p["verified_on_chain"] is True for p in proofs)
    assert proofs[0]["content_hash"] == hashlib.sha256(b"As first said.").hexdigest()
    assert proofs[1]["content_hash"] == hashlib.sha256(b"As said later.").hexdigest()
    assert proofs[2]["content_hash"] == tombstone_hash(message_id)
    for version in (1, 2, 3):
        cmd = [sys.executable, "-m", "choir", "proof", message_id, "--version", str(version)]
        done = subprocess.run(
            [*cmd, "--data-dir", str(tmp_path / "data")], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        offline = json.loads(done.stdout)
        # The content is deleted: the store proves the hashes it kept, and says so.
        assert offline["verified"] is True and offline["content_deleted"] is True
        assert offline["leaf"] == proofs[version - 1]["leaf"]
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "choir",
            "proof",
            message_id,
            "--version",
            "0",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "version" in bad.stderr.lower()
