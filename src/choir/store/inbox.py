"""Each person's inbox in SQL: the threads they follow, how far they have read each, and their
notifications; mentions resolved to addresses, and people to complete.

Who is told what is the program's rule (``program.notices.derive``, pure); ``record`` reads the
followers it needs, calls it and writes its rows inside the batch's transaction (``Store.persist``),
so notifications exist exactly when what they tell of does, and their ids increase in commit order: a
client resumes after the last id it holds, as it resumes a thread after its last seq.

Follows and read marks are each person's own view, not the program's state: they are written directly
(``follow``, ``mark_read``), outside the commit order.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, and_, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from choir.program import AI_AUTHOR, Outcome, notices
from choir.store import schema
from choir.store.names import name_digests, same_name

KINDS: Final = notices.KINDS
PAGE_MAX: Final = 200
# "@name": a display name without spaces, or the first characters of an address (at least 4).
MENTION_RE: Final = re.compile(r"(?<![\w@])@([\w.\-]{2,64})")
ADDRESS_PREFIX_MIN: Final = 4
MENTIONS_MAX: Final = 20


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    address: str
    kind: str
    thread_id: str | None
    ref: str | None
    data: dict[str, Any]
    at: datetime
    read: bool = False

    def scrubbed(self) -> Notification:
        """Itself without the words of the message it tells of (deleted since)."""
        return dataclasses.replace(self, data=self.data | {"excerpt": ""})

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "thread_id": self.thread_id,
            "ref": self.ref,
            "data": self.data,
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "read": self.read,
        }


# -- mentions ---------------------------------------------------------------------------------


def mention_tokens(content: str) -> list[str]:
    return list(dict.fromkeys(MENTION_RE.findall(content)))[:MENTIONS_MAX]


def resolve_mentions(conn: Connection, content: str) -> tuple[str, ...]:
    """The addresses a message's @tokens name: the one person whose display name is the token
    exactly but for case (a look-alike of a name names nobody: ``@аlice`` with a Cyrillic ``а`` is
    not alice), or the one address it begins."""
    found: dict[str, None] = {}
    u = schema.users
    for token in mention_tokens(content):
        holder = conn.execute(
            select(u.c.address, u.c.display_name).where(u.c.name_key == name_digests(token)[0])
        ).first()
        if holder is not None and same_name(holder.display_name, token):
            found[holder.address] = None
            continue
        if len(token) >= ADDRESS_PREFIX_MIN:
            starts = [
                r.address
                for r in conn.execute(select(u.c.address).where(u.c.address.startswith(token)).limit(2))
            ]
            if len(starts) == 1:
                found[starts[0]] = None
    return tuple(found)[:MENTIONS_MAX]


def people_like(conn: Connection, prefix: str, limit: int = 8) -> list[dict[str, str]]:
    """People whose display name or address begins with ``prefix`` (for @ completion)."""
    u = schema.users
    lowered = prefix.lower()
    query = (
        select(u.c.address, u.c.display_name)
        .where(func.lower(u.c.display_name).startswith(lowered) | u.c.address.startswith(prefix))
        .order_by(u.c.display_name)
        .limit(limit)
    )
    return [{"address": r.address, "display_name": r.display_name} for r in conn.execute(query)]


def _followers(conn: Connection, thread_ids: Iterable[str]) -> dict[str, dict[str, bool | None]]:
    """Per thread, everyone with a row: following (True), unfollowed (False) or undecided (None)."""
    ids = sorted(thread_ids)
    if not ids:
        return {}
    f = schema.thread_follows
    out: dict[str, dict[str, bool | None]] = {}
    for r in conn.execute(select(f.c.thread_id, f.c.address, f.c.following).where(f.c.thread_id.in_(ids))):
        out.setdefault(r.thread_id, {})[r.address] = None if r.following is None else bool(r.following)
    return out


def record(conn: Connection, outcomes: Sequence[Outcome]) -> list[Notification]:
    """Derive and write the notifications and follows of a batch, in its transaction."""
    batch = notices.derive(outcomes, _followers(conn, notices.threads_posted_in(outcomes)))
    if batch.follows:
        _auto_follow(conn, batch.follows)
    for address, thread_id in batch.unfollows:
        follow(conn, address, thread_id, False)
    if not batch.rows:
        return []
    _name_authors(conn, batch.rows)
    # Only the writer holding the state version gets here (Store.persist): ids follow commit order.
    n = schema.notifications
    last = conn.execute(select(func.max(n.c.id))).scalar_one_or_none() or 0
    ids = list(range(last + 1, last + 1 + len(batch.rows)))
    conn.execute(n.insert(), [row | {"id": i} for i, row in zip(ids, batch.rows, strict=True)])
    return [
        Notification(i, r["address"], r["kind"], r["thread_id"], r["ref"], r["data"], r["at"])
        for i, r in zip(ids, batch.rows, strict=True)
    ]


def _name_authors(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Each notification names its author as they were called then (one read for the batch)."""
    authors = sorted({a for r in rows if (a := r["data"].get("author")) and a != AI_AUTHOR})
    if not authors:
        return
    u = schema.users
    names = dict(conn.execute(select(u.c.address, u.c.display_name).where(u.c.address.in_(authors))).all())
    for row in rows:
        author = row["data"].get("author")
        if author in names:
            row["data"] = row["data"] | {"author_name": names[author]}


