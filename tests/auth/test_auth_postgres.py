"""The same sign-in on PostgreSQL: the nonce's conditional UPDATE under real row locks, and the
user insert that tolerates a concurrent first sign-in."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from auth_support import DOMAIN, URI, FakeClock, race
from nacl.signing import SigningKey

from choir.auth import AuthError, AuthService, sign_in_message
from choir.store.sql import Store


@pytest.fixture
def pg_auth(postgres_url: str) -> Iterator[AuthService]:
    store = Store(postgres_url)
    store.migrate()
    yield AuthService(store, DOMAIN, URI, clock=FakeClock())
    store.close()


def test_sign_in_replay_and_logout_on_postgres(pg_auth: AuthService) -> None:
    key = SigningKey.generate()
    attempt = sign_in_message(pg_auth.issue_nonce(), key)
    address, token = pg_auth.verify(*attempt)
    with pytest.raises(AuthError) as e:
        pg_auth.verify(*attempt)
    assert e.value.code == "nonce_used"
    assert pg_auth.session_user(token) == address
    _, again = pg_auth.verify(*sign_in_message(pg_auth.issue_nonce(), key))  # the user row exists
    assert pg_auth.set_display_name(address, "Ada") == "Ada"
    assert pg_auth.display_names([address]) == {address: "Ada"}
    assert pg_auth.logout(token) and pg_auth.session_user(token) is None
    assert pg_auth.session_user(again) == address


def test_racing_verifies_on_postgres_let_exactly_one_win(pg_auth: AuthService) -> None:
    racers = 6
    key = SigningKey.generate()
    for _ in range(10):
        attempt = sign_in_message(pg_auth.issue_nonce(), key)
        assert race(pg_auth, attempt, racers) == ["nonce_used"] * (racers - 1) + ["ok"]


def test_concurrent_first_sign_ins_of_one_address_create_one_user(pg_auth: AuthService) -> None:
    key = SigningKey.generate()
    attempts = [sign_in_message(pg_auth.issue_nonce(), key) for _ in range(6)]
    start = threading.Barrier(len(attempts))
    tokens: list[str] = []

    def first_sign_in(attempt: tuple[str, str, str]) -> None:
        start.wait(timeout=10)
        tokens.append(pg_auth.verify(*attempt).token)

    threads = [threading.Thread(target=first_sign_in, args=(a,)) for a in attempts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(tokens) == len(attempts)
    assert pg_auth.store.count("users") == 1
