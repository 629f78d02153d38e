from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Server, run_server


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """The real server on a free loopback port, on SQLite and on a real PostgreSQL."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    with run_server(tmp_path / "data", url, sweep_interval_s=0.2) as srv:
        yield srv


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[Server]:
    with run_server(tmp_path / "data", sweep_interval_s=0.2) as srv:
        yield srv
