"""LLM backends: the OpenAI-compatible client against a real loopback server, and the no-model backend."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from choir.chorus import prompts
from choir.chorus.citations import Prior, resolve
from choir.chorus.llm import LLM, ExtractiveLLM, LLMError, OpenAICompatibleLLM

# --- a real HTTP/1.1 server on loopback that plays scripted replies ------------------------------------

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# Recorded from llama-cpp-python's server (sse-starlette) running SmolLM2-135M, for
# prompts.action_messages("What is the capital of France?"), max_tokens 40, temperature 0.
RECORDED_STREAM = (FIXTURES / "openai_chat_stream.sse").read_text()
RECORDED_TEXT = "The capital of France is Paris."


@dataclass
class Reply:
    """One scripted answer. kind: stream | status | stall_headers | stall_after | endless."""

    kind: str
    status: int = 200
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    events: int = 0  # for stall_after: how many SSE events before going silent


@dataclass
class ScriptedServer:
    replies: list[Reply]
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    client_gone: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in head.decode().split("\r\n")[1:] if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append({"headers": headers, "json": json.loads(body)})
            reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
            await self._reply(reply, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.client_gone.set()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _reply(self, reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if reply.kind == "stall_headers":
            await reader.read()  # silent until the client hangs up
            self.client_gone.set()
            return
        if reply.kind == "status":
            data = reply.body.encode()
            extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
            writer.write(
                f"HTTP/1.1 {reply.status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                f"{extra}Connection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        events = [e + "\n\n" for e in RECORDED_STREAM.split("\n\n") if e]
        if reply.kind == "stream":
            for event in events:
                await self._chunk(writer, event)
            await self._chunk(writer, "")
        elif reply.kind == "stall_after":
            for event in events[: reply.events]:
                await self._chunk(writer, event)
            await reader.read()
            self.client_gone.set()
        elif reply.kind == "endless":
            # A model that would talk for a long time; bounded so a broken client cannot hang the test.
            waiting_for_eof = asyncio.ensure_future(reader.read())
            for _ in range(2000):
                if waiting_for_eof.done():
                    break
                await self._chunk(writer, events[1])
                await asyncio.sleep(0.01)
            await waiting_for_eof
            self.client_gone.set()

    @staticmethod
    async def _chunk(writer: asyncio.StreamWriter, text: str) -> None:
        data = text.encode()
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await writer.drain()


@pytest.fixture
async def scripted_server() -> AsyncIterator[ScriptedServer]:
    script = ScriptedServer([Reply("stream")])
    server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
    script.port = server.sockets[0].getsockname()[1]
    async with server:
        yield script
        server.close()


# --- OpenAICompatibleLLM ----------------------------------------------------------------------------------

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "How do specs settle?"}]


def client(server: ScriptedServer, **kwargs: float) -> OpenAICompatibleLLM:
    options = {"timeout_s": 2.0, "max_retries": 2, "backoff_s": 0.01} | kwargs
    return OpenAICompatibleLLM(server.url, "smollm2", "secret-key", **options)  # type: ignore[arg-type]


async def collect(llm: LLM, messages: list[dict[str, str]] | None = None, **kwargs: object) -> str:
    parts = [d async for d in llm.stream(messages or MESSAGES, max_tokens=64, **kwargs)]  # type: ignore[arg-type]
    return "".join(parts)


async def test_streams_the_recorded_answer(scripted_server: ScriptedServer) -> None:
    deltas = [d async for d in client(scripted_server).stream(MESSAGES, max_tokens=64, stop=["\n\n"])]
    assert "".join(deltas) == RECORDED_TEXT
    assert len(deltas) == 7  # streamed as the server sent it, not buffered into one piece
    [request] = scripted_server.requests
    assert request["json"] == {
        "model": "smollm2",
        "messages": MESSAGES,
        "max_tokens": 64,
        "stream": True,
        "stop": ["\n\n"],
    }
    assert request["headers"]["authorization"] == "Bearer secret-key"


async def test_base_url_with_or_without_v1(scripted_server: ScriptedServer) -> None:
    assert OpenAICompatibleLLM("http://h:1/v1/", "m").url == "http://h:1/v1/chat/completions"
    assert OpenAICompatibleLLM("http://h:1", "m").url == "http://h:1/v1/chat/completions"
    assert await collect(OpenAICompatibleLLM(scripted_server.url + "/v1", "m")) == RECORDED_TEXT


async def test_retries_after_503_then_streams(scripted_server: ScriptedServer) -> None:
    scripted_server.replies = [
        Reply("status", 503, '{"error": "loading model"}', {"Retry-After": "0"}),
        Reply("status", 429, '{"error": "slow down"}'),
        Reply("stream"),
    ]
    assert await collect(client(scripted_server)) == RECORDED_TEXT
    assert len(scripted_server.requests) == 3


async def test_gives_up_after_max_retries(scripted_server: ScriptedServer) -> None:
    scripted_server.replies = [Reply("status", 503, '{"error": "overloaded"}')]
    with pytest.raises(LLMError, match=r"HTTP 503.*overloaded"):
        await collect(client(scripted_server, max_retries=2))
    assert len(scripted_server.requests) == 3


async def test_client_error_is_not_retried(scripted_server: ScriptedServer) -> None:
    scripted_server.replies = [Reply("status", 400, '{"error": "context length exceeded"}')]
    with pytest.raises(LLMError, match=r"HTTP 400.*context length exceeded"):
        await collect(client(scripted_server))
    assert len(scripted_server.requests) == 1


async def test_refused_connection_is_retried_then_reported() -> None:
    with socket.socket() as s:  # a port that nobody listens on once this closes
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    llm = OpenAICompatibleLLM(f"http://127.0.0.1:{port}", "m", timeout_s=2, max_retries=2, backoff_s=0.01)
    with pytest.raises(LLMError, match="after 3 attempts"):
        await collect(llm)


async def test_silent_server_times_out(scripted_server: ScriptedServer) -> None:
    scripted_server.replies = [Reply("stall_headers")]
    with pytest.raises(LLMError, match="timed out"):
        await collect(client(scripted_server, timeout_s=0.3))
    assert len(scripted_server.requests) == 1  # a read timeout is not retried


async def test_stall_mid_answer_is_an_error_after_text(scripted_server: ScriptedServer) -> None:
    scripted_server.replies = [Reply("stall_after", events=4)]
    received: list[str] = []
    with pytest.raises(LLMError, match="stalled mid-answer"):
        async for delta in client(scripted_server, timeout_s=0.3).stream(MESSAGES, max_tokens=64):
            received.append(delta)
    assert "".join(received) == "The capital of"


async def test_cancelling_the_consumer_closes_the_connection(scripted_server: ScriptedServer) -> None:
    scripted_server.replies = [Reply("endless")]
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in client(scripted_server).stream(MESSAGES, max_tokens=100_000):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(scripted_server.client_gone.wait(), 5)


async def test_closing_the_stream_early_closes_the_connection(scripted_server: ScriptedServer) -> None:
    scripted_server.replies = [Reply("endless")]
    async with contextlib.aclosing(client(scripted_server).stream(MESSAGES, max_tokens=100_000)) as deltas:
        async for _ in deltas:
            break
    await asyncio.wait_for(scripted_server.client_gone.wait(), 5)


async def test_runaway_stream_is_cut(scripted_server: ScriptedServer) -> None:
    scripted_server.replies = [Reply("endless")]
    with pytest.raises(LLMError, match="more than 32 characters"):
        async for _ in client(scripted_server).stream(MESSAGES, max_tokens=1):
            pass
    await asyncio.wait_for(scripted_server.client_gone.wait(), 5)


def test_bad_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        OpenAICompatibleLLM("localhost:8080", "m")
    llm = ExtractiveLLM()
    with pytest.raises(ValueError, match="max_tokens"):
        asyncio.run(collect_sync(llm, MESSAGES, max_tokens=0))
    with pytest.raises(ValueError, match="role"):
        asyncio.run(collect_sync(llm, [{"role": "wizard", "content": "x"}], max_tokens=5))
    with pytest.raises(ValueError, match="empty"):
        asyncio.run(collect_sync(llm, [], max_tokens=5))


async def collect_sync(llm: LLM, messages: list[dict[str, str]], max_tokens: int) -> str:
    return "".join([d async for d in llm.stream(messages, max_tokens=max_tokens)])


# --- ExtractiveLLM -----------------------------------------------------------------------------------------

PRIORS = [
    Prior(1, "m-escrow", "A spec's stake sits in escrow until every voter has voted.", 0.81),
    Prior(2, "m-split", "When all approve, the stake is split equally among the approvers.", 0.74),
    Prior(3, "m-expire", "Unsettled specs expire after 7 days and the stake goes to the treasury.", 0.52),
    Prior(4, "m-other", "The UI uses plain ES modules.", 0.21),
]


async def test_extractive_yield_quotes_priors_with_markers() -> None:
    llm = ExtractiveLLM(quotes_max=3)
    text = await collect_sync(llm, prompts.yield_messages("How do specs settle?", PRIORS), max_tokens=500)
    assert "No language model is configured" in text
    assert "stake sits in escrow until every voter has voted. [1]" in text
    clean, citations = resolve(text, PRIORS)
    assert [c["message_id"] for c in citations] == ["m-escrow", "m-split", "m-expire"]
    assert clean == text
    assert text == llm.answer("How do specs settle?", PRIORS)
    assert text == await collect_sync(
        llm, prompts.yield_messages("How do specs settle?", PRIORS), max_tokens=500
    )


async def test_extractive_without_priors_says_so() -> None:
    text = await collect_sync(ExtractiveLLM(), prompts.yield_messages("Anything?", []), max_tokens=500)
    assert "The community has not written about this yet" in text
    assert "[" not in text


async def test_extractive_phases() -> None:
    llm = ExtractiveLLM()
    update = await collect_sync(llm, prompts.update_messages("q", {"observation": "gaps"}), max_tokens=5)
    assert prompts.parse_decision(update) == "RETURN"
    intention = await collect_sync(llm, prompts.intention_messages("q", PRIORS), max_tokens=50)
    assert intention == "The closest priors are [1], [2], [3]."
    action = await collect_sync(llm, prompts.action_messages("q"), max_tokens=50)
    assert "No language model is configured" in action


async def test_extractive_respects_max_tokens_and_stop() -> None:
    llm = ExtractiveLLM()
    deltas = [d async for d in llm.stream(prompts.yield_messages("q", PRIORS), max_tokens=4)]
    assert len(deltas) == 4
    cut = await collect_sync_stop(llm, prompts.yield_messages("q", PRIORS), stop=["directly"])
    assert cut.endswith("messages")


async def collect_sync_stop(llm: LLM, messages: list[dict[str, str]], stop: list[str]) -> str:
    return "".join([d async for d in llm.stream(messages, max_tokens=500, stop=stop)])


def test_backends_satisfy_the_protocol() -> None:
    assert isinstance(ExtractiveLLM(), LLM)
    assert isinstance(OpenAICompatibleLLM("http://127.0.0.1:1", "m"), LLM)
