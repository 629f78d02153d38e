"""The Sign-In With Solana text: the exact bytes wallets sign, a parser that accepts only those,
and a signature check that never crashes on hostile input."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import base58
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from choir.auth import (
    SiwsError,
    SiwsFields,
    build_message,
    parse_message,
    sign_in_message,
    siws,
    verify_signature,
)
from choir.auth.service import iso_ms

ADDRESS = "8AN1QR1AfSSUCECyCXy91RAXYp54JpyEAcq4efDt1YR9"
FULL = SiwsFields(
    domain="choir.example:8443",
    address=ADDRESS,
    statement="Sign in to Choir.",
    uri="https://choir.example:8443",
    version="1",
    chain_id="mainnet",
    nonce="Xy7Qk2pLm9Tz4Wb8Nc3Rd5",
    issued_at="2025-01-02T03:04:05.678Z",
    expiration_time="2025-01-02T03:09:05.678Z",
)
# Written by createSignInMessageText of @solana/wallet-standard-util 1.1.2 for the same fields.
FULL_TEXT = (
    "choir.example:8443 wants you to sign in with your Solana account:\n"
    "8AN1QR1AfSSUCECyCXy91RAXYp54JpyEAcq4efDt1YR9\n"
    "\n"
    "Sign in to Choir.\n"
    "\n"
    "URI: https://choir.example:8443\n"
    "Version: 1\n"
    "Chain ID: mainnet\n"
    "Nonce: Xy7Qk2pLm9Tz4Wb8Nc3Rd5\n"
    "Issued At: 2025-01-02T03:04:05.678Z\n"
    "Expiration Time: 2025-01-02T03:09:05.678Z"
)
NO_STATEMENT_TEXT = (
    "choir.example:8443 wants you to sign in with your Solana account:\n"
    "8AN1QR1AfSSUCECyCXy91RAXYp54JpyEAcq4efDt1YR9\n"
    "\n"
    "URI: https://choir.example:8443\n"
    "Version: 1\n"
    "Chain ID: mainnet\n"
    "Nonce: Xy7Qk2pLm9Tz4Wb8Nc3Rd5\n"
    "Issued At: 2025-01-02T03:04:05.678Z\n"
    "Expiration Time: 2025-01-02T03:09:05.678Z"
)
BARE_TEXT = (
    "choir.example:8443 wants you to sign in with your Solana account:\n"
    "8AN1QR1AfSSUCECyCXy91RAXYp54JpyEAcq4efDt1YR9"
)


def test_full_message_is_byte_for_byte_the_wallet_standard_text() -> None:
    assert build_message(FULL) == FULL_TEXT
    assert parse_message(FULL_TEXT) == FULL


def test_omitted_fields_leave_out_their_lines() -> None:
    no_statement = dataclasses.replace(FULL, statement=None)
    bare = SiwsFields(domain=FULL.domain, address=ADDRESS)
    assert build_message(no_statement) == NO_STATEMENT_TEXT
    assert build_message(bare) == BARE_TEXT
    assert parse_message(NO_STATEMENT_TEXT) == no_statement
    assert parse_message(BARE_TEXT) == bare
    statement_only = SiwsFields(domain=FULL.domain, address=ADDRESS, statement="Hi")
    assert build_message(statement_only) == BARE_TEXT + "\n\nHi"


line = st.text(st.characters(exclude_categories=["Cc", "Cs"]), min_size=1, max_size=30)
no_space = line.filter(lambda s: not any(c.isspace() for c in s))
times = st.datetimes(min_value=datetime(2000, 1, 1), timezones=st.just(UTC)).map(iso_ms)
addresses = st.binary(min_size=32, max_size=32).map(lambda b: base58.b58encode(b).decode())


@st.composite
def siws_fields(draw: st.DrawFn) -> SiwsFields:
    optional = {
        "statement": line.filter(lambda s: not s.startswith(siws.LABEL_PREFIXES)),
        "uri": line,
        "version": line,
        "chain_id": line,
        "nonce": line,
        "issued_at": times,
        "expiration_time": times,
    }
    values = {name: draw(st.none() | strategy) for name, strategy in optional.items()}
    return SiwsFields(domain=draw(no_space), address=draw(addresses), **values)


@settings(max_examples=300)
@given(siws_fields())
def test_parse_reads_back_what_build_wrote(fields: SiwsFields) -> None:
    text = build_message(fields)
    assert not text.endswith("\n")
    assert parse_message(text) == fields


@settings(max_examples=300)
@given(st.text(max_size=400))
def test_parse_accepts_only_canonical_text(text: str) -> None:
    try:
        fields = parse_message(text)
    except SiwsError as e:
        assert e.code in ("bad_message", "bad_address")
    else:
        assert build_message(fields) == text


@settings(max_examples=300)
@given(st.integers(0, len(FULL_TEXT)), st.integers(0, 3), st.text(max_size=3))
def test_an_edited_message_is_refused_or_read_as_edited(at: int, cut: int, insert: str) -> None:
    text = FULL_TEXT[:at] + insert + FULL_TEXT[at + cut :]
    try:
        fields = parse_message(text)
    except SiwsError:
        return
    assert build_message(fields) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        FULL_TEXT + "\n",  # trailing newline
        FULL_TEXT.replace("\n", "\r\n"),
        FULL_TEXT.replace("Version: 1\nChain ID: mainnet", "Chain ID: mainnet\nVersion: 1"),  # order
        FULL_TEXT.replace("Version: 1\n", "Version: 1\nVersion: 1\n"),  # twice
        FULL_TEXT + "\nNot Before: 2025-01-02T03:04:05.678Z",  # never issued by Choir
        FULL_TEXT + "\nResources:\n- https://x",
        FULL_TEXT.replace("Sign in to Choir.\n\n", "Sign in\nto Choir.\n\n"),  # two-line statement
        FULL_TEXT.replace("\n\nSign in", "\nSign in"),  # missing blank line
        FULL_TEXT.replace("URI: ", "URI:"),
        FULL_TEXT.replace("URI: https://choir.example:8443", "URI: "),  # empty value
        FULL_TEXT.replace("2025-01-02T03:04:05.678Z", "yesterday"),  # Issued At not a time
        FULL_TEXT.replace("2025-01-02T03:04:05.678Z", "2025-01-02T03:04:05"),  # no time zone
        FULL_TEXT.replace("choir.example:8443 wants", "choir example wants"),  # space in domain
        FULL_TEXT.replace("choir.example:8443 wants", " wants"),  # no domain
        FULL_TEXT.replace("Nonce: Xy7", "Nonce: \x00Xy7"),
        FULL_TEXT.replace("Choir.", "Choir.\ud800"),  # lone surrogate: no UTF-8 to sign
        FULL_TEXT + "x" * siws.MESSAGE_CHARS_MAX,
    ],
)
def test_malformed_messages_are_bad_message(text: str) -> None:
    with pytest.raises(SiwsError) as e:
        parse_message(text)
    assert e.value.code == "bad_message"


@pytest.mark.parametrize(
    "address",
    [
        "",
        "0OIl" * 11,  # not base58
        base58.b58encode(b"\x01" * 31).decode(),  # 31 bytes
        base58.b58encode(b"\x01" * 33).decode(),  # 33 bytes
        "1" + ADDRESS,  # a leading zero byte: 33 bytes
        ADDRESS + " ",
    ],
)
def test_a_message_for_a_malformed_address_is_bad_address(address: str) -> None:
    with pytest.raises(SiwsError) as e:
        parse_message(FULL_TEXT.replace(ADDRESS, address))
    assert e.value.code == "bad_address"


def test_a_statement_that_reads_like_a_field_is_refused() -> None:
    with pytest.raises(SiwsError):
        dataclasses.replace(FULL, statement="URI: https://evil.example")


# -- signatures ---------------------------------------------------------------------------------------


def signed() -> tuple[bytes, str, str]:
    key = SigningKey.generate()
    message, signature, address = sign_in_message(
        {k: v for k, v in dataclasses.asdict(FULL).items() if k != "address"}, key
    )
    return message.encode(), signature, address


def test_a_real_signature_verifies_and_any_change_breaks_it() -> None:
    message, signature, address = signed()
    assert verify_signature(message, signature, address)
    _, other_signature, other_address = signed()
    assert not verify_signature(message + b" ", signature, address)
    assert not verify_signature(message, other_signature, address)
    assert not verify_signature(message, signature, other_address)
    raw = bytearray(base58.b58decode(signature))
    raw[0] ^= 1
    assert not verify_signature(message, base58.b58encode(bytes(raw)).decode(), address)


def test_client_signs_the_exact_text_of_the_issued_fields() -> None:
    key = SigningKey(b"\x07" * 32)
    issued = {k: v for k, v in dataclasses.asdict(FULL).items() if k != "address"}
    message, signature, address = sign_in_message(issued, key)
    assert message == FULL_TEXT.replace(ADDRESS, address)
    key.verify_key.verify(message.encode(), base58.b58decode(signature))


@pytest.mark.parametrize(
    ("signature", "address"),
    [
        ("", ""),
        ("0OIl", "0OIl"),
        (base58.b58encode(b"\x01" * 63).decode(), ADDRESS),  # short signature
        (base58.b58encode(b"\x01" * 65).decode(), ADDRESS),
        (base58.b58encode(b"\x01" * 64).decode(), base58.b58encode(b"\x01" * 31).decode()),
        ("1" * 10_000, ADDRESS),  # long strings are refused before decoding
        ("é" * 88, "é" * 44),
    ],
)
def test_malformed_signatures_and_addresses_do_not_verify(signature: str, address: str) -> None:
    message, _, _ = signed()
    assert not verify_signature(message, signature, address)


@settings(max_examples=500)
@given(st.binary(max_size=300), st.text(max_size=100), st.text(max_size=60))
def test_random_input_never_crashes_verification(message: bytes, signature: str, address: str) -> None:
    assert verify_signature(message, signature, address) is False


@settings(max_examples=200)
@given(st.binary(min_size=64, max_size=64), st.binary(min_size=32, max_size=32), st.binary(max_size=100))
def test_random_keys_and_signatures_of_the_right_length_never_crash(
    signature: bytes, key: bytes, message: bytes
) -> None:
    # Many 32-byte strings are not points on the curve: that must read as "invalid", not raise.
    sig_b58, key_b58 = base58.b58encode(signature).decode(), base58.b58encode(key).decode()
    assert verify_signature(message, sig_b58, key_b58) is False


class FakePanic(BaseException):
    """Stands for pyo3's PanicException, which derives from BaseException."""


def test_a_panic_in_the_crypto_binding_reads_as_invalid(monkeypatch: pytest.MonkeyPatch) -> None:
    message, signature, address = signed()

    def panic(_key: bytes) -> None:
        raise FakePanic("the binding panicked")

    monkeypatch.setattr(siws, "VerifyKey", panic)
    assert verify_signature(message, signature, address) is False


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
def test_interrupts_still_propagate(monkeypatch: pytest.MonkeyPatch, stop: type[BaseException]) -> None:
    message, signature, address = signed()

    def interrupted(_key: bytes) -> None:
        raise stop

    monkeypatch.setattr(siws, "VerifyKey", interrupted)
    with pytest.raises(stop):
        verify_signature(message, signature, address)
