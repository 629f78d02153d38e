"""The /ws protocol (DESIGN §7): envelopes, payloads, error codes.

Every client frame is ``{"id", "type", "payload"}``; every one gets an ``ack`` or an
``error`` with a stable code. Parsing never raises anything but ProtocolError.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

MAX_FRAME_BYTES: Final = 64 * 1024
MAX_CLIENT_ID_CHARS: Final = 64
ENVELOPE_KEYS: Final = frozenset({"id", "type", "payload"})
# Payload fields holding amounts: a bad one is `invalid_amount`, the code a client shows as such.
AMOUNT_FIELDS: Final = frozenset({"stake", "amount"})

CLIENT_TYPES: Final = (
    "subscribe",
    "unsubscribe",
    "post",
    "spec.submit",
    "spec.vote",
    "thread.divest",
    "withdraw",
    "ask",
    "ping",
    "message.edit",
    "message.delete",
    "thread.follow",
    "thread.read",
    "notifications.subscribe",
    "notifications.read",
)
SERVER_TYPES: Final = ("ack", "error", "event")
# The "address" of a live frame for every connected person (`*` is no base58 address).
EVERYONE: Final = "*"
EVENT_KINDS: Final = (
    "thread.created",
    "message.posted",
    "spec.submitted",
    "spec.voted",
    "spec.settled",
    "coauthor.joined",
    "coauthor.left",
    "chorus.phase",
    "reward.paid",
    "thread.listed",
    "message.edited",
    "message.deleted",
    "notification",
    "thread.followed",
    "thread.read",
    "notifications.read",
)
# Codes of the protocol layer; the program adds its own (not_co_author, already_voted, ...).
ERROR_CODES: Final = {
    "bad_json": "the frame is not one JSON object",
    "unknown_type": "the type is not one of the client types",
    "invalid_payload": "a field is missing or of the wrong type",
    "invalid_amount": "an amount is not a decimal string of base units",
    "too_large": "the frame or the content is over its limit",
    "invalid_text": "a text holds what is not Unicode text (a lone surrogate, a NUL)",
    "rate_limited": "more than 100 frames a minute, or more than 5 connections",
    "unauthorized": "no valid session",
    "forbidden": "not allowed for this user",
    "not_subscribed": "unsubscribe from a thread never subscribed",
    "slow_consumer": "the client fell too far behind and was disconnected",
    "store_unavailable": "the database is unreachable for now; nothing was changed; retry",
    "internal": "the server failed; nothing was changed",
}


class ProtocolError(Exception):
    def __init__(self, code: str, message: str, frame_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.frame_id = frame_id


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_AMOUNT_RE: Final = re.compile(r"-?[0-9]{1,30}")


class Subscribe(_Payload):
    thread_id: StrictStr = Field(min_length=1, max_length=64)
    since_seq: int | None = Field(None, ge=0, strict=True)


class Unsubscribe(_Payload):
    thread_id: StrictStr = Field(min_length=1, max_length=64)


class Post(_Payload):
    thread_id: StrictStr = Field(min_length=1, max_length=64)
    content: StrictStr


class SpecSubmit(_Payload):
    thread_id: StrictStr = Field(min_length=1, max_length=64)
    content: StrictStr
    stake: StrictStr

    @field_validator("stake")
    @classmethod
    def _amount(cls, value: str) -> str:
        if not _AMOUNT_RE.fullmatch(value):
            raise ValueError("stake must be a decimal string of base units")
        return value

    @property
    def stake_units(self) -> int:
        return int(self.stake)


class SpecVote(_Payload):
    spec_id: StrictStr = Field(min_length=1, max_length=64)
    approve: StrictBool


class Ask(_Payload):
    thread_id: StrictStr = Field(min_length=1, max_length=64)
    prompt: StrictStr = Field(min_length=1, max_length=4096)


class Divest(_Payload):
    thread_id: StrictStr = Field(min_length=1, max_length=64)


class WithdrawFunds(_Payload):
    amount: StrictStr

    @field_validator("amount")
    @classmethod
    def _amount(cls, value: str) -> str:
        if not _AMOUNT_RE.fullmatch(value):
            raise ValueError("amount must be a decimal string of base units")
        return value

    @property
    def amount_units(self) -> int:
        return int(self.amount)


class Ping(_Payload):
    pass


class EditMessage(_Payload):
    message_id: StrictStr = Field(min_length=1, max_length=64)
    content: StrictStr


class DeleteMessage(_Payload):
    message_id: StrictStr = Field(min_length=1, max_length=64)


class FollowThread(_Payload):
    thread_id: StrictStr = Field(min_length=1, max_length=64)
    follow: StrictBool


class ReadThread(_Payload):
    thread_id: StrictStr = Field(min_length=1, max_length=64)
    seq: int = Field(ge=0, strict=True)


class SubscribeNotifications(_Payload):
    since_id: int | None = Field(None, ge=0, strict=True)


class ReadNotifications(_Payload):
    """Mark read every notification up to ``up_to_id``, or just those in ``ids`` (one of the two)."""

    up_to_id: int | None = Field(None, ge=0, strict=True)
    ids: list[StrictInt] | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one(self) -> ReadNotifications:
        if (self.up_to_id is None) == (self.ids is None):
            raise ValueError("give either up_to_id or ids")
        return self


PAYLOADS: Final[dict[str, type[_Payload]]] = {
    "subscribe": Subscribe,
    "unsubscribe": Unsubscribe,
    "post": Post,
    "spec.submit": SpecSubmit,
    "spec.vote": SpecVote,
    "thread.divest": Divest,
    "withdraw": WithdrawFunds,
    "ask": Ask,
    "ping": Ping,
    "message.edit": EditMessage,
    "message.delete": DeleteMessage,
    "thread.follow": FollowThread,
    "thread.read": ReadThread,
    "notifications.subscribe": SubscribeNotifications,
    "notifications.read": ReadNotifications,
}
assert tuple(PAYLOADS) == CLIENT_TYPES


class ClientFrame(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    type: str
    payload: Any


def parse(text: str | bytes) -> tuple[str, _Payload]:
    """Parse one client frame into (client id, payload model); raise ProtocolError."""
    if isinstance(text, bytes):
        # Frames are JSON text; a binary frame is refused whatever it holds, so that no client
        # comes to depend on a second encoding.
        raise ProtocolError("bad_json", "frames are JSON text frames, not binary frames")
    if over_frame_limit(text):
        raise ProtocolError("too_large", f"frames are limited to {MAX_FRAME_BYTES} bytes")
    try:
        raw = json.loads(text)
    except ValueError:
        raise ProtocolError("bad_json", "the frame is not valid JSON") from None
    except RecursionError:
        # Thousands of nested brackets exhaust the parser's stack; the frame is refused, the socket lives.
        raise ProtocolError("bad_json", "the frame nests too deeply") from None
    if not isinstance(raw, dict):
        raise ProtocolError("bad_json", "a frame is one JSON object")
    frame_id = raw.get("id")
    if not isinstance(frame_id, str) or not 0 < len(frame_id) <= MAX_CLIENT_ID_CHARS:
        raise ProtocolError(
            "invalid_payload", f"id must be a string of 1 to {MAX_CLIENT_ID_CHARS} characters"
        )
    kind = raw.get("type")
    model = PAYLOADS.get(kind) if isinstance(kind, str) else None
    if model is None:
        shown = repr(kind)[:MAX_CLIENT_ID_CHARS]  # never echo a huge string back
        raise ProtocolError(
            "unknown_type", f"unknown type {shown}; expected one of {', '.join(CLIENT_TYPES)}", frame_id
        )
    if extra := sorted(raw.keys() - ENVELOPE_KEYS):
        raise ProtocolError(
            "invalid_payload",
            f"unknown field {extra[0][:MAX_CLIENT_ID_CHARS]!r} beside id, type, payload",
            frame_id,
        )
    payload = raw.get("payload", {})
    if not isinstance(payload, dict):
        raise ProtocolError("invalid_payload", "payload must be a JSON object", frame_id)
    try:
        return frame_id, model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        bad_amount = first["type"] != "missing" and first["loc"][:1] in {(f,) for f in AMOUNT_FIELDS}
        code = "invalid_amount" if bad_amount else "invalid_payload"
        if first["type"] == "string_unicode":
            code = "invalid_text"  # a lone surrogate: valid JSON, no valid text
        raise ProtocolError(code, _describe(exc), frame_id) from None


def over_frame_limit(text: str) -> bool:
    """True when ``text`` is over MAX_FRAME_BYTES in UTF-8 (the limit counts bytes, not characters)."""
    # More characters than the limit is over it in any encoding: no need to encode a huge frame.
    return len(text) > MAX_FRAME_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "payload"
    return f"{where}: {first['msg']}"


def dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def ack(frame_id: str, payload: dict[str, Any]) -> str:
    return dumps({"type": "ack", "id": frame_id, "payload": payload})


def error(frame_id: str | None, code: str, message: str) -> str:
    return dumps({"type": "error", "id": frame_id, "payload": {"code": code, "message": message}})


def event(thread_id: str | None, seq: int | None, kind: str, data: dict[str, Any], at: str) -> str:
    return dumps(
        {
            "type": "event",
            "payload": {"thread_id": thread_id, "seq": seq, "kind": kind, "data": data, "at": at},
        }
    )


Kind = Literal["ack", "error", "event"]
