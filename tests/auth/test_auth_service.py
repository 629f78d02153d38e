"""Sign-in end to end over a real SQLite store: real Ed25519 keys, real SIWS text, every refusal code."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import base58
import pytest
from auth_support import DOMAIN, START, URI, FakeClock, race
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey
from sqlalchemy import select

from choir.auth import (
    AuthError,
    AuthService,
    SignIn,
    SiwsFields,
    address_of,
    build_message,
    short_address,
    sign_in_message,
)
from choir.store import schema
from choir.store.sql import Store

ISSUED_KEYS = {"domain", "uri", "version", "chain_id", "nonce", "issued_at", "expiration_time", "statement"}


def sign_in(auth: AuthService, key: SigningKey | None = None) -> SignIn:
    message, signature, address = sign_in_message(auth.issue_nonce(), key or SigningKey.generate())
    return auth.verify(message, signature, address)


def refused(auth: AuthService, message: str, signature: str, address: str) -> AuthError:
    with pytest.raises(AuthError) as e:
        auth.verify(message, signature, address)
    return e.value


def signed_with(fields: SiwsFields, key: SigningKey) -> tuple[str, str, str]:
    message = build_message(fields)
    return message, base58.b58encode(key.sign(message.encode()).signature).decode(), fields.address


# -- issuing -----------------------------------------------------------------------------------------


def test_issued_fields_are_every_field_to_sign(auth: AuthService) -> None:
    issued = auth.issue_nonce()
    assert set(issued) == ISSUED_KEYS
    assert issued["domain"] == DOMAIN and issued["uri"] == URI
    assert issued["version"] == "1" and issued["chain_id"] == "mainnet"
    assert re.fullmatch(r"[A-Za-z0-9]{8,}", issued["nonce"])
    assert issued["issued_at"] == "2025-01-02T03:04:05.678Z"
    assert issued["expiration_time"] == "2025-01-02T03:09:05.678Z"  # 5 minutes
    assert auth.issue_nonce()["nonce"] != issued["nonce"]


def test_issued_times_drop_sub_millisecond_digits(store: Store) -> None:
    clock = FakeClock(START + timedelta(microseconds=999))
    issued = AuthService(store, DOMAIN, URI, clock=clock).issue_nonce()
    assert issued["issued_at"] == "2025-01-02T03:04:05.678Z"


def test_settings_that_cannot_be_signed_are_refused_at_start(store: Store) -> None:
    with pytest.raises(AuthError):
        AuthService(store, "choir example", URI)
    with pytest.raises(AuthError):
        AuthService(store, DOMAIN, URI, statement="two\nlines")


# -- signing in --------------------------------------------------------------------------------------


def test_sign_in_opens_a_session_and_creates_the_user(auth: AuthService, store: Store) -> None:
    key = SigningKey.generate()
    address, token = sign_in(auth, key)
    assert address == address_of(key)
    assert auth.session_user(token) == address
    assert auth.display_name(address) == f"{address[:4]}…{address[-4:]}"
    assert store.count("users") == 1
    # Signing in again is a second session for the same user.
    _, second = sign_in(auth, key)
    assert second != token and auth.session_user(second) == address
    assert store.count("users") == 1 and store.count("sessions") == 2


def test_a_replayed_message_is_nonce_used(auth: AuthService) -> None:
    message, signature, address = sign_in_message(auth.issue_nonce(), SigningKey.generate())
    auth.verify(message, signature, address)
    assert refused(auth, message, signature, address).code == "nonce_used"


def test_a_failed_attempt_consumes_the_nonce(auth: AuthService) -> None:
    key = SigningKey.generate()
    message, signature, address = sign_in_message(auth.issue_nonce(), key)
    forged = base58.b58encode(SigningKey.generate().sign(message.encode()).signature).decode()
    assert refused(auth, message, forged, address).code == "bad_signature"
    assert refused(auth, message, signature, address).code == "nonce_used"


@pytest.mark.parametrize("nonce", ["NeverIssuedButWellFormd", "NeverIssuedButWellForm", "short123"])
def test_a_nonce_never_issued_is_nonce_unknown(auth: AuthService, nonce: str) -> None:
    fields = dict(auth.issue_nonce(), nonce=nonce)
    message, signature, address = sign_in_message(fields, SigningKey.generate())
    assert refused(auth, message, signature, address).code == "nonce_unknown"


def test_a_message_without_a_nonce_is_nonce_unknown(auth: AuthService) -> None:
    fields = {k: v for k, v in auth.issue_nonce().items() if k != "nonce"}
    message, signature, address = sign_in_message(fields, SigningKey.generate())
    assert refused(auth, message, signature, address).code == "nonce_unknown"


def test_an_expired_nonce_is_nonce_expired(auth: AuthService, clock: FakeClock) -> None:
    message, signature, address = sign_in_message(auth.issue_nonce(), SigningKey.generate())
    clock.advance(299.9)
    ok = sign_in_message(auth.issue_nonce(), SigningKey.generate())
    clock.advance(0.1)  # exactly 300 s after the first was issued
    assert refused(auth, message, signature, address).code == "nonce_expired"
    auth.verify(*ok)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("domain", "evil.example"),
        ("uri", "https://evil.example"),
        ("version", "2"),
        ("chain_id", "devnet"),
        ("statement", "Sign in to something else."),
        ("statement", None),
        ("issued_at", "2025-01-02T03:04:05.679Z"),
        ("expiration_time", "2026-01-02T03:09:05.678Z"),
        ("expiration_time", None),
        ("uri", None),
    ],
)
def test_a_field_that_differs_from_what_was_issued_is_field_mismatch(
    auth: AuthService, field: str, value: str | None
) -> None:
    key = SigningKey.generate()
    fields = SiwsFields.from_issued(auth.issue_nonce(), address_of(key))
    changed: dict[str, Any] = {field: value}
    e = refused(auth, *signed_with(dataclasses.replace(fields, **changed), key))
    assert (e.code, e.field) == ("field_mismatch", field)


def test_a_message_for_another_address_is_field_mismatch(auth: AuthService) -> None:
    message, signature, _ = sign_in_message(auth.issue_nonce(), SigningKey.generate())
    e = refused(auth, message, signature, address_of(SigningKey.generate()))
    assert (e.code, e.field) == ("field_mismatch", "address")


def test_issued_at_far_from_the_clock_is_stale(store: Store, clock: FakeClock) -> None:
    # A nonce that lives longer than the skew window: the skew check is what refuses it.
    auth = AuthService(store, DOMAIN, URI, clock=clock, nonce_ttl_s=3600)
    late = sign_in_message(auth.issue_nonce(), SigningKey.generate())
    on_time = sign_in_message(auth.issue_nonce(), SigningKey.generate())
    clock.advance(600)
    auth.verify(*on_time)  # exactly 10 minutes is still accepted
    clock.advance(0.001)
    assert refused(auth, *late).code == "stale_issued_at"


def test_issued_at_in_the_future_is_stale(auth: AuthService, clock: FakeClock) -> None:
    message, signature, address = sign_in_message(auth.issue_nonce(), SigningKey.generate())
    clock.advance(-601)  # the server's clock stepped back
    assert refused(auth, message, signature, address).code == "stale_issued_at"


def test_a_signature_by_another_key_is_bad_signature(auth: AuthService) -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    fields = SiwsFields.from_issued(auth.issue_nonce(), address_of(key))
    message, _, address = signed_with(fields, key)
    forged = base58.b58encode(other.sign(message.encode()).signature).decode()
    assert refused(auth, message, forged, address).code == "bad_signature"


def test_a_signature_of_other_text_is_bad_signature(auth: AuthService) -> None:
    key = SigningKey.generate()
    message, _, address = sign_in_message(auth.issue_nonce(), key)
    signature = base58.b58encode(key.sign(message.encode() + b" ").signature).decode()
    assert refused(auth, message, signature, address).code == "bad_signature"


@pytest.mark.parametrize(
    "signature",
    ["", "0OIl", "not base58 at all", base58.b58encode(b"\x01" * 63).decode(), "2" * 500],
)
def test_a_malformed_signature_is_bad_signature(auth: AuthService, signature: str) -> None:
    message, _, address = sign_in_message(auth.issue_nonce(), SigningKey.generate())
    assert refused(auth, message, signature, address).code == "bad_signature"


@pytest.mark.parametrize(
    "address", ["", "0OIl", base58.b58encode(b"\x05" * 31).decode(), base58.b58encode(b"\x05" * 33).decode()]
)
def test_a_malformed_address_is_bad_address(auth: AuthService, address: str) -> None:
    message, signature, _ = sign_in_message(auth.issue_nonce(), SigningKey.generate())
    assert refused(auth, message, signature, address).code == "bad_address"


def test_unreadable_text_is_bad_message(auth: AuthService) -> None:
    message, signature, address = sign_in_message(auth.issue_nonce(), SigningKey.generate())
    assert refused(auth, message + "\n", signature, address).code == "bad_message"
    assert refused(auth, "hello", signature, address).code == "bad_message"


def test_racing_verifies_of_one_message_let_exactly_one_win(auth: AuthService) -> None:
    rounds, racers = 20, 4
    for _ in range(rounds):
        attempt = sign_in_message(auth.issue_nonce(), SigningKey.generate())
        assert race(auth, attempt, racers) == ["nonce_used"] * (racers - 1) + ["ok"]


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.text(max_size=300), st.text(max_size=100), st.text(max_size=60))
def test_random_input_is_refused_with_a_code_never_a_crash(
    auth: AuthService, message: str, signature: str, address: str
) -> None:
    with pytest.raises(AuthError) as e:
        auth.verify(message, signature, address)
    assert re.fullmatch(r"[a-z_]+", e.value.code)


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.integers(0, 500), st.integers(0, 3), st.text(max_size=3), st.text(max_size=90))
def test_edited_signed_messages_never_sign_in(
    auth: AuthService, at: int, cut: int, insert: str, signature: str
) -> None:
    key = SigningKey.generate()
    message, good_signature, address = sign_in_message(auth.issue_nonce(), key)
    edited = message[:at] + insert + message[at + cut :]
    if edited == message:
        return
    with pytest.raises(AuthError):
        auth.verify(edited, good_signature, address)


# -- sessions ----------------------------------------------------------------------------------------


def test_a_session_ends_when_it_expires(store: Store, clock: FakeClock) -> None:
    auth = AuthService(store, DOMAIN, URI, clock=clock, session_ttl_s=3600)
    address, token = sign_in(auth)
    clock.advance(3599)
    assert auth.session_user(token) == address
    clock.advance(1)
    assert auth.session_user(token) is None


def test_logout_ends_only_that_session(auth: AuthService) -> None:
    key = SigningKey.generate()
    address, first = sign_in(auth, key)
    _, second = sign_in(auth, key)
    assert auth.logout(first) is True
    assert auth.session_user(first) is None
    assert auth.session_user(second) == address
    assert auth.logout(first) is False


@pytest.mark.parametrize("token", [None, "", "x", "A" * 43, "A" * 10_000])
def test_unknown_or_malformed_tokens_sign_no_one_in(auth: AuthService, token: str | None) -> None:
    sign_in(auth)
    assert auth.session_user(token) is None
    assert auth.logout(token) is False


def test_only_a_hash_of_the_token_is_stored(auth: AuthService, store: Store, tmp_path: Path) -> None:
    _, token = sign_in(auth)
    with store.engine.connect() as conn:
        rows = [tuple(map(str, r)) for r in conn.execute(select(schema.sessions))]
    assert len(rows) == 1 and hashlib.sha256(token.encode()).hexdigest() in rows[0]
    assert not any(token in column for column in rows[0])
    store.close()  # checkpoint the WAL so the whole database is in the files read below
    on_disk = b"".join(p.read_bytes() for p in tmp_path.glob("t.db*"))
    assert token.encode() not in on_disk


def test_tokens_are_random_and_long(auth: AuthService) -> None:
    tokens = {sign_in(auth).token for _ in range(20)}
    assert len(tokens) == 20
    assert all(len(t) >= 43 and re.fullmatch(r"[A-Za-z0-9_-]+", t) for t in tokens)


def test_prune_deletes_old_nonces_and_expired_sessions(store: Store, clock: FakeClock) -> None:
    auth = AuthService(store, DOMAIN, URI, clock=clock, session_ttl_s=7200)
    _, token = sign_in(auth)
    auth.issue_nonce()
    assert auth.prune() == (0, 0)
    clock.advance(300 + 3600 + 1)  # an hour past nonce expiry; the session still lives
    assert auth.prune() == (2, 0)
    assert auth.session_user(token) is not None
    clock.advance(7200)
    assert auth.prune() == (0, 1)
    assert store.count("nonces") == 0 and store.count("sessions") == 0


def test_an_expired_nonce_reads_as_expired_until_pruned(auth: AuthService, clock: FakeClock) -> None:
    kept = sign_in_message(auth.issue_nonce(), SigningKey.generate())
    clock.advance(300 + 3600)
    auth.prune()
    assert refused(auth, *kept).code == "nonce_expired"
    pruned = sign_in_message(auth.issue_nonce(), SigningKey.generate())
    clock.advance(300 + 3600 + 1)
    auth.prune()
    assert refused(auth, *pruned).code == "nonce_unknown"


# -- display names -----------------------------------------------------------------------------------


def test_display_names_default_to_the_short_address_and_can_be_set(auth: AuthService) -> None:
    address, _ = sign_in(auth)
    stranger = address_of(SigningKey.generate())
    assert auth.set_display_name(address, "  Ada Lovelace ") == "Ada Lovelace"
    assert auth.display_name(address) == "Ada Lovelace"
    assert auth.display_names([address, stranger, address]) == {
        address: "Ada Lovelace",
        stranger: short_address(stranger),
    }
    assert auth.display_names([]) == {}


def test_display_names_for_many_addresses(auth: AuthService) -> None:
    address, _ = sign_in(auth)
    auth.set_display_name(address, "Ada")
    others = [base58.b58encode(i.to_bytes(32, "big")).decode() for i in range(1, 1200)]
    names = auth.display_names([*others, address])
    assert len(names) == 1200 and names[address] == "Ada"


@pytest.mark.parametrize(
    "name",
    ["", "   ", "x" * 33, "bad\nname", "tab\there", "nul\x00", "rtl\u202eevil", "zero\u200bwidth", "\u2028"],
)
def test_invalid_display_names_are_refused(auth: AuthService, name: str) -> None:
    address, _ = sign_in(auth)
    with pytest.raises(AuthError) as e:
        auth.set_display_name(address, name)
    assert (e.value.code, e.value.status) == ("invalid_display_name", 400)
    assert auth.display_name(address) == short_address(address)


def test_names_of_32_characters_and_any_script_are_accepted(auth: AuthService) -> None:
    address, _ = sign_in(auth)
    for name in ("x" * 32, "Zoë", "合唱団", "🎶 choir"):
        assert auth.set_display_name(address, name) == name


def test_a_name_for_someone_who_never_signed_in_is_unknown_user(auth: AuthService) -> None:
    with pytest.raises(AuthError) as e:
        auth.set_display_name(address_of(SigningKey.generate()), "Ada")
    assert (e.value.code, e.value.status) == ("unknown_user", 404)


def test_clock_is_used_for_session_creation(auth: AuthService, store: Store) -> None:
    sign_in(auth)
    with store.engine.connect() as conn:
        created_at, expires_at = conn.execute(
            select(schema.sessions.c.created_at, schema.sessions.c.expires_at)
        ).one()
    assert isinstance(created_at, datetime)
    assert created_at == START and expires_at == START + timedelta(days=30)
