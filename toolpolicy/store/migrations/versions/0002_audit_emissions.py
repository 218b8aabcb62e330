"""audit emission numbers and writer high-water marks

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("writer_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("emit_seq", sa.BigInteger(), nullable=True))

    op.create_table(
        "audit_writers",
        sa.Column("writer_id", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("emitted", sa.BigInteger(), nullable=False),
        sa.Column("dropped", sa.BigInteger(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("writer_id"),
    )


def downgrade() -> None:
    op.drop_table("audit_writers")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("emit_seq")
        batch_op.drop_column("writer_id")
