"""Key policies (allowed models, expiry, rate limits, budget periods, cost budgets), model
prices, and the cost and cached tokens of each logged call.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from llm_gateway.db.tables import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user_keys") as batch:
        batch.add_column(
            sa.Column("cost_used_nanousd", sa.BigInteger, nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("cost_budget_nanousd", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("allowed_models", sa.JSON, nullable=True))
        batch.add_column(sa.Column("expires_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("rpm_limit", sa.Integer, nullable=True))
        batch.add_column(sa.Column("tpm_limit", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("budget_period", sa.String(16), nullable=True))
        batch.add_column(sa.Column("period_started_at", UTCDateTime, nullable=True))
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("input_price_per_million", sa.Float, nullable=True))
        batch.add_column(sa.Column("cached_input_price_per_million", sa.Float, nullable=True))
        batch.add_column(sa.Column("output_price_per_million", sa.Float, nullable=True))
    with op.batch_alter_table("request_logs") as batch:
        batch.add_column(sa.Column("cached_tokens", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("cost_usd", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("request_logs") as batch:
        batch.drop_column("cost_usd")
        batch.drop_column("cached_tokens")
    with op.batch_alter_table("models") as batch:
        batch.drop_column("output_price_per_million")
        batch.drop_column("cached_input_price_per_million")
        batch.drop_column("input_price_per_million")
    with op.batch_alter_table("user_keys") as batch:
        for name in (
            "period_started_at",
            "budget_period",
            "tpm_limit",
            "rpm_limit",
            "expires_at",
            "allowed_models",
            "cost_budget_nanousd",
            "cost_used_nanousd",
        ):
            batch.drop_column(name)
