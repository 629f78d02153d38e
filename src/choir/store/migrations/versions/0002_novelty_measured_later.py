"""novelty measured after publication: messages.novelty_ppm may be NULL

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch_op:
        batch_op.alter_column("novelty_ppm", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE messages SET novelty_ppm = 1000000 WHERE novelty_ppm IS NULL")
    with op.batch_alter_table("messages") as batch_op:
        batch_op.alter_column("novelty_ppm", existing_type=sa.Integer(), nullable=False)
