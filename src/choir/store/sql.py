"""The SQL store: SQLite (WAL) by default, PostgreSQL through ``CHOIR_DATABASE_URL``.

Everything the program knows lives here; ``persist`` writes one instruction's (or one
batch's) outcome inside the caller's transaction, so a crash loses nothing committed
and half an instruction is never written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import (
    Connection,
    Engine,
    Text,
    bindparam,
    cast,
    create_engine,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.pool import StaticPool

from choir.ledger import Ledger
from choir.program import (
    AI_AUTHOR,
    Event,
    Message,
    Outcome,
    Params,
    Revision,
    State,
    Thread,
    version_record_id,
)
from choir.store import codec, inbox, keywords, schema, statelog

VERSION_KEY = "state_version"


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'choir.db'}"


LOCK_TIMEOUT_MS: Final = 3000
IDLE_IN_TRANSACTION_MS: Final = 5000


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if memory else None,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A database that does not answer within connect_timeout is away (a paused or unreachable host):
    # the caller is told so instead of waiting on the kernel's TCP timeouts.
    # Bounded waits: a lock another session holds (a process frozen mid-transaction: a GC pause, a
    # stopped VM) is waited for LOCK_TIMEOUT_MS at most, then the statement fails as retryable
    # (store_unavailable); a session left idle inside a transaction that long is ended by PostgreSQL,
    # so a frozen process cannot hold the state version for everyone.
    options = (
        f"-c lock_timeout={LOCK_TIMEOUT_MS} -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}"
    )
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        connect_args={"connect_timeout": 5, "options": options},
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed while the writer commits; NORMAL syncs at checkpoints,
    # which in WAL mode still never corrupts and loses at most the last commits on power loss.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Store:
    def __init__(self, url: str, *, state_log: bool | None = None) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._upsert = upsert_for(self.engine.dialect.name)
        # The state log serves other processes catching up: kept where several may write.
        self.logs_state = self.shared if state_log is None else state_log

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def shared(self) -> bool:
        """Whether several processes may write this store (PostgreSQL); SQLite has one owner."""
        return self.dialect != "sqlite"

    def lock_version(self, conn: Connection) -> int:
        """Read the state version and hold its row until the transaction ends (PostgreSQL)."""
        query = select(schema.meta.c.value).where(schema.meta.c.key == VERSION_KEY).with_for_update()
        return int(conn.execute(query).scalar_one())

    def migrate(self) -> None:
        from choir.store.migrate import upgrade

        upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        """One round trip to the database (raises when it is away)."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # -- genesis and loading ----------------------------------------------------------

    def genesis(self, state: State) -> bool:
        """Write a new state's genesis once. Returns False when the store already had one."""
        from choir.store.migrate import hold_setup_lock

        with self.begin() as conn:
            hold_setup_lock(conn)
            if conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "genesis_at")).first():
                return False
            conn.execute(
                schema.meta.insert(),
                [
                    {"key": "genesis_at", "value": state.genesis_at.isoformat()},
                    {"key": "params", "value": json.dumps(dataclasses.asdict(state.params))},
                    {"key": VERSION_KEY, "value": "0"},
                ],
            )
            conn.execute(
                schema.balances.insert(),
                [{"account": a, "amount": b} for a, b in state.ledger.balances.items()],
            )
        return True

    def version(self, conn: Connection | None = None) -> int:
        query = select(schema.meta.c.value).where(schema.meta.c.key == VERSION_KEY)
        if conn is not None:
            return int(conn.execute(query).scalar_one())
        with self.engine.connect() as c:
            return int(c.execute(query).scalar_one())

    def load_state(self) -> tuple[State, int] | None:
        """The whole program state and its version, or None before genesis."""
        with self.engine.connect() as conn:
            rows = dict(conn.execute(select(schema.meta.c.key, schema.meta.c.value)).all())
            if "genesis_at" not in rows:
                return None
            ledger = Ledger.from_rows(
                {r.account: r.amount for r in conn.execute(select(schema.balances))},
                (codec.transfer_from(r._mapping) for r in conn.execute(select(schema.transfers))),
            )
            state = State.load(
                genesis_at=datetime.fromisoformat(rows["genesis_at"]),
                params=Params(**json.loads(rows["params"])),
                ledger=ledger,
                threads={
                    r.thread_id: codec.thread_from(r._mapping) for r in conn.execute(select(schema.threads))
                },
                specs={r.spec_id: codec.spec_from(r._mapping) for r in conn.execute(select(schema.specs))},
                messages=[codec.message_from(r._mapping) for r in conn.execute(select(schema.messages))],
                citations=[codec.citation_from(r._mapping) for r in conn.execute(select(schema.citations))],
                epochs={r.epoch: codec.epoch_from(r._mapping) for r in conn.execute(select(schema.epochs))},
            )
            return state, int(rows[VERSION_KEY])

    # -- writing ----------------------------------------------------------------------

    def claim_version(self, conn: Connection, expected: int, new: int) -> bool:
        """Optimistic concurrency between processes: the write succeeds only if no other
        writer committed since our state was loaded (the row lock orders them on PostgreSQL)."""
        result = conn.execute(_CLAIM_VERSION, {"expected": str(expected), "new": str(new)})
        return result.rowcount == 1

    def persist(
        self,
        conn: Connection,
        outcomes: Sequence[Outcome],
        html: Mapping[str, str],
        version: int | None = None,
    ) -> list[inbox.Notification]:
        """Write a batch's outcomes and the notifications they make (returned, with their ids).
        ``html`` is each published or edited message's rendered html (``engine.render.render_all``,
        rendered before the transaction: stored in the message row and in its event's data).
        ``version``, the state version the batch makes, logs what it wrote (``store.statelog``)."""
        threads: dict[str, dict[str, Any]] = {}
        specs: dict[str, dict[str, Any]] = {}
        balances: dict[str, int] = {}
        messages: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        transfers: list[dict[str, Any]] = []
        citations: list[dict[str, Any]] = []
        epochs: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        for o in outcomes:
            threads.update((k, codec.thread_row(v)) for k, v in o.threads.items())
            specs.update((k, codec.spec_row(v)) for k, v in o.specs.items())
            balances.update(o.balances)
            messages.extend(codec.message_row(m, html.get(m.message_id, "")) for m in o.messages)
            events.extend(_event_row(e, html) for e in o.events)
            transfers.extend(codec.transfer_row(t) for t in o.transfers)
            if o.citations:
                assert o.at is not None, "an outcome from apply() carries its time"
                citations.extend(codec.citation_row(c, o.at) for c in o.citations)
            epochs.extend(codec.epoch_row(e) for e in o.epochs)
            changes.extend(_changes_of(o))
        if threads:
            self._upsert(conn, schema.threads, "thread_id", list(threads.values()))
        if specs:
            self._upsert(conn, schema.specs, "spec_id", list(specs.values()))
        if balances:
            self._upsert(
                conn, schema.balances, "account", [{"account": a, "amount": b} for a, b in balances.items()]
            )
        for table, rows in (
            (schema.messages, messages),
            (schema.events, events),
            (schema.transfers, transfers),
            (schema.citations, citations),
            (schema.epochs, epochs),
        ):
            if rows:
                conn.execute(table.insert(), rows)
        # After the inserts: a batch may publish a message and measure it.
        novelty = [{"mid": mid, "ppm": ppm} for o in outcomes for mid, ppm in o.novelty]
        if novelty:
            conn.execute(_SET_NOVELTY, novelty)
        # Before the revisions: a deletion in this batch then scrubs the excerpts of what it told too.
        notes = inbox.record(conn, outcomes)
        for revision in (r for o in outcomes for r in o.revisions):
            _revise(conn, revision, html.get(revision.record_id, ""))
        if changes:
            self._log_changes(conn, changes)
        if version is not None and self.logs_state:
            statelog.write(conn, version, outcomes)
        gone = {r.message_id for o in outcomes for r in o.revisions if r.deleted}
        return [n.scrubbed() if n.ref in gone else n for n in notes]

    def outcomes_since(self, conn: Connection, version: int, target: int) -> list[Outcome] | None:
        """What the versions after ``version`` up to ``target`` wrote (None: reload instead)."""
        return statelog.outcomes_since(conn, version, target)

    def _log_changes(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Number the change log rows after the last committed one (read by choir.chain.sqlfeed).

        Only the writer that claimed the state version gets here, and it holds that claim (the
        version row's lock) until it commits: no other transaction can take the same positions or
        commit a later one first, so positions follow commit order without a gap.
        """
        last = conn.execute(select(func.max(schema.changes.c.position))).scalar_one_or_none() or 0
        for position, row in enumerate(rows, start=last + 1):
            row["position"] = position
        conn.execute(schema.changes.insert(), rows)

    # -- reads for the API ------------------------------------------------------------

    def events_since(self, thread_id: str, since_seq: int, limit: int = 1000) -> list[Event]:
        e = schema.events
        query = (
            select(e).where(e.c.thread_id == thread_id, e.c.seq > since_seq).order_by(e.c.seq).limit(limit)
        )
        with self.engine.connect() as conn:
            return [Event(r.thread_id, r.seq, r.kind, r.data, r.at) for r in conn.execute(query)]

    def messages_page(self, thread_id: str, before_seq: int | None, limit: int) -> list[dict[str, Any]]:
        m = schema.messages
        query = select(m).where(m.c.thread_id == thread_id)
        if before_seq is not None:
            query = query.where(m.c.seq < before_seq)
        query = query.order_by(m.c.seq.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        return rows[::-1]

    def messages_by_id(self, message_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not message_ids:
            return {}
        m = schema.messages
        with self.engine.connect() as conn:
            rows = conn.execute(select(m).where(m.c.message_id.in_(list(message_ids))))
            return {r.message_id: dict(r._mapping) for r in rows}

    def quoting_answers(
        self, message_id: str, limit: int
    ) -> tuple[str, list[tuple[str, int, str, list[int]]]]:
        """A message's content and the live AI answers that cite it (the latest ``limit``): each
        answer's id, version, content and the numbers it cites the message by. One snapshot."""
        m, c = schema.messages, schema.citations
        with read_snapshot(self.engine) as conn:
            content = conn.execute(select(m.c.content).where(m.c.message_id == message_id)).scalar()
            asks = select(c.c.ask_id).where(c.c.message_id == message_id).distinct()
            query = (
                select(m.c.message_id, m.c.version, m.c.content, m.c.citations)
                .where(m.c.ask_id.in_(asks), m.c.deleted_at.is_(None))
                .order_by(m.c.published_at.desc())
                .limit(limit)
            )
            answers = [
                (
                    row.message_id,
                    row.version,
                    row.content,
                    [n for n, mid, _ in row.citations if mid == message_id],
                )
                for row in conn.execute(query)
            ]
        return content or "", [a for a in answers if a[3]]

    def message_history(self, message_id: str) -> tuple[str, dict[int, dict[str, Any]]] | None:
        """A message's thread and every version of it by number, oldest first, the current one last
        (None: no such message). A version's ``content`` is None once the message is deleted."""
        m, v = schema.messages, schema.message_versions
        with read_snapshot(self.engine) as conn:
            current = conn.execute(select(m).where(m.c.message_id == message_id)).first()
            if current is None:
                return None
            rows = conn.execute(select(v).where(v.c.message_id == message_id).order_by(v.c.version))
            history = {r.version: dict(r._mapping) | {"deleted": False} for r in rows}
        c = current._mapping
        deleted = c["deleted_at"] is not None
        at = c["deleted_at"] or c["edited_at"] or c["published_at"]
        history[c["version"]] = {
            "version": c["version"],
            "content": None if deleted else c["content"],
            "content_hash": c["content_hash"],
            "at": at,
            "deleted": deleted,
        }
        return c["thread_id"], history

    def keyword_search(self, query: str, limit: int, readable: Collection[str]) -> list[keywords.KeywordHit]:
        """Messages of the ``readable`` threads matching words of ``query`` (``store.keywords``),
        best first, ranked by statistics of those threads alone."""
        with read_snapshot(self.engine) as conn:
            return keywords.search(conn, query, limit, readable)

    def threads_by_id(self, thread_ids: Sequence[str]) -> dict[str, Thread]:
        """The threads as the store holds them now (not as this process's state last read them)."""
        if not thread_ids:
            return {}
        t = schema.threads
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.thread_id.in_(list(thread_ids))))
            return {r.thread_id: codec.thread_from(r._mapping) for r in rows}

    def all_messages(self) -> list[Message]:
        with self.engine.connect() as conn:
            return [codec.message_from(r._mapping) for r in conn.execute(select(schema.messages))]

    def count(self, table: str) -> int:
        t = schema.metadata.tables[table]
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t)).scalar_one())


