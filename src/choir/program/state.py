"""The Thread Program's state: threads, specs, message references, the ledger.

Records are frozen; the processor builds new ones and ``State.commit`` swaps them
in, so a refused instruction can never leave a half-changed state behind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

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

    def readable_by(self, address: str | None) -> bool:
        """Whether ``address`` (None: nobody signed in) may know anything of this thread: its
        title, messages, people, specs and events. THE rule of who may know what: every read and
        every refusal goes through it, and to anyone it refuses a private thread is a thread that
        does not exist (docs/security.md)."""
        return self.visibility is Visibility.PUBLIC or (
            address is not None and self.member(address) is not None
        )


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
    # An AI answer keeps the question it answers (not part of its content or its hash).
    question: str | None = None
    # 1 as published; each edit (or the deletion) of the message is the next version.
    version: int = 1
    deleted: bool = False
    # The people it mentions (addresses), as the program kept them.
    mentions: tuple[str, ...] = ()

    @property
    def is_ai(self) -> bool:
        return self.author == AI_AUTHOR


@dataclass(frozen=True, slots=True)
class Revision:
    """The next version of a published message: an edit (new content), or its deletion (a tombstone
    whose content is empty). Its hash is committed and anchored like a new message's."""

    message_id: str
    thread_id: str
    author: str
    version: int
    content: str
    content_hash: str
    at: datetime
    deleted: bool = False

    @property
    def record_id(self) -> str:
        return version_record_id(self.message_id, self.version)


@dataclass(frozen=True, slots=True)
class MessageRef:
    """What the program must remember of a published message (not its content)."""

    thread_id: str
    author: str
    content_hash: str
    epoch: int = 0
    novelty_ppm: int | None = 1_000_000
    version: int = 1
    deleted: bool = False


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
    revisions: list[Revision] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (
            self.threads
            or self.specs
            or self.messages
            or self.revisions
            or self.transfers
            or self.citations
            or self.epochs
            or self.novelty
        )


