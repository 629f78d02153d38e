"""On a filesystem too small for the embedded vector shard (whose vectors are mapped from 32 MB files:
a write into the mapping past the disk's end is a SIGBUS), `choir serve` refuses to start with a clear
line and exit status 3 instead of dying of the signal. A real 20 MB tmpfs."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import services


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.timeout(120)
def test_serve_refuses_a_data_dir_too_small_for_the_shard(small_fs: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHOIR_")} | {"CHOIR_LOG_LEVEL": "WARNING"}
    port = services.free_port()
    argv = [sys.executable, "-m", "choir", "serve", "--port", str(port), "--data-dir", str(small_fs / "data")]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 3, (done.returncode, done.stderr[-2000:])
    assert "needs 96 MB free on its filesystem and has 1" in done.stderr, done.stderr[-2000:]
    assert "Bus error" not in done.stderr


@pytest.mark.timeout(180)
def test_a_full_disk_refuses_writes_as_retryable_and_the_server_lives(small_fs: Path) -> None:
    """SQLite on a filesystem that fills up while serving: posts are refused with store_unavailable
    (nothing stored), never internal; the server stays up, and writes again once there is room."""
    import asyncio

    from harness import User, run_server

    data = small_fs / "data"
    # The shared SQL engine: the embedded shard would refuse this small filesystem at start.
    with run_server(data, vector_engine="sql") as server:

        async def scenario() -> None:
            alice = User(server)
            await alice.sign_in()
            thread = (await alice.create_thread("Full"))["thread_id"]
            filler = small_fs / "filler"
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # fill the disk to the last block
            try:
                for size in (1 << 20, 4096, 1):
                    with contextlib.suppress(OSError):
                        while True:
                            os.write(fd, b"\0" * size)
            finally:
                os.close(fd)
            codes = []
            async with alice.socket() as sock:
                for n in range(40):
                    reply = await sock.request(
                        "post", {"thread_id": thread, "content": f"{n} " + "x" * 15000}
                    )
                    codes.append(reply["payload"].get("code", "ack") if reply["type"] == "error" else "ack")
                    if reply["type"] == "error":
                        break
                assert codes[-1] == "store_unavailable", codes
                filler.unlink()  # room again
                again = await sock.request(
                    "post", {"thread_id": thread, "content": "after the disk was freed"}
                )
                assert again["type"] == "ack", again

        asyncio.run(scenario())
