"""Analytics on a simulated store, checked against what the simulation itself did: the
activity per day, the rewards per epoch, the most-cited priors, and each thread's
balance, co-authors, temperature and recommended stake at the end of every day."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import OPERATOR_KEY, Server, User, run_server
from typer.testing import CliRunner

from choir.cli import app as cli
from choir.ledger import TREASURY, TransferKind, thread_account
from choir.ops.analytics import Stats, day_of, sample_times, stats, treasury
from choir.ops.simulate import Simulator
from choir.program import (
    Instruction,
    Outcome,
    PostMessage,
    ProgramError,
    SubmitSpec,
    Visibility,
    Vote,
    recommended_stake,
)
from choir.store.sql import Store

STEPS = 2500
# Four minutes between instructions on average: the run spans about a week of simulated days.
MEAN_GAP_S = 240.0


@dataclass
class Truth:
    """What the simulation did, recorded as it ran (independently of the store)."""

    people: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    messages: Counter[str] = field(default_factory=Counter)
    citations: Counter[str] = field(default_factory=Counter)
    cited: Counter[str] = field(default_factory=Counter)
    epoch_paid: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    # At each UTC midnight crossed: thread -> (balance, messages, co-authors).
    midnights: dict[datetime, dict[str, tuple[int, int, int]]] = field(default_factory=dict)
    treasury_in: Counter[str] = field(default_factory=Counter)
    treasury_out: Counter[str] = field(default_factory=Counter)

    def record(self, instruction: object, outcome: Outcome, now: datetime) -> None:
        day = day_of(now)
        for m in outcome.messages:
            self.messages[day] += 1
            self.people[day].add(m.author)
        if isinstance(instruction, Vote | SubmitSpec | PostMessage):
            self.people[day].add(instruction.actor)
        self.citations[day] += len(outcome.citations)
        self.cited.update(c.message_id for c in outcome.citations)
        for e in outcome.epochs:
            rewards = [t for t in outcome.transfers if t.ref == f"epoch:{e.epoch}"]
            self.epoch_paid[e.epoch] = (
                sum(t.amount for t in rewards if t.kind is TransferKind.NEW_MESSAGE_REWARD),
                sum(t.amount for t in rewards if t.kind is TransferKind.PRIOR_REWARD),
                len(rewards),
            )
        for t in outcome.transfers:
            if t.credit == TREASURY:
                self.treasury_in[str(t.kind)] += t.amount
            if t.debit == TREASURY:
                self.treasury_out[str(t.kind)] += t.amount


def snapshot_threads(sim: Simulator) -> dict[str, tuple[int, int, int]]:
    state = sim.state
    return {
        t.thread_id: (state.ledger.balance(thread_account(t.thread_id)), t.message_count, len(t.members))
        for t in state.threads.values()
        if t.visibility is Visibility.PUBLIC
    }


def drive(sim: Simulator, steps: int, truth: Truth) -> None:
    clock = random.Random(99)
    for step in range(steps):
        later = sim.now + timedelta(seconds=clock.expovariate(1 / MEAN_GAP_S))
        midnight = datetime.combine(sim.now.date() + timedelta(days=1), datetime.min.time(), UTC)
        if later >= midnight:
            # Nothing was recorded between now and midnight: this is the state at midnight.
            truth.midnights[midnight] = snapshot_threads(sim)
        sim.now = later
        execute(sim, sim.step_instruction(step), truth)
        for settle in sim.due_epochs():
            execute(sim, settle, truth)


def execute(sim: Simulator, instruction: Instruction, truth: Truth) -> None:
    try:
        outcome = sim.coordinator.execute(instruction, sim.now)
    except ProgramError:
        return
    truth.record(instruction, outcome, sim.now)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Truth, Simulator]:
    path = tmp_path_factory.mktemp("stats") / "choir.db"
    sim = Simulator(seed=3, actors=16, database_url=f"sqlite:///{path}")
    truth = Truth()
    drive(sim, STEPS, truth)
    sim.coordinator.store.close()
    return path, truth, sim


@pytest.fixture(scope="module")
def report(simulated: tuple[Path, Truth, Simulator]) -> Stats:
    store = Store(f"sqlite:///{simulated[0]}")
    try:
        return stats(store, threads_max=1000, days_max=1000)
    finally:
        store.close()


def test_days_match_what_the_simulation_did(simulated: tuple[Path, Truth, Simulator], report: Stats) -> None:
    truth = simulated[1]
    assert len(report.days) >= 6
    assert {d.day: d.messages for d in report.days} == {k: v for k, v in truth.messages.items() if v}
    assert {d.day: d.active_users for d in report.days} == {k: len(v) for k, v in truth.people.items()}
    assert {d.day: d.citations for d in report.days if d.citations} == {
        k: v for k, v in truth.citations.items() if v
    }
    assert all(d.questions == 0 for d in report.days)  # the simulator asks no question
    assert report.totals["messages"] == sum(truth.messages.values())
    assert report.totals["citations"] == sum(truth.citations.values())


def test_rewards_per_epoch_match_the_transfers(
    simulated: tuple[Path, Truth, Simulator], report: Stats
) -> None:
    truth = simulated[1]
    assert len(report.epochs) == len(truth.epoch_paid) > 100
    for e in report.epochs:
        assert (e.new_message_paid, e.prior_paid, e.recipients) == truth.epoch_paid[e.epoch], e.epoch
    assert report.totals["new_message_rewards_paid"] == sum(p[0] for p in truth.epoch_paid.values())
    assert report.totals["prior_rewards_paid"] == sum(p[1] for p in truth.epoch_paid.values())


def test_the_most_cited_priors_are_ranked_and_public(
    simulated: tuple[Path, Truth, Simulator], report: Stats
) -> None:
    truth, sim = simulated[1], simulated[2]
    assert report.top_cited
    counts = [c.citations for c in report.top_cited]
    assert counts == sorted(counts, reverse=True)
    public_counts = sorted(
        (
            n
            for mid, n in truth.cited.items()
            if _public(sim, sim.state.messages[mid].thread_id) and not sim.state.messages[mid].deleted
        ),
        reverse=True,
    )
    assert counts == public_counts[: len(counts)]
    for c in report.top_cited:
        assert truth.cited[c.message_id] == c.citations
        assert _public(sim, c.thread_id)
        assert 0 <= c.mean_score <= 1 and c.excerpt


def _public(sim: Simulator, thread_id: str) -> bool:
    return sim.state.threads[thread_id].visibility is Visibility.PUBLIC


def test_thread_history_is_replayed_exactly_at_each_midnight(
    simulated: tuple[Path, Truth, Simulator], report: Stats
) -> None:
    truth, sim = simulated[1], simulated[2]
    assert len(truth.midnights) >= 5
    compared = 0
    for series in report.threads:
        created = sim.state.threads[series.thread_id].created_at
        for point in series.points:
            if point.at not in truth.midnights:
                continue
            balance, messages, co_authors = truth.midnights[point.at][series.thread_id]
            assert (point.balance, point.messages, point.co_authors) == (balance, messages, co_authors)
            age_s = (point.at - created).total_seconds()
            assert point.recommended_stake == recommended_stake(balance, messages, co_authors, age_s)
            assert point.temperature >= 0
            compared += 1
    assert compared > 50


def test_the_last_point_of_each_thread_is_its_current_state(
    simulated: tuple[Path, Truth, Simulator], report: Stats
) -> None:
    sim = simulated[2]
    now = snapshot_threads(sim)
    assert {s.thread_id for s in report.threads} == set(now)
    for series in report.threads:
        last = series.points[-1]
        assert last.at == report.generated_at
        assert (last.balance, last.messages, last.co_authors) == now[series.thread_id]


def test_the_treasury_ledger_accounts_for_its_balance(simulated: tuple[Path, Truth, Simulator]) -> None:
    path, truth, sim = simulated
    store = Store(f"sqlite:///{path}")
    try:
        view = treasury(store, recent=5)
    finally:
        store.close()
    assert view["reconciled"] is True
    assert int(view["balance"]) == sim.state.ledger.balance(TREASURY)
    assert {k: int(v["amount"]) for k, v in view["inflows"].items() if int(v["amount"])} == dict(
        truth.treasury_in
    )
    assert {k: int(v["amount"]) for k, v in view["outflows"].items() if int(v["amount"])} == dict(
        truth.treasury_out
    )
    assert list(view["inflows"])[:2] == ["spec_mixed", "spec_expired"]
    assert list(view["outflows"])[:2] == ["prior_reward", "grant"]
    assert view["rates"]["prior_rate_ppm"] == sim.state.params.prior_rate_ppm
    positions = [t["position"] for t in view["recent"]]
    assert len(positions) == 5 and positions == sorted(positions, reverse=True)
    assert all(TREASURY in (t["debit"], t["credit"]) for t in view["recent"])


def test_sample_times_are_day_ends_then_the_last_moment() -> None:
    start = datetime(2026, 1, 1, 15, tzinfo=UTC)
    until = datetime(2026, 1, 3, 6, tzinfo=UTC)
    assert sample_times(start, until, 10) == [
        datetime(2026, 1, 2, tzinfo=UTC),
        datetime(2026, 1, 3, tzinfo=UTC),
        until,
    ]
    assert sample_times(start, until, 2) == [datetime(2026, 1, 3, tzinfo=UTC), until]
    assert sample_times(until, start, 5) == [until]


def test_choir_stats_prints_tables_and_json(simulated: tuple[Path, Truth, Simulator], report: Stats) -> None:
    runner = CliRunner()
    data_dir = str(simulated[0].parent)
    text = runner.invoke(cli, ["stats", "--data-dir", data_dir])
    assert text.exit_code == 0, text.output
    for heading in ("day", "epoch", "most-cited priors:", "thread temperature and recommended stake"):
        assert heading in text.output
    as_json = runner.invoke(cli, ["stats", "--data-dir", data_dir, "--json"])
    assert as_json.exit_code == 0, as_json.output
    parsed = json.loads(as_json.output)
    assert parsed["days"] == [d.to_json() for d in report.days]
    assert parsed["epochs"] == [e.to_json() for e in report.epochs[-len(parsed["epochs"]) :]]
    assert parsed["totals"]["treasury_balance"] == str(report.totals["treasury_balance"])
    missing = runner.invoke(cli, ["stats", "--data-dir", data_dir + "-nowhere"])
    assert missing.exit_code == 2 and "no Choir store at" in missing.output


@pytest.mark.timeout(60)
async def test_the_server_serves_stats_the_treasury_and_the_operator_page(sqlite_server: Server) -> None:
    alice = User(sqlite_server)
    await alice.sign_in()
    thread = await alice.create_thread("Numbers")
    async with alice.socket() as sock:
        ack = await sock.request("post", {"thread_id": thread["thread_id"], "content": "one number"})
        assert ack["type"] == "ack", ack
    async with httpx.AsyncClient(base_url=sqlite_server.base_url, timeout=30) as http:
        body = (await http.get("/api/stats")).json()
        view = (await http.get("/api/treasury")).json()
        page = await http.get("/operator.html")
        script = await http.get("/operator.js")
    assert body["totals"]["messages"] == 1 and body["totals"]["people"] == 1
    assert body["days"][-1]["messages"] == 1 and body["days"][-1]["active_users"] == 1
    assert [t["thread_id"] for t in body["threads"]] == [thread["thread_id"]]
    assert view["reconciled"] is True and view["outflows"]["grant"]["transfers"] == 1
    assert page.status_code == 200 and 'src="/operator.js"' in page.text
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]


@pytest.mark.timeout(120)
def test_the_operator_page_draws_its_plots_and_runs_the_audit_in_a_browser(
    tmp_path: Path, chromium_launch_options: Any
) -> None:
    from playwright.sync_api import sync_playwright

    async def seed(server: Server) -> None:
        alice = User(server)
        await alice.sign_in()
        thread = await alice.create_thread("Plotted")
        async with alice.socket() as sock:
            for n in range(3):
                await sock.request("post", {"thread_id": thread["thread_id"], "content": f"point {n}"})

    with run_server(tmp_path / "data") as server:
        asyncio.run(seed(server))
        operator = User(server, OPERATOR_KEY)
        asyncio.run(operator.sign_in())
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(**chromium_launch_options)
            try:
                # The audit is the operator's alone: the page runs it with the operator's session.
                context = browser.new_context()
                context.add_cookies(
                    [{"name": "choir_session", "value": operator.cookie, "url": server.base_url}]
                )
                page = context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
                page.goto(server.base_url + "/operator.html")
                page.wait_for_selector("#chart-activity svg path.line", state="attached")
                totals = dict(
                    zip(
                        page.locator("#op-totals dt").all_inner_texts(),
                        page.locator("#op-totals dd").all_inner_texts(),
                        strict=True,
                    )
                )
                assert totals["Messages"] == "3" and totals["People"] == "1"
                assert page.locator("#chart-activity svg path.line").count() == 3
                assert page.locator("#chart-stake svg path.line").count() == 1
                assert page.locator("#op-thread option").all_inner_texts() == [
                    f"Plotted ({page.locator('#op-thread').input_value()})"
                ]
                assert "✓" in page.locator("#op-treasury-summary").inner_text()
                page.click("#op-audit")
                page.wait_for_selector("#op-audit-result p.ok", timeout=30_000)
                assert page.locator("#op-audit-result").inner_text().startswith("Audit passed")
                assert errors == []
            finally:
                browser.close()
