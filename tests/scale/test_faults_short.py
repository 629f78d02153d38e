"""The fault harness's short form in the test run (`python -m bench faults` is the long one): two real
`choir serve` processes on a real PostgreSQL and Redis under load while Redis is restarted, killed and
paused, PostgreSQL restarted and stopped, and one Choir process paused and killed. After each fault
nothing acked is lost, every client got every post of the threads it follows once and in order,
delivery between the processes came back without the clients reconnecting (except those of the
killed process), the posts refused meanwhile were refused with a retryable code, and the audit is
clean."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from bench.bench_faults import BACK_WITHIN_S, FAULTS, POSTGRES_BIN, line, parse, run

import services


@pytest.mark.timeout(420)
def test_every_fault_of_redis_postgres_and_a_process_loses_nothing_and_recovers() -> None:
    services.require_executable(POSTGRES_BIN / "pg_ctl", "PostgreSQL 15 (package postgresql-15)")
    services.require_executable(shutil.which("redis-server"), "redis-server")
    rows = asyncio.run(run(parse(["--quick"])))
    table = "\n".join(line(row) for row in rows)
    assert [r.fault for r in rows] == list(FAULTS), table
    for row in rows:
        assert row.acked > 0, table
        assert (row.lost, row.dup, row.missing) == (0, 0, 0), table
        assert row.audit_ok, table
        assert row.back_s is not None and row.back_s <= BACK_WITHIN_S, table
        # Refused only with what a client can act on: retry once the database is back.
        assert set(row.refused) <= {"store_unavailable"}, table
        if row.fault != "choir-kill":
            assert row.reconnects == 0, table
    by_fault = {row.fault: row for row in rows}
    assert by_fault["postgres-stop"].refused["store_unavailable"] > 0, table
    assert by_fault["choir-kill"].reconnects > 0, table
