"""The load benchmark's short form in the test run: real `choir serve` processes on a real PostgreSQL and
Redis, clients spread over them, one process killed with SIGKILL mid-run. Every committed event of a
client's thread reaches it exactly once and in seq order, across the kill and the reconnection. (The
timings are the benchmark's business: `python -m bench load`.)"""

from __future__ import annotations

import argparse
import asyncio

import pytest
from bench.bench_load import one_run

import services


@pytest.mark.timeout(240)
def test_no_event_is_lost_or_duplicated_when_a_process_is_killed_under_load(
    postgres_server: services.PostgresServer, redis_url: str
) -> None:
    # Every reader follows its thread: notifications cross processes through Redis beside the events.
    args = argparse.Namespace(rate=1.0, duration=6.0, follow=True)
    run = asyncio.run(one_run(postgres_server, redis_url, processes=2, clients=60, args=args, kill=True))
    assert run.acked > 0 and run.delivered > 0
    assert run.notified > 0
    assert run.reconnects > 0, "the clients of the killed process reconnected"
    assert (run.lost, run.duplicated, run.misordered) == (0, 0, 0)
