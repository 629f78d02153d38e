"""Time from `ask` to the first streamed Chorus phase event, and to the posted answer.

Runs `choir serve` (SQLite and the embedded vector shard in a temporary directory) in its
own process, seeds public priors, then asks over /ws and times each ask from sending the
frame to (a) the first `chorus.phase` event and (b) the answer's `message.posted`.
With no model configured the extractive answerer is used; set CHOIR_LLM_URL (and
CHOIR_LLM_MODEL) to time an OpenAI-compatible endpoint such as llama.cpp's server.

    python -m bench ask [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from nacl.signing import SigningKey
from websockets.asyncio.client import connect

from choir.auth.client import sign_in_message

PRIORS = [
    "Tomatoes need six hours of direct sun to ripen.",
    "Water tomato plants deeply twice a week.",
    "Keep a bicycle chain clean and oiled.",
    "Sourdough rises slowly because wild yeast ferments the dough.",
    "Owls fly silently thanks to serrated feathers.",
    "Glaciers carve U-shaped valleys.",
    "Espresso extraction depends on grind size.",
    "Bees dance to show where the flowers are.",
]
QUESTIONS = ["How much sun do tomatoes need?", "Why is sourdough slow?", "How do owls fly quietly?"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def sign_in(base: str) -> str:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        fields = (await http.get("/api/auth/nonce")).json()
        message, signature, address = sign_in_message(fields, SigningKey.generate())
        r = await http.post(
            "/api/auth/verify",
            json={"message": message, "signature": signature, "address": address},
            headers={"Origin": base},
        )
        r.raise_for_status()
        return r.cookies["choir_session"]


async def measure(base: str, asks: int) -> tuple[list[float], list[float]]:
    cookie = await sign_in(base)
    headers = {"Cookie": f"choir_session={cookie}", "Origin": base}
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=headers) as http:
        priors = (await http.post("/api/threads", json={"title": "Priors"})).json()["thread_id"]
        asking = (await http.post("/api/threads", json={"title": "Questions"})).json()["thread_id"]
    ws_url = base.replace("http", "ws") + "/ws"
    first_ms: list[float] = []
    total_ms: list[float] = []
    async with connect(ws_url, additional_headers=headers, max_queue=None) as ws:
        for i, text in enumerate(PRIORS):
            await ws.send(
                json.dumps({"id": f"p{i}", "type": "post", "payload": {"thread_id": priors, "content": text}})
            )
        await ws.send(json.dumps({"id": "s", "type": "subscribe", "payload": {"thread_id": asking}}))
        await asyncio.sleep(3)  # let the priors be embedded and indexed (and the model load)
        for n in range(asks):
            prompt = f"{QUESTIONS[n % len(QUESTIONS)]} ({n})"
            started = time.perf_counter()
            await ws.send(
                json.dumps({"id": f"a{n}", "type": "ask", "payload": {"thread_id": asking, "prompt": prompt}})
            )
            first = None
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 300))
                payload = frame.get("payload") or {}
                if frame["type"] == "event" and payload.get("kind") == "chorus.phase" and first is None:
                    first = (time.perf_counter() - started) * 1000
                if (
                    frame["type"] == "event"
                    and payload.get("kind") == "message.posted"
                    and payload["data"]["ask_id"]
                ):
                    total_ms.append((time.perf_counter() - started) * 1000)
                    break
            first_ms.append(first or float("nan"))
    return first_ms, total_ms


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    asks = 5 if args.quick else 20
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        env = os.environ | {"CHOIR_LOG_LEVEL": "WARNING"}
        cmd = [
            sys.executable,
            "-m",
            "choir",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(Path(tmp) / "d"),
        ]
        server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(600):
                try:
                    if httpx.get(base + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            first, total = asyncio.run(measure(base, asks))
        finally:
            server.terminate()
            server.wait(20)
    backend = os.environ.get("CHOIR_LLM_URL") or "extractive (no model)"
    print(f"backend: {backend}; {asks} asks, one at a time")
    print(f"{'measure':<34}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for name, values in (("ask -> first chorus.phase event", first), ("ask -> answer posted", total)):
        print(
            f"{name:<34}{pct(values, 0.5):>10.1f}{pct(values, 0.99):>10.1f}{statistics.fmean(values):>10.1f}"
        )
    print("goal: first phase event <= 300 ms with the extractive backend")


if __name__ == "__main__":
    main()
