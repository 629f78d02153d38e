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
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("question", sa.Text(), nullable=True))
        batch_op.drop_index("ix_messages_thread_hash")
        batch_op.create_index(
            "ix_messages_thread_hash",
            ["thread_id", "content_hash"],
            unique=True,
            sqlite_where=sa.text("ask_id IS NULL"),
            postgresql_where=sa.text("ask_id IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_thread_hash")
        batch_op.create_index("ix_messages_thread_hash", ["thread_id", "content_hash"], unique=True)
        batch_op.drop_column("question")
