"""message versions (edits, deletions) and each person's inbox (follows, read marks, notifications)

Revision ID: 0008
Revises: 0007

A message keeps its current version in `messages` and the ones before in `message_versions`; the change
log commits each version's hash (`changes.content_hash`, filled in here for the messages logged
before). A tombstone's empty content is no duplicate of another's, so the per-thread uniqueness
leaves deleted messages out.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_NOW_LIVE = "ask_id IS NULL AND deleted_at IS NULL"


def upgrade() -> None:
    # Plain ALTER TABLE, not a batch (which on SQLite copies the table and loses its FTS5 triggers).
    op.add_column("messages", sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1")))
    op.add_column("messages", sa.Column("edited_at", sa.String(32), nullable=True))
    op.add_column("messages", sa.Column("deleted_at", sa.String(32), nullable=True))
    op.add_column("messages", sa.Column("mentions", sa.Text(), nullable=True))
    op.drop_index("ix_messages_thread_hash", table_name="messages")
    op.create_index(
        "ix_messages_thread_hash",
        "messages",
        ["thread_id", "content_hash"],
        unique=True,
        sqlite_where=sa.text(_NOW_LIVE),
        postgresql_where=sa.text(_NOW_LIVE),
    )
    op.create_table(
        "message_versions",
        sa.Column("message_id", sa.String(32), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
    )
    op.add_column("changes", sa.Column("version", sa.Integer(), nullable=True))
    op.add_column("changes", sa.Column("content_hash", sa.String(64), nullable=True))
    op.execute(
        "UPDATE changes SET content_hash = "
        "(SELECT m.content_hash FROM messages m WHERE m.message_id = changes.ref) WHERE kind = 'm'"
    )
    op.create_table(
        "thread_follows",
        sa.Column("address", sa.String(64), primary_key=True),
        sa.Column("thread_id", sa.String(32), primary_key=True),
        sa.Column("following", sa.Boolean(), nullable=True),
        sa.Column("read_seq", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.create_index("ix_thread_follows_thread", "thread_follows", ["thread_id"])
    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("thread_id", sa.String(32), nullable=True),
        sa.Column("ref", sa.String(64), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("read", sa.Boolean(), nullable=False, server_default=sa.text("false")),
    )
    op.create_index("ix_notifications_address_id", "notifications", ["address", "id"])
    op.create_index("ix_notifications_ref", "notifications", ["ref"])
    op.create_index("ix_users_display_name_lower", "users", [sa.text("lower(display_name)")])


def downgrade() -> None:
    # Before 0008 a message has one version and no tombstone: going back would forget histories and
    # turn deletions into empty messages. Refused, so that nothing is lost.
    revised = op.get_bind().execute(sa.text("SELECT COUNT(*) FROM messages WHERE version > 1")).scalar_one()
    if revised:
        raise RuntimeError(
            f"{revised} messages were edited or deleted; revision 0007 cannot hold their history: "
            "restore a backup taken before the upgrade instead"
        )
    op.drop_index("ix_users_display_name_lower", table_name="users")
    op.drop_table("notifications")
    op.drop_table("thread_follows")
    op.execute("ALTER TABLE changes DROP COLUMN content_hash")
    op.execute("ALTER TABLE changes DROP COLUMN version")
    op.drop_table("message_versions")
    op.drop_index("ix_messages_thread_hash", table_name="messages")
    op.create_index(
        "ix_messages_thread_hash",
        "messages",
        ["thread_id", "content_hash"],
        unique=True,
        sqlite_where=sa.text("ask_id IS NULL"),
        postgresql_where=sa.text("ask_id IS NULL"),
    )
    for column in ("mentions", "deleted_at", "edited_at", "version"):
        op.execute(f"ALTER TABLE messages DROP COLUMN {column}")
