"""The SQL schema (SQLAlchemy Core), portable between SQLite and PostgreSQL.

Amounts are stored as decimal text: a balance may exceed a signed 64-bit integer
(the supply is 10^19), and text keeps them exact on both engines. Times are ISO 8601
UTC text with a fixed width, so they sort as they compare.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)


class Amount(TypeDecorator[int]):
    impl = String(24)
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


class UTCTime(TypeDecorator[datetime]):
    impl = String(32)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def process_result_value(self, value: str | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class JSONText(TypeDecorator[Any]):
    """JSON as text: identical on both engines, and compact."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else json.dumps(value, separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

threads = Table(
    "threads",
    metadata,
    Column("thread_id", String(32), primary_key=True),
    Column("title", Text, nullable=False),
    Column("visibility", String(16), nullable=False),
    Column("creator", String(64), nullable=False),
    Column("created_at", UTCTime, nullable=False),
    Column("min_stake", Amount, nullable=False),
    Column("members", JSONText, nullable=False),
    Column("message_count", Integer, nullable=False),
    Column("last_seq", Integer, nullable=False),
)

specs = Table(
    "specs",
    metadata,
    Column("spec_id", String(32), primary_key=True),
    Column("thread_id", String(32), nullable=False, index=True),
    Column("author", String(64), nullable=False),
    Column("content", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("stake", Amount, nullable=False),
    Column("submitted_at", UTCTime, nullable=False),
    Column("expires_at", UTCTime, nullable=False),
    Column("voters", JSONText, nullable=False),
    Column("votes", JSONText, nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("settled_at", UTCTime),
)

messages = Table(
    "messages",
    metadata,
    Column("message_id", String(32), primary_key=True),
    Column("thread_id", String(32), nullable=False),
    Column("author", String(64), nullable=False),
    Column("content", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("published_at", UTCTime, nullable=False),
    Column("seq", Integer, nullable=False),
    # NULL while the novelty is being measured (SetNovelty fills it in).
    Column("novelty_ppm", Integer, nullable=True),
    Column("ask_id", String(32)),
    Column("citations", JSONText, nullable=False),
    # An AI answer's question (NULL for a person's message).
    Column("question", Text, nullable=True),
    # The current version (1 as published); earlier ones are in message_versions. A deleted message
    # is a tombstone: empty content and html, deleted_at set.
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("edited_at", UTCTime, nullable=True),
    Column("deleted_at", UTCTime, nullable=True),
    # The addresses the message mentions (NULL: none).
    Column("mentions", JSONText, nullable=True),
    Index("ix_messages_thread_seq", "thread_id", "seq", unique=True),
    # A person posts the same content once per thread; AI answers (ask_id set) may repeat, and a
    # tombstone holds no content.
    Index(
        "ix_messages_thread_hash",
        "thread_id",
        "content_hash",
        unique=True,
        sqlite_where=text("ask_id IS NULL AND deleted_at IS NULL"),
        postgresql_where=text("ask_id IS NULL AND deleted_at IS NULL"),
    ),
)

# The versions a message had before its current one. An edit copies the replaced version here; a
# deletion copies it too and then removes the content of every version (the hashes stay: they are
# committed in the change log and anchored).
message_versions = Table(
    "message_versions",
    metadata,
    Column("message_id", String(32), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("content", Text, nullable=True),
    Column("content_hash", String(64), nullable=False),
    Column("at", UTCTime, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("thread_id", String(32), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("data", JSONText, nullable=False),
    Column("at", UTCTime, nullable=False),
)

transfers = Table(
    "transfers",
    metadata,
    # The position is the order of commit: the chain settlement cursor follows it.
    Column("position", Integer, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("debit", String(128), nullable=False, index=True),
    Column("credit", String(128), nullable=False, index=True),
    Column("amount", Amount, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("ref", String(128), nullable=False),
    Column("at", UTCTime, nullable=False),
)

balances = Table(
    "balances",
    metadata,
    Column("account", String(128), primary_key=True),
    Column("amount", Amount, nullable=False),
)

citations = Table(
    "citations",
    metadata,
    Column("citation_id", Integer, primary_key=True, autoincrement=True),
    Column("ask_id", String(32), nullable=False, index=True),
    Column("epoch", Integer, nullable=False, index=True),
    Column("message_id", String(32), nullable=False, index=True),
    Column("cited_thread_id", String(32), nullable=False),
    Column("score_ppm", Integer, nullable=False),
    Column("eligible", Boolean, nullable=False),
    Column("at", UTCTime, nullable=False),
)

epochs = Table(
    "epochs",
    metadata,
    Column("epoch", Integer, primary_key=True, autoincrement=False),
    Column("new_message_budget", Amount, nullable=False),
    Column("new_message_paid", Amount, nullable=False),
    Column("prior_budget", Amount, nullable=False),
    Column("prior_paid", Amount, nullable=False),
    Column("settled_at", UTCTime, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("address", String(64), primary_key=True),
    Column("display_name", String(64)),
    Column("created_at", UTCTime, nullable=False),
    # store.names.name_digests of the display name: one holder per name, case and look-alikes folded
    # (NULL only for a name held before names were keyed and already taken then).
    Column("name_key", String(64), nullable=True),
    Column("look_key", String(64), nullable=True),
    # Completion finds a name by its start whatever its case (store.inbox.complete_people).
    Index("ix_users_display_name_lower", text("lower(display_name)")),
    Index("ix_users_name_key", "name_key", unique=True),
    Index("ix_users_look_key", "look_key", unique=True),
)

sessions = Table(
    "sessions",
    metadata,
    # Only a hash of the cookie is stored: a leaked database does not sign anyone in.
    Column("token_hash", String(64), primary_key=True),
    Column("address", String(64), nullable=False, index=True),
    Column("created_at", UTCTime, nullable=False),
    Column("expires_at", UTCTime, nullable=False),
)

nonces = Table(
    "nonces",
    metadata,
    Column("nonce", String(64), primary_key=True),
    Column("issued_at", UTCTime, nullable=False),
    Column("expires_at", UTCTime, nullable=False),
    Column("fields", JSONText, nullable=False),
    Column("used", Boolean, nullable=False),
)

# -- chain settlement (choir.chain.sqlfeed) -------------------------------------------------

changes = Table(
    "changes",
    metadata,
    # One commit order for everything the chain settles or anchors: a transfer ("t", ref = its id),
    # a published message ("m", ref = its id), a thread's new co-author set ("o", ref = the thread id,
    # co_authors = the sorted set after the change). Store.persist numbers them while it holds the
    # state version, so positions increase in commit order and never leave a gap.
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(1), nullable=False),
    Column("ref", String(64), nullable=False),
    Column("co_authors", JSONText),
    # A message ("m") or a message's next version ("v", ref = the message id): the hash committed
    # here is the one anchored, whatever later versions the message has.
    Column("version", Integer, nullable=True),
    Column("content_hash", String(64), nullable=True),
    Index("ix_changes_ref_position", "ref", "position"),
)

chain_checkpoints = Table(
    "chain_checkpoints",
    metadata,
    # "<litesvm|rpc>:<custody authority>": new keys start a new chain from position 0.
    Column("chain", String(64), primary_key=True),
    Column("checkpoint", Text, nullable=False),  # choir.chain.Checkpoint as JSON, without the snapshot
    Column("snapshot", LargeBinary),  # the embedded chain's accounts, saved with the cursor
    Column("snapshot_sha256", String(64)),
    Column("updated_at", UTCTime, nullable=False),
)

chain_anchors = Table(
    "chain_anchors",
    metadata,
    # The records behind each anchored Merkle root (only the root is on chain): what proofs are made of.
    Column("chain", String(64), primary_key=True),
    Column("through", BigInteger, primary_key=True, autoincrement=False),
    Column("first", BigInteger, nullable=False),
    Column("signature", String(96), nullable=False),
    Column("batch", JSONText, nullable=False),
)

# -- the shared vector index (choir.store.vectors.sql, CHOIR_VECTOR_ENGINE=sql) ---------------

vector_points = Table(
    "vector_points",
    metadata,
    Column("point_id", String(36), primary_key=True),
    # Every write takes the next revision under a table lock, so revisions increase in commit
    # order and a process that has applied revision r has seen every write up to r.
    Column("rev", BigInteger, nullable=False, unique=True),
    Column("message_id", String(64), nullable=False),
    Column("thread_id", String(64), nullable=False, index=True),
    Column("visibility", String(16), nullable=False),
    Column("origin", String(8), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("author", String(64), nullable=False),
    Column("co_authors", JSONText, nullable=False),
    # float32 little-endian; NULL marks a deleted point (a tombstone, so every replica hears of it).
    Column("vector", LargeBinary),
)

# -- the state log: what each version changed, for other processes to catch up (choir.engine) --

state_log = Table(
    "state_log",
    metadata,
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    # The keys of the rows the version wrote (threads, specs, accounts, messages, transfers, the asks
    # whose citations it recorded, epochs) and the novelty it measured: a process at version v - 1
    # reads those rows and applies them instead of reloading the whole state.
    Column("delta", JSONText, nullable=False),
)


# -- each person's inbox: follows, read marks and notifications (choir.store.inbox) ------------

thread_follows = Table(
    "thread_follows",
    metadata,
    Column("address", String(64), primary_key=True),
    Column("thread_id", String(32), primary_key=True),
    # True: following; False: unfollowed on purpose (writing in the thread again does not follow it
    # again); NULL: no choice made yet (a read mark only), so writing there follows it.
    Column("following", Boolean, nullable=True),
    # The thread's seq the person has read up to: what is after it (by others) is unread.
    Column("read_seq", Integer, nullable=False, server_default=text("0")),
    Index("ix_thread_follows_thread", "thread_id"),
)

notifications = Table(
    "notifications",
    metadata,
    # Numbered in commit order by the writer holding the state version (as the change log is): a
    # client resumes after the last id it has.
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("address", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("thread_id", String(32), nullable=True),
    Column("ref", String(64), nullable=True),
    Column("data", JSONText, nullable=False),
    Column("at", UTCTime, nullable=False),
    Column("read", Boolean, nullable=False, server_default=text("false")),
    Index("ix_notifications_address_id", "address", "id"),
    # A deletion finds the notifications quoting the message (their excerpts go).
    Index("ix_notifications_ref", "ref"),
)
