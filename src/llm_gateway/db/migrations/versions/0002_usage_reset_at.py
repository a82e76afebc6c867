"""When a key's usage was last reset, so usage counted before it is not re-added by a late flush.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from llm_gateway.db.tables import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("user_keys", sa.Column("usage_reset_at", UTCDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("user_keys") as batch:
        batch.drop_column("usage_reset_at")
