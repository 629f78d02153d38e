"""Properties of the notifications derived from any history (hypothesis, on the real store): nobody is
told of their own doing; a private thread's messages reach its co-authors only, mentions included; one
message tells one person once; the ids follow commit order; and a follow someone undid stays undone."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from choir.engine import Coordinator
from choir.program import (
    CreateThread,
    DeleteMessage,
    EditMessage,
    Grant,
    PostAnswer,
    PostMessage,
    ProgramError,
    SubmitSpec,
    Visibility,
    Vote,
)
from choir.store import inbox, schema
from choir.store.sql import Store

PEOPLE = ["ann", "ben", "cat", "dan"]

steps = st.lists(
    st.one_of(
        st.tuples(st.just("thread"), st.sampled_from(PEOPLE), st.sampled_from(list(Visibility))),
        st.tuples(
            st.just("post"),
            st.sampled_from(PEOPLE),
            st.integers(0, 3),
            st.lists(st.sampled_from(PEOPLE), max_size=3),
        ),
        st.tuples(st.just("follow"), st.sampled_from(PEOPLE), st.integers(0, 3), st.booleans()),
        st.tuples(st.just("spec"), st.sampled_from(PEOPLE), st.integers(0, 3)),
        st.tuples(st.just("vote"), st.sampled_from(PEOPLE), st.booleans()),
        st.tuples(st.just("revise"), st.booleans()),
        st.tuples(st.just("read"), st.sampled_from(PEOPLE), st.integers(0, 3)),
        st.tuples(st.just("answer"), st.sampled_from(PEOPLE), st.integers(0, 3)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=steps)
# Always tried, whatever hypothesis draws: a read mark before asking (the asker still follows), and an
# outsider following a private thread (told nothing).
@example(history=[("thread", "ann", Visibility.PUBLIC), ("read", "ben", 0), ("answer", "ben", 0)])
@example(
    history=[("thread", "ann", Visibility.PRIVATE), ("follow", "ben", 0, True), ("post", "ann", 0, ["ben"])]
)
# An answer told before its asker unfollowed the thread.
@example(history=[("thread", "ann", Visibility.PUBLIC), ("answer", "ann", 0), ("follow", "ann", 0, False)])
def test_notifications_keep_their_rules(history: list[tuple[object, ...]]) -> None:
    coordinator = Coordinator.open(Store("sqlite://"))
    store = coordinator.store
    for person in PEOPLE:
        coordinator.execute(Grant(person, 100 * 10**9, f"g-{person}"))
    threads: list[str] = []
    unfollowed: set[tuple[str, str]] = set()
    # (person, thread) -> the last notification id when they unfollowed it: none after may be a reply.
    unfollowed_at: dict[tuple[str, str], int] = {}
    chosen: set[tuple[str, str]] = set()  # an explicit follow or unfollow
    askers: set[tuple[str, str]] = set()  # (asker, thread) of each answer
    for counter, step in enumerate(history, start=1):
        with contextlib.suppress(ProgramError):
            _play(coordinator, store, step, threads, unfollowed, counter, askers)
        if step[0] == "follow" and threads:
            key = (str(step[1]), threads[int(str(step[2])) % len(threads)])
            chosen.add(key)
            if key in unfollowed:
                unfollowed_at.setdefault(key, _last_notification(store))
            else:
                unfollowed_at.pop(key, None)
    with store.engine.connect() as conn:
        rows = conn.execute(schema.notifications.select().order_by(schema.notifications.c.id)).all()
    state = coordinator.state
    seen: set[tuple[str, str | None, str]] = set()
    for row in rows:
        data = row.data
        if row.kind in ("mention", "reply"):
            assert data["author"] != row.address, "told of their own message"
            thread = state.threads[row.thread_id]
            # Co-authorship only grows here (no divests), so today's co-authors include the day's.
            if thread.visibility is Visibility.PRIVATE:
                assert thread.member(row.address) is not None, "a private message reached an outsider"
            key = (row.address, row.ref, "message")
            assert key not in seen, "one message told one person twice"
            seen.add(key)
            if row.kind == "reply":
                # Told before they unfollowed is fine; after, it is not.
                assert row.id <= unfollowed_at.get((row.address, row.thread_id), row.id)
        if row.kind == "spec.awaiting":
            assert data["author"] != row.address
    assert [r.id for r in rows] == list(range(1, len(rows) + 1))
    # Writing in a thread follows it, a read mark alone notwithstanding, unless one chose otherwise.
    f = schema.thread_follows
    with store.engine.connect() as conn:
        following = {(r.address, r.thread_id): r.following for r in conn.execute(f.select())}
    wrote = {(ref.author, ref.thread_id) for ref in state.messages.values() if ref.author in PEOPLE}
    for key in (wrote | askers) - chosen:
        assert following.get(key) is True, f"{key} wrote or asked there but does not follow"


def _last_notification(store: Store) -> int:
    n = schema.notifications
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(n.c.id), 0))).scalar_one())


def _play(
    coordinator: Coordinator,
    store: Store,
    step: tuple[object, ...],
    threads: list[str],
    unfollowed: set[tuple[str, str]],
    n: int,
    askers: set[tuple[str, str]],
) -> None:
    kind = step[0]
    if kind == "thread":
        _, who, visibility = step
        thread_id = f"t{n}"
        coordinator.execute(CreateThread(str(who), thread_id, "a thread", Visibility(str(visibility))))
        threads.append(thread_id)
    elif kind == "post" and threads:
        _, who, pick, mentioned = step
        thread_id = threads[int(str(pick)) % len(threads)]
        # A co-author writes (others are refused, which tells nobody anything).
        authors = coordinator.state.threads[thread_id].co_authors
        author = authors[PEOPLE.index(str(who)) % len(authors)]
        mentions = tuple(str(m) for m in mentioned)  # type: ignore[union-attr]
        coordinator.execute(PostMessage(author, thread_id, f"m{n}", f"message {n}", mentions=mentions))
    elif kind == "follow" and threads:
        _, who, pick, follow = step
        thread_id = threads[int(str(pick)) % len(threads)]
        with store.engine.begin() as conn:
            inbox.follow(conn, str(who), thread_id, bool(follow))
        if follow:
            unfollowed.discard((str(who), thread_id))
        else:
            unfollowed.add((str(who), thread_id))
    elif kind == "spec" and threads:
        _, who, pick = step
        thread_id = threads[int(str(pick)) % len(threads)]
        coordinator.execute(SubmitSpec(str(who), thread_id, f"s{n}", f"spec {n}", 10**9))
    elif kind == "vote":
        _, who, approve = step
        for spec in list(coordinator.state.specs.values()):
            if str(who) in spec.voters:
                coordinator.execute(Vote(str(who), spec.spec_id, bool(approve)))
                return
    elif kind == "answer" and threads:
        _, asker, pick = step
        thread = coordinator.state.threads[threads[int(str(pick)) % len(threads)]]
        if thread.visibility is Visibility.PUBLIC:
            coordinator.execute(PostAnswer(f"a{n}", str(asker), thread.thread_id, f"m{n}", f"answer {n}"))
            askers.add((str(asker), thread.thread_id))
    elif kind == "read" and threads:
        _, who, pick = step
        thread_id = threads[int(str(pick)) % len(threads)]
        with store.engine.begin() as conn:
            inbox.mark_read(conn, str(who), thread_id, 1)
    elif kind == "revise":
        _, delete = step
        mine = [(mid, ref.author) for mid, ref in coordinator.state.messages.items() if not ref.deleted]
        if mine:
            mid, author = mine[0]
            instruction = DeleteMessage(author, mid) if delete else EditMessage(author, mid, f"edited {n}")
            coordinator.execute(instruction)