# Events that change a thread's co-author set: the chain anchors the set after each.
_OWNERSHIP_EVENTS = frozenset({"thread.created", "coauthor.joined", "coauthor.left"})


def _changes_of(o: Outcome) -> Iterator[dict[str, Any]]:
    """Change log rows of one outcome, in ledger order: its transfers, its messages, its new co-author sets."""
    for t in o.transfers:
        yield {"kind": "t", "ref": f"{t.id:032x}", "co_authors": None, "content_hash": None}
    for m in o.messages:
        yield {"kind": "m", "ref": m.message_id, "co_authors": None, "content_hash": m.content_hash}
    for r in o.revisions:
        yield {
            "kind": "v",
            "ref": r.message_id,
            "co_authors": None,
            "version": r.version,
            "content_hash": r.content_hash,
        }
    for thread_id in dict.fromkeys(e.thread_id for e in o.events if e.kind in _OWNERSHIP_EVENTS):
        thread = o.threads[thread_id]  # the program puts every thread whose members it changes
        yield {
            "kind": "o",
            "ref": thread_id,
            "co_authors": sorted(set(thread.co_authors)),
            "content_hash": None,
        }


def _revise(conn: Connection, r: Revision, html: str) -> None:
    """Keep the replaced version, write the new one; a deletion removes the content of all."""
    conn.execute(_KEEP_VERSION, {"mid": r.message_id})
    values = {"content": r.content, "html": html, "content_hash": r.content_hash, "version": r.version}
    values |= {"deleted_at": r.at} if r.deleted else {"edited_at": r.at}
    m, v = schema.messages, schema.message_versions
    conn.execute(update(m).where(m.c.message_id == r.message_id).values(**values))
    if r.deleted:
        conn.execute(update(v).where(v.c.message_id == r.message_id).values(content=None))
        _scrub(conn, r)
    elif r.author == AI_AUTHOR:
        # An AI answer changes only to lose its quotes of a deleted message: the versions that held
        # them lose their text too (their hashes stay, as anchored).
        conn.execute(update(v).where(v.c.message_id == r.message_id).values(content=None))
        _scrub(conn, r, before_version=r.version)


