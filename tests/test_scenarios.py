"""Incentive attacks, simulated with bounds (choir simulate --scenario): each bound holds, and the
numbers behind it are the ones the rules promise."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from choir.cli import app as cli
from choir.ops import scenarios
from choir.ops.scenarios import SCENARIOS


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_attack_stays_within_its_bound(name: str) -> None:
    bound = SCENARIOS[name]()
    assert bound.holds, bound.line()
    assert bound.scenario == name


def test_duplicates_earn_nothing_beyond_the_one_original() -> None:
    bound = scenarios.duplicate_spam()
    v = bound.values
    assert v["refused"] == 20 and 0 < v["paid"] <= v["fair"] + 1


def test_splitting_into_sybils_never_beats_the_uncapped_share() -> None:
    bound = scenarios.sybil(identities=8)
    v = bound.values
    assert v["single"] <= v["budget"] // 5  # one name is capped at 20%
    assert (
        v["single"] < v["split"] <= v["uncapped"]
    )  # splitting evades the cap, never beyond the posts' share


def test_a_broken_bound_fails_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = scenarios.Bound("rounding", "planted", "minted 1", "never mints", holds=False)
    monkeypatch.setitem(SCENARIOS, "rounding", lambda: broken)
    result = CliRunner().invoke(cli, ["simulate", "--scenario", "rounding"])
    assert result.exit_code == 1 and "BROKEN" in result.output


def test_the_command_plays_all_and_refuses_an_unknown_name() -> None:
    result = CliRunner().invoke(cli, ["simulate", "--scenario", "all"])
    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in result.output.splitlines()] == list(SCENARIOS)
    unknown = CliRunner().invoke(cli, ["simulate", "--scenario", "nope"])
    assert unknown.exit_code == 2
