"""The instructions of the Thread Program (DESIGN §4, §5).

Each is a frozen value: who acts and what they ask. Ids are chosen by the caller
(the coordinator mints random ones; the simulator seeded ones), so applying the
same instruction to the same state always gives the same outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

from choir.program.state import Visibility


@dataclass(frozen=True, slots=True)
class CreateThread:
    actor: str
    thread_id: str
    title: str
    visibility: Visibility = Visibility.PUBLIC


@dataclass(frozen=True, slots=True)
class CitationInput:
    n: int
    message_id: str
    score_ppm: int


@dataclass(frozen=True, slots=True)
class PostMessage:
    """A co-author's message, or (actor = AI_AUTHOR) the Choir AI's answer to ``ask_id``."""

    actor: str
    thread_id: str
    message_id: str
    content: str
    # None: to be measured from embeddings after publication (SetNovelty).
    novelty_ppm: int | None = 1_000_000
    ask_id: str | None = None
    citations: tuple[CitationInput, ...] = ()
    # The addresses its @mentions name (resolved from display names by the caller); the program
    # keeps only those who may read the thread.
    mentions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EditMessage:
    """The author replaces their message's content: its next version."""

    actor: str
    message_id: str
    content: str


@dataclass(frozen=True, slots=True)
class DeleteMessage:
    """The author deletes their message: its content goes, a tombstone stays. The AI answers that
    quoted it get their next version with the quotes removed (``redactions``: answer id, the version
    the redaction was made from, the redacted text), in the same commit."""

    actor: str
    message_id: str
    redactions: tuple[tuple[str, int, str], ...] = ()


@dataclass(frozen=True, slots=True)
class PostAnswer:
    """The Choir AI's answer to ``asker``'s question ``ask_id`` in ``thread_id``. Its citations
    are recorded for prior rewards by the same instruction, so an answer never exists without
    its citation records (nor records without their answer)."""

    ask_id: str
    asker: str
    thread_id: str
    message_id: str
    content: str
    citations: tuple[CitationInput, ...] = ()
    question: str = ""  # what was asked, shown with the answer (empty: not kept)


@dataclass(frozen=True, slots=True)
class SubmitSpec:
    actor: str
    thread_id: str
    spec_id: str
    content: str
    stake: int
    novelty_ppm: int | None = 1_000_000


@dataclass(frozen=True, slots=True)
class SetNovelty:
    """The novelty weight of a published message, measured against the public messages
    before it (w = 1 − max similarity; 0 for a near-duplicate). Once per message."""

    message_id: str
    novelty_ppm: int


@dataclass(frozen=True, slots=True)
class Vote:
    actor: str
    spec_id: str
    approve: bool


@dataclass(frozen=True, slots=True)
class Expire:
    actor: str
    spec_id: str


@dataclass(frozen=True, slots=True)
class Divest:
    actor: str
    thread_id: str


@dataclass(frozen=True, slots=True)
class RecordCitations:
    """The priors an answer cited, recorded for the epoch's prior rewards."""

    ask_id: str
    asker: str
    thread_id: str
    citations: tuple[CitationInput, ...]


@dataclass(frozen=True, slots=True)
class SettleEpoch:
    epoch: int


@dataclass(frozen=True, slots=True)
class Grant:
    """A one-time welcome grant from the treasury, so a new person can stake at once.
    ``ref`` makes it idempotent: the same ref pays once."""

    address: str
    amount: int
    ref: str


@dataclass(frozen=True, slots=True)
class Withdraw:
    """Move in-app CHOIR to the owner's own wallet (mirrored on chain as a token transfer)."""

    actor: str
    amount: int
    withdrawal_id: str


Instruction = (
    CreateThread
    | PostMessage
    | PostAnswer
    | EditMessage
    | DeleteMessage
    | SubmitSpec
    | Vote
    | Expire
    | Divest
    | RecordCitations
    | SettleEpoch
    | SetNovelty
    | Grant
    | Withdraw
)