def _scrub(conn: Connection, r: Revision, before_version: int | None = None) -> None:
    """A deleted message's content goes from every stored copy: its events (the post, each edit,
    and the spec it came in by, whose id it bears; the program blanks the spec's own row), and the
    excerpts of the notifications that told of it; the hashes stay, as anchored. With
    ``before_version`` (a redacted answer), only the copies of the versions before it."""
    e, n = schema.events, schema.notifications
    mid = r.message_id
    query = select(e.c.seq, e.c.data).where(
        e.c.thread_id == r.thread_id,
        e.c.kind.in_(("message.posted", "message.edited", "spec.submitted")),
        cast(e.c.data, Text).contains(f'"message_id":"{mid}"', autoescape=True)
        | cast(e.c.data, Text).contains(f'"spec_id":"{mid}"', autoescape=True),
    )
    for seq, data in conn.execute(query).all():
        if before_version is not None:
            if data.get("message_id") == mid and int(data.get("version", 1)) < before_version:
                scrubbed = data | {"content": "", "html": "", "redacted": True}
                conn.execute(
                    update(e).where(e.c.thread_id == r.thread_id, e.c.seq == seq).values(data=scrubbed)
                )
        elif data.get("message_id") == mid or data.get("spec_id") == mid:
            scrubbed = data | {"content": "", "html": "", "deleted": True}
            conn.execute(update(e).where(e.c.thread_id == r.thread_id, e.c.seq == seq).values(data=scrubbed))
    for note_id, data in conn.execute(select(n.c.id, n.c.data).where(n.c.ref == r.message_id)).all():
        conn.execute(update(n).where(n.c.id == note_id).values(data=data | {"excerpt": ""}))


