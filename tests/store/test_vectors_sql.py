"""The shared SQL engine across processes' replicas: two indexes on one PostgreSQL database (as two
`choir serve` processes hold them) see each other's writes and answer every query alike."""

from __future__ import annotations

import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_vectors_contract import DIM, migrated, point, unit

from choir.store.vectors import SqlVectorIndex, VectorIndexError


@pytest.fixture
def pair(postgres_url: str):  # type: ignore[no-untyped-def]
    url = migrated(postgres_url)
    # Exact across replicas (no read-ahead window): what one writes, the other searches at once.
    first, second = SqlVectorIndex(url, DIM, refresh_age_s=0), SqlVectorIndex(url, DIM, refresh_age_s=0)
    yield first, second
    first.close()
    second.close()


def test_a_write_on_one_replica_is_searched_on_the_other(pair) -> None:  # type: ignore[no-untyped-def]
    first, second = pair
    first.upsert([point("m1", unit(1)), point("m2", unit(2))])
    assert [h.message_id for h in second.search(unit(1), 1)] == ["m1"]
    second.delete(["m1"])
    assert [h.message_id for h in first.search(unit(1), 2)] == ["m2"]
    first.set_thread_meta("t1", ["alice"], "private")
    assert second.search(unit(2), 5) == []
    assert [h.message_id for h in second.search(unit(2), 5, public_only=False)] == ["m2"]


def test_concurrent_writers_leave_replicas_identical(pair) -> None:  # type: ignore[no-untyped-def]
    """Two processes index at once: the revisions still follow commit order, so neither replica
    misses the other's write (a gap would drop it for good)."""
    first, second = pair

    def write(index: SqlVectorIndex, prefix: str) -> None:
        for n in range(40):
            index.upsert([point(f"{prefix}{n}", unit(n + (1000 if prefix == "b" else 0)))])

    threads = [
        threading.Thread(target=write, args=(first, "a")),
        threading.Thread(target=write, args=(second, "b")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first.refresh()
    second.refresh()
    assert first.revision == second.revision == 80
    query = unit(7)
    assert first.search(query, 80) == second.search(query, 80)
    assert len(first.search(query, 100)) == 80


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["up", "del", "meta"]), st.integers(0, 9), st.booleans()), max_size=30
    )
)
def test_any_history_leaves_the_replica_equal_to_the_table(tmp_path_factory, ops) -> None:  # type: ignore[no-untyped-def]
    url = migrated(f"sqlite:///{tmp_path_factory.mktemp('v') / 'choir.db'}")
    writer, reader = SqlVectorIndex(url, DIM), SqlVectorIndex(url, DIM, refresh_age_s=0)
    try:
        for op, n, flag in ops:
            if op == "up":
                writer.upsert([point(f"m{n}", unit(n), thread_id=f"t{n % 3}", is_ai=flag)])
            elif op == "del":
                writer.delete([f"m{n}"])
            else:
                writer.set_thread_meta(f"t{n % 3}", ["bob"], "private" if flag else "public")
        table = {p.message_id: p for p in reader.scroll_all()}
        found = reader.search(unit(0), 100, public_only=False, exclude_ai=False)
        assert sorted(h.message_id for h in found) == sorted(table)
        public_human = {m for m, p in table.items() if p.visibility == "public" and not p.is_ai}
        assert {h.message_id for h in reader.search(unit(0), 100)} == public_human
        assert reader.count() == len(table)
    finally:
        writer.close()
        reader.close()


def test_a_table_of_another_size_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = migrated(f"sqlite:///{tmp_path / 'choir.db'}")
    small = SqlVectorIndex(url, DIM)
    small.upsert([point("m1", unit(1))])
    small.close()
    with pytest.raises(VectorIndexError, match="size 8, not 16"):
        SqlVectorIndex(url, 16)


def test_another_process_s_write_is_searched_within_the_refresh_age(postgres_url: str) -> None:
    import time

    url = migrated(postgres_url)
    writer, reader = SqlVectorIndex(url, DIM), SqlVectorIndex(url, DIM, refresh_age_s=0.2)
    try:
        reader.search(unit(5), 1)  # the reader has just read the table
        writer.upsert([point("late", unit(5))])
        time.sleep(0.25)
        assert [h.message_id for h in reader.search(unit(5), 1)] == ["late"]
    finally:
        writer.close()
        reader.close()
