"""Records of the Thread Program to and from SQL rows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from choir.ledger import Transfer, TransferKind
from choir.program import (
    Citation,
    CitationRecord,
    EpochSettlement,
    Member,
    Message,
    Revision,
    Spec,
    SpecStatus,
    Thread,
    Visibility,
)

# A SQLAlchemy RowMapping or a plain dict: anything read by column name.
Row = Mapping[str, Any] | Any


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def thread_row(t: Thread) -> dict[str, Any]:
    return {
        "thread_id": t.thread_id,
        "title": t.title,
        "visibility": str(t.visibility),
        "creator": t.creator,
        "created_at": t.created_at,
        "min_stake": t.min_stake,
        "members": [[m.address, _iso(m.joined_at)] for m in t.members],
        "message_count": t.message_count,
        "last_seq": t.last_seq,
    }


def thread_from(row: Row) -> Thread:
    return Thread(
        thread_id=row["thread_id"],
        title=row["title"],
        visibility=Visibility(row["visibility"]),
        creator=row["creator"],
        created_at=row["created_at"],
        min_stake=row["min_stake"],
        members=tuple(Member(a, _time(j)) for a, j in row["members"]),
        message_count=row["message_count"],
        last_seq=row["last_seq"],
    )


def spec_row(s: Spec) -> dict[str, Any]:
    return {
        "spec_id": s.spec_id,
        "thread_id": s.thread_id,
        "author": s.author,
        "content": s.content,
        "content_hash": s.content_hash,
        "stake": s.stake,
        "submitted_at": s.submitted_at,
        "expires_at": s.expires_at,
        "voters": list(s.voters),
        "votes": [[a, v] for a, v in s.votes],
        "status": str(s.status),
        "settled_at": s.settled_at,
    }


def spec_from(row: Row) -> Spec:
    return Spec(
        spec_id=row["spec_id"],
        thread_id=row["thread_id"],
        author=row["author"],
        content=row["content"],
        content_hash=row["content_hash"],
        stake=row["stake"],
        submitted_at=row["submitted_at"],
        expires_at=row["expires_at"],
        voters=tuple(row["voters"]),
        votes=tuple((a, bool(v)) for a, v in row["votes"]),
        status=SpecStatus(row["status"]),
        settled_at=row["settled_at"],
    )


def message_row(m: Message, html: str) -> dict[str, Any]:
    return {
        "message_id": m.message_id,
        "thread_id": m.thread_id,
        "author": m.author,
        "content": m.content,
        "html": html,
        "content_hash": m.content_hash,
        "published_at": m.published_at,
        "seq": m.seq,
        "novelty_ppm": m.novelty_ppm,
        "ask_id": m.ask_id,
        "citations": [[c.n, c.message_id, c.score_ppm] for c in m.citations],
        "question": m.question,
        "version": m.version,
        "mentions": list(m.mentions) or None,
    }


def message_from(row: Row) -> Message:
    return Message(
        message_id=row["message_id"],
        thread_id=row["thread_id"],
        author=row["author"],
        content=row["content"],
        content_hash=row["content_hash"],
        published_at=row["published_at"],
        seq=row["seq"],
        novelty_ppm=row["novelty_ppm"],
        ask_id=row["ask_id"],
        citations=tuple(Citation(n, mid, s) for n, mid, s in row["citations"]),
        question=row.get("question"),
        version=row.get("version") or 1,
        deleted=row.get("deleted_at") is not None,
        mentions=tuple(row.get("mentions") or ()),
    )


def revision_from(row: Row) -> Revision:
    """A message row's current version as the Revision that made it (for catching up)."""
    deleted = row["deleted_at"] is not None
    return Revision(
        message_id=row["message_id"],
        thread_id=row["thread_id"],
        author=row["author"],
        version=row["version"],
        content=row["content"],
        content_hash=row["content_hash"],
        at=row["deleted_at"] if deleted else row["edited_at"],
        deleted=deleted,
    )


def transfer_row(t: Transfer) -> dict[str, Any]:
    return {
        "id": f"{t.id:032x}",
        "debit": t.debit,
        "credit": t.credit,
        "amount": t.amount,
        "kind": str(t.kind),
        "ref": t.ref,
        "at": t.at,
    }


def transfer_from(row: Row) -> Transfer:
    return Transfer(
        id=int(row["id"], 16),
        debit=row["debit"],
        credit=row["credit"],
        amount=row["amount"],
        kind=TransferKind(row["kind"]),
        ref=row["ref"],
        at=row["at"],
    )


def citation_row(c: CitationRecord, at: datetime) -> dict[str, Any]:
    return {
        "ask_id": c.ask_id,
        "epoch": c.epoch,
        "message_id": c.message_id,
        "cited_thread_id": c.cited_thread_id,
        "score_ppm": c.score_ppm,
        "eligible": c.eligible,
        "at": at,
    }


def citation_from(row: Row) -> CitationRecord:
    return CitationRecord(
        row["ask_id"],
        row["epoch"],
        row["message_id"],
        row["cited_thread_id"],
        row["score_ppm"],
        bool(row["eligible"]),
    )


def epoch_row(e: EpochSettlement) -> dict[str, Any]:
    return {
        "epoch": e.epoch,
        "new_message_budget": e.new_message_budget,
        "new_message_paid": e.new_message_paid,
        "prior_budget": e.prior_budget,
        "prior_paid": e.prior_paid,
        "settled_at": e.settled_at,
    }


def epoch_from(row: Row) -> EpochSettlement:
    return EpochSettlement(
        row["epoch"],
        row["new_message_budget"],
        row["new_message_paid"],
        row["prior_budget"],
        row["prior_paid"],
        row["settled_at"],
    )