_KEEP_VERSION = text(
    "INSERT INTO message_versions (message_id, version, content, content_hash, at) "
    "SELECT message_id, version, content, content_hash, COALESCE(edited_at, published_at) "
    "FROM messages WHERE message_id = :mid"
)


def _event_row(e: Event, html: Mapping[str, str]) -> dict[str, Any]:
    # The same html the live frame carries (Commit.event_data); the event itself is left as it is.
    return {"thread_id": e.thread_id, "seq": e.seq, "kind": e.kind, "data": with_html(e, html), "at": e.at}


def with_html(e: Event, html: Mapping[str, str]) -> dict[str, Any]:
    """A post's or an edit's event data with its rendered html (``engine.render.render_all`` keys)."""
    if e.kind == "message.posted":
        key = e.data["message_id"]
    elif e.kind == "message.edited":
        key = version_record_id(e.data["message_id"], e.data["version"])
    else:
        return e.data
    return e.data | {"html": html.get(key, "")}


_SET_NOVELTY = (
    update(schema.messages)
    .where(schema.messages.c.message_id == bindparam("mid"))
    .values(novelty_ppm=bindparam("ppm"))
)

_CLAIM_VERSION = (
    update(schema.meta)
    .where(schema.meta.c.key == VERSION_KEY, schema.meta.c.value == bindparam("expected"))
    .values(value=bindparam("new"))
)

