"""The audit passes on stores made by real runs (the simulator driving the coordinator, a
real server with its vector index) and catches each kind of tampering."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from harness import Server, User, operator_audit, run_server
from typer.testing import CliRunner

from choir.cli import app as cli
from choir.ops.audit import MAX_FINDINGS_PER_KIND, AuditReport, audit
from choir.ops.simulate import Simulator
from choir.program import content_hash
from choir.store.sql import Store
from choir.store.vectors import EdgeVectorIndex, VectorPoint

SIM_STEPS = 2500


@pytest.fixture(scope="module")
def simulated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store written by the coordinator under thousands of random instructions."""
    path = tmp_path_factory.mktemp("sim") / "choir.db"
    sim = Simulator(seed=11, actors=24, database_url=f"sqlite:///{path}")
    sim.run(SIM_STEPS)
    sim.coordinator.store.close()
    return path


@pytest.fixture
def db(simulated_db: Path, tmp_path: Path) -> Iterator[Path]:
    """A private copy of the simulated store, for one test to tamper with."""
    copy = tmp_path / "choir.db"
    with closing(sqlite3.connect(simulated_db)) as src, closing(sqlite3.connect(copy)) as dst:
        src.backup(dst)
    yield copy


def run_sql(path: Path, *statements: str) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        for statement in statements:
            assert conn.execute(statement).rowcount != 0 or statement.lstrip().upper().startswith(
                ("CREATE", "DROP", "ALTER")
            ), f"tampering touched no row: {statement}"


def audit_file(path: Path) -> AuditReport:
    store = Store(f"sqlite:///{path}")
    try:
        return audit(store)
    finally:
        store.close()


def details(report: AuditReport, kind: str) -> list[str]:
    return [f.detail for f in report.findings if f.kind == kind]


def test_a_simulated_store_passes(db: Path) -> None:
    report = audit_file(db)
    assert report.ok, report.lines()
    assert report.checked["transfers"] > 500
    assert report.checked["messages"] > 500
    assert report.checked["specs"] > 50
    assert report.lines()[-1] == "audit passed"


def test_a_changed_balance_breaks_the_supply_and_the_replay(db: Path) -> None:
    run_sql(
        db,
        "UPDATE balances SET amount = CAST(CAST(amount AS INTEGER) + 1 AS TEXT) WHERE account = 'treasury'",
    )
    report = audit_file(db)
    assert report.kinds() == {"supply", "balance_mismatch"}
    assert details(report, "balance_mismatch") == [
        f"account treasury: the balances table says {_balance(db, 'treasury')}, replaying the transfers "
        f"gives {_balance(db, 'treasury') - 1} (off by 1)"
    ]


def test_money_moved_between_balances_keeps_the_supply_but_not_the_replay(db: Path) -> None:
    # Σ balances is unchanged, so only the replay can see it.
    user = _first(
        db, "SELECT account FROM balances WHERE account LIKE 'user:%' AND CAST(amount AS INTEGER) > 10"
    )
    run_sql(
        db,
        f"UPDATE balances SET amount = CAST(CAST(amount AS INTEGER) - 10 AS TEXT) WHERE account = '{user}'",
        "UPDATE balances SET amount = CAST(CAST(amount AS INTEGER) + 10 AS TEXT) WHERE account = 'treasury'",
    )
    report = audit_file(db)
    assert report.kinds() == {"balance_mismatch"}
    named = details(report, "balance_mismatch")
    assert len(named) == 2
    assert any(d.startswith(f"account {user}: ") for d in named)
    assert any(d.startswith("account treasury: ") for d in named)


def test_a_negative_balance_is_named(db: Path) -> None:
    user = _first(
        db, "SELECT account FROM balances WHERE account LIKE 'user:%' AND CAST(amount AS INTEGER) > 0"
    )
    held = _balance(db, user)
    run_sql(
        db,
        f"UPDATE balances SET amount = '-1' WHERE account = '{user}'",
        f"UPDATE balances SET amount = CAST(CAST(amount AS INTEGER) + {held + 1} AS TEXT) WHERE account = 'treasury'",
    )
    report = audit_file(db)
    assert details(report, "negative_balance") == [f"account {user} holds -1"]


