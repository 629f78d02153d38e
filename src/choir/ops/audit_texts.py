"""The audit's checks of stored texts against their hashes: each message against the event that
published it, every earlier version against its hash and the change log, and each spec's staked text
against its hash and its event (``choir.ops.audit`` runs them in its one snapshot)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, Protocol

from sqlalchemy import Connection, select

from choir.program import AI_AUTHOR
from choir.store import schema

STREAM_ROWS: Final = 5000


class Report(Protocol):
    checked: Counter[str]

    def add(self, kind: str, detail: str) -> None: ...


def rows(conn: Connection, query: Any) -> Iterator[Any]:
    # Per statement (not per connection): a server-side cursor fetching STREAM_ROWS at a time.
    yield from conn.execute(query.execution_options(yield_per=STREAM_ROWS))


@dataclass(frozen=True, slots=True)
class MessageFacts:
    thread_id: str
    content_hash: str
    author: str
    version: int = 1
    deleted: bool = False
    # The hash it was published with (its message.posted event's); the current one until an edit.
    first_hash: str = ""

    @property
    def text_removed(self) -> bool:
        """Whether its earlier texts are gone: deleted, or an AI answer redacted (changed only to lose
        the quotes of a deleted message)."""
        return self.deleted or (self.author == AI_AUTHOR and self.version > 1)


def check_message_events(conn: Connection, report: Report, messages: dict[str, MessageFacts]) -> None:
    """Each message against the event that published it: the event's content hashes to the
    message's hash, the event names the same hash, and every message has its event."""
    e = schema.events
    query = select(e.c.thread_id, e.c.seq, e.c.data).where(e.c.kind == "message.posted")
    published: set[str] = set()
    for thread_id, seq, data in rows(conn, query):
        fields = _event_fields(data)
        if fields is None:
            report.add("message_event", f"event {thread_id}#{seq}: not a readable message.posted event")
            continue
        message_id, content, claimed = fields
        published.add(message_id)
        message = messages.get(message_id)
        if message is None:
            report.add(
                "message_event", f"event {thread_id}#{seq} publishes {message_id}, which the store lacks"
            )
            continue
        actual = hashlib.sha256(content.encode()).hexdigest()
        # The event publishes the first version; a deleted message's event has its content removed.
        expected = message.first_hash
        if (
            message.thread_id != thread_id
            or claimed != expected
            or (actual != expected and not (message.text_removed and content == ""))
        ):
            report.add(
                "message_event",
                f"message {message_id} in {message.thread_id}: stored hash {expected[:12]}… but "
                f"its event {thread_id}#{seq} says {str(claimed)[:12]}… and its content hashes to {actual[:12]}…",
            )
    for message_id in messages.keys() - published:
        report.add("message_event", f"message {message_id}: no message.posted event publishes it")


def _event_fields(data: Any) -> tuple[str, str, str] | None:
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return None
    if not isinstance(data, dict):
        return None
    message_id, content, claimed = data.get("message_id"), data.get("content"), data.get("content_hash")
    if not (isinstance(message_id, str) and isinstance(content, str) and isinstance(claimed, str)):
        return None
    return message_id, content, claimed


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_versions(conn: Connection, report: Report, messages: dict[str, MessageFacts]) -> None:
    """Earlier versions against their hashes, and every version against the change log."""
    v, c = schema.message_versions, schema.changes
    hashes: dict[tuple[str, int], str] = {
        (mid, msg.version): msg.content_hash for mid, msg in messages.items()
    }
    query = select(v.c.message_id, v.c.version, v.c.content, v.c.content_hash)
    for message_id, version, content, stored_hash in rows(conn, query):
        report.checked["versions"] += 1
        hashes[(message_id, version)] = stored_hash
        message = messages.get(message_id)
        if message is None:
            report.add("version_hash", f"version {version} of {message_id}, a message the store lacks")
        elif content is None:
            if not message.text_removed:
                report.add("version_hash", f"version {version} of {message_id} lost its text")
        elif message.deleted:
            report.add("version_hash", f"version {version} of deleted message {message_id} still holds text")
        elif _sha256(content) != stored_hash:
            report.add(
                "version_hash",
                f"version {version} of {message_id}: stored hash {stored_hash[:12]}… but its text hashes "
                f"to {_sha256(content)[:12]}…",
            )
    logged: dict[tuple[str, int], str | None] = {}
    query = select(c.c.ref, c.c.version, c.c.content_hash).where(c.c.kind.in_(("m", "v")))
    for ref, version, logged_hash in rows(conn, query):
        logged[(ref, version or 1)] = logged_hash
    for key, stored_hash in hashes.items():
        message_id, version = key
        if key not in logged:
            report.add("version_log", f"version {version} of {message_id} is not in the change log")
        elif logged[key] != stored_hash:
            report.add(
                "version_log",
                f"version {version} of {message_id}: stored hash {stored_hash[:12]}… but the change log "
                f"committed {str(logged[key])[:12]}…",
            )


def check_spec_texts(conn: Connection, report: Report) -> None:
    """A spec's text against its hash and against the event that staked it."""
    s, e, v, m = schema.specs, schema.events, schema.message_versions, schema.messages
    # A spec approved became a message with its text; deleting that message blanks the spec's copies.
    deleted_firsts = set(
        conn.execute(
            select(v.c.content_hash)
            .join(m, m.c.message_id == v.c.message_id)
            .where(v.c.version == 1, m.c.deleted_at.is_not(None))
        ).scalars()
    )
    staked: dict[str, str] = {}
    for (data,) in rows(conn, select(e.c.data).where(e.c.kind == "spec.submitted")):
        body = json.loads(data) if isinstance(data, str) else data
        if isinstance(body, dict) and isinstance(body.get("spec_id"), str):
            staked[body["spec_id"]] = str(body.get("content", ""))
    for spec_id, content, stored_hash in rows(conn, select(s.c.spec_id, s.c.content, s.c.content_hash)):
        blanked = stored_hash in deleted_firsts
        if content == "" and blanked:
            pass
        elif _sha256(content) != stored_hash:
            report.add(
                "spec_hash",
                f"spec {spec_id}: stored hash {stored_hash[:12]}… but its text hashes to {_sha256(content)[:12]}…",
            )
            continue
        event_text = staked.get(spec_id)
        if event_text is None:
            report.add("spec_hash", f"spec {spec_id}: no spec.submitted event stakes it")
        elif event_text != content and not (event_text == "" and blanked):
            report.add("spec_hash", f"spec {spec_id}: its text differs from the text its event staked")
