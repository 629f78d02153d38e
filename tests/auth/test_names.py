"""Names that cannot impersonate: display names unique under case folding and Unicode's confusables
(UTS #39 skeletons), a newcomer's clash refused with ``name_taken`` (409), and a mention that names
only the exact holder, never a look-alike. On SQLite and PostgreSQL, through the real server."""

from __future__ import annotations

import unicodedata

import pytest
from harness import Server, User
from hypothesis import assume, given
from hypothesis import strategies as st

from choir.store.names import _table, name_digests, name_keys, same_name

# Pairs a reader cannot tell apart (or tells apart only by case).
LOOK_ALIKES = [
    ("alice", "аlice"),  # Cyrillic а
    ("alice", "ALICE"),
    ("Iron", "lron"),  # capital I, small l
    ("paypal", "paypa1"),
    ("Bob", "B0b"),
    ("mary", "rnary"),
    ("mary", "ｍary"),  # fullwidth m
    ("alice", "al\u200bice"),  # a zero-width space
    ("Straße", "STRASSE"),
    ("ΑΒΓ", "ABΓ"),  # Greek capitals alpha and beta
]
DIFFERENT = [("alice", "bob"), ("Ana", "Anna"), ("bob", "bób"), ("eve", "eva")]


def clash(a: str, b: str) -> bool:
    return any(x == y for x, y in zip(name_digests(a), name_digests(b), strict=True))


@pytest.mark.parametrize(("a", "b"), LOOK_ALIKES)
def test_look_alike_names_clash(a: str, b: str) -> None:
    assert clash(a, b)
    assert any(x == y for x, y in zip(name_keys(a), name_keys(b), strict=True))


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_names_do_not(a: str, b: str) -> None:
    assert not clash(a, b)


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=32)


@given(names)
def test_a_name_clashes_with_itself_in_another_case(name: str) -> None:
    # What folding cannot undo (a dotless ı is not an i's lower case) is outside the promise.
    assume(name.upper().casefold() == name.casefold() == name.lower().casefold())
    assert clash(name, name.upper()) and clash(name, name.lower())


@given(names, st.data())
def test_a_look_alike_swapped_in_clashes(name: str, data: st.DataObject) -> None:
    # Replace one character by one of Unicode's look-alikes of it: the name still clashes.
    table = _table()
    spots = [i for i, ch in enumerate(name) if ch in table and unicodedata.normalize("NFD", ch) == ch]
    assume(spots)
    i = data.draw(st.sampled_from(spots))
    twins = [
        ch for ch, key in table.items() if key == table[name[i]] and unicodedata.normalize("NFD", ch) == ch
    ]
    twin = data.draw(st.sampled_from(twins))
    assert clash(name, name[:i] + twin + name[i + 1 :])


@given(names)
def test_exact_names_are_the_same_name(name: str) -> None:
    assert same_name(name, name)
    assume(name.casefold() == name.upper().casefold())
    assert same_name(name, name.upper())


async def rename(user: User, name: str) -> tuple[int, dict[str, str]]:
    async with user.http() as http:
        response = await http.patch("/api/me", json={"display_name": name})
        return response.status_code, response.json()


async def test_a_look_alike_of_a_held_name_is_refused(server: Server) -> None:
    alice, mallory = User(server), User(server)
    await alice.sign_in()
    await mallory.sign_in()
    assert (await rename(alice, "alice"))[0] == 200
    for impostor in ("аlice", "ALICE", "a1ice", "ａlice"):
        status, body = await rename(mallory, impostor)
        assert status == 409 and body["code"] == "name_taken", (impostor, body)
        assert "choose another" in body["message"]
    async with mallory.http() as http:
        assert (await http.get("/api/me")).json()["display_name"] != "alice"  # nothing changed
    # The holder may recase their own name; once they let it go, it is free.
    assert (await rename(alice, "Alice"))[0] == 200
    assert (await rename(alice, "alicia"))[0] == 200
    assert (await rename(mallory, "аlice"))[0] == 200


async def test_a_mention_names_the_exact_holder_only(server: Server) -> None:
    alice, bob, mallory = User(server), User(server), User(server)
    for user in (alice, bob, mallory):
        await user.sign_in()
    assert (await rename(alice, "alice"))[0] == 200
    assert (await rename(mallory, "mallory"))[0] == 200
    thread = (await bob.create_thread("Mentions"))["thread_id"]
    async with bob.socket() as ws:
        for content in ("hi @Alice", "and @аlice, with a Cyrillic а", "or @a1ice"):
            assert (await ws.request("post", {"thread_id": thread, "content": content}))["type"] == "ack"
    async with alice.http() as http:
        told = (await http.get("/api/notifications")).json()["notifications"]
    assert [n["kind"] for n in told] == ["mention"]  # @Alice only: the look-alikes name nobody
    async with mallory.http() as http:
        assert (await http.get("/api/notifications")).json()["notifications"] == []
