"""answers keep their question; an AI answer may repeat an earlier one in its thread

Revision ID: 0007
Revises: 0006

The unique index on (thread_id, content_hash) now covers people's messages only (ask_id IS NULL): the
same question asked again is answered again, with the same text, which is not a duplicate post.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE, not a batch (which on SQLite copies the table and loses its FTS5 triggers).
    op.add_column("messages", sa.Column("question", sa.Text(), nullable=True))
    op.drop_index("ix_messages_thread_hash", table_name="messages")
    op.create_index(
        "ix_messages_thread_hash",
        "messages",
        ["thread_id", "content_hash"],
        unique=True,
        sqlite_where=sa.text("ask_id IS NULL"),
        postgresql_where=sa.text("ask_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_thread_hash", table_name="messages")
    op.create_index("ix_messages_thread_hash", "messages", ["thread_id", "content_hash"], unique=True)
    op.execute("ALTER TABLE messages DROP COLUMN question")  # SQLite >= 3.35 and PostgreSQL alike
