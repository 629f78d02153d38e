"""The Origin allowlist: exact scheme://host[:port], host case ignored, default ports filled in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from choir.auth import normalize_origin, origin_allowed

ALLOWED = ["https://choir.example", "http://127.0.0.1:8000", "http://[::1]:8000"]


@pytest.mark.parametrize(
    "origin",
    [
        "https://choir.example",
        "https://CHOIR.Example",
        "HTTPS://choir.example",
        "https://choir.example:443",
        "http://127.0.0.1:8000",
        "http://[::1]:8000",
    ],
)
def test_allowed_origins_match(origin: str) -> None:
    assert origin_allowed(origin, ALLOWED)


@pytest.mark.parametrize(
    "origin",
    [
        None,
        "",
        "null",
        "http://choir.example",  # another scheme
        "https://choir.example:8443",  # another port
        "https://evil.example",
        "https://choir.example.evil.example",
        "https://evilchoir.example",
        "https://choir.example@evil.example",
        "https://user@choir.example",
        "https://choir.example/path",
        "https://choir.example?x=1",
        "https://choir.example#x",
        "https://choir.example:99999",
        "https://choir.example:443:443",
        "http://127.0.0.1",  # port 80, not 8000
        "http://localhost:8000",  # a name is not its address
        "file://",
        "javascript:alert(1)",
        "https://",
    ],
)
def test_other_origins_are_refused(origin: str | None) -> None:
    assert not origin_allowed(origin, ALLOWED)


def test_default_ports_are_filled_in() -> None:
    assert normalize_origin("https://a.example") == "https://a.example:443"
    assert normalize_origin("http://a.example") == "http://a.example:80"
    assert normalize_origin("wss://A.example/") == "wss://a.example:443"
    assert origin_allowed("http://a.example", ["http://a.example:80"])
    assert not origin_allowed("https://a.example", ["http://a.example:443"])


def test_nothing_is_allowed_by_an_empty_allowlist() -> None:
    assert not origin_allowed("https://choir.example", [])


@pytest.mark.parametrize("bad", ["choir.example", "https://choir.example/app", "ftp://choir.example", "null"])
def test_a_malformed_allowlist_entry_is_a_configuration_error(bad: str) -> None:
    with pytest.raises(ValueError):
        origin_allowed("https://choir.example", [bad])


@given(st.text(max_size=80))
def test_any_header_value_gives_an_answer_never_an_error(origin: str) -> None:
    allowed = origin_allowed(origin, ALLOWED)
    assert allowed is False or normalize_origin(origin) in {normalize_origin(a) for a in ALLOWED}
