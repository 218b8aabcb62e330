"""rate journal: rate-limit usage per bucket, re-seeding counters after a counter-store restart

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_journal",
        sa.Column("bucket", sa.String(length=512), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bucket"),
    )
    with op.batch_alter_table("rate_journal", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rate_journal_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rate_journal", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rate_journal_expires_at"))
    op.drop_table("rate_journal")
