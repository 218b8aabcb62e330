"""rollups: hourly request totals for the dashboard, and audit records looked up by request id

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTS = ("requests", "errors", "tokens_in", "tokens_out", "cache_hits", "guardrail_hits") + tuple(
    f"lat_{index:02d}" for index in range(16)
)


def upgrade() -> None:
    big = sa.BigInteger()
    op.create_table(
        "request_rollups",
        sa.Column("grain", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key_name", sa.String(length=128), nullable=False),
        sa.Column("target", sa.String(length=512), nullable=False),
        *[sa.Column(name, big, nullable=False) for name in _COUNTS[:6]],
        sa.Column("latency_sum_ms", sa.Float(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(20, 10), nullable=False),
        *[sa.Column(name, big, nullable=False) for name in _COUNTS[6:]],
        sa.PrimaryKeyConstraint("grain", "bucket", "kind", "key_name", "target"),
    )
    op.create_index("ix_request_rollups_grain_key_bucket", "request_rollups", ["grain", "key_name", "bucket"])
    op.create_index("ix_audit_events_request_id", "audit_events", ["request_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_request_id", table_name="audit_events")
    op.drop_table("request_rollups")
