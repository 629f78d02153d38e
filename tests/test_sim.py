"""The simulator: deterministic by seed, checks invariants every step, names seed and step on failure."""

from __future__ import annotations

import subprocess
import sys

import pytest

from choir.ledger import SUPPLY, Transfer, TransferKind
from choir.ops import simulate as sim
from choir.program import tx as tx_module


def test_a_run_holds_every_invariant_and_reports_by_kind() -> None:
    report = sim.simulate(seed=7, steps=3000, actors=12)
    assert sum(report.balances_by_class.values()) == SUPPLY
    assert report.applied["PostMessage"] > 0 and report.applied["SettleEpoch"] > 0
    # Invalid instructions are generated and refused with their codes.
    for code in ("not_co_author", "invalid_amount", "already_voted", "not_voter", "insufficient_funds"):
        assert any(k.endswith(":" + code) for k in report.refused), code
    lines = report.lines()
    assert lines[-1] == "every invariant held after every step"


def test_the_same_seed_replays_the_same_run() -> None:
    first, second = sim.simulate(3, 1500, 8), sim.simulate(3, 1500, 8)
    assert first.lines() == second.lines()
    assert sim.simulate(4, 1500, 8).lines() != first.lines()


def test_a_broken_rule_is_caught_with_its_seed_and_step(monkeypatch: pytest.MonkeyPatch) -> None:
    real_pay = tx_module.Tx.pay

    def leaky_pay(self: tx_module.Tx, debit: str, credit: str, amount: int, kind: TransferKind, ref: str):  # type: ignore[no-untyped-def]
        moved = real_pay(self, debit, credit, amount, kind, ref)
        if kind is TransferKind.STAKE and self.transfers:
            # A bug that over-funds the escrow: it then holds more than the spec's stake.
            t = self.transfers[-1]
            self.transfers.append(Transfer(t.id + 1, "treasury", t.credit, 1, t.kind, t.ref, t.at))
        return moved

    monkeypatch.setattr(tx_module.Tx, "pay", leaky_pay)
    with pytest.raises(sim.SimulationFailure) as caught:
        sim.simulate(seed=5, steps=3000, actors=10)
    message = str(caught.value)
    assert "seed 5 step" in message and "choir simulate --seed 5 --steps" in message


def test_cli_prints_a_summary_and_rejects_bad_flags() -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "choir", "simulate", "--seed", "1", "--steps", "500", "--actors", "5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert "every invariant held after every step" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "choir", "simulate", "--steps", "zero"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "steps" in bad.stderr


def test_the_default_run_reaches_divests_and_expiries() -> None:
    """The default run crosses the 7-day divest lock and spec lifetime: both are applied, not only refused."""
    report = sim.simulate(seed=1, steps=10_000, actors=20)
    assert report.simulated_days > 14
    assert report.applied["Divest"] > 0 and report.applied["Expire"] > 0
    assert report.applied["SettleEpoch"] > 0 and report.applied["Withdraw"] > 0
