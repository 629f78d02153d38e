"""How fast `choir serve` starts and how much memory it holds, with the embedding model loaded and used.

Each run starts a real `choir serve` on a data directory and measures:

    health_s   from the process's start to its first `/health` answer
    rss_mb     resident memory of the process tree once a post was indexed and a search embedded
               its query (the model loaded and used), summed over the process and its children

three ways: on a new data directory (the ONNX graph is built into its cache), again on the same
directory (the graph is loaded from the cache), and after a SIGKILL of that server (recovery included).

    python -m bench start [--quick] [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from bench.bench_crash import free_port, sign_in


def tree_rss_mb(pid: int) -> float:
    """The resident memory of ``pid`` and its descendants."""
    total_kb = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total_kb += next(
            (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")), 0
        )
        pids += [int(c) for c in children]
    return total_kb / 1024


def serve(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHOIR_")} | {"CHOIR_LOG_LEVEL": "WARNING"}
    argv = [sys.executable, "-m", "choir", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def until_healthy(base: str, process: subprocess.Popen[bytes], started: float) -> float:
    async with httpx.AsyncClient(timeout=2) as http:
        while time.perf_counter() - started < 120:
            if process.poll() is not None:
                raise RuntimeError(f"choir serve exited with {process.returncode}")
            try:
                if (await http.get(f"{base}/health")).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.01)
    raise RuntimeError("choir serve did not answer /health")


async def use_the_model(base: str) -> None:
    """A post (indexed: embedded by the indexer) and a search by meaning (the query embedded)."""
    person = await sign_in(base)
    ws_url = base.replace("http://", "ws://") + "/ws"
    from websockets.asyncio.client import connect

    headers = {"Origin": base, "Cookie": f"choir_session={person.cookie}"}
    async with connect(ws_url, additional_headers=headers) as ws:
        frame = '{"id":"p","type":"post","payload":{"thread_id":"%s","content":"tomatoes split %f"}}'
        await ws.send(frame % (person.thread_id, time.time()))
        await ws.recv()
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = (await http.get("/api/search", params={"q": "tomatoes split", "mode": "vector"})).json()
            if found["results"]:
                return
            await asyncio.sleep(0.1)
    raise RuntimeError("the post never became searchable")


async def one(data_dir: Path, kill: bool) -> tuple[float, float, subprocess.Popen[bytes], str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    process = serve(data_dir, port)
    health_s = await until_healthy(base, process, started)
    await use_the_model(base)
    rss = tree_rss_mb(process.pid)
    if kill:
        process.send_signal(signal.SIGKILL)
    else:
        process.terminate()
    process.wait(30)
    return health_s, rss, process, base


async def run(runs: int) -> list[tuple[str, float, float]]:
    rows: list[tuple[str, float, float]] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="choir-start-") as tmp:
            data = Path(tmp) / "data"
            for label, kill in (("new data dir", False), ("again (cached)", True), ("after SIGKILL", False)):
                health_s, rss, _, _ = await one(data, kill)
                rows.append((label, health_s, rss))
                print(f"| {label:<16} | {health_s:>8.2f} | {rss:>7.0f} |", flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench start", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run")
    parser.add_argument("--runs", type=int, default=None, help="runs of the three starts (default 3)")
    args = parser.parse_args(argv)
    runs = args.runs if args.runs is not None else (1 if args.quick else 3)
    if runs < 1:
        parser.error("--runs must be >= 1")
    print("| start            | health_s |  rss_mb |\n|------------------|----------|---------|", flush=True)
    rows = asyncio.run(run(runs))
    for label in dict.fromkeys(r[0] for r in rows):
        mine = sorted(r[1] for r in rows if r[0] == label)
        rss = max(r[2] for r in rows if r[0] == label)
        print(
            f"start: {label}: health_s median {mine[len(mine) // 2]:.2f} max {mine[-1]:.2f}, rss_mb max {rss:.0f}"
        )


if __name__ == "__main__":
    main()
