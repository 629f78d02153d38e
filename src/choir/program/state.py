"""The Thread Program's state: threads, specs, message references, the ledger.

Records are frozen and the containers persistent; the processor builds new records and
``State.commit`` swaps them in, so a refused instruction can never leave a half-changed
state behind, and a fork of the state is an immutable snapshot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from immutables import Map

from choir.ledger import ONE_CHOIR, Ledger, Transfer

# The Choir AI posts answers; it is nobody's key, so no signature can claim it.
AI_AUTHOR: Final = "choir-ai"
MAX_ID_BYTES: Final = 32


class Visibility(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"


class IllegalTransition(Exception):
    """A state machine was asked to make a move its rules forbid: a bug, not user error."""


class SpecStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    MIXED = "mixed"
    EXPIRED = "expired"

    def settle(self, outcome: SpecStatus) -> SpecStatus:
        """pending → approved | denied | mixed | expired; nothing else moves."""
        if self is not SpecStatus.PENDING or outcome is SpecStatus.PENDING:
            raise IllegalTransition(f"spec cannot go from {self} to {outcome}")
        return outcome


@dataclass(frozen=True, slots=True)
class Params:
    """The program's tunable rules (DESIGN §4, §5). Fixed at genesis."""

    epoch_seconds: int = 3600
    min_stake: int = ONE_CHOIR
    spec_ttl_s: int = 7 * 24 * 3600
    max_pending_specs: int = 20
    max_co_authors: int = 10
    divest_lock_s: int = 7 * 24 * 3600
    max_content_bytes: int = 16 * 1024
    max_title_chars: int = 200
    threads_per_hour: int = 10
    # 0.001% of the treasury per epoch for prior rewards, in parts per million.
    prior_rate_ppm: int = 10
    # No author takes more than 20% of an epoch's new-message budget.
    author_cap_ppm: int = 200_000
    # How long an ended epoch waits for novelty weights still being measured; after
    # that a message without one counts at full weight rather than earn nothing.
    novelty_grace_s: int = 600


@dataclass(frozen=True, slots=True)
class Member:
    address: str
    joined_at: datetime


@dataclass(frozen=True, slots=True)
class Thread:
    thread_id: str
    title: str
    visibility: Visibility
    creator: str
    created_at: datetime
    min_stake: int
    members: tuple[Member, ...]
    message_count: int = 0
    last_seq: int = 0

    @property
    def co_authors(self) -> tuple[str, ...]:
        return tuple(m.address for m in self.members)

    def member(self, address: str) -> Member | None:
        return next((m for m in self.members if m.address == address), None)


@dataclass(frozen=True, slots=True)
class Citation:
    n: int
    message_id: str
    score_ppm: int


@dataclass(frozen=True, slots=True)
class Message:
    message_id: str
    thread_id: str
    author: str
    content: str
    content_hash: str
    published_at: datetime
    seq: int
    novelty_ppm: int | None = 1_000_000
    ask_id: str | None = None
    citations: tuple[Citation, ...] = ()

    @property
    def is_ai(self) -> bool:
        return self.author == AI_AUTHOR


@dataclass(frozen=True, slots=True)
class MessageRef:
    """What the program must remember of a published message (not its content)."""

    thread_id: str
    author: str
    content_hash: str
    epoch: int = 0
    novelty_ppm: int | None = 1_000_000


@dataclass(frozen=True, slots=True)
class Spec:
    spec_id: str
    thread_id: str
    author: str
    content: str
    content_hash: str
    stake: int
    submitted_at: datetime
    expires_at: datetime
    voters: tuple[str, ...]
    votes: tuple[tuple[str, bool], ...] = ()
    status: SpecStatus = SpecStatus.PENDING
    settled_at: datetime | None = None
    # The novelty of the spec's content, which its publication earns if approved.
    novelty_ppm: int | None = 1_000_000

    def vote_of(self, voter: str) -> bool | None:
        return next((v for a, v in self.votes if a == voter), None)

    @property
    def all_voted(self) -> bool:
        voted = {a for a, _ in self.votes}
        return all(v in voted for v in self.voters)


@dataclass(frozen=True, slots=True)
class CitationRecord:
    """A citation made by an answer; ``eligible`` ones share the epoch's prior budget."""

    ask_id: str
    epoch: int
    message_id: str
    cited_thread_id: str
    score_ppm: int
    eligible: bool


@dataclass(frozen=True, slots=True)
class EpochSettlement:
    epoch: int
    new_message_budget: int
    new_message_paid: int
    prior_budget: int
    prior_paid: int
    settled_at: datetime