def test_a_changed_transfer_amount_is_caught_by_the_replay(db: Path) -> None:
    position, debit, credit = _row(
        db, "SELECT position, debit, credit FROM transfers WHERE kind = 'stake' LIMIT 1"
    )
    run_sql(
        db,
        f"UPDATE transfers SET amount = CAST(CAST(amount AS INTEGER) - 1 AS TEXT) WHERE position = {position}",
    )
    report = audit_file(db)
    # Whoever later spent what that transfer no longer moved overdraws in the replay, too.
    assert "balance_mismatch" in report.kinds()
    assert report.kinds() <= {"balance_mismatch", "replay_overdraft"}
    named = details(report, "balance_mismatch")
    assert any(d.startswith(f"account {debit}: ") and d.endswith("(off by -1)") for d in named), named
    assert any(d.startswith(f"account {credit}: ") and d.endswith("(off by 1)") for d in named), named


def test_a_deleted_transfer_is_caught_by_the_replay(db: Path) -> None:
    position, debit, credit = _row(
        db, "SELECT position, debit, credit FROM transfers WHERE kind = 'new_message_reward' LIMIT 1"
    )
    run_sql(db, f"DELETE FROM transfers WHERE position = {position}")
    report = audit_file(db)
    assert "balance_mismatch" in report.kinds()
    assert report.kinds() <= {"balance_mismatch", "replay_overdraft"}
    named = " ".join(details(report, "balance_mismatch"))
    assert f"account {debit}: " in named and f"account {credit}: " in named


def test_a_duplicated_transfer_id_is_named(db: Path) -> None:
    # The schema refuses a second row with the same id, so the tamperer rebuilds the table without it.
    position, tid = _row(db, "SELECT position, id FROM transfers WHERE kind = 'grant' LIMIT 1")
    run_sql(
        db,
        "CREATE TABLE transfers_copy AS SELECT * FROM transfers",
        "DROP TABLE transfers",
        "ALTER TABLE transfers_copy RENAME TO transfers",
        "INSERT INTO transfers SELECT position + 1000000, id, debit, credit, amount, kind, ref, at "
        f"FROM transfers WHERE position = {position}",
    )
    report = audit_file(db)
    assert details(report, "duplicate_transfer_id") == [
        f"transfer {tid} (position {position + 1000000}): its id was already used by an earlier transfer"
    ]
    assert "balance_mismatch" in report.kinds()  # the copy also paid twice


def test_a_malformed_transfer_is_named(db: Path) -> None:
    position = _first(db, "SELECT position FROM transfers LIMIT 1 OFFSET 40")
    run_sql(db, f"UPDATE transfers SET credit = debit WHERE position = {position}")
    report = audit_file(db)
    assert any(f"(position {position}): moves" in d for d in details(report, "invalid_transfer"))


def test_a_changed_message_content_breaks_its_hash(db: Path) -> None:
    message_id, thread_id = _row(db, "SELECT message_id, thread_id FROM messages LIMIT 1 OFFSET 10")
    run_sql(db, f"UPDATE messages SET content = content || ' (edited)' WHERE message_id = '{message_id}'")
    report = audit_file(db)
    assert report.kinds() == {"message_hash"}
    assert details(report, "message_hash")[0].startswith(f"message {message_id} in {thread_id}: stored hash")


def test_a_message_rewritten_with_its_hash_is_caught_by_its_event(db: Path) -> None:
    """Content and hash changed together hash consistently; the event that published the message
    still holds the original, and the audit compares them."""
    message_id, thread_id = _row(db, "SELECT message_id, thread_id FROM messages LIMIT 1 OFFSET 12")
    forged = "a forged message"
    run_sql(
        db,
        f"UPDATE messages SET content = '{forged}', content_hash = '{content_hash(forged)}' "
        f"WHERE message_id = '{message_id}'",
    )
    report = audit_file(db)
    # ... and the change log, which committed the hash it was published with.
    assert report.kinds() == {"message_event", "version_log"}
    assert details(report, "message_event")[0].startswith(f"message {message_id} in {thread_id}: stored hash")
    logged = str(_first(db, f"SELECT content_hash FROM changes WHERE ref = '{message_id}'"))
    assert details(report, "version_log") == [
        f"version 1 of {message_id}: stored hash {content_hash(forged)[:12]}… but the change log committed "
        f"{logged[:12]}…"
    ]


