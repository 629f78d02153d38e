"""Structured JSON logs: the shape of a line, and that no message content or secret ever
reaches the log, checked on the logs of a real server session at DEBUG level."""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import User, run_server

from choir.ops import logs


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger and the library loggers back as they were."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    named = {n: logging.getLogger(n).level for n in ("uvicorn", "uvicorn.error", "websockets")}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    for name, lvl in named.items():
        logging.getLogger(name).setLevel(lvl)


def one_line(record: logging.LogRecord) -> dict[str, object]:
    buffer = io.StringIO()
    handler = logs.JsonHandler(buffer)
    handler.handle(record)
    lines = buffer.getvalue().splitlines()
    assert len(lines) <= 1
    return json.loads(lines[0]) if lines else {}


def record(
    msg: str, *args: object, level: int = logging.INFO, name: str = "choir.test", **extra: object
) -> logging.LogRecord:
    rec = logging.LogRecord(name, level, __file__, 1, msg, args, None)
    rec.__dict__.update(extra)
    return rec


def test_a_line_is_one_json_object_with_the_extra_fields() -> None:
    line = one_line(record("indexed %d messages", 3, thread_id="t1", count=3))
    assert line["level"] == "INFO" and line["logger"] == "choir.test"
    assert line["msg"] == "indexed 3 messages"
    assert line["thread_id"] == "t1" and line["count"] == 3
    assert str(line["ts"]).endswith("Z")


def test_secret_fields_are_redacted_by_name() -> None:
    line = one_line(record("posted", content="hello there", prompt="why?", session_token="abc", cookie="c=1"))
    assert {line[k] for k in ("content", "prompt", "session_token", "cookie")} == {logs.REDACTED}


def test_wire_dumps_and_trace_records_are_dropped() -> None:
    assert (
        one_line(record("< %s", 'TEXT \'{"content":"hi"}\'', level=logging.DEBUG, name="uvicorn.error")) == {}
    )
    assert one_line(record("> %s: %s", "Cookie", "choir_session=abc", level=logging.DEBUG)) == {}
    assert one_line(record("ASGI [1] Send %s", "{'body': b'x'}", level=5, name="uvicorn.error")) == {}


def test_secrets_in_text_are_scrubbed() -> None:
    text = (
        'Cookie: choir_session=tok123; {"content":"the plan","prompt":"q"} '
        "Authorization: Bearer sk-999 {'text': 'hi'}"
    )
    msg = str(one_line(record("%s", text))["msg"])
    for secret in ("tok123", "the plan", "sk-999", "'hi'", '"q"'):
        assert secret not in msg, msg
    access = one_line(
        record(
            '%s - "%s %s HTTP/%s" %d',
            "1.2.3.4",
            "GET",
            "/api/search?q=my+secret",
            "1.1",
            200,
            name="uvicorn.access",
        )
    )
    assert "my+secret" not in str(access["msg"]) and "/api/search?" in str(access["msg"])


def test_an_exception_is_logged_scrubbed() -> None:
    try:
        raise ValueError('bad frame {"content":"private words"}')
    except ValueError:
        import sys

        rec = logging.LogRecord("choir.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = one_line(rec)
    assert "ValueError" in str(line["exc"]) and "private words" not in str(line["exc"])


def test_configure_is_idempotent_and_keeps_other_handlers(restore_logging: None) -> None:
    root = logging.getLogger()
    other = logging.NullHandler()
    root.addHandler(other)
    root.addHandler(logging.StreamHandler())  # a plain one, as logging.basicConfig in `choir serve` adds
    first = logs.configure("INFO")
    second = logs.configure("DEBUG")
    assert first not in root.handlers and second in root.handlers and other in root.handlers
    assert sum(isinstance(h, logs.JsonHandler) for h in root.handlers) == 1
    assert not any(type(h) is logging.StreamHandler for h in root.handlers)
    assert root.level == logging.DEBUG


@pytest.mark.timeout(120)
async def test_a_real_session_logs_json_and_never_a_message_or_a_session_token(
    tmp_path: Path, restore_logging: None
) -> None:
    marker = f"marker-{secrets.token_hex(8)}"
    raw = io.StringIO()
    # The control: every record, unfiltered, to show the session really logged what must be kept out.
    unfiltered = logging.StreamHandler(raw)
    unfiltered.setFormatter(logging.Formatter("%(name)s %(message)s"))
    with run_server(tmp_path / "data", log_level="DEBUG") as server:
        installed = logs.installed_handler()
        assert installed is not None, "the server installs the JSON handler when it starts"
        out = io.StringIO()
        installed.stream = out
        root = logging.getLogger()
        root.addHandler(unfiltered)
        for name in ("uvicorn", "uvicorn.error", "websockets"):
            logging.getLogger(name).setLevel(logging.DEBUG)
        try:
            user = User(server)
            await user.sign_in()
            thread = await user.create_thread(f"title {marker}")
            async with user.socket() as sock:
                await sock.request("subscribe", {"thread_id": thread["thread_id"]})
                ack = await sock.request(
                    "post", {"thread_id": thread["thread_id"], "content": f"hello {marker}"}
                )
                assert ack["type"] == "ack", ack
                await sock.events(1)
                await sock.request(
                    "ask", {"thread_id": thread["thread_id"], "prompt": f"what about {marker}?"}
                )
            async with user.http() as http:
                await http.get("/api/search", params={"q": marker})
        finally:
            root.removeHandler(unfiltered)
    token = user.cookie
    assert token and marker in raw.getvalue() and token in raw.getvalue(), "the control saw nothing to hide"
    text = out.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) > 5
    assert all({"ts", "level", "logger", "msg"} <= line.keys() for line in lines)
    assert any(line["logger"] == "uvicorn.error" for line in lines)
    assert marker not in text
    assert token not in text


def test_choir_serve_writes_json_lines_from_start_up_with_access_logs(tmp_path: Path) -> None:
    """Every line `choir serve` writes on stderr is a JSON object, uvicorn's start-up records and its
    access log included; a search query in a URL is redacted there."""
    import json as json_module
    import signal
    import subprocess
    import sys
    import time

    import httpx

    import services

    port = services.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHOIR_")} | {"CHOIR_LOG_LEVEL": "INFO"}
    cmd = [sys.executable, "-m", "choir", "serve", "--port", str(port), "--data-dir", str(tmp_path / "d")]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        httpx.get(f"http://127.0.0.1:{port}/api/search", params={"q": "my secret words"}, timeout=30)
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    lines = [line for line in stderr.splitlines() if line.strip()]
    records = [json_module.loads(line) for line in lines]  # raises on any line that is not JSON
    loggers = {r["logger"] for r in records}
    assert "uvicorn.error" in loggers and "uvicorn.access" in loggers, loggers
    assert any("Started server process" in r["msg"] for r in records)
    access = [r["msg"] for r in records if r["logger"] == "uvicorn.access"]
    assert any("/api/search?q=[redacted]" in m for m in access), access
    assert "secret words" not in stderr
