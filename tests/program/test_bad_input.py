"""Bad input to every instruction is refused with its code and changes nothing."""

from __future__ import annotations

import copy
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

import pytest

from choir.ledger import ONE_CHOIR, SUPPLY
from choir.program import (
    AI_AUTHOR,
    CitationInput,
    CreateThread,
    Divest,
    Expire,
    Grant,
    PostMessage,
    ProgramError,
    RecordCitations,
    SetNovelty,
    SettleEpoch,
    SubmitSpec,
    Vote,
    Withdraw,
    apply,
)

BAD_AMOUNTS = [
    0,
    -1,
    -(10**30),
    1.0,
    1e9,
    float("nan"),
    float("inf"),
    "100",
    True,
    False,
    Decimal(100),
    Fraction(3),
    None,
    [1],
    b"1",
]
BAD_IDS = [
    "",
    "x" * 33,
    "é",
    "a b",
    "a/b",
    "a:b",
    "a\n",
    "\ud800",
    "a\x00",
    None,
    7,
    7.0,
    b"bytes",
    ["a"],
    True,
]
BAD_ACTORS = ["", "x" * 65, None, 5, b"alice", ["alice"], "\ud800"]
BAD_CONTENT = [
    ("", "empty_content"),
    (" \n\t", "empty_content"),
    ("x" * (16 * 1024 + 1), "content_too_large"),
    ("€" * 5462, "content_too_large"),  # 16386 bytes in fewer characters than the limit
    ("\ud800 lone surrogate", "invalid_payload"),
    ("NUL\x00inside", "invalid_payload"),
    (None, "invalid_payload"),
    (b"bytes", "invalid_payload"),
    (42, "invalid_payload"),
    (["a list"], "invalid_payload"),
]
BAD_PPM = [-1, 1_000_001, 0.5, "5", True, None]
BAD_EPOCHS = [-1, 1.0, "0", True, None, 2**200]


