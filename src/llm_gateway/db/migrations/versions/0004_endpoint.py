"""Which endpoint each logged call used, notes on what a bridge left out, and a per-model cap on
output tokens.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("request_logs") as batch:
        batch.add_column(
            sa.Column("endpoint", sa.String(32), nullable=False, server_default="chat")
        )
        batch.add_column(sa.Column("notes", sa.Text, nullable=True))
    op.create_index(
        "ix_request_logs_endpoint_created_at", "request_logs", ["endpoint", "created_at"]
    )
    op.add_column("models", sa.Column("max_output_tokens", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.drop_column("max_output_tokens")
    op.drop_index("ix_request_logs_endpoint_created_at", "request_logs")
    with op.batch_alter_table("request_logs") as batch:
        batch.drop_column("notes")
        batch.drop_column("endpoint")