Upsert = Callable[[Connection, Any, str, list[dict[str, Any]]], None]


def upsert_for(dialect: str) -> Upsert:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # Built once per table: constructing an upsert costs more than executing it.
    statements: dict[str, Any] = {}

    def upsert(conn: Connection, table: Any, key: str, rows: list[dict[str, Any]]) -> None:
        stmt = statements.get(table.name)
        if stmt is None:
            base = insert(table)
            columns = {c.name: base.excluded[c.name] for c in table.columns if c.name != key}
            stmt = statements[table.name] = base.on_conflict_do_update(index_elements=[key], set_=columns)
        conn.execute(stmt, rows)

    return upsert


@contextmanager
def read_snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only connection whose statements all see one committed state of the store."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            # Every statement of a REPEATABLE READ transaction sees the same snapshot.
            snap = conn.execution_options(isolation_level="REPEATABLE READ")
            with snap.begin():
                yield snap
            return
        # pysqlite starts no transaction for a SELECT; an explicit BEGIN makes the reads of
        # this connection one WAL snapshot (taken at the first read).
        conn.exec_driver_sql("BEGIN")
        try:
            yield conn
        finally:
            conn.rollback()


class AdvisoryLock:
    """PostgreSQL: a session advisory lock, held for the life of the process that took it
    (the database releases it if that process dies, so another takes over). SQLite: one
    process owns the store, so the lock is always held."""

    def __init__(self, engine: Engine, key: int, *, shared: bool = False) -> None:
        self.engine = engine
        self.key = key
        # A shared hold coexists with other shared holds and excludes an exclusive one.
        self._function = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
        self._conn: Connection | None = None

    def held(self) -> bool:
        if self.engine.dialect.name != "postgresql" or self._conn is not None:
            return True
        conn = self.engine.connect()
        try:
            got = bool(conn.execute(text(f"SELECT {self._function}(:k)"), {"k": self.key}).scalar())
            conn.commit()
        except Exception:
            conn.close()
            raise
        if got:
            self._conn = conn  # the session holds the lock until it closes
        else:
            conn.close()
        return got

    def check(self) -> bool:
        """Whether the lock is still held, retaking it when its session was lost (a database restart
        ends every session, and their advisory locks with them). False: another process holds it now."""
        if self.engine.dialect.name != "postgresql":
            return True
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                self._conn.commit()
                return True
            except Exception:
                self.release()
        try:
            return self.held()
        except Exception:
            return False  # the database is still away: not held, and retried at the next check

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                # Invalidated, not returned to the pool: a pooled session would keep holding the lock.
                self._conn.invalidate()
                self._conn.close()
            self._conn = None
