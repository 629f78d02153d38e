"""The crash harness's short form (`python -m bench crash` runs the long one): a real `choir serve`
under load, killed with SIGKILL, restarted and checked, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CYCLES = "2"


def run_harness(*extra: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "bench.bench_crash", "--cycles", CYCLES, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def summary_of(out: str) -> dict[str, str]:
    line = next(line for line in out.splitlines() if line.startswith("crash: "))
    return dict(part.split("=", 1) for part in line.removeprefix("crash: ").split())


@pytest.mark.slow
def test_kills_on_sqlite_lose_nothing_and_audit_clean() -> None:
    found = summary_of(run_harness())
    assert found["database"] == "sqlite" and found["cycles"] == CYCLES
    assert found["lost"] == "0" and found["audit_failures"] == "0"


@pytest.mark.slow
def test_kills_on_postgres_lose_nothing_and_audit_clean(postgres_url: str) -> None:
    found = summary_of(run_harness("--database-url", postgres_url))
    assert found["database"] == "postgresql" and found["cycles"] == CYCLES
    assert found["lost"] == "0" and found["audit_failures"] == "0"


@pytest.mark.slow
def test_kills_while_settling_on_the_embedded_chain_lose_nothing_and_audit_the_chain_clean() -> None:
    found = summary_of(run_harness("--chain", "litesvm"))
    assert found["chain"] == "litesvm" and found["cycles"] == CYCLES
    assert found["lost"] == "0" and found["audit_failures"] == "0"
