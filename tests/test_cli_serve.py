"""``choir serve`` as a person runs it: a real subprocess, with a timeout on every run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import services

# Loading the embedding model and opening the stores takes a few seconds; a busy machine, more.
STARTUP_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
CHOIR = [sys.executable, "-m", "choir"]


def clean_env(**settings: str) -> dict[str, str]:
    """The environment without any CHOIR_* setting of the machine running the tests, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHOIR_")}
    return env | settings


def serve(cwd: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CHOIR, "serve", *args],
        cwd=cwd,
        env=clean_env(**settings),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port some other program is listening on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def test_port_in_use_is_a_clear_message_and_a_failing_exit(tmp_path: Path, busy_port: int) -> None:
    result = serve(tmp_path, "--port", str(busy_port))
    assert result.returncode != 0
    assert f"port {busy_port}" in result.stderr and "already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == [], "nothing is created when the server cannot start"


@pytest.mark.parametrize(("name", "value"), [("CHOIR_PORT", "abc"), ("CHOIR_EPOCH_SECONDS", "0")])
def test_a_bad_setting_is_named_and_the_exit_fails(tmp_path: Path, name: str, value: str) -> None:
    result = serve(tmp_path, **{name: value})
    assert result.returncode != 0
    assert f"bad setting {name}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_every_bad_setting_is_named_at_once(tmp_path: Path) -> None:
    bad = {
        "CHOIR_PORT": "70000",
        "CHOIR_EPOCH_SECONDS": "an hour",
        "CHOIR_LOG_LEVEL": "LOUD",
        "CHOIR_CHAIN": "eth",
    }
    result = serve(tmp_path, **bad)
    assert result.returncode != 0
    for name in bad:
        assert f"bad setting {name}" in result.stderr, result.stderr


def test_serve_starts_with_no_configuration_and_answers_health(tmp_path: Path) -> None:
    # Only the port is chosen, so that the test does not depend on 8000 being free.
    port = services.free_port()
    process = subprocess.Popen(
        [*CHOIR, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        health = wait_for_health(process, f"http://127.0.0.1:{port}/health")
        assert health["status"] == "ok"
        assert (tmp_path / "choir-data").is_dir()
        assert (tmp_path / "choir-data" / "choir.db").is_file()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
    # uvicorn re-raises the SIGINT it handled once it has shut down: 130 is a shell's "ended by Ctrl-C".
    assert process.returncode in (0, 130), err
    assert "Application shutdown complete" in err and "Traceback" not in err
    assert f"Choir is running at http://localhost:{port}/" in out


def wait_for_health(process: subprocess.Popen[str], url: str) -> dict[str, object]:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"choir serve exited with {process.returncode}: {err[-2000:]}")
        try:
            response = httpx.get(url, timeout=2, verify=False)
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body
    pytest.fail(f"choir serve did not answer {url} within {STARTUP_TIMEOUT_S} s")
