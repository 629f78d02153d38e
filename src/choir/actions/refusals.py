"""Every refusal a person can meet, in one table: its code, its HTTP status and what it means.

An action refuses with ``Refusal(code, message)``; the Thread Program with a ``ProgramError`` whose
code is in the same table (its status by its family). REST answers ``{code, message}`` with the
table's status; ``/ws`` answers an ``error`` frame with the same code. The docs test reads every code
from ``REFUSALS``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from choir.program import ProgramError, errors
from choir.store.faults import StoreUnavailable, unavailable


@dataclass(frozen=True, slots=True)
class Code:
    status: int
    meaning: str


class Refusal(Exception):
    """An action refused: nothing changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        assert code in REFUSALS, f"refusal code {code!r} is not in the table"
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return REFUSALS[self.code].status


# A program error's status, by its family.
_FAMILY_STATUS: Final = (
    (errors.NotFound, 404),
    (errors.Forbidden, 403),
    (errors.Conflict, 409),
    (errors.RateLimited, 429),
    (errors.InvalidInput, 422),
)
_FAMILY_BY_CODE: Final = {
    code: next((s for family, s in _FAMILY_STATUS if issubclass(cls, family)), 400)
    for code, cls in errors.ERROR_CODES.items()
}

_ACTIONS: Final = {
    "thread_not_found": Code(404, "no such thread, or a private one the caller may not read"),
    "message_not_found": Code(404, "no such message, or one of a thread the caller may not read"),
    "version_not_found": Code(404, "the message has no such version"),
    "not_found": Code(404, "no such route"),
    "method_not_allowed": Code(405, "the route does not take this method"),
    "unauthorized": Code(401, "no valid session: sign in first"),
    "forbidden": Code(403, "not allowed for this caller (an Origin not allowed, an operator's route)"),
    "rate_limited": Code(429, "too many requests or frames; try again shortly"),
    "invalid_payload": Code(422, "a field is missing, of the wrong type or out of range"),
    "invalid_amount": Code(422, "an amount is not a decimal string of base units"),
    "invalid_text": Code(422, "a text holds what is not Unicode text (a lone surrogate, a NUL)"),
    "too_large": Code(413, "the frame, body or content is over its limit"),
    "not_anchored": Code(409, "the message's version is not anchored on a chain (yet)"),
    "unavailable": Code(503, "the service this needs is not running on this server"),
    "store_unavailable": Code(503, "the database is unreachable for now; nothing was changed; retry"),
    "bad_json": Code(422, "the frame is not one JSON object"),
    "unknown_type": Code(422, "the frame's type is not one of the client types"),
    "not_subscribed": Code(409, "unsubscribe from a thread never subscribed"),
    "slow_consumer": Code(429, "the client fell too far behind and was disconnected"),
    "http_error": Code(400, "the request could not be read"),
    "internal": Code(500, "the server failed; nothing was changed"),
}

REFUSALS: Final[dict[str, Code]] = {
    code: Code(_FAMILY_BY_CODE[code], (cls.__doc__ or code).strip().splitlines()[0])
    for code, cls in errors.ERROR_CODES.items()
    if code not in _ACTIONS
} | _ACTIONS


def unexpected(error: BaseException) -> tuple[str, str]:
    """The code and message for an exception no handler expected: the database away for now is
    ``store_unavailable`` (retryable: nothing changed); anything else is a bug, ``internal``."""
    if isinstance(error, StoreUnavailable):
        return "store_unavailable", str(error)
    if unavailable(error):
        return "store_unavailable", "the database is unreachable for now; nothing was changed; retry"
    return "internal", "the server failed; nothing was changed"


def status_of(code: str) -> int:
    found = REFUSALS.get(code)
    return found.status if found is not None else 400


def program_status(error: ProgramError) -> int:
    return status_of(error.code)
