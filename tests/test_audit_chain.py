"""`choir audit --chain` on a store the simulator wrote and the settlement service settled on LiteSVM:
it passes, and each kind of difference between the chain, its anchors and the store is named."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import struct
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from alembic import command
from solders.account import Account
from solders.hash import Hash
from solders.keypair import Keypair
from typer.testing import CliRunner

from choir.chain import FeedBatch, LiteSvmBackend
from choir.chain.audit_checks import find_chain_source
from choir.chain.cursor import InFlightBatch
from choir.chain.keys import ChainKeys
from choir.chain.service import ChainService, ChainServiceConfig
from choir.chain.sqlstate import SqlCursorStore
from choir.cli import app as cli
from choir.engine.coordinator import Coordinator
from choir.ops.audit import AuditReport, audit
from choir.ops.simulate import Simulator
from choir.program import SubmitSpec, Vote
from choir.store.migrate import config as alembic_config
from choir.store.sql import Store

SIM_STEPS = 1500
FAST = ChainServiceConfig(coalesce_s=0.01, idle_wait_s=0.05)


def settle(path: Path) -> str:
    """Settle everything the store holds on a new embedded chain; its name."""

    async def run() -> str:
        store = Store(f"sqlite:///{path}")
        service = ChainService(store.engine, "litesvm", ChainKeys.generate(), config=FAST)
        service.start()
        try:
            await service.wait_settled(timeout_s=60)
        finally:
            await service.stop()
            store.close()
        return service.name

    return asyncio.run(run())


@pytest.fixture(scope="module")
def settled_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "choir.db"
    sim = Simulator(seed=11, actors=24, database_url=f"sqlite:///{path}")
    # The chain mirrors user:<address> accounts: the actors must be Solana addresses.
    sim.actors = [str(Keypair().pubkey()) for _ in sim.actors]
    sim.run(SIM_STEPS)
    sim.coordinator.store.close()
    settle(path)
    return path


@pytest.fixture
def db(settled_db: Path, tmp_path: Path) -> Iterator[Path]:
    """A private copy, in a data directory of its own, for one test to tamper with."""
    copy = tmp_path / "data" / "choir.db"
    copy.parent.mkdir()
    with closing(sqlite3.connect(settled_db)) as src, closing(sqlite3.connect(copy)) as dst:
        src.backup(dst)
    yield copy


def audit_chain(path: Path) -> AuditReport:
    store = Store(f"sqlite:///{path}")
    try:
        return audit(store, chain=find_chain_source(store, "litesvm", None))
    finally:
        store.close()


def run_sql(path: Path, statement: str, *params: object) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        assert conn.execute(statement, params).rowcount > 0, f"tampering touched no row: {statement}"


def first(path: Path, query: str) -> tuple[object, ...]:
    with closing(sqlite3.connect(path)) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None, query
    return tuple(row)


def details(report: AuditReport, kind: str) -> list[str]:
    return [f.detail for f in report.findings if f.kind == kind]


def test_a_settled_store_passes_and_says_which_chain_it_checked(db: Path) -> None:
    result = CliRunner().invoke(cli, ["audit", "--chain", "--no-index", "--data-dir", str(db.parent)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].startswith("checked the chain litesvm:")
    assert lines[-1] == "audit passed"
    report = audit_chain(db)
    assert report.checked["anchored batches"] >= 1 and report.checked["transfers"] > 300


def test_a_tampered_co_author_set_is_named_against_its_anchored_record(db: Path) -> None:
    (thread_id,) = first(db, "SELECT thread_id FROM threads ORDER BY thread_id LIMIT 1")
    intruder = str(Keypair().pubkey())
    run_sql(
        db,
        "UPDATE threads SET members = ? WHERE thread_id = ?",
        json.dumps([[intruder, "2027-01-01"]]),
        thread_id,
    )
    report = audit_chain(db)
    assert report.kinds() == {"coherence"}, report.lines()
    [line] = details(report, "coherence")
    assert line.startswith(f"thread {thread_id}: SQL co-authors {{{intruder}}} hash to ")
    assert "the anchored ownership record has" in line
    result = CliRunner().invoke(cli, ["audit", "--chain", "--no-index", "--data-dir", str(db.parent)])
    assert result.exit_code == 1 and f"coherence: {line}" in result.output


def test_a_chain_balance_that_is_not_the_ledgers_is_a_drift(db: Path) -> None:
    account, amount = first(
        db, "SELECT account, amount FROM balances WHERE account LIKE 'user:%' AND CAST(amount AS INTEGER) > 0"
    )
    store = Store(f"sqlite:///{db}")
    source = find_chain_source(store, "litesvm", None)
    cursor = SqlCursorStore(store.engine, source.name)
    checkpoint = cursor.load_sync()
    assert checkpoint.chain_snapshot is not None
    chain = LiteSvmBackend.restore(checkpoint.chain_snapshot)
    address = source.layout.custody_address(str(account))
    held = chain.svm.get_account(address)
    assert held is not None
    data = bytearray(bytes(held.data))
    data[64:72] = struct.pack("<Q", int(str(amount)) + 1)  # the SPL token account's amount
    chain.svm.set_account(
        address, Account(held.lamports, bytes(data), held.owner, held.executable, held.rent_epoch)
    )
    asyncio.run(cursor.save(checkpoint.with_snapshot(chain.snapshot())))
    store.close()
    report = audit_chain(db)
    assert report.kinds() == {"chain_drift"}, report.lines()
    assert details(report, "chain_drift") == [
        f"{account}: ledger {amount}, chain {int(str(amount)) + 1} (settled through position {checkpoint.position})"
    ]


def test_money_moved_in_the_ledger_is_named_by_the_replay_and_by_the_chain(db: Path) -> None:
    (user,) = first(
        db, "SELECT account FROM balances WHERE account LIKE 'user:%' AND CAST(amount AS INTEGER) > 10"
    )
    run_sql(
        db, "UPDATE balances SET amount = CAST(CAST(amount AS INTEGER) - 10 AS TEXT) WHERE account = ?", user
    )
    run_sql(
        db,
        "UPDATE balances SET amount = CAST(CAST(amount AS INTEGER) + 10 AS TEXT) WHERE account = 'treasury'",
    )
    report = audit_chain(db)
    assert report.kinds() == {"balance_mismatch", "chain_drift"}, report.lines()
    drifts = details(report, "chain_drift")
    assert len(drifts) == 2
    assert any(d.startswith("treasury: ledger ") for d in drifts)
    assert any(d.startswith(f"{user}: ledger ") for d in drifts)


def test_a_transfer_the_change_log_lost_is_named(db: Path) -> None:
    (ref,) = first(db, "SELECT ref FROM changes WHERE kind = 't' ORDER BY position DESC LIMIT 1")
    run_sql(db, "DELETE FROM changes WHERE kind = 't' AND ref = ?", ref)
    report = audit_chain(db)
    assert "chain_log" in report.kinds(), report.lines()
    assert details(report, "chain_log") == [f"transfer {ref} is not in the change log: it will never settle"]


def test_an_anchored_record_changed_in_the_store_no_longer_hashes_to_the_root_on_chain(db: Path) -> None:
    through, batch = first(db, "SELECT through, batch FROM chain_anchors ORDER BY through LIMIT 1")
    records = json.loads(str(batch))
    message = records["messages"][0]
    message["content_hash"] = "00" * 32
    run_sql(db, "UPDATE chain_anchors SET batch = ? WHERE through = ?", json.dumps(records), through)
    report = audit_chain(db)
    assert report.kinds() == {"chain_anchor", "coherence"}, report.lines()
    assert details(report, "chain_anchor") == [
        f"batch 1..{through}: its stored records do not hash to its memo's root"
    ]
    [line] = details(report, "coherence")
    assert line.startswith(f"message {message['message_id']}: content hash ") and line.endswith(
        f"{'00' * 32} in the chain anchor"
    )


def test_a_batch_in_flight_is_named_and_balances_are_not_reconciled_against_half_of_it(db: Path) -> None:
    store = Store(f"sqlite:///{db}")
    cursor = SqlCursorStore(store.engine, find_chain_source(store, "litesvm", None).name)
    checkpoint = cursor.load_sync()
    p = checkpoint.position
    journal = InFlightBatch(FeedBatch(p, p + 1, (), (), ()), "memo", Hash.default(), 0, ())
    asyncio.run(cursor.save(type(checkpoint)(p, journal, checkpoint.chain_snapshot, None)))
    store.close()
    report = audit_chain(db)
    assert report.kinds() == {"chain_checkpoint"}, report.lines()
    assert details(report, "chain_checkpoint")[0].startswith(
        f"a batch of positions {p + 1}..{p + 1} is in flight"
    )


def test_changes_not_settled_yet_are_lag_not_differences(db: Path) -> None:
    """A co-author joins after the last batch: the anchored set is older, the ledger moved on."""
    store = Store(f"sqlite:///{db}")
    coordinator = Coordinator.open(store)
    state = coordinator.state
    thread = next(t for t in sorted(state.threads.values(), key=lambda t: t.thread_id) if len(t.members) < 5)
    author = next(
        a[5:]
        for a, amount in sorted(state.ledger.balances.items())
        if a.startswith("user:") and amount >= thread.min_stake and a[5:] not in thread.co_authors
    )
    coordinator.execute(
        SubmitSpec(author, thread.thread_id, "late-spec", "A late but novel thought.", thread.min_stake)
    )
    for voter in thread.co_authors:
        coordinator.execute(Vote(voter, "late-spec", True))
    assert author in coordinator.state.threads[thread.thread_id].co_authors
    store.close()
    report = audit_chain(db)
    assert report.ok, report.lines()


def test_without_a_settled_chain_the_audit_says_it_cannot_audit(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'choir.db'}")
    Coordinator.open(store)
    store.close()
    result = CliRunner().invoke(cli, ["audit", "--chain", "--no-index", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "no litesvm settlement checkpoint" in result.output


def test_downgrading_past_message_versions_refuses_to_forget_them(db: Path) -> None:
    store = Store(f"sqlite:///{db}")
    try:
        with store.engine.begin() as conn:
            cfg = alembic_config(store.engine)
            cfg.attributes["connection"] = conn
            with pytest.raises(RuntimeError, match="edited or deleted"):
                command.downgrade(cfg, "0007")
        with store.engine.connect() as conn:
            kept = conn.exec_driver_sql("SELECT COUNT(*) FROM message_versions").scalar_one()
        assert kept > 0  # the simulated store edits messages, and nothing was dropped
    finally:
        store.close()


def test_a_store_from_before_the_change_log_is_backfilled_and_settles(tmp_path: Path) -> None:
    db = tmp_path / "choir.db"
    # A store of before the change log holds no edited or deleted message (0008 refuses to forget them).
    sim = Simulator(seed=11, actors=24, database_url=f"sqlite:///{db}", revisions=False)
    sim.actors = [str(Keypair().pubkey()) for _ in sim.actors]
    sim.run(SIM_STEPS)
    sim.coordinator.store.close()
    store = Store(f"sqlite:///{db}")
    with store.engine.begin() as conn:
        cfg = alembic_config(store.engine)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")  # as the store was before chain settlement existed
    store.migrate()  # the backfill
    store.close()
    settle(db)
    report = audit_chain(db)
    assert report.ok, report.lines()