def test_a_stakes_text_edited_in_the_store_breaks_its_hash(db: Path) -> None:
    spec_id = _first(db, "SELECT spec_id FROM specs WHERE content != '' LIMIT 1 OFFSET 5")
    run_sql(db, f"UPDATE specs SET content = content || ' and more' WHERE spec_id = '{spec_id}'")
    report = audit_file(db)
    assert report.kinds() == {"spec_hash"}
    assert details(report, "spec_hash")[0].startswith(f"spec {spec_id}: stored hash")


def test_a_stake_rewritten_with_its_hash_is_caught_by_its_event(db: Path) -> None:
    spec_id = _first(db, "SELECT spec_id FROM specs WHERE content != '' LIMIT 1 OFFSET 7")
    forged = "a forged spec"
    run_sql(
        db,
        f"UPDATE specs SET content = '{forged}', content_hash = '{content_hash(forged)}' WHERE spec_id = '{spec_id}'",
    )
    report = audit_file(db)
    assert report.kinds() == {"spec_hash"}
    assert details(report, "spec_hash") == [
        f"spec {spec_id}: its text differs from the text its event staked"
    ]


def test_an_earlier_version_rewritten_is_caught(db: Path) -> None:
    message_id, version = _row(
        db, "SELECT message_id, version FROM message_versions WHERE content IS NOT NULL LIMIT 1"
    )
    run_sql(
        db,
        f"UPDATE message_versions SET content = content || '!' WHERE message_id = '{message_id}' AND version = {version}",
    )
    report = audit_file(db)
    assert report.kinds() == {"version_hash"}
    assert details(report, "version_hash")[0].startswith(f"version {version} of {message_id}: stored hash")


def test_an_earlier_version_rewritten_with_its_hash_is_caught_by_the_change_log(db: Path) -> None:
    message_id, version = _row(
        db, "SELECT message_id, version FROM message_versions WHERE content IS NOT NULL LIMIT 1 OFFSET 1"
    )
    forged = "what was never said"
    run_sql(
        db,
        f"UPDATE message_versions SET content = '{forged}', content_hash = '{content_hash(forged)}' "
        f"WHERE message_id = '{message_id}' AND version = {version}",
    )
    report = audit_file(db)
    assert "version_log" in report.kinds() and "version_hash" not in report.kinds()
    assert any(
        d.startswith(f"version {version} of {message_id}: stored hash")
        for d in details(report, "version_log")
    )


def test_a_message_without_its_event_is_named(db: Path) -> None:
    message_id = _first(db, "SELECT message_id FROM messages LIMIT 1 OFFSET 3")
    run_sql(
        db,
        f"UPDATE events SET data = json_set(data, '$.message_id', 'ghost') WHERE data LIKE '%{message_id}%'",
    )
    report = audit_file(db)
    assert "message_event" in report.kinds()
    found = details(report, "message_event")
    assert any("publishes ghost" in d for d in found) and any(
        f"message {message_id}: no message.posted" in d for d in found
    )


def test_a_pending_spec_whose_stake_changed_no_longer_matches_its_escrow(db: Path) -> None:
    spec_id = _first(db, "SELECT spec_id FROM specs WHERE status = 'pending' LIMIT 1")
    run_sql(db, f"UPDATE specs SET stake = '1' WHERE spec_id = '{spec_id}'")
    report = audit_file(db)
    assert report.kinds() == {"escrow"}
    assert details(report, "escrow")[0].startswith(f"pending spec {spec_id}: escrow holds")


def test_a_settled_spec_that_still_holds_escrow_is_named(db: Path) -> None:
    spec_id = _first(db, "SELECT spec_id FROM specs WHERE status = 'pending' LIMIT 1")
    run_sql(db, f"UPDATE specs SET status = 'denied' WHERE spec_id = '{spec_id}'")
    assert details(audit_file(db), "escrow")[0].startswith(f"denied spec {spec_id} still holds")


def test_a_thread_without_co_authors_or_with_one_twice_is_named(db: Path) -> None:
    first, second = [r[0] for r in _rows(db, "SELECT thread_id FROM threads ORDER BY thread_id LIMIT 2")]
    run_sql(
        db,
        f"UPDATE threads SET members = '[]' WHERE thread_id = '{first}'",
        f'UPDATE threads SET members = \'[["x","t"],["x","t"]]\' WHERE thread_id = \'{second}\'',
    )
    assert sorted(details(audit_file(db), "co_authors")) == sorted(
        [f"thread {first} has no co-author", f"thread {second} lists x more than once"]
    )


