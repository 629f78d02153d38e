"""Shared fixtures, kept thin: the logic lives in tests/services.py (import it as `services`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import services

# The real-server harness (tests/realtime/harness.py) serves every test directory.
sys.path.insert(0, str(Path(__file__).parent / "realtime"))
from harness import Server, run_server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    services.mark_by_fixtures(items)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[services.PostgresServer]:
    """One throwaway PostgreSQL 15 cluster for the whole run."""
    with services.start_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: services.PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL of a new empty database, dropped (with its connections) after the test."""
    with postgres_server.fresh_database() as url:
        yield url


@pytest.fixture(scope="session")
def pgvector_server() -> Iterator[services.PostgresServer]:
    """One throwaway PostgreSQL 18 cluster with pgvector for the whole run."""
    with services.start_postgres(services.pgvector_bin_dir()) as server:
        yield server


@pytest.fixture
def pgvector_url(pgvector_server: services.PostgresServer) -> Iterator[str]:
    """A new empty database on the pgvector cluster, with the extension created."""
    with pgvector_server.fresh_database() as url:
        import sqlalchemy

        engine = sqlalchemy.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("CREATE EXTENSION IF NOT EXISTS vector"))
        engine.dispose()
        yield url


@pytest.fixture(scope="session")
def redis_server() -> Iterator[services.RedisServer]:
    """One throwaway Redis server for the whole run."""
    with services.start_redis() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: services.RedisServer) -> str:
    """URL of database 0 on the session's Redis server, emptied before the test."""
    redis_server.flush()
    return redis_server.url()


@pytest.fixture(scope="session")
def chromium_launch_options() -> services.ChromiumLaunch:
    """`playwright.chromium.launch(**chromium_launch_options)` starts Debian's Chromium headless."""
    return services.chromium_launch_options()


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """The real server on a free loopback port, on SQLite and on a real PostgreSQL."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    with run_server(tmp_path / "data", url, sweep_interval_s=0.2) as srv:
        yield srv


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[Server]:
    """The real server on SQLite (the embedded default)."""
    with run_server(tmp_path / "data", sweep_interval_s=0.2) as srv:
        yield srv