@dataclass(frozen=True, slots=True)
class Event:
    """A thread event: stored, gap-free ``seq`` per thread (DESIGN §7)."""

    thread_id: str
    seq: int
    kind: str
    data: dict[str, Any]
    at: datetime


@dataclass(frozen=True, slots=True)
class Notice:
    """A live-only notification to one address (``reward.paid``); the ledger is its record."""

    address: str
    kind: str
    data: dict[str, Any]


@dataclass(slots=True)
class Outcome:
    """Everything one instruction changes; the coordinator persists it in one transaction."""

    threads: dict[str, Thread] = field(default_factory=dict)
    specs: dict[str, Spec] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    transfers: tuple[Transfer, ...] = ()
    balances: dict[str, int] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    citations: list[CitationRecord] = field(default_factory=list)
    epochs: list[EpochSettlement] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    at: datetime | None = None
    novelty: list[tuple[str, int]] = field(default_factory=list)  # (message id, weight) measured

    @property
    def empty(self) -> bool:
        return not (
            self.threads
            or self.specs
            or self.messages
            or self.transfers
            or self.citations
            or self.epochs
            or self.novelty
        )


_EMPTY_HASHES: Final[Map[str, str]] = Map()
_EMPTY_POSTS: Final[Map[str, tuple[str, int | None]]] = Map()


