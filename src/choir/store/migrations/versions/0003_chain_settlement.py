"""chain settlement: the change log, the settlement checkpoint and the anchored records

Revision ID: 0003
Revises: 0002

A store made before this revision has no change log: it is backfilled in an order that keeps every
record true as of its position: each thread's current co-author set first (the only set the store
still knows; co-authors who divested are gone), then the messages in publication order, then the
transfers in commit order. Balances are not logged (the feed derives them from the transfers), so
every balance an anchor carries is exact.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Final

import sqlalchemy as sa
from alembic import op

import choir.store.schema

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_INSERT_ROWS: Final = 5000


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=1), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("co_authors", choir.store.schema.JSONText(), nullable=True),
        sa.PrimaryKeyConstraint("position"),
    )
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.create_index("ix_changes_ref_position", ["ref", "position"], unique=False)
    op.create_table(
        "chain_checkpoints",
        sa.Column("chain", sa.String(length=64), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=False),
        sa.Column("snapshot", sa.LargeBinary(), nullable=True),
        sa.Column("snapshot_sha256", sa.String(length=64), nullable=True),
        sa.Column("updated_at", choir.store.schema.UTCTime(length=32), nullable=False),
        sa.PrimaryKeyConstraint("chain"),
    )
    op.create_table(
        "chain_anchors",
        sa.Column("chain", sa.String(length=64), nullable=False),
        sa.Column("through", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("first", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.String(length=96), nullable=False),
        sa.Column("batch", choir.store.schema.JSONText(), nullable=False),
        sa.PrimaryKeyConstraint("chain", "through"),
    )
    _backfill(op.get_bind())


def downgrade() -> None:
    op.drop_table("chain_anchors")
    op.drop_table("chain_checkpoints")
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.drop_index("ix_changes_ref_position")
    op.drop_table("changes")


def _backfill(conn: sa.Connection) -> None:
    changes = sa.table(
        "changes",
        sa.column("position", sa.BigInteger),
        sa.column("kind", sa.String),
        sa.column("ref", sa.String),
        sa.column("co_authors", sa.Text),
    )
    rows: list[dict[str, Any]] = []
    for position, (kind, ref, co_authors) in enumerate(_history(conn), start=1):
        rows.append({"position": position, "kind": kind, "ref": ref, "co_authors": co_authors})
        if len(rows) == _INSERT_ROWS:
            conn.execute(changes.insert(), rows)
            rows = []
    if rows:
        conn.execute(changes.insert(), rows)


def _history(conn: sa.Connection) -> Iterator[tuple[str, str, str | None]]:
    threads = conn.execute(sa.text("SELECT thread_id, members FROM threads ORDER BY created_at, thread_id"))
    for thread_id, members in threads.all():
        co_authors = sorted({str(m[0]) for m in json.loads(members)})
        yield "o", thread_id, json.dumps(co_authors, separators=(",", ":"))
    messages = conn.execute(sa.text("SELECT message_id FROM messages ORDER BY published_at, thread_id, seq"))
    for (message_id,) in messages.all():
        yield "m", message_id, None
    for (transfer_id,) in conn.execute(sa.text("SELECT id FROM transfers ORDER BY position")).all():
        yield "t", transfer_id, None
