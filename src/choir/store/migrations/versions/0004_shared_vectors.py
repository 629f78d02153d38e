"""the shared vector index: points in the SQL database, for several processes

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import choir.store.schema

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vector_points",
        sa.Column("point_id", sa.String(length=36), nullable=False),
        sa.Column("rev", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("thread_id", sa.String(length=64), nullable=False),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("origin", sa.String(length=8), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("co_authors", choir.store.schema.JSONText(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("point_id"),
        sa.UniqueConstraint("rev"),
    )
    with op.batch_alter_table("vector_points", schema=None) as batch_op:
        batch_op.create_index("ix_vector_points_thread_id", ["thread_id"], unique=False)


def downgrade() -> None:
    op.drop_table("vector_points")