def test_a_missing_event_is_a_gap(db: Path) -> None:
    thread_id, seq = _row(db, "SELECT thread_id, seq FROM events WHERE seq = 2 LIMIT 1")
    run_sql(db, f"DELETE FROM events WHERE thread_id = '{thread_id}' AND seq = {seq}")
    assert details(audit_file(db), "event_seq")[0].startswith(f"thread {thread_id}: events numbered 1..")


def test_findings_past_the_limit_are_counted_not_listed(db: Path) -> None:
    run_sql(db, "UPDATE messages SET content = content || '!'")
    report = audit_file(db)
    assert len(details(report, "message_hash")) == MAX_FINDINGS_PER_KIND
    assert report.finding_count == _first(db, "SELECT COUNT(*) FROM messages")
    assert report.lines()[-1] == f"audit FAILED: {report.finding_count} findings"


def test_choir_audit_exits_0_when_clean_and_1_on_a_finding(db: Path) -> None:
    runner = CliRunner()
    clean = runner.invoke(cli, ["audit", "--data-dir", str(db.parent), "--no-index"])
    assert clean.exit_code == 0, clean.output
    assert "audit passed" in clean.output
    run_sql(db, "UPDATE transfers SET amount = '1' WHERE position = 30")
    tampered = runner.invoke(cli, ["audit", "--data-dir", str(db.parent), "--no-index"])
    assert tampered.exit_code == 1, tampered.output
    assert "balance_mismatch: account" in tampered.output


