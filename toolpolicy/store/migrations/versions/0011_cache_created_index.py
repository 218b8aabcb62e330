"""cache created index: `cache_entries.created_at` indexed, so a replica that reconnects to a PostgreSQL store reads
only the entries created since it last loaded instead of scanning the table

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_cache_entries_created_at", "cache_entries", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_cache_entries_created_at", table_name="cache_entries")
