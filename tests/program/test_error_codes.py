"""Every error code of the program is reachable, and each has a scenario here that
produces exactly it and changes nothing."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from choir.ledger import ONE_CHOIR, SUPPLY
from choir.program import (
    AI_AUTHOR,
    ERROR_CODES,
    CitationInput,
    CreateThread,
    DeleteMessage,
    Divest,
    EditMessage,
    Expire,
    Grant,
    PostAnswer,
    PostMessage,
    ProgramError,
    RecordCitations,
    SetNovelty,
    SettleEpoch,
    SubmitSpec,
    Vote,
    Withdraw,
)
from choir.program import errors as errors_module

WEEK_S = 7 * 24 * 3600
# Categories group the codes below them; the program raises their children, never them.
CATEGORIES = {"program_error", "not_found", "conflict", "spec_closed", "limit_reached"}

Scenario = Callable[..., object]
SCENARIOS: dict[str, Scenario] = {}


def scenario(code: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        SCENARIOS[code] = fn
        return fn

    return register


@scenario("invalid_payload")
def _(world) -> None:
    world.refuse(CreateThread("alice", "t", "title", "secret"), "invalid_payload")


@scenario("invalid_id")
def _(world) -> None:
    world.refuse(CreateThread("alice", "x" * 33, "title"), "invalid_id")


@scenario("invalid_amount")
def _(world) -> None:
    world.refuse(Grant("bob", 1.5, "g1"), "invalid_amount")


@scenario("empty_content")
def _(world) -> None:
    world.create()
    world.refuse(PostMessage("alice", "t", "m1", "   "), "empty_content")


@scenario("content_too_large")
def _(world) -> None:
    world.create()
    world.refuse(PostMessage("alice", "t", "m1", "x" * 16385), "content_too_large")


@scenario("thread_not_found")
def _(world) -> None:
    world.refuse(PostMessage("alice", "t", "m1", "hi"), "thread_not_found")


@scenario("spec_not_found")
def _(world) -> None:
    world.refuse(Vote("alice", "s1", True), "spec_not_found")


@scenario("message_not_found")
def _(world) -> None:
    world.create()
    world.refuse(RecordCitations("q1", "bob", "t", (CitationInput(1, "m1", 1),)), "message_not_found")


@scenario("thread_exists")
def _(world) -> None:
    world.create()
    world.refuse(CreateThread("bob", "t", "mine"), "thread_exists")


@scenario("message_exists")
def _(world) -> None:
    world.create()
    world.do(PostMessage("alice", "t", "m1", "hi"))
    world.refuse(PostMessage("alice", "t", "m1", "hello"), "message_exists")


@scenario("spec_exists")
def _(world) -> None:
    world.create()
    spec_id = world.submit("bob")
    world.fund("carol")
    world.refuse(SubmitSpec("carol", "t", spec_id, "me", ONE_CHOIR), "spec_exists")


@scenario("duplicate_content")
def _(world) -> None:
    world.create()
    world.do(PostMessage("alice", "t", "m1", "hi"))
    world.refuse(PostMessage("alice", "t", "m2", "hi"), "duplicate_content")


@scenario("transfer_id_conflict")
def _(world) -> None:
    world.do(Grant("bob", ONE_CHOIR, "welcome-bob"))
    world.do(Grant("bob", ONE_CHOIR, "welcome-bob"))  # the same again: paid once
    assert world.user("bob") == ONE_CHOIR
    world.refuse(Grant("bob", 2 * ONE_CHOIR, "welcome-bob"), "transfer_id_conflict")


@scenario("forbidden")
def _(world) -> None:
    world.create()
    world.refuse(SubmitSpec(AI_AUTHOR, "t", "s1", "me", ONE_CHOIR), "forbidden")


@scenario("not_co_author")
def _(world) -> None:
    world.create()
    world.refuse(PostMessage("bob", "t", "m1", "hi"), "not_co_author")


@scenario("already_co_author")
def _(world) -> None:
    world.create()
    world.fund("alice")
    world.refuse(SubmitSpec("alice", "t", "s1", "me", ONE_CHOIR), "already_co_author")


@scenario("not_voter")
def _(world) -> None:
    world.create()
    spec_id = world.submit("bob")
    world.refuse(Vote("carol", spec_id, True), "not_voter")


@scenario("last_co_author")
def _(world) -> None:
    world.create()
    world.advance(WEEK_S)
    world.refuse(Divest("alice", "t"), "last_co_author")


@scenario("divest_too_soon")
def _(world) -> None:
    world.create()
    world.join("bob")
    world.refuse(Divest("bob", "t"), "divest_too_soon")


@scenario("already_voted")
def _(world) -> None:
    world.group(["alice", "bob"])
    spec_id = world.submit("carol")
    world.do(Vote("alice", spec_id, True))
    world.refuse(Vote("alice", spec_id, True), "already_voted")


@scenario("spec_expired")
def _(world) -> None:
    world.create()
    spec_id = world.submit("bob")
    world.advance(WEEK_S)
    world.refuse(Vote("alice", spec_id, True), "spec_expired")


@scenario("spec_not_pending")
def _(world) -> None:
    world.create()
    spec_id = world.submit("bob")
    world.do(Vote("alice", spec_id, False))
    world.refuse(Expire("alice", spec_id), "spec_not_pending")


@scenario("spec_not_expired")
def _(world) -> None:
    world.create()
    spec_id = world.submit("bob")
    world.refuse(Expire("alice", spec_id), "spec_not_expired")


@scenario("thread_full")
def _(world) -> None:
    world.group([f"a{i}" for i in range(10)])
    world.fund("late")
    world.refuse(SubmitSpec("late", "t", "s-late", "me", ONE_CHOIR), "thread_full")


@scenario("too_many_pending_specs")
def _(world) -> None:
    world.create()
    for i in range(20):
        world.submit(f"p{i}")
    world.fund("late")
    world.refuse(SubmitSpec("late", "t", "s-late", "me", ONE_CHOIR), "too_many_pending_specs")


@scenario("rate_limited")
def _(world) -> None:
    for i in range(10):
        world.create(f"t{i}")
    world.refuse(CreateThread("alice", "t10", "more"), "rate_limited")


@scenario("stake_too_low")
def _(world) -> None:
    world.create()
    world.fund("bob")
    world.refuse(SubmitSpec("bob", "t", "s1", "me", ONE_CHOIR - 1), "stake_too_low")


@scenario("insufficient_funds")
def _(world) -> None:
    world.refuse(Withdraw("bob", 1, "w1"), "insufficient_funds")
    world.refuse(Grant("bob", SUPPLY - 1, "g1"), "insufficient_funds")  # more than the treasury holds


@scenario("epoch_not_ended")
def _(world) -> None:
    world.refuse(SettleEpoch(0), "epoch_not_ended")


@scenario("novelty_pending")
def _(world) -> None:
    world.do(CreateThread("alice", "t", "title"))
    world.do(PostMessage("alice", "t", "m1", "being measured", None))
    world.advance(world.params.epoch_seconds)
    world.refuse(SettleEpoch(0), "novelty_pending")


@scenario("novelty_set")
def _(world) -> None:
    world.do(CreateThread("alice", "t", "title"))
    world.do(PostMessage("alice", "t", "m1", "measured already"))
    world.refuse(SetNovelty("m1", 5), "novelty_set")


@scenario("not_author")
def _(world) -> None:
    world.do(CreateThread("alice", "t", "title"))
    world.do(PostMessage("alice", "t", "m1", "mine"))
    world.refuse(EditMessage("bob", "m1", "yours now"), "not_author")
    world.refuse(DeleteMessage("bob", "m1"), "not_author")


@scenario("message_deleted")
def _(world) -> None:
    world.do(CreateThread("alice", "t", "title"))
    world.do(PostMessage("alice", "t", "m1", "soon gone"))
    world.do(DeleteMessage("alice", "m1"))
    world.refuse(EditMessage("alice", "m1", "back"), "message_deleted")
    world.refuse(DeleteMessage("alice", "m1"), "message_deleted")


@scenario("answer_changed")
def _(world) -> None:
    world.do(CreateThread("alice", "t", "title"))
    world.do(PostMessage("alice", "t", "m1", "quoted soon"))
    world.do(PostAnswer("q1", "alice", "t", "a1", "> quoted soon [1]", (CitationInput(1, "m1", 900_000),)))
    world.refuse(DeleteMessage("alice", "m1", (("a1", 2, "> removed [1]"),)), "answer_changed")


@scenario("unchanged")
def _(world) -> None:
    world.do(CreateThread("alice", "t", "title"))
    world.do(PostMessage("alice", "t", "m1", "as it is"))
    world.refuse(EditMessage("alice", "m1", "as it is"), "unchanged")


@pytest.mark.parametrize("code", sorted(SCENARIOS))
def test_scenario_produces_its_code(world, code: str) -> None:
    SCENARIOS[code](world)


def test_every_code_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(ERROR_CODES) - CATEGORIES


def test_categories_only_group_codes() -> None:
    for code in CATEGORIES:
        assert ERROR_CODES[code].__subclasses__(), f"{code} groups nothing: it should be raised or removed"


def test_codes_are_stable_snake_case_and_distinct() -> None:
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", code) for code in ERROR_CODES)
    assert len({cls for cls in ERROR_CODES.values()}) == len(ERROR_CODES)
    assert all(ERROR_CODES[c].code == c and issubclass(ERROR_CODES[c], ProgramError) for c in ERROR_CODES)


def test_the_drawn_hierarchy_matches_the_classes() -> None:
    drawn = {}
    for line in (errors_module.__doc__ or "").splitlines():
        if m := re.search(r"([A-Z][A-Za-z]+)(?:\s+([a-z_]+))?\s*$", line):
            drawn[m.group(1)] = m.group(2)
    classes = {cls.__name__: cls for cls in ERROR_CODES.values()}
    assert set(drawn) == set(classes)
    assert all(code is None or classes[name].code == code for name, code in drawn.items())
