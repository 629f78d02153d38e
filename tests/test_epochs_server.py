"""Rewards in motion: the real server through many epochs on a controllable clock, every
payout checked against an independent computation of DESIGN §5, and a restart in the
middle of an epoch that pays nothing twice and loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal, getcontext
from pathlib import Path

import pytest
from harness import Clock, Server, User, run_server
from sqlalchemy import create_engine, text

import services
from choir.ledger import SUPPLY

EPOCH_S = 60
# Distinct enough that none is a near-duplicate of another (novelty decides the split).
TOPICS = [
    "Herons nest in tall trees near slow rivers.",
    "A sourdough starter needs flour and water every day.",
    "Road bike tyres last longer at the right pressure.",
    "The violin's sound post carries vibrations to the back plate.",
    "Compost heaps warm up when nitrogen meets carbon.",
    "Chess openings trade tempo for control of the centre.",
    "Glaciers carve U-shaped valleys as they retreat.",
    "Espresso extraction depends on grind size and pressure.",
    "Solar panels lose efficiency when they run hot.",
    "Bees communicate the direction of flowers by dancing.",
    "Knitting cables crosses stitches over one another.",
    "Tidal pools shelter anemones between the waves.",
    "A good mortgage compares the total cost, not the rate.",
    "Marathon training builds mileage slowly over months.",
    "Origami cranes start from a square base fold.",
    "Volcanic soil is rich in minerals for vineyards.",
    "Typesetting with kerning improves headline balance.",
    "Owls fly silently thanks to serrated feather edges.",
    "Fermenting kimchi needs salt to keep bad bacteria away.",
    "Rock climbers clip ropes into quickdraws as they ascend.",
    "Lighthouses once burned whale oil for their lamps.",
    "Sailboats can tack upwind by zigzagging.",
    "Mushrooms spread through underground mycelium networks.",
    "Telescope mirrors are ground to a parabolic shape.",
]
GRACE_S = 600


@contextlib.contextmanager
def serve(data_dir: Path, clock: Clock, port: int) -> Iterator[Server]:
    with run_server(data_dir, clock=clock, port=port, epoch_seconds=EPOCH_S, sweep_interval_s=0.05) as server:
        yield server


# -- an independent reading of DESIGN §5 --------------------------------------------------

R = Decimal(2_500_000_000) * 10**9
K = Decimal("2.04")
T_YEARS = 4
YEAR_S = Decimal("31557600")  # 365.25 days


def emitted(elapsed_s: float) -> int:
    getcontext().prec = 60
    t = Decimal(elapsed_s) / YEAR_S
    if t >= T_YEARS:
        return int(R)
    value = R * (1 + K * t).ln() / (1 + K * T_YEARS).ln()
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def expected_payouts(url: str) -> tuple[dict[tuple[int, str], int], dict[tuple[int, str], int]]:
    """(epoch, author) -> new-message reward and (epoch, thread) -> prior reward, from the
    stored messages, citations and transfers alone."""
    engine = create_engine(url)
    with engine.connect() as conn:
        genesis = datetime.fromisoformat(
            conn.execute(text("SELECT value FROM meta WHERE key='genesis_at'")).scalar()
        )
        settled = [r[0] for r in conn.execute(text("SELECT epoch FROM epochs ORDER BY epoch"))]
        messages = conn.execute(text("SELECT author, published_at, novelty_ppm FROM messages")).all()
        cites = conn.execute(
            text("SELECT epoch, cited_thread_id, score_ppm FROM citations WHERE eligible")
        ).all()
        transfers = conn.execute(
            text("SELECT debit, credit, amount, kind, ref FROM transfers ORDER BY position")
        ).all()
    engine.dispose()
    weights: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for author, published, novelty in messages:
        if author == "choir-ai":
            continue
        at = datetime.strptime(published, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        epoch = math.floor((at - genesis).total_seconds() / EPOCH_S)
        weights[epoch][author] += 1_000_000 if novelty is None else novelty
    new: dict[tuple[int, str], int] = {}
    for epoch in settled:
        budget = emitted((epoch + 1) * EPOCH_S) - emitted(epoch * EPOCH_S)
        total = sum(weights[epoch].values())
        for author, w in weights[epoch].items() if total else ():
            share = min(budget * w // total, budget * 20 // 100)
            if share:
                new[(epoch, author)] = share
    # The prior budget is 0.001% of the treasury just before the epoch's settlement.
    treasury = 7_500_000_000 * 10**9
    prior: dict[tuple[int, str], int] = {}
    done: set[int] = set()
    for debit, credit, amount, kind, ref in transfers:
        if kind in ("new_message_reward", "prior_reward"):
            epoch = int(ref.split(":")[1])
            if epoch not in done:
                done.add(epoch)
                budget = treasury * 10 // 1_000_000
                by_thread: dict[str, int] = defaultdict(int)
                for e, thread_id, score in cites:
                    if e == epoch:
                        by_thread[thread_id] += score
                total = sum(by_thread.values())
                for thread_id, w in by_thread.items() if total else ():
                    if budget * w // total:
                        prior[(epoch, thread_id)] = budget * w // total
        amount = int(amount)
        treasury += amount if credit == "treasury" else 0
        treasury -= amount if debit == "treasury" else 0
    return new, prior


def actual_payouts(url: str) -> tuple[dict[tuple[int, str], int], dict[tuple[int, str], int]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT credit, amount, kind, ref FROM transfers WHERE kind LIKE '%reward'")
        ).all()
        balances = sum(int(a) for (a,) in conn.execute(text("SELECT amount FROM balances")))
    engine.dispose()
    assert balances == SUPPLY
    new: dict[tuple[int, str], int] = {}
    prior: dict[tuple[int, str], int] = {}
    for credit, amount, kind, ref in rows:
        key = (int(ref.split(":")[1]), credit.split(":", 1)[1])
        target = new if kind == "new_message_reward" else prior
        assert key not in target, f"paid twice: {kind} {key}"
        target[key] = int(amount)
    return new, prior


async def settle(server: Server, clock: Clock, epochs: int) -> None:
    """Advance past the grace period so the sweeper settles, and wait until it has."""
    clock.advance(epochs * EPOCH_S + GRACE_S)
    engine = create_engine(server.settings.sql_url)
    try:
        last = -1
        for _ in range(200):
            with engine.connect() as conn:
                count = conn.execute(text("SELECT count(*) FROM epochs")).scalar_one()
            if count == last:
                return
            last = count
            await asyncio.sleep(0.25)
    finally:
        engine.dispose()


async def chatter(clock: Clock, users: list[User], rounds: int, topics: list[str]) -> None:
    for user in users:
        if not user.cookie:
            await user.sign_in()
    threads = [(await u.create_thread(f"{i} thread"))["thread_id"] for i, u in enumerate(users)]
    for _round in range(rounds):
        for user, tid in zip(users, threads, strict=True):
            async with user.socket() as sock:
                content = topics.pop()
                ack = await sock.request("post", {"thread_id": tid, "content": content})
                assert ack["type"] == "ack", ack
        async with users[0].http() as http:
            ask = await http.post(
                f"/api/threads/{threads[0]}/ask", json={"prompt": "How do mushrooms spread underground?"}
            )
            assert ask.status_code == 202
        await asyncio.sleep(1.0)  # the answer and the novelty measurements land
        clock.advance(EPOCH_S / 2)


@pytest.mark.timeout(240)
def test_payouts_match_design_and_survive_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    port = services.free_port()
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'choir.db'}"
    with serve(data, clock, port) as server:
        users = [User(server) for _ in range(3)]
        topics = list(TOPICS)
        asyncio.run(chatter(clock, users, 4, topics))
        asyncio.run(settle(server, clock, 1))
        # Restart in the middle of an epoch, with messages of that epoch not yet settled.
        clock.advance(EPOCH_S / 3)
        asyncio.run(chatter(clock, users[:2], 1, topics))
    with serve(data, clock, port) as server:
        for user in users:
            user.server = server
        asyncio.run(chatter(clock, users, 2, topics))
        asyncio.run(settle(server, clock, 2))
    expected, actual = expected_payouts(url), actual_payouts(url)
    assert len(actual[0]) >= 6, actual
    assert actual[1], "no prior reward was paid"
    assert actual[0] == expected[0]
    assert actual[1] == expected[1]