@dataclass(slots=True)
class State:
    """All of the program's state, with indexes derived from the records.

    Every container is a persistent map (a HAMT): ``commit`` rebinds this state's fields
    to new maps and never changes a map in place. So ``fork`` is O(1), and a fork handed
    to readers is an immutable snapshot: nothing committed to another fork later ever
    shows in it. The coordinator applies a batch to a fork and publishes it after COMMIT.
    """

    genesis_at: datetime
    params: Params = field(default_factory=Params)
    ledger: Ledger = field(default_factory=Ledger.genesis)
    threads: Map[str, Thread] = field(default_factory=Map)
    specs: Map[str, Spec] = field(default_factory=Map)
    messages: Map[str, MessageRef] = field(default_factory=Map)
    epochs: Map[int, EpochSettlement] = field(default_factory=Map)
    # Derived indexes, rebuilt by ``commit`` / ``load``: never the source of truth.
    hashes: Map[str, Map[str, str]] = field(default_factory=Map)  # thread -> content hash -> id
    pending: Map[str, frozenset[str]] = field(default_factory=Map)  # thread -> pending spec ids
    creations: Map[str, tuple[datetime, ...]] = field(default_factory=Map)  # creator -> creations
    # epoch -> message id -> (author, novelty weight, None while it is being measured)
    epoch_posts: Map[int, Map[str, tuple[str, int | None]]] = field(default_factory=Map)
    epoch_citations: Map[int, tuple[CitationRecord, ...]] = field(default_factory=Map)

    @classmethod
    def genesis(cls, genesis_at: datetime, params: Params | None = None) -> State:
        return cls(genesis_at=genesis_at, params=params or Params())

    def fork(self) -> State:
        """An O(1) copy sharing every map: commits to either never show in the other."""
        return State(
            self.genesis_at,
            self.params,
            self.ledger.fork(),
            self.threads,
            self.specs,
            self.messages,
            self.epochs,
            self.hashes,
            self.pending,
            self.creations,
            self.epoch_posts,
            self.epoch_citations,
        )

    def epoch_of(self, at: datetime) -> int:
        return int((at - self.genesis_at).total_seconds() // self.params.epoch_seconds)

    def epoch_bounds(self, epoch: int) -> tuple[datetime, datetime]:
        start = self.genesis_at + timedelta(seconds=epoch * self.params.epoch_seconds)
        return start, start + timedelta(seconds=self.params.epoch_seconds)

    def commit(self, outcome: Outcome) -> None:
        """Swap in what an instruction produced. Only ever called with an Outcome that
        ``processor.apply`` computed from this very state. It rebinds this state's fields
        and changes no map in place, so forks taken before (snapshots) stay as they were;
        whether the outcome is persisted first is the caller's order to keep (the
        coordinator commits to a private fork and publishes it only after COMMIT)."""
        self.ledger.record(outcome.transfers, outcome.balances)
        for thread in outcome.threads.values():
            if thread.thread_id not in self.threads:
                mine = self.creations.get(thread.creator, ())
                self.creations = self.creations.set(thread.creator, (*mine, thread.created_at))
            self.threads = self.threads.set(thread.thread_id, thread)
        for spec in outcome.specs.values():
            self._index_spec(spec)
        for message in outcome.messages:
            self._index_message(message)
        for message_id, novelty_ppm in outcome.novelty:
            self._set_novelty(message_id, novelty_ppm)
        for record in outcome.citations:
            if record.eligible:
                self._add_citation(record)
        for settlement in outcome.epochs:
            self.epochs = self.epochs.set(settlement.epoch, settlement)
            if settlement.epoch in self.epoch_posts:
                self.epoch_posts = self.epoch_posts.delete(settlement.epoch)
            if settlement.epoch in self.epoch_citations:
                self.epoch_citations = self.epoch_citations.delete(settlement.epoch)

    def _add_citation(self, record: CitationRecord) -> None:
        mine = self.epoch_citations.get(record.epoch, ())
        self.epoch_citations = self.epoch_citations.set(record.epoch, (*mine, record))

    def _index_spec(self, spec: Spec) -> None:
        self.specs = self.specs.set(spec.spec_id, spec)
        pending = self.pending.get(spec.thread_id, frozenset())
        hashes = self.hashes.get(spec.thread_id, _EMPTY_HASHES)
        if spec.status is SpecStatus.PENDING:
            self.pending = self.pending.set(spec.thread_id, pending | {spec.spec_id})
            self.hashes = self.hashes.set(spec.thread_id, hashes.set(spec.content_hash, spec.spec_id))
            return
        self.pending = self.pending.set(spec.thread_id, pending - {spec.spec_id})
        # A settled spec's reservation of its content ends; an approved one's
        # hash is re-added as a published message by _index_message.
        if hashes.get(spec.content_hash) == spec.spec_id:
            hashes = hashes.delete(spec.content_hash)
        self.hashes = self.hashes.set(spec.thread_id, hashes)

    def _index_message(self, message: Message) -> None:
        epoch = self.epoch_of(message.published_at)
        ref = MessageRef(message.thread_id, message.author, message.content_hash, epoch, message.novelty_ppm)
        self.messages = self.messages.set(message.message_id, ref)
        hashes = self.hashes.get(message.thread_id, _EMPTY_HASHES)
        self.hashes = self.hashes.set(message.thread_id, hashes.set(message.content_hash, message.message_id))
        if not message.is_ai and epoch not in self.epochs:
            self._set_post(epoch, message.message_id, (message.author, message.novelty_ppm))

    def _set_post(self, epoch: int, message_id: str, post: tuple[str, int | None]) -> None:
        posts = self.epoch_posts.get(epoch, _EMPTY_POSTS)
        self.epoch_posts = self.epoch_posts.set(epoch, posts.set(message_id, post))

    def _set_novelty(self, message_id: str, novelty_ppm: int) -> None:
        ref = self.messages[message_id]
        self.messages = self.messages.set(
            message_id, MessageRef(ref.thread_id, ref.author, ref.content_hash, ref.epoch, novelty_ppm)
        )
        posts = self.epoch_posts.get(ref.epoch)
        if posts is not None and message_id in posts:
            self._set_post(ref.epoch, message_id, (ref.author, novelty_ppm))

    @classmethod
    def load(
        cls,
        genesis_at: datetime,
        params: Params,
        ledger: Ledger,
        threads: Mapping[str, Thread],
        specs: Mapping[str, Spec],
        messages: list[Message],
        citations: list[CitationRecord],
        epochs: Mapping[int, EpochSettlement],
    ) -> State:
        """Rebuild a state (and its indexes) from stored records."""
        state = cls(genesis_at=genesis_at, params=params, ledger=ledger, epochs=Map(epochs))
        ordered = sorted(threads.values(), key=lambda t: t.created_at)
        state.threads = Map({t.thread_id: t for t in ordered})
        creations: dict[str, list[datetime]] = {}
        for thread in ordered:
            creations.setdefault(thread.creator, []).append(thread.created_at)
        state.creations = Map({a: tuple(at) for a, at in creations.items()})
        for spec in specs.values():
            state._index_spec(spec)
        for message in messages:
            state._index_message(message)
        for record in citations:
            if record.eligible and record.epoch not in state.epochs:
                state._add_citation(record)
        return state


def content_hash(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


def utc(at: datetime) -> datetime:
    """Refuse naive datetimes: every time in Choir is UTC."""
    if at.tzinfo is None:
        raise ValueError("naive datetime: pass an aware UTC time")
    return at.astimezone(UTC)
