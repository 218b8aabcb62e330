"""upstream_oauth: per-key upstream OAuth token sets and dynamically registered clients, encrypted

Revision ID: 0008
Revises: 0006 (re-pointed to 0007 at merge)
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "upstream_oauth_tokens",
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("server", sa.String(length=128), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_id", "server"),
    )
    op.create_table(
        "upstream_oauth_clients",
        sa.Column("server", sa.String(length=128), nullable=False),
        sa.Column("issuer", sa.String(length=2048), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("server"),
    )


def downgrade() -> None:
    op.drop_table("upstream_oauth_clients")
    op.drop_table("upstream_oauth_tokens")
