"""Privacy as non-interference: what an outsider observes does not depend on what a private thread holds.

Two servers are built that differ only in a private thread: its title, its messages' text, and which
person joined it as a co-author. The same outsider, Mallory, then goes through every REST route and
every ``/ws`` frame type a person can send (completion, search by words and by meaning, asks, a spec to
the private thread, notifications, proofs, stats, the ledger) and everything she observes is recorded.
Her two records must be equal up to ids and times. Hypothesis chooses what the private thread holds.

The frames go through the real ``Session`` (parsing, dispatch, the actions, the hub) of the real app;
the socket transport itself is covered by the real-socket tests. Each channel an attack found is an
explicit example: completion scoped to the thread, the spec's outcome naming the title, a spec whose
text is already in the thread (the duplicate oracle), keyword ranking with statistics of the private
thread, and ids that answered otherwise when private than when absent."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from inproc import Frames, InProcess, in_process
from nacl.signing import SigningKey

PEOPLE = ("alice", "carol", "dave", "mallory")
KEYS = {name: SigningKey(bytes([i + 1]) * 32) for i, name in enumerate(PEOPLE)}
PRIVATE = "hush"
OPEN = "open"
# Words both the private thread and Mallory's public posts may hold: the keyword-ranking channel.
WORDS = ("sungold", "basil", "pepper", "garlic", "onion", "tomato")
ONE_CHOIR = 10**9
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
EXAMPLES = int(os.environ.get("CHOIR_NONINTERFERENCE_EXAMPLES", "6"))

# A private thread's title, its two messages, and who joined it.
Secret = tuple[str, tuple[str, str], str]
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
_HEX_ID = re.compile(r"\b[0-9a-f]{16,64}\b")


async def _sign_in(ip: InProcess, name: str) -> tuple[str, str]:
    address, cookie = await ip.sign_in(KEYS[name])
    async with ip.client(cookie) as http:
        assert (await http.patch("/api/me", json={"display_name": name.title()})).status_code == 200
    return address, cookie


async def _settle_asks(ip: InProcess) -> None:
    chorus = ip.runtime.chorus
    assert chorus is not None
    await asyncio.gather(*chorus.running.values())


async def _world(tmp: Path, title: str, texts: tuple[str, str], joiner: str, probe: Secret) -> list[str]:
    """Build the world, run Mallory through it with her guesses (``probe``: one world's secret, the
    same in both runs), and return what she observed (normalised)."""
    guess_title, guess_texts, _ = probe
    guess = guess_texts[0]
    # One fixed time: figures that depend on a thread's age (the recommended stake) are then equal.
    async with in_process(tmp / "data", clock=lambda: NOW) as ip:
        who = {name: await _sign_in(ip, name) for name in PEOPLE}
        address = {name: a for name, (a, _c) in who.items()}
        cookie = {name: c for name, (_a, c) in who.items()}
        alice = Frames(ip, address["alice"])
        # Alice's private thread, its messages, and a co-author who joined by a spec she approved.
        async with ip.client(cookie["alice"]) as http:
            made = await http.post(
                "/api/threads", json={"thread_id": PRIVATE, "title": title, "visibility": "private"}
            )
            assert made.status_code == 201, made.text
        for text in texts:
            assert (await alice.request("post", {"thread_id": PRIVATE, "content": text}))["type"] == "ack"
        joining = Frames(ip, address[joiner])
        spec = await joining.request(
            "spec.submit", {"thread_id": PRIVATE, "content": f"let me in, {joiner}", "stake": str(ONE_CHOIR)}
        )
        assert spec["type"] == "ack", spec
        voted = await alice.request("spec.vote", {"spec_id": spec["payload"]["spec_id"], "approve": True})
        assert voted["type"] == "ack", voted
        mentions = await joining.request("post", {"thread_id": PRIVATE, "content": "@Alice hello in here"})
        assert mentions["type"] == "ack"
        private_message = mentions["payload"]["message_id"]

        seen: list[Any] = []
        mallory = Frames(ip, address["mallory"])
        async with ip.client(cookie["mallory"]) as http:

            async def get(path: str, **params: Any) -> None:
                response = await http.get(path, params=params)
                seen.append([path, params, response.status_code, response.json()])

            # Mallory's own public thread, with posts holding the words the private thread may hold.
            made = await http.post("/api/threads", json={"thread_id": OPEN, "title": "Kitchen garden"})
            assert made.status_code == 201
            # Each word once, in a post of its own: in public every word is as rare as the next, so
            # keyword ranking by statistics that counted the private thread would order them by it.
            for word in WORDS:
                seen.append(
                    await mallory.request("post", {"thread_id": OPEN, "content": f"only {word} here"})
                )
            # A spec to the private thread whose text is (in one world) already there.
            seen.append(
                await mallory.request(
                    "spec.submit", {"thread_id": PRIVATE, "content": guess, "stake": str(ONE_CHOIR)}
                )
            )
            indexer = ip.runtime.indexer
            assert indexer is not None
            await indexer.drain(30.0)  # her posts are found by meaning too, in both worlds alike
            # Every route a reader may call.
            await get("/api/threads")
            for path in (f"/api/threads/{PRIVATE}", f"/api/threads/{PRIVATE}/messages"):
                await get(path)
            for path in ("", "/versions", "/proof"):
                await get(f"/api/messages/{private_message}{path}")
            for q in ("a", "c", "d", "m"):
                await get("/api/people", q=q)
                await get("/api/people", q=q, thread_id=PRIVATE)
            pairs = [f"{a} {b}" for a, b in itertools.pairwise(WORDS)]
            for q in (*WORDS, *pairs, *guess_title.split()[:2]):
                for mode in ("hybrid", "vector"):
                    await get("/api/search", q=q, mode=mode)
            await get("/api/accounts/" + address["mallory"])
            await get("/api/ledger")
            asked = await http.post(f"/api/threads/{PRIVATE}/ask", json={"prompt": guess})
            seen.append(["ask private", asked.status_code, asked.json()])
            asked = await http.post(f"/api/threads/{OPEN}/ask", json={"prompt": f"what about {guess}?"})
            seen.append(["ask open", asked.status_code])
            await _settle_asks(ip)  # one answer at a time: two would land in either order

        # Every frame type, aimed at the private thread where it names one.
        for kind, payload in (
            ("subscribe", {"thread_id": PRIVATE}),
            ("subscribe", {"thread_id": PRIVATE, "since_seq": 0}),
            ("unsubscribe", {"thread_id": PRIVATE}),
            ("post", {"thread_id": PRIVATE, "content": "let me see"}),
            ("message.edit", {"message_id": private_message, "content": "mine now"}),
            ("message.delete", {"message_id": private_message}),
            ("spec.vote", {"spec_id": spec["payload"]["spec_id"], "approve": True}),
            ("thread.divest", {"thread_id": PRIVATE}),
            ("thread.follow", {"thread_id": PRIVATE, "follow": True}),
            ("thread.read", {"thread_id": PRIVATE, "seq": 3}),
            ("ask", {"thread_id": PRIVATE, "prompt": guess_texts[1]}),
            ("ask", {"thread_id": OPEN, "prompt": f"and {guess_texts[1]}?"}),
            ("withdraw", {"amount": "1"}),
            ("ping", {}),
        ):
            seen.append([kind, await mallory.request(kind, payload)])
        await _settle_asks(ip)
        # Alice denies Mallory's spec: its outcome reaches Mallory.
        async with ip.client(cookie["alice"]) as http:
            page = (await http.get(f"/api/threads/{PRIVATE}")).json()
        mine = [s["spec_id"] for s in page["pending_specs"] if s["author"] == address["mallory"]]
        assert len(mine) == 1
        assert (await alice.request("spec.vote", {"spec_id": mine[0], "approve": False}))["type"] == "ack"

        seen.append(["notifications", await mallory.request("notifications.subscribe", {"since_id": 0})])
        seen.append(["read", await mallory.request("notifications.read", {"up_to_id": 1000})])
        async with ip.client(cookie["mallory"]) as http:
            for path in (
                "/api/notifications",
                "/api/inbox",
                "/api/me",
                f"/api/threads/{OPEN}/messages",
                "/api/stats",
                "/api/treasury",
                "/api/threads",
            ):
                response = await http.get(path)
                seen.append([path, response.status_code, response.json()])
        # Every event that reached Mallory's connection, in order (her thread's, her notifications).
        seen.extend(sorted(_normalised([f for f in mallory.sent if f.get("type") == "event"])))
    return _normalised(seen)


def _normalised(seen: list[Any]) -> list[str]:
    """Each observation as text, its ids and times blanked (they differ between any two runs)."""
    return [_HEX_ID.sub("<id>", _TIME.sub("<time>", json.dumps(s, sort_keys=True))) for s in seen]


def _observe(secret: Secret, probe: Secret) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="choir-ni-") as tmp:
        return asyncio.run(_world(Path(tmp), *secret, probe))


_text = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join)
secrets = st.tuples(
    st.text(alphabet="abcdefghij ", min_size=3, max_size=20).map(lambda t: t.strip() or "secret"),
    st.tuples(_text.map(lambda t: t + " one"), _text.map(lambda t: t + " two")),
    st.sampled_from(("carol", "dave")),
)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(first=secrets, second=secrets)
# The spec whose text is in one thread and not the other; the co-author lists differ; a rare word
# (sungold) is in one private thread only, and the keyword ranking must not show it.
@example(
    first=("tomato plans", ("sungold sungold one", "basil two"), "carol"),
    second=("garden", ("onion one", "garlic pepper two"), "dave"),
)
def test_an_outsider_observes_the_same_whatever_a_private_thread_holds(first: Secret, second: Secret) -> None:
    # Mallory guesses the first world's secret: right in one world, wrong in the other.
    one, other = _observe(first, first), _observe(second, first)
    assert len(one) == len(other)
    differ = [(a, b) for a, b in zip(one, other, strict=True) if a != b]
    assert not differ, "the outsider told the worlds apart:\n" + "\n".join(f"{a}\n{b}\n" for a, b in differ)


def test_a_message_deleted_after_its_spec_leaves_no_copy_of_its_text() -> None:
    """A message that came in by an approved spec, deleted by its author: the replayed `spec.submitted`
    event, the spec's row and every other stored copy lose its text (the audit stays clean)."""
    from choir.ops.audit import audit

    secret = "the door code is 4821"

    async def run(tmp: Path) -> None:
        async with in_process(tmp / "data") as ip:
            who = {name: await _sign_in(ip, name) for name in ("alice", "carol", "mallory")}
            alice, carol = Frames(ip, who["alice"][0]), Frames(ip, who["carol"][0])
            async with ip.client(who["alice"][1]) as http:
                assert (
                    await http.post("/api/threads", json={"thread_id": OPEN, "title": "Door"})
                ).status_code == 201
            spec = await carol.request(
                "spec.submit", {"thread_id": OPEN, "content": secret, "stake": str(ONE_CHOIR)}
            )
            spec_id = spec["payload"]["spec_id"]
            assert (await alice.request("spec.vote", {"spec_id": spec_id, "approve": True}))["type"] == "ack"
            deleted = await carol.request("message.delete", {"message_id": spec_id})
            assert deleted["type"] == "ack", deleted
            mallory = Frames(ip, who["mallory"][0])
            assert (await mallory.request("subscribe", {"thread_id": OPEN, "since_seq": 0}))["type"] == "ack"
            for _ in range(100):
                if any(f.get("payload", {}).get("kind") == "message.deleted" for f in mallory.sent):
                    break
                await asyncio.sleep(0.01)
            replayed = [f for f in mallory.sent if f.get("type") == "event"]
            kinds = [f["payload"]["kind"] for f in replayed]
            assert "spec.submitted" in kinds and "message.deleted" in kinds, kinds
            assert secret not in json.dumps(replayed)
            runtime = ip.runtime
            assert runtime.writer.snapshot().specs[spec_id].content == ""
            with runtime.store.engine.connect() as conn:
                from sqlalchemy import text

                stored = [str(r) for r in conn.execute(text("SELECT * FROM specs")).all()]
                stored += [str(r) for r in conn.execute(text("SELECT data FROM events")).all()]
            assert not [row for row in stored if "4821" in row]
            indexer = runtime.indexer
            assert indexer is not None
            await indexer.drain(30.0)
            report = await asyncio.to_thread(audit, runtime.store, runtime.index)
            assert report.ok, report.to_json()

    with tempfile.TemporaryDirectory(prefix="choir-ni-") as tmp:
        asyncio.run(run(Path(tmp)))
