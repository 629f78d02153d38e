"""`choir serve --workers N`: N server processes on one port, supervised.

Each worker is a plain `choir serve --reuse-port` process: it binds the same port with SO_REUSEPORT,
and the kernel spreads new connections over the live ones. The workers share PostgreSQL, Redis and one
vector index (checked here, before any starts, and again by each worker: `server.preflight`). The
supervisor restarts a worker that dies (its clients reconnect to the others meanwhile and resume from
their last seq), forwards SIGINT/SIGTERM to all, and gives up if a worker keeps dying at start-up.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from types import FrameType
from typing import Final

from choir.config import Settings

# A worker that dies sooner than this after starting counts as a failed start; this many in a row
# (a bad configuration, not a crash) and the supervisor stops everything.
QUICK_EXIT_S: Final = 10.0
MAX_QUICK_EXITS: Final = 3
RESTART_DELAY_S: Final = 1.0
STOP_TIMEOUT_S: Final = 30.0
POLL_S: Final = 0.2


def problems(settings: Settings, workers: int) -> list[str]:
    """Why these settings cannot run `workers` processes (empty: they can)."""
    if workers <= 1:
        return []
    found = []
    if not settings.sql_url.startswith(("postgresql", "postgres")):
        found.append("--workers needs PostgreSQL: set CHOIR_DATABASE_URL (SQLite has one server process)")
    if not settings.redis_url:
        found.append("--workers needs Redis for the fan-out between processes: set CHOIR_REDIS_URL")
    if settings.vectors == "edge" and not _pgvector_by_auto(settings):
        found.append(
            "--workers needs one vector index shared by every process: set CHOIR_VECTOR_ENGINE=pgvector "
            "(PostgreSQL with pgvector), CHOIR_VECTOR_ENGINE=sql (the index in the database) or "
            "CHOIR_QDRANT_URL (a Qdrant server)"
        )
    return found


def _pgvector_by_auto(settings: Settings) -> bool:
    """Whether ``auto`` chooses pgvector here (the database reached and holding the extension)."""
    if not settings.sql_url.startswith(("postgresql", "postgres")):
        return False
    from choir.store.vectors.pgvector import engine_of

    try:
        return engine_of(settings) == "pgvector"
    except Exception:  # unreachable now: the processes would refuse to start anyway
        return False


@dataclass
class Worker:
    number: int
    process: subprocess.Popen[bytes]
    started_at: float


class Supervisor:
    def __init__(self, command: list[str], workers: int) -> None:
        self.command = command
        self.count = workers
        self.workers: list[Worker] = []
        self.stopping = False
        self.quick_exits = 0

    def spawn(self, number: int) -> Worker:
        return Worker(number, subprocess.Popen(self.command), time.monotonic())

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signum)

    def run(self) -> int:
        self.workers = [self.spawn(n) for n in range(self.count)]
        while not self.stopping:
            time.sleep(POLL_S)
            for i, worker in enumerate(self.workers):
                code = worker.process.poll()
                if code is None or self.stopping:
                    continue
                lived_s = time.monotonic() - worker.started_at
                self.quick_exits = self.quick_exits + 1 if lived_s < QUICK_EXIT_S else 0
                print(
                    f"choir: worker {worker.number} (pid {worker.process.pid}) exited with {code} "
                    f"after {lived_s:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
                if self.quick_exits >= MAX_QUICK_EXITS:
                    print("choir: workers keep failing at start-up; stopping", file=sys.stderr, flush=True)
                    self.on_signal(signal.SIGTERM, None)
                    self.wait()
                    return 1
                time.sleep(RESTART_DELAY_S)
                self.workers[i] = self.spawn(worker.number)
        return self.wait()

    def wait(self) -> int:
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for worker in self.workers:
            try:
                worker.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
        return 0


def run_workers(settings: Settings, workers: int) -> int:
    from choir.server.run import port_problem

    for problem in problems(settings, workers):
        print(f"choir: {problem}", file=sys.stderr)
    if problems(settings, workers):
        return 2
    busy = port_problem(settings.host, settings.port, reuse_port=True)
    if busy:
        print(f"choir: {busy}", file=sys.stderr)
        return 2
    command = [
        sys.executable, "-m", "choir", "serve", "--reuse-port",
        "--host", settings.host, "--port", str(settings.port), "--data-dir", str(settings.data_dir),
    ]  # fmt: skip
    supervisor = Supervisor(command, workers)
    signal.signal(signal.SIGINT, supervisor.on_signal)
    signal.signal(signal.SIGTERM, supervisor.on_signal)
    print(f"Choir is running at {settings.base_url}/ ({workers} processes)", flush=True)
    return supervisor.run()
