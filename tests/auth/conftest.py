"""A real SQLite store (migrated) and an AuthService on a clock the test moves by hand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from auth_support import DOMAIN, URI, FakeClock

from choir.auth import AuthService
from choir.store.sql import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path}/t.db")
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def auth(store: Store, clock: FakeClock) -> AuthService:
    return AuthService(store, DOMAIN, URI, clock=clock)