def _insert_for(conn: Connection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _auto_follow(conn: Connection, follows: dict[tuple[str, str], int]) -> None:
    """Follow (unless unfollowed on purpose) and move the read mark forward, never back."""
    f = schema.thread_follows
    rows = [{"address": a, "thread_id": t, "following": True, "read_seq": s} for (a, t), s in follows.items()]
    stmt = _insert_for(conn)(f)
    later = stmt.excluded.read_seq > f.c.read_seq
    stmt = stmt.on_conflict_do_update(
        index_elements=["address", "thread_id"],
        set_={
            "read_seq": case((later, stmt.excluded.read_seq), else_=f.c.read_seq),
            # An undecided row (a read mark only) follows now; a choice made stands.
            "following": case((f.c.following.is_(None), True), else_=f.c.following),
        },
    )
    conn.execute(stmt, rows)


def follow(conn: Connection, address: str, thread_id: str, following: bool) -> None:
    """Follow or unfollow on purpose (a choice that writing in the thread does not undo)."""
    f = schema.thread_follows
    stmt = _insert_for(conn)(f).values(address=address, thread_id=thread_id, following=following, read_seq=0)
    conn.execute(
        stmt.on_conflict_do_update(index_elements=["address", "thread_id"], set_={"following": following})
    )


# -- a person's own view: follow, read, list -----------------------------------------------------


def mark_read(conn: Connection, address: str, thread_id: str, seq: int) -> int:
    """Move the read mark to ``seq`` (never back); returns the mark now held."""
    f = schema.thread_follows
    stmt = _insert_for(conn)(f).values(address=address, thread_id=thread_id, following=None, read_seq=seq)
    stmt = stmt.on_conflict_do_nothing(index_elements=["address", "thread_id"])
    conn.execute(stmt)
    mine = and_(f.c.address == address, f.c.thread_id == thread_id)
    conn.execute(update(f).where(mine, f.c.read_seq < seq).values(read_seq=seq))
    return int(conn.execute(select(f.c.read_seq).where(mine)).scalar_one())


def read_news(conn: Connection, address: str, thread_id: str, read_seq: int) -> list[int]:
    """Mark read the person's mention and reply notifications of messages of ``thread_id`` up to
    ``read_seq`` (what was just read is no news); returns their ids."""
    n, m = schema.notifications, schema.messages
    read_messages = select(m.c.message_id).where(m.c.thread_id == thread_id, m.c.seq <= read_seq)
    query = select(n.c.id).where(
        n.c.address == address,
        n.c.thread_id == thread_id,
        n.c.kind.in_(("mention", "reply")),
        n.c.read.is_(False),
        n.c.ref.in_(read_messages),
    )
    ids = [int(i) for i in conn.execute(query).scalars()]
    if ids:
        conn.execute(update(n).where(n.c.id.in_(ids)).values(read=True))
    return ids


def threads_of(conn: Connection, address: str) -> dict[str, dict[str, Any]]:
    """Per thread the person follows or has read: following, read_seq, and for a followed thread
    unread (others' messages after the mark, tombstones left out) and the first unread one's seq."""
    f, m = schema.thread_follows, schema.messages
    marks = {
        r.thread_id: {
            "following": bool(r.following),
            "read_seq": r.read_seq,
            "unread": 0,
            "first_unread_seq": None,
        }
        for r in conn.execute(
            select(f.c.thread_id, f.c.following, f.c.read_seq).where(f.c.address == address)
        )
    }
    if not marks:
        return {}
    unread = (
        select(m.c.thread_id, func.count(), func.min(m.c.seq))
        .select_from(m.join(f, and_(f.c.thread_id == m.c.thread_id, f.c.address == address)))
        .where(
            f.c.following.is_(True), m.c.seq > f.c.read_seq, m.c.author != address, m.c.deleted_at.is_(None)
        )
        .group_by(m.c.thread_id)
    )
    for thread_id, count, first in conn.execute(unread):
        marks[thread_id] |= {"unread": int(count), "first_unread_seq": first}
    return marks


def notifications_after(conn: Connection, address: str, after_id: int, limit: int) -> list[Notification]:
    n = schema.notifications
    query = (
        select(n)
        .where(n.c.address == address, n.c.id > after_id)
        .order_by(n.c.id)
        .limit(min(max(limit, 1), PAGE_MAX))
    )
    return [_note(r) for r in conn.execute(query)]


def latest_notifications(conn: Connection, address: str, limit: int) -> list[Notification]:
    n = schema.notifications
    query = (
        select(n).where(n.c.address == address).order_by(n.c.id.desc()).limit(min(max(limit, 1), PAGE_MAX))
    )
    return [_note(r) for r in conn.execute(query)][::-1]


def latest_id(conn: Connection, address: str) -> int:
    n = schema.notifications
    return int(conn.execute(select(func.max(n.c.id)).where(n.c.address == address)).scalar_one_or_none() or 0)


def unread_count(conn: Connection, address: str) -> int:
    n = schema.notifications
    query = select(func.count()).select_from(n).where(n.c.address == address, n.c.read.is_(False))
    return int(conn.execute(query).scalar_one())


def mark_notifications_read(
    conn: Connection, address: str, up_to_id: int | None, ids: Sequence[int] | None = None
) -> int:
    """Mark the person's notifications read: those up to ``up_to_id``, or those in ``ids`` (another
    person's ids are left alone). Returns how many changed."""
    n = schema.notifications
    which = n.c.id <= up_to_id if ids is None else n.c.id.in_(list(ids))
    result = conn.execute(
        update(n).where(n.c.address == address, which, n.c.read.is_(False)).values(read=True)
    )
    return int(result.rowcount)


def _note(r: Any) -> Notification:
    return Notification(r.id, r.address, r.kind, r.thread_id, r.ref, r.data, r.at, bool(r.read))
