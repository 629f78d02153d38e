"""Input checks shared by the instructions: refuse bad input before touching state."""

from __future__ import annotations

import re
from typing import Final

from choir.program import errors
from choir.program.state import MAX_ID_BYTES, VERSION_MARK, Params, State

# URL-safe, so an id can sit in a REST path unescaped.
_ID_RE: Final = re.compile(r"[A-Za-z0-9._~-]+")
MAX_ACTOR_CHARS: Final = 64


def check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise errors.InvalidId(f"{what} must be a non-empty string")
    # The pattern is ASCII-only, so once it matches, characters are bytes: no encoding needed.
    if not _ID_RE.fullmatch(value):
        if len(_utf8(value, what, errors.InvalidId)) > MAX_ID_BYTES:
            raise errors.InvalidId(f"{what} is longer than {MAX_ID_BYTES} bytes")
        raise errors.InvalidId(f"{what} may hold only letters, digits and . _ ~ -")
    if len(value) > MAX_ID_BYTES:
        raise errors.InvalidId(f"{what} is longer than {MAX_ID_BYTES} bytes")
    return value


def check_actor(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ACTOR_CHARS:
        raise errors.InvalidInput("actor must be an address of at most 64 characters")
    _utf8(value, "actor")
    return value


def check_content(value: object, params: Params) -> str:
    if not isinstance(value, str):
        raise errors.InvalidInput("content must be a string")
    if not value.strip():
        raise errors.EmptyContent("content is empty")
    size = len(_utf8(value, "content"))
    if size > params.max_content_bytes:
        raise errors.ContentTooLarge(f"content is {size} bytes; the limit is {params.max_content_bytes}")
    return value


def check_amount(value: object, what: str) -> int:
    # bool is an int subclass; True is not an amount.
    if type(value) is not int:
        raise errors.InvalidAmount(f"{what} must be an integer number of base units")
    if value <= 0:
        raise errors.InvalidAmount(f"{what} must be positive")
    return value


def check_ppm(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= 1_000_000:
        raise errors.InvalidInput(f"{what} must be an integer in [0, 1000000]")
    return value


def check_title(value: object, params: Params) -> str:
    if not isinstance(value, str) or not value.strip():
        raise errors.InvalidInput("title must be a non-empty string")
    _utf8(value, "title")
    if len(value) > params.max_title_chars:
        raise errors.InvalidInput(f"title is longer than {params.max_title_chars} characters")
    return value.strip()


def check_new_id(state: State, value: str, exists: type[errors.Conflict] = errors.MessageExists) -> None:
    """Messages and specs share one id space: an approved spec is published under its id.
    ``exists`` is the refusal that names what the caller was creating."""
    if value in state.messages or value in state.specs:
        raise exists(f"id {value!r} is taken")
    if VERSION_MARK in value:
        # "<id>~v<n>" is how a message's later versions are anchored: no message may be named so.
        raise errors.InvalidId(f"an id may not contain {VERSION_MARK!r}")


def _utf8(value: str, what: str, error: type[errors.InvalidInput] = errors.InvalidInput) -> bytes:
    if value.isascii():
        # The common case, without an encoding pass: ASCII is its own UTF-8.
        if "\x00" in value:
            raise error(f"{what} may not contain NUL characters")
        return value.encode("ascii")
    # JSON can carry lone surrogates ("\ud800") that no UTF-8 store or hash accepts, and
    # PostgreSQL text refuses NUL: refuse both here rather than fail at persist time.
    try:
        encoded = value.encode()
    except UnicodeEncodeError:
        raise error(f"{what} is not valid Unicode text") from None
    if b"\x00" in encoded:
        raise error(f"{what} may not contain NUL characters")
    return encoded