@dataclass(slots=True)
class State:
    """All of the program's state, with indexes derived from the records."""

    genesis_at: datetime
    params: Params = field(default_factory=Params)
    ledger: Ledger = field(default_factory=Ledger.genesis)
    threads: dict[str, Thread] = field(default_factory=dict)
    specs: dict[str, Spec] = field(default_factory=dict)
    messages: dict[str, MessageRef] = field(default_factory=dict)
    epochs: dict[int, EpochSettlement] = field(default_factory=dict)
    # Derived indexes, rebuilt by ``commit`` / ``load``: never the source of truth.
    hashes: dict[str, dict[str, str]] = field(default_factory=dict)  # thread -> content hash -> id
    pending: dict[str, set[str]] = field(default_factory=dict)  # thread -> pending spec ids
    creations: dict[str, list[datetime]] = field(default_factory=dict)  # creator -> recent creations
    # epoch -> message id -> (author, novelty weight, None while it is being measured)
    epoch_posts: dict[int, dict[str, tuple[str, int | None]]] = field(default_factory=dict)
    epoch_citations: dict[int, list[CitationRecord]] = field(default_factory=dict)
    # thread -> number of AI answers: they are not in `hashes` (the same question asked again gets the
    # same answer, which is not a duplicate post).
    answers: dict[str, int] = field(default_factory=dict)
    # thread -> number of deleted messages: tombstones still count as the thread's messages.
    tombstones: dict[str, int] = field(default_factory=dict)

    @classmethod
    def genesis(cls, genesis_at: datetime, params: Params | None = None) -> State:
        return cls(genesis_at=genesis_at, params=params or Params())

    def epoch_of(self, at: datetime) -> int:
        return int((at - self.genesis_at).total_seconds() // self.params.epoch_seconds)

    def epoch_bounds(self, epoch: int) -> tuple[datetime, datetime]:
        start = self.genesis_at + timedelta(seconds=epoch * self.params.epoch_seconds)
        return start, start + timedelta(seconds=self.params.epoch_seconds)

    def commit(self, outcome: Outcome) -> None:
        """Swap in what an instruction produced. Only ever called with an Outcome that
        ``processor.apply`` computed from this very state. It changes this state in place: the
        engine commits to its writer's private state (before the batch is persisted, so later
        instructions of the batch see earlier ones) and shows readers only an immutable
        ``engine.Snapshot``, advanced after COMMIT."""
        self.ledger.record(outcome.transfers, outcome.balances)
        for thread in outcome.threads.values():
            if thread.thread_id not in self.threads:
                self.creations.setdefault(thread.creator, []).append(thread.created_at)
            self.threads[thread.thread_id] = thread
        for spec in outcome.specs.values():
            self._index_spec(spec)
        for message in outcome.messages:
            self._index_message(message)
        for message_id, novelty_ppm in outcome.novelty:
            self._set_novelty(message_id, novelty_ppm)
        for revision in outcome.revisions:
            self._revise(revision)
        for record in outcome.citations:
            # A process catching up may hold a cited message's later, deleted row already (the state
            # log reads records as they are now): as at load, its citations then wait for nothing.
            if record.eligible and not self.messages[record.message_id].deleted:
                self.epoch_citations.setdefault(record.epoch, []).append(record)
        for settlement in outcome.epochs:
            self.epochs[settlement.epoch] = settlement
            self.epoch_posts.pop(settlement.epoch, None)
            self.epoch_citations.pop(settlement.epoch, None)

    def _index_spec(self, spec: Spec) -> None:
        self.specs[spec.spec_id] = spec
        pending = self.pending.setdefault(spec.thread_id, set())
        hashes = self.hashes.setdefault(spec.thread_id, {})
        if spec.status is SpecStatus.PENDING:
            pending.add(spec.spec_id)
            # A pending spec reserves its content in a public thread. In a private one its submitter
            # cannot see what is there, so nothing is checked (or reserved) until its approval,
            # which is refused when the content is a duplicate by then.
            thread = self.threads.get(spec.thread_id)
            if thread is not None and thread.visibility is Visibility.PUBLIC:
                hashes[spec.content_hash] = spec.spec_id
            return
        pending.discard(spec.spec_id)
        # A settled spec's reservation of its content ends; an approved one's
        # hash is re-added as a published message by _index_message.
        if hashes.get(spec.content_hash) == spec.spec_id:
            del hashes[spec.content_hash]

    def _index_message(self, message: Message) -> None:
        epoch = self.epoch_of(message.published_at)
        self.messages[message.message_id] = MessageRef(
            message.thread_id,
            message.author,
            message.content_hash,
            epoch,
            message.novelty_ppm,
            message.version,
            message.deleted,
        )
        if message.is_ai:
            self.answers[message.thread_id] = self.answers.get(message.thread_id, 0) + 1
        elif message.deleted:
            self.hashes.setdefault(message.thread_id, {})  # as a live deletion leaves it
            self.tombstones[message.thread_id] = self.tombstones.get(message.thread_id, 0) + 1
        else:
            self.hashes.setdefault(message.thread_id, {})[message.content_hash] = message.message_id
        if not message.is_ai and not message.deleted and epoch not in self.epochs:
            self.epoch_posts.setdefault(epoch, {})[message.message_id] = (message.author, message.novelty_ppm)

    def _revise(self, revision: Revision) -> None:
        """A message's next version. It keeps its one place in its epoch's posts (an edit earns no
        second reward); a deleted one leaves them, and its citations awaiting settlement lose their
        eligibility: content that no longer exists earns nothing. What was paid stays paid."""
        ref = self.messages[revision.message_id]
        if ref.version >= revision.version:
            return  # a process catching up read the message's row at this version already
        hashes = self.hashes.setdefault(ref.thread_id, {})
        if hashes.get(ref.content_hash) == revision.message_id:
            del hashes[ref.content_hash]
        if not revision.deleted and ref.author != AI_AUTHOR:
            # An AI answer (redacted) may repeat what is in its thread, as at its publication.
            hashes[revision.content_hash] = revision.message_id
        self.messages[revision.message_id] = replace(
            ref, content_hash=revision.content_hash, version=revision.version, deleted=revision.deleted
        )
        if revision.deleted:
            self.tombstones[ref.thread_id] = self.tombstones.get(ref.thread_id, 0) + 1
            self._forget_rewards(revision.message_id, ref.epoch)

    def _forget_rewards(self, message_id: str, epoch: int) -> None:
        # Emptied entries go, as State.load (which never sees a deleted message's post) has none.
        posts = self.epoch_posts.get(epoch)
        if posts is not None and posts.pop(message_id, None) is not None and not posts:
            del self.epoch_posts[epoch]
        for pending, records in list(self.epoch_citations.items()):
            if any(r.message_id == message_id for r in records):
                kept = [r for r in records if r.message_id != message_id]
                if kept:
                    self.epoch_citations[pending] = kept
                else:
                    del self.epoch_citations[pending]

    def _set_novelty(self, message_id: str, novelty_ppm: int) -> None:
        ref = self.messages[message_id]
        self.messages[message_id] = replace(ref, novelty_ppm=novelty_ppm)
        posts = self.epoch_posts.get(ref.epoch)
        if posts is not None and message_id in posts:
            posts[message_id] = (ref.author, novelty_ppm)

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
        state = cls(genesis_at=genesis_at, params=params, ledger=ledger, epochs=dict(epochs))
        for thread in sorted(threads.values(), key=lambda t: t.created_at):
            state.threads[thread.thread_id] = thread
            state.creations.setdefault(thread.creator, []).append(thread.created_at)
        for spec in specs.values():
            state._index_spec(spec)
        for message in messages:
            state._index_message(message)
        for record in citations:
            cited = state.messages.get(record.message_id)
            if cited is not None and cited.deleted:
                continue  # as _revise does when the deletion is applied live
            if record.eligible and record.epoch not in state.epochs:
                state.epoch_citations.setdefault(record.epoch, []).append(record)
        return state


def content_hash(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


# A message's later versions are named "<message_id>~v<n>" (anchored on chain, keyed in a batch's
# html); the program refuses new ids containing it, so no message is named like another's version.
VERSION_MARK: Final = "~v"


def version_record_id(message_id: str, version: int) -> str:
    """The id of a message's ``version``: the message id as published, ``<id>~v<n>`` after."""
    return message_id if version == 1 else f"{message_id}{VERSION_MARK}{version}"


def tombstone_hash(message_id: str) -> str:
    """What a deleted message's last version is committed and anchored as: one per message (two
    tombstones never share a hash), and anyone can recompute it from the message's id."""
    return content_hash(f"choir:deleted:{message_id}")


def utc(at: datetime) -> datetime:
    """Refuse naive datetimes: every time in Choir is UTC."""
    if at.tzinfo is None:
        raise ValueError("naive datetime: pass an aware UTC time")
    return at.astimezone(UTC)
