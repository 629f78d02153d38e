"""SQL statements on the hot paths, pinned (as Zulip pins query counts): a regression to one
query per message, per co-author or per thread fails here before it is felt in production.
Each count is also shown not to grow with the data behind it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from inproc import InProcess, StatementCounter, count_statements, in_process

from choir.program import PostMessage
from choir.store import inbox

# A post: claim the version; upsert the thread; insert the message and its event; number the change log;
# read the thread's followers (the author, who follows it already, gets no new row).
POST_STATEMENTS = 7
# Each follower told of it: three more statements in all (the author's name, number them, insert them),
# however many.
POST_TO_FOLLOWERS_STATEMENTS = POST_STATEMENTS + 3
# A sign-in: the nonce; then consume it, read it, the user row, the session, the welcome grant's
# commit (version, balances, transfer, change log: 5) and the display name.
SIGN_IN_STATEMENTS = 11
# A thread page: the thread (session, display names) and its messages (session, one page).
THREAD_PAGE_STATEMENTS = 4
# An ask with a cited prior: the session, the keyword half of the hybrid retrieval (in one snapshot,
# BEGIN: the readable scope's statistics, then one match per word of the question, 3 here), the priors' rows, and the answer with its citation records in one commit (version, thread,
# message, event, citations, change log: 7), the thread's followers, and the asker's notification (numbered, inserted).
ASK_STATEMENTS = 17


@pytest.fixture
async def ip(tmp_path: Path) -> AsyncIterator[InProcess]:
    async with in_process(tmp_path / "data") as server:
        yield server


@pytest.fixture
def counter(ip: InProcess) -> StatementCounter:
    with count_statements(ip.runtime) as counter:
        yield counter


async def _thread_with_posts(ip: InProcess, address: str, cookie: str, posts: int) -> str:
    async with ip.client(cookie) as http:
        thread_id: str = (await http.post("/api/threads", json={"title": "Counted"})).json()["thread_id"]
    for n in range(posts):
        await ip.runtime.writer.execute(PostMessage(address, thread_id, f"m{n}", f"message number {n}"))
    assert ip.runtime.indexer is not None
    await ip.runtime.indexer.drain()
    return thread_id


async def test_sign_in(ip: InProcess, counter: StatementCounter) -> None:
    with counter.counting() as statements:
        await ip.sign_in()
    assert len(statements) == SIGN_IN_STATEMENTS, statements


@pytest.mark.parametrize("earlier_posts", [0, 40])
async def test_post(ip: InProcess, counter: StatementCounter, earlier_posts: int) -> None:
    address, cookie = await ip.sign_in()
    thread_id = await _thread_with_posts(ip, address, cookie, earlier_posts)
    with counter.counting() as statements:
        await ip.runtime.writer.execute(PostMessage(address, thread_id, "counted", "the counted post"))
    assert len(statements) == POST_STATEMENTS, statements


@pytest.mark.parametrize("followers", [1, 12])
async def test_post_to_followers(ip: InProcess, counter: StatementCounter, followers: int) -> None:
    address, cookie = await ip.sign_in()
    thread_id = await _thread_with_posts(ip, address, cookie, 0)
    with ip.runtime.store.engine.begin() as conn:
        for n in range(followers):
            inbox.follow(conn, f"follower{n}", thread_id, True)
    with counter.counting() as statements:
        await ip.runtime.writer.execute(PostMessage(address, thread_id, "counted", "told to the followers"))
    assert len(statements) == POST_TO_FOLLOWERS_STATEMENTS, statements
    with ip.runtime.store.engine.connect() as conn:
        assert len(inbox.notifications_after(conn, "follower0", 0, 10)) == 1


@pytest.mark.parametrize("earlier_posts", [1, 40])
async def test_thread_page(ip: InProcess, counter: StatementCounter, earlier_posts: int) -> None:
    address, cookie = await ip.sign_in()
    thread_id = await _thread_with_posts(ip, address, cookie, earlier_posts)
    async with ip.client(cookie) as http:
        with counter.counting() as statements:
            assert (await http.get(f"/api/threads/{thread_id}")).status_code == 200
            assert (await http.get(f"/api/threads/{thread_id}/messages")).status_code == 200
    assert len(statements) == THREAD_PAGE_STATEMENTS, statements


async def test_ask(ip: InProcess, counter: StatementCounter) -> None:
    address, cookie = await ip.sign_in()
    thread_id = await _thread_with_posts(ip, address, cookie, 3)
    chorus = ip.runtime.chorus
    assert chorus is not None
    async with ip.client(cookie) as http:
        with counter.counting() as statements:
            response = await http.post(f"/api/threads/{thread_id}/ask", json={"prompt": "message number 1?"})
            assert response.status_code == 202
            await asyncio.gather(*chorus.running.values())
    assert len(statements) == ASK_STATEMENTS, statements
    assert sum(s.startswith("INSERT INTO citations") for s in statements) == 1  # one insert, every record
