"""Instructions per second of the pure core (in memory) and of the coordinator
persisting to SQLite, one instruction per transaction and in group commits.

    python -m bench core [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from choir.ledger import ONE_CHOIR
from choir.program import (
    CreateThread,
    Grant,
    Instruction,
    Params,
    PostMessage,
    State,
    SubmitSpec,
    Vote,
    apply,
)
from choir.store.sql import Store

try:
    from choir.engine.coordinator import Coordinator
except ImportError:  # a checkout from before the engine, measured in the same run for comparison
    from choir.coordinator import Coordinator  # type: ignore[no-redef]

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ACTORS = 50


def workload(n: int) -> list[Instruction]:
    """A realistic mix: mostly posts, with specs and votes, over many threads."""
    out: list[Instruction] = [Grant(f"u{i}", 1000 * ONE_CHOIR, f"g{i}") for i in range(ACTORS)]
    out += [CreateThread(f"u{i}", f"t{i}", f"thread {i}") for i in range(ACTORS)]
    i = 0
    while len(out) < n:
        owner = i % ACTORS
        stranger = (owner + 1 + i // ACTORS) % ACTORS
        if i % 10 == 9 and stranger != owner:
            out.append(SubmitSpec(f"u{stranger}", f"t{owner}", f"s{i}", f"spec {i}", ONE_CHOIR))
            out.append(Vote(f"u{owner}", f"s{i}", i % 20 != 19))
        else:
            out.append(PostMessage(f"u{owner}", f"t{owner}", f"m{i}", f"message number {i}"))
        i += 1
    return out[:n]


def run_memory(instructions: list[Instruction]) -> tuple[int, float]:
    state = State.genesis(T0, Params())
    refused = 0
    started = time.perf_counter()
    for k, ins in enumerate(instructions):
        try:
            state.commit(apply(state, ins, T0 + timedelta(milliseconds=k)))
        except Exception:
            refused += 1
    return refused, time.perf_counter() - started


# The young-generation threshold a server process sets (server/run.py GC_GEN0_THRESHOLD); applied
# alike to a checkout from before the engine, so both are measured under the same policy.
SERVER_GC_GEN0_THRESHOLD = 50_000


@contextlib.contextmanager
def server_gc() -> Iterator[None]:
    """The collector policy of a server process: a large, long-lived state, which CPython's default
    young-generation threshold (700) makes the collector walk very often."""
    saved = gc.get_threshold()
    gc.set_threshold(SERVER_GC_GEN0_THRESHOLD, saved[1], saved[2])
    try:
        yield
    finally:
        gc.set_threshold(*saved)


def run_persisted(instructions: list[Instruction], batch: int, db: Path) -> tuple[int, float]:
    now = [T0]
    coordinator = Coordinator.open(Store(f"sqlite:///{db}"), Params(), clock=lambda: now[0])
    refused = 0
    started = time.perf_counter()
    for k in range(0, len(instructions), batch):
        now[0] = T0 + timedelta(milliseconds=k)
        results = coordinator.execute_many(instructions[k : k + batch])
        refused += sum(1 for r in results if not hasattr(r, "events"))
    elapsed = time.perf_counter() - started
    coordinator.store.close()
    return refused, elapsed


def _with_server_gc(instructions: list[Instruction], db: Path) -> tuple[int, float]:
    with server_gc():
        return run_persisted(instructions, 64, db)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    n = 5_000 if args.quick else 50_000
    instructions = workload(n)
    rows: list[tuple[str, int, float, int]] = []
    refused, elapsed = run_memory(instructions)
    rows.append(("pure core, in memory", n, elapsed, refused))
    with server_gc():
        refused, elapsed = run_memory(instructions)
    rows.append(("pure core, in memory, server GC", n, elapsed, refused))
    with tempfile.TemporaryDirectory() as tmp:
        cases: list[tuple[str, Callable[[Path], tuple[int, float]]]] = [
            ("coordinator + SQLite, 1 per txn", lambda db: run_persisted(instructions[: n // 5], 1, db)),
            ("coordinator + SQLite, group of 64", lambda db: run_persisted(instructions, 64, db)),
            ("coordinator + SQLite, 64, server GC", lambda db: _with_server_gc(instructions, db)),
        ]
        for k, (name, run) in enumerate(cases):
            refused, elapsed = run(Path(tmp) / f"bench{k}.db")
            rows.append((name, n // 5 if "1 per" in name else n, elapsed, refused))
    print(f"{'case':<36}{'instructions':>13}{'refused':>9}{'seconds':>9}{'instr/s':>11}")
    for name, count, elapsed, refused in rows:
        print(f"{name:<36}{count:>13,}{refused:>9,}{elapsed:>9.2f}{count / elapsed:>11,.0f}")
    print("goals: >= 50,000 instr/s in memory; >= 3,000 persisted instr/s on one core")


if __name__ == "__main__":
    main()
