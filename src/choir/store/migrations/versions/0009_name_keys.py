"""display names keyed by their look (case and Unicode confusables folded), one holder per key

Revision ID: 0009
Revises: 0008

Every user gets `name_key` and `look_key` (`choir.store.names.name_digests` of their display name),
each unique. Names
held before are keyed in the order their holders signed up: a later holder of a name that reads as
an earlier one's keeps it, unkeyed (no mention resolves to it), until they choose another.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from choir.store.names import name_digests

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("name_key", sa.String(64), nullable=True))
    op.add_column("users", sa.Column("look_key", sa.String(64), nullable=True))
    conn = op.get_bind()
    users = sa.table(
        "users",
        sa.column("address"),
        sa.column("display_name"),
        sa.column("created_at"),
        sa.column("name_key"),
    )
    taken: set[str] = set()
    rows = conn.execute(
        sa.select(users.c.address, users.c.display_name).order_by(users.c.created_at, users.c.address)
    ).all()
    for address, display_name in rows:
        if not display_name:
            continue
        keys = name_digests(display_name)
        if taken.intersection(keys):
            continue
        taken.update(keys)
        conn.execute(
            sa.update(users).where(users.c.address == address).values(name_key=keys[0], look_key=keys[1])
        )
    op.create_index("ix_users_name_key", "users", ["name_key"], unique=True)
    op.create_index("ix_users_look_key", "users", ["look_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_users_look_key", table_name="users")
    op.drop_index("ix_users_name_key", table_name="users")
    op.drop_column("users", "look_key")
    op.drop_column("users", "name_key")