def _cases() -> list[tuple[str, object, str]]:
    cases: list[tuple[str, object, str]] = []

    def add(name: str, ins: object, code: str) -> None:
        cases.append((name, ins, code))

    for i, bad in enumerate(BAD_ACTORS):
        add(f"create-actor-{i}", CreateThread(bad, "new", "title"), "invalid_payload")
        add(f"post-actor-{i}", PostMessage(bad, "t", "m2", "hi"), "invalid_payload")
        add(f"submit-actor-{i}", SubmitSpec(bad, "t", "s2", "hi", ONE_CHOIR), "invalid_payload")
        add(f"vote-actor-{i}", Vote(bad, "s1", True), "invalid_payload")
        add(f"expire-actor-{i}", Expire(bad, "s1"), "invalid_payload")
        add(f"divest-actor-{i}", Divest(bad, "t"), "invalid_payload")
        add(f"cite-asker-{i}", RecordCitations("q1", bad, "t", ()), "invalid_payload")
        add(f"grant-address-{i}", Grant(bad, ONE_CHOIR, "g2"), "invalid_payload")
        add(f"withdraw-actor-{i}", Withdraw(bad, 1, "w1"), "invalid_payload")
    for i, bad in enumerate(BAD_IDS):
        add(f"create-id-{i}", CreateThread("alice", bad, "title"), "invalid_id")
        add(f"post-thread-{i}", PostMessage("alice", bad, "m2", "hi"), "invalid_id")
        add(f"post-id-{i}", PostMessage("alice", "t", bad, "hi"), "invalid_id")
        if bad is not None:  # an answer's ask_id may be absent
            add(f"answer-ask-id-{i}", PostMessage(AI_AUTHOR, "t", "a1", "hi", ask_id=bad), "invalid_id")
        add(f"submit-thread-{i}", SubmitSpec("carol", bad, "s2", "hi", ONE_CHOIR), "invalid_id")
        add(f"submit-id-{i}", SubmitSpec("carol", "t", bad, "hi", ONE_CHOIR), "invalid_id")
        add(f"vote-spec-{i}", Vote("alice", bad, True), "invalid_id")
        add(f"expire-spec-{i}", Expire("alice", bad), "invalid_id")
        add(f"divest-thread-{i}", Divest("alice", bad), "invalid_id")
        add(f"cite-ask-{i}", RecordCitations(bad, "bob", "t", ()), "invalid_id")
        add(f"cite-thread-{i}", RecordCitations("q1", "bob", bad, ()), "invalid_id")
        cited = (CitationInput(1, bad, 1),)
        add(f"cite-message-{i}", RecordCitations("q1", "bob", "t", cited), "invalid_id")
        add(f"grant-ref-{i}", Grant("dave", ONE_CHOIR, bad), "invalid_id")
        add(f"withdraw-id-{i}", Withdraw("carol", 1, bad), "invalid_id")
    for i, (bad, code) in enumerate(BAD_CONTENT):
        add(f"post-content-{i}", PostMessage("alice", "t", "m2", bad), code)
        add(f"answer-content-{i}", PostMessage(AI_AUTHOR, "t", "a1", bad, ask_id="q1"), code)
        add(f"submit-content-{i}", SubmitSpec("carol", "t", "s2", bad, ONE_CHOIR), code)
    for i, bad in enumerate(BAD_AMOUNTS):
        add(f"submit-stake-{i}", SubmitSpec("carol", "t", "s2", "hi", bad), "invalid_amount")
        add(f"grant-amount-{i}", Grant("dave", bad, "g2"), "invalid_amount")
        add(f"withdraw-amount-{i}", Withdraw("carol", bad, "w1"), "invalid_amount")
    for i, bad in enumerate(BAD_PPM):
        add(f"set-novelty-{i}", SetNovelty("m1", bad), "invalid_payload")
        cited = (CitationInput(1, "m1", bad),)
        add(f"cite-score-{i}", RecordCitations("q1", "bob", "t", cited), "invalid_payload")
        add(
            f"answer-score-{i}",
            PostMessage(AI_AUTHOR, "t", "a1", "x", ask_id="q", citations=cited),
            "invalid_payload",
        )
        if bad is not None:  # a post's novelty may be None: measured after publication (SetNovelty)
            add(f"post-novelty-{i}", PostMessage("alice", "t", "m2", "hi", bad), "invalid_payload")
            add(
                f"submit-novelty-{i}", SubmitSpec("carol", "t", "s2", "hi", ONE_CHOIR, bad), "invalid_payload"
            )
    for i, bad in enumerate(BAD_EPOCHS):
        add(f"settle-epoch-{i}", SettleEpoch(bad), "epoch_not_ended" if bad == 2**200 else "invalid_payload")
    for i, bad in enumerate(
        [
            None,
            "t",
            5,
            (1, 2),
            ("m1",),
            [CitationInput(0, "m1", 1)],
            (CitationInput("1", "m1", 1),),
            (CitationInput(1, "m1", 1),) * 65,
        ]
    ):
        add(f"cite-list-{i}", RecordCitations("q1", "bob", "t", bad), "invalid_payload")
        add(f"answer-citations-{i}", PostMessage(AI_AUTHOR, "t", "a1", "x", citations=bad), "invalid_payload")
    for i, bad in enumerate(["", "  ", None, 5, "t" * 201, "\ud800", "a\x00b"]):
        add(f"create-title-{i}", CreateThread("alice", "new", bad), "invalid_payload")
    for i, bad in enumerate(["secret", None, 1, "PUBLIC", ["public"]]):
        add(f"create-visibility-{i}", CreateThread("alice", "new", "title", bad), "invalid_payload")
    for i, bad in enumerate([1, "yes", None, 0.0]):
        add(f"vote-approve-{i}", Vote("alice", "s1", bad), "invalid_payload")

    # Well-formed, but naming what does not exist.
    add("post-unknown-thread", PostMessage("alice", "nope", "m2", "hi"), "thread_not_found")
    add("submit-unknown-thread", SubmitSpec("carol", "nope", "s2", "hi", ONE_CHOIR), "thread_not_found")
    add("vote-unknown-spec", Vote("alice", "nope", True), "spec_not_found")
    add("expire-unknown-spec", Expire("alice", "nope"), "spec_not_found")
    add("divest-unknown-thread", Divest("alice", "nope"), "thread_not_found")
    add("cite-unknown-thread", RecordCitations("q1", "bob", "nope", ()), "thread_not_found")
    add(
        "cite-unknown-message",
        RecordCitations("q1", "bob", "t", (CitationInput(1, "nope", 1),)),
        "message_not_found",
    )
    # Amounts the ledger cannot move.
    add("grant-beyond-supply", Grant("dave", SUPPLY + 1, "g2"), "invalid_amount")
    add("grant-beyond-treasury", Grant("dave", 8 * 10**18, "g2"), "insufficient_funds")
    add("withdraw-beyond-balance", Withdraw("carol", 10**30, "w1"), "insufficient_funds")
    add("submit-beyond-balance", SubmitSpec("carol", "t", "s2", "hi", SUPPLY), "insufficient_funds")
    # Not an instruction at all.
    add("not-an-instruction", "CreateThread", "invalid_payload")
    add("none-instruction", None, "invalid_payload")
    return cases


CASES = _cases()


@pytest.fixture
def base_world(world):
    """alice's thread ``t`` with message ``m1``; carol funded with a pending spec ``s1``."""
    world.create("t", "alice")
    world.do(PostMessage("alice", "t", "m1", "a first message"))
    world.fund("carol", 10 * ONE_CHOIR)
    world.do(SubmitSpec("carol", "t", "s1", "let me in", ONE_CHOIR))
    world.advance(60)
    return world


@pytest.mark.parametrize(("ins", "code"), [(i, c) for _, i, c in CASES], ids=[n for n, _, _ in CASES])
def test_bad_input_is_refused_and_changes_nothing(base_world, ins: object, code: str) -> None:
    state = copy.deepcopy(base_world.state)
    snapshot = copy.deepcopy(state)
    with pytest.raises(ProgramError) as caught:
        apply(state, ins, base_world.now)  # type: ignore[arg-type]
    assert caught.value.code == code, caught.value
    assert caught.value.message  # a clear reason, not just a code
    assert state == snapshot


def test_a_naive_time_is_a_programming_error(base_world) -> None:
    state = copy.deepcopy(base_world.state)
    snapshot = copy.deepcopy(state)
    with pytest.raises(ValueError, match="naive"):
        apply(state, Grant("dave", 1, "g2"), datetime(2030, 1, 2))  # naive on purpose
    assert state == snapshot
