"""Every refusal of the Thread Program, each with a stable ``code``.

    ProgramError
    ├── InvalidInput                 invalid_payload
    │   ├── InvalidId                invalid_id
    │   ├── InvalidAmount            invalid_amount
    │   ├── EmptyContent             empty_content
    │   ├── ContentTooLarge          content_too_large
    │   └── Unchanged                unchanged
    ├── NotFound
    │   ├── ThreadNotFound           thread_not_found
    │   ├── SpecNotFound             spec_not_found
    │   └── MessageNotFound          message_not_found
    ├── Conflict
    │   ├── ThreadExists             thread_exists
    │   ├── MessageExists            message_exists
    │   ├── SpecExists               spec_exists
    │   ├── DuplicateContent         duplicate_content
    │   ├── TransferConflict         transfer_id_conflict
    │   └── AnswerChanged            answer_changed
    ├── Forbidden
    │   ├── NotCoAuthor              not_co_author
    │   ├── AlreadyCoAuthor          already_co_author
    │   ├── NotVoter                 not_voter
    │   ├── LastCoAuthor             last_co_author
    │   ├── DivestTooSoon            divest_too_soon
    │   └── NotAuthor                not_author
    ├── SpecClosed
    │   ├── AlreadyVoted             already_voted
    │   ├── SpecExpired              spec_expired
    │   ├── SpecNotPending           spec_not_pending
    │   └── SpecNotExpired           spec_not_expired
    ├── LimitReached
    │   ├── ThreadFull               thread_full
    │   ├── TooManyPendingSpecs      too_many_pending_specs
    │   └── RateLimited              rate_limited
    ├── MessageDeleted               message_deleted
    ├── StakeTooLow                  stake_too_low
    ├── InsufficientFunds            insufficient_funds
    ├── EpochNotEnded                epoch_not_ended
    ├── NoveltyPending               novelty_pending
    └── NoveltyAlreadySet            novelty_set

A refusal changes nothing: the processor raises before any state is produced.
"""

from __future__ import annotations

from typing import ClassVar


class ProgramError(Exception):
    code: ClassVar[str] = "program_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


class InvalidInput(ProgramError):
    code = "invalid_payload"


class InvalidId(InvalidInput):
    code = "invalid_id"


class InvalidAmount(InvalidInput):
    code = "invalid_amount"


class EmptyContent(InvalidInput):
    code = "empty_content"


class ContentTooLarge(InvalidInput):
    code = "content_too_large"


class NotFound(ProgramError):
    code = "not_found"


class ThreadNotFound(NotFound):
    code = "thread_not_found"


class SpecNotFound(NotFound):
    code = "spec_not_found"


class MessageNotFound(NotFound):
    code = "message_not_found"


class Conflict(ProgramError):
    code = "conflict"


class ThreadExists(Conflict):
    code = "thread_exists"


class MessageExists(Conflict):
    code = "message_exists"


class SpecExists(Conflict):
    code = "spec_exists"


class DuplicateContent(Conflict):
    code = "duplicate_content"


class TransferConflict(Conflict):
    code = "transfer_id_conflict"


class AnswerChanged(Conflict):
    """an answer to redact changed since its redaction was made: make it again"""

    code = "answer_changed"


class Forbidden(ProgramError):
    code = "forbidden"


class NotCoAuthor(Forbidden):
    code = "not_co_author"


class AlreadyCoAuthor(Forbidden):
    code = "already_co_author"


class NotVoter(Forbidden):
    code = "not_voter"


class LastCoAuthor(Forbidden):
    code = "last_co_author"


class DivestTooSoon(Forbidden):
    code = "divest_too_soon"


class NotAuthor(Forbidden):
    code = "not_author"


class MessageDeleted(ProgramError):
    code = "message_deleted"


class Unchanged(InvalidInput):
    code = "unchanged"


class SpecClosed(ProgramError):
    code = "spec_closed"


class AlreadyVoted(SpecClosed):
    code = "already_voted"


class SpecExpired(SpecClosed):
    code = "spec_expired"


class SpecNotPending(SpecClosed):
    code = "spec_not_pending"


class SpecNotExpired(SpecClosed):
    code = "spec_not_expired"


class LimitReached(ProgramError):
    code = "limit_reached"


class ThreadFull(LimitReached):
    code = "thread_full"


class TooManyPendingSpecs(LimitReached):
    code = "too_many_pending_specs"


class RateLimited(LimitReached):
    code = "rate_limited"


class StakeTooLow(ProgramError):
    code = "stake_too_low"


class InsufficientFunds(ProgramError):
    code = "insufficient_funds"


class EpochNotEnded(ProgramError):
    code = "epoch_not_ended"


class NoveltyPending(ProgramError):
    """An epoch cannot settle while some of its messages still wait for their novelty
    weight (measured from embeddings after publication), until the grace period ends."""

    code = "novelty_pending"


class NoveltyAlreadySet(ProgramError):
    code = "novelty_set"


def _leaves(cls: type[ProgramError]) -> list[type[ProgramError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_leaves(sub))
    return found


# Every code a client may see from the program, for docs and for tests that each has one.
ERROR_CODES: dict[str, type[ProgramError]] = {c.code: c for c in _leaves(ProgramError)}
