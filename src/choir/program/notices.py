"""Who is told what: the notifications and follows a committed batch makes, as a pure function of its
outcomes and of who follows the threads it posted in (``derive``). The store reads the followers,
calls it and writes its rows in the batch's own transaction (``store.inbox.record``).

    mention        a message names you (@display name or address prefix); in a private thread only
                   its co-authors can be named (the program drops the others)
    reply          a message in a thread you follow, by someone else (an answer to a question too)
    spec.awaiting  a spec waits for your vote
    spec.outcome   your spec was settled: approved, denied, mixed or expired (the thread's title
                   only when you may read the thread)
    reward         CHOIR paid to you, with its amount and why

Writing in a thread, asking in it, creating it or joining it as a co-author follows it, unless you
unfollowed it; leaving a private thread unfollows it. Nobody is told of their own doing, and a private
thread's events reach its co-authors only (``Thread.readable_by``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from choir.program.state import AI_AUTHOR, Outcome, Visibility

KINDS: Final = ("mention", "reply", "spec.awaiting", "spec.outcome", "reward")
EXCERPT_CHARS: Final = 140


Followers = Mapping[str, Mapping[str, bool | None]]


def threads_posted_in(outcomes: Sequence[Outcome]) -> set[str]:
    """The threads whose followers ``derive`` needs to know (read by the caller beforehand)."""
    return {e.thread_id for o in outcomes for e in o.events if e.kind == "message.posted"}


def derive(outcomes: Sequence[Outcome], followers: Followers) -> Derived:
    """Who a batch's outcomes tell what, and the follows they make. ``followers``: per thread of
    ``threads_posted_in(outcomes)``, everyone with a choice: following (True), unfollowed (False) or
    undecided (None, a read mark only)."""
    batch = _Batch(outcomes, followers)
    batch.derive()
    return Derived(batch.rows, batch.follows, batch.unfollows)


@dataclass(frozen=True, slots=True)
class Derived:
    rows: list[dict[str, Any]]  # address, kind, thread_id, ref, data, at: one notification each
    follows: dict[tuple[str, str], int]  # (address, thread) -> followed, read up to seq
    unfollows: set[tuple[str, str]]


class _Batch:
    """What one batch's outcomes tell whom, and the follows they make."""

    def __init__(self, outcomes: Sequence[Outcome], followers: Followers) -> None:
        self.outcomes = outcomes
        self.rows: list[dict[str, Any]] = []
        self.follows: dict[tuple[str, str], int] = {}  # (address, thread) -> read up to seq
        self.unfollows: set[tuple[str, str]] = set()
        self.followers: dict[str, dict[str, bool | None]] = {t: dict(f) for t, f in followers.items()}

    def derive(self) -> None:
        for o in self.outcomes:
            for e in o.events:
                handler = _HANDLERS.get(e.kind)
                if handler is not None:
                    handler(self, o, e.thread_id, e.seq, e.data, e.at)
            for notice in o.notices:
                if notice.kind == "reward.paid":
                    data = notice.data | {"reason": _reason(notice.data)}
                    at = o.at
                    assert at is not None, "an outcome from apply() carries its time"
                    self.tell(notice.address, "reward", notice.data.get("thread_id"), None, data, at)

    def tell(
        self,
        address: str,
        kind: str,
        thread_id: str | None,
        ref: str | None,
        data: dict[str, Any],
        at: datetime,
    ) -> None:
        self.rows.append(
            {"address": address, "kind": kind, "thread_id": thread_id, "ref": ref, "data": data, "at": at}
        )

    def follow(self, address: str, thread_id: str, seq: int) -> None:
        """Follow from ``seq`` on (read up to it), unless the person chose already (following, or
        unfollowed on purpose: either way their choice stands, and their read mark)."""
        known = self.followers.setdefault(thread_id, {})
        if known.get(address) is not None and (address, thread_id) not in self.follows:
            return
        known[address] = True
        key = (address, thread_id)
        self.follows[key] = max(seq, self.follows.get(key, 0))


def _posted(b: _Batch, o: Outcome, thread_id: str, seq: int, data: dict[str, Any], at: datetime) -> None:
    thread = o.threads[thread_id]  # the program puts every thread an event advances
    author = data["author"]
    mentioned = [a for a in data.get("mentions", ()) if a != author and thread.readable_by(a)]
    about = {
        "message_id": data["message_id"],
        "author": author,
        "seq": seq,
        "title": thread.title,
        "excerpt": data["content"][:EXCERPT_CHARS],
    }
    for address in mentioned:
        b.tell(address, "mention", thread_id, data["message_id"], about, at)
    told = set(mentioned) | {author}
    if author == AI_AUTHOR and (asker := data.get("asker")) and thread.readable_by(asker):
        b.follow(asker, thread_id, seq - 1)  # asking follows the thread; its answer is still unread
    for address, following in sorted(b.followers.get(thread_id, {}).items()):
        if following and address not in told and thread.readable_by(address):
            b.tell(address, "reply", thread_id, data["message_id"], about, at)
    if author != AI_AUTHOR:
        b.follow(author, thread_id, seq)  # one's own message is read


def _created(b: _Batch, o: Outcome, thread_id: str, seq: int, data: dict[str, Any], at: datetime) -> None:
    b.follow(data["creator"], thread_id, seq)


def _joined(b: _Batch, o: Outcome, thread_id: str, seq: int, data: dict[str, Any], at: datetime) -> None:
    # A new co-author read the thread to ask to join it: what comes after their joining is news.
    b.follow(data["address"], thread_id, seq)


def _left(b: _Batch, o: Outcome, thread_id: str, seq: int, data: dict[str, Any], at: datetime) -> None:
    if o.threads[thread_id].visibility is Visibility.PRIVATE:
        b.unfollows.add((data["address"], thread_id))


def _spec_submitted(
    b: _Batch, o: Outcome, thread_id: str, seq: int, data: dict[str, Any], at: datetime
) -> None:
    about = {
        "spec_id": data["spec_id"],
        "author": data["author"],
        "stake": data["stake"],
        "title": o.threads[thread_id].title,
        "excerpt": data["content"][:EXCERPT_CHARS],
        "expires_at": data["expires_at"],
    }
    for voter in data["voters"]:
        b.tell(voter, "spec.awaiting", thread_id, data["spec_id"], about, at)


def _spec_settled(
    b: _Batch, o: Outcome, thread_id: str, seq: int, data: dict[str, Any], at: datetime
) -> None:
    spec = o.specs[data["spec_id"]]  # the program puts the spec it settles
    about = {"spec_id": spec.spec_id, "outcome": data["outcome"], "stake": str(spec.stake)}
    thread = o.threads.get(thread_id)
    # A spec denied to a private thread tells its author nothing of the thread, not even its title.
    about["title"] = thread.title if thread is not None and thread.readable_by(spec.author) else ""
    b.tell(spec.author, "spec.outcome", thread_id, spec.spec_id, about, at)


_HANDLERS: Final = {
    "message.posted": _posted,
    "thread.created": _created,
    "coauthor.joined": _joined,
    "coauthor.left": _left,
    "spec.submitted": _spec_submitted,
    "spec.settled": _spec_settled,
}


def _reason(data: dict[str, Any]) -> str:
    if data.get("reward") == "prior":
        return f"your thread's messages were cited in answers (epoch {data.get('epoch')})"
    return f"your new messages (epoch {data.get('epoch')})"