def test_choir_audit_says_when_there_is_no_store(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["audit", "--data-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "no Choir store at" in result.output
    assert not (tmp_path / "nowhere" / "choir.db").exists()  # looking did not create one


def test_a_simulated_postgres_store_passes_and_catches_a_changed_balance(postgres_url: str) -> None:
    sim = Simulator(seed=5, actors=10, database_url=postgres_url)
    sim.run(400)
    store = sim.coordinator.store
    try:
        assert audit(store).ok
        with store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE balances SET amount = '0' WHERE account = 'pool:new_messages'")
        assert {"supply", "balance_mismatch"} <= audit(store).kinds()
    finally:
        store.close()


# -- a real server's store and vector index ----------------------------------------------


async def populate(server: Server) -> dict[str, str]:
    """Public and private threads with messages, a co-author who joined by spec, an answer."""
    alice, bob = User(server), User(server)
    await alice.sign_in()
    await bob.sign_in()
    public = await alice.create_thread("Open garden")
    private = await alice.create_thread("Closed garden", visibility="private")
    ids: dict[str, str] = {"public": public["thread_id"], "private": private["thread_id"]}
    async with alice.socket() as a, bob.socket() as b:
        for n, text in enumerate(["Tomatoes like sun.", "Basil likes warmth.", "Mint spreads fast."]):
            ack = await a.request("post", {"thread_id": public["thread_id"], "content": text})
            ids[f"public{n}"] = ack["payload"]["message_id"]
        ack = await a.request(
            "post", {"thread_id": private["thread_id"], "content": "The shed key is under the pot."}
        )
        ids["private0"] = ack["payload"]["message_id"]
        spec = await b.request(
            "spec.submit", {"thread_id": public["thread_id"], "content": "Chives too.", "stake": "1000000000"}
        )
        assert spec["type"] == "ack", spec
        vote = await a.request("spec.vote", {"spec_id": spec["payload"]["spec_id"], "approve": True})
        assert vote["type"] == "ack", vote
        await a.request("subscribe", {"thread_id": public["thread_id"]})
        ask = await a.request("ask", {"thread_id": public["thread_id"], "prompt": "What likes sun?"})
        ask_id = ask["payload"]["ask_id"]
        while True:
            frame = await a.recv(timeout_s=60)
            payload = frame["payload"]
            if (
                frame["type"] == "event"
                and payload["kind"] == "message.posted"
                and payload["data"]["ask_id"] == ask_id
            ):
                break
    return ids


def _point(index: EdgeVectorIndex, message_id: str) -> VectorPoint:
    point = index.get(message_id)
    assert point is not None, message_id
    return point


def _with(point: VectorPoint, **changes: object) -> VectorPoint:
    fields = {
        "message_id": point.message_id,
        "thread_id": point.thread_id,
        "vector": point.vector,
        "visibility": point.visibility,
        "is_ai": point.is_ai,
        "content_hash": point.content_hash,
        "author": point.author,
        "co_authors": point.co_authors,
    }
    return VectorPoint(**(fields | changes))  # type: ignore[arg-type]


@pytest.mark.timeout(180)
async def test_a_server_store_and_its_index_pass_then_each_index_tampering_is_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    runner = CliRunner()
    with run_server(data, sweep_interval_s=0.2) as server:
        ids = await populate(server)
        live = await operator_audit(server)
        assert live["ok"] is True and live["index_checked"] is True, live
        assert live["checked"]["index points"] == 5  # 3 posts, the approved spec, the answer
        locked = runner.invoke(cli, ["audit", "--data-dir", str(data)])
        assert locked.exit_code == 2
        assert "the vector index is locked" in locked.output and "--no-index" in locked.output

    clean = runner.invoke(cli, ["audit", "--data-dir", str(data)])
    assert clean.exit_code == 0, clean.output
    assert "vector index not checked" not in clean.output

    store = Store(f"sqlite:///{data / 'choir.db'}")
    index = EdgeVectorIndex(data / "vectors", background_optimize=False)
    try:
        assert audit(store, index).ok
        removed, rehashed, moved, recast = ids["public0"], ids["public1"], ids["public2"], _ai_message(store)
        index.delete([removed])
        index.upsert([_with(_point(index, rehashed), content_hash=content_hash("something else"))])
        index.upsert([_with(_point(index, moved), co_authors=("someone",))])
        index.upsert([_with(_point(index, recast), is_ai=False)])
        leaked = VectorPoint(
            ids["private0"],
            ids["private"],
            np.ones(index.dim, np.float32),
            "public",
            False,
            content_hash("The shed key is under the pot."),
            "x",
            ("x",),
        )
        ghost = VectorPoint(
            "ghost", ids["public"], np.ones(index.dim, np.float32), "public", False, "ab" * 32, "x"
        )
        index.upsert([leaked, ghost])
        report = audit(store, index)
    finally:
        index.close()
        store.close()
    assert report.index_checked
    assert report.kinds() == {
        "index_missing",
        "index_mismatch",
        "index_co_authors",
        "index_private",
        "index_extra",
    }
    assert details(report, "index_missing") == [
        f"public message {removed} in {ids['public']} is not in the vector index"
    ]
    mismatched = details(report, "index_mismatch")
    assert len(mismatched) == 2
    assert any(d.startswith(f"index point of message {rehashed} has hash ") for d in mismatched)
    assert any(d == f"index point of message {recast} has is_ai False (store: True)" for d in mismatched)
    assert details(report, "index_co_authors")[0].startswith(
        f"index point of message {moved} lists co-authors"
    )
    assert details(report, "index_private") == [
        f"the index holds message {ids['private0']} of private thread {ids['private']}"
    ]
    assert details(report, "index_extra") == [
        f"the index holds message ghost (thread {ids['public']}); the store does not"
    ]
    tampered = runner.invoke(cli, ["audit", "--data-dir", str(data)])
    assert tampered.exit_code == 1
    assert "index_private: the index holds message" in tampered.output


def _ai_message(store: Store) -> str:
    from sqlalchemy import select

    from choir.store import schema

    with store.engine.connect() as conn:
        found = conn.execute(
            select(schema.messages.c.message_id).where(schema.messages.c.author == "choir-ai")
        )
        return str(found.scalar_one())


# -- small SQL helpers -------------------------------------------------------------------


def _rows(path: Path, query: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return list(conn.execute(query))


def _row(path: Path, query: str) -> tuple[object, ...]:
    rows = _rows(path, query)
    assert rows, f"no row for {query}"
    return rows[0]


def _first(path: Path, query: str) -> object:
    return _row(path, query)[0]


def _balance(path: Path, account: str) -> int:
    return int(str(_first(path, f"SELECT amount FROM balances WHERE account = '{account}'")))
