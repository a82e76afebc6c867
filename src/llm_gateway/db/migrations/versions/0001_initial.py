"""Providers, models, user keys and request logs.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from llm_gateway.db.tables import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "providers",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("base_url", sa.String(2048), nullable=False),
        sa.Column("api_key", sa.Text, nullable=False),
        sa.Column("is_active", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.String(256), nullable=False, unique=True),
        sa.Column(
            "provider_id",
            sa.Uuid,
            sa.ForeignKey("providers.id", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("provider_model_name", sa.String(256), nullable=True),
        sa.Column("is_active", sa.Boolean, nullable=False),
        sa.Column("input_token_coefficient", sa.Float, nullable=False),
        sa.Column("output_token_coefficient", sa.Float, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_models_provider_id", "models", ["provider_id"])
    op.create_table(
        "user_keys",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("key_prefix", sa.String(16), nullable=False),
        sa.Column("is_active", sa.Boolean, nullable=False),
        sa.Column("token_budget", sa.BigInteger, nullable=True),
        sa.Column("tokens_used", sa.BigInteger, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "request_logs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("gateway_request_id", sa.String(128), nullable=False),
        sa.Column("request_id", sa.String(256), nullable=True),
        sa.Column("user_key_id", sa.Uuid, nullable=False),
        sa.Column("model_requested", sa.String(256), nullable=True),
        sa.Column("model_sent", sa.String(256), nullable=True),
        sa.Column("provider_id", sa.Uuid, nullable=True),
        sa.Column("provider_kind", sa.String(32), nullable=True),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("is_error", sa.Boolean, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("total_tokens", sa.Integer, nullable=False),
        sa.Column("weighted_total_tokens", sa.BigInteger, nullable=False),
        sa.Column("latency_ms", sa.Integer, nullable=False),
        sa.Column("ttfb_ms", sa.Integer, nullable=True),
        sa.Column("is_stream", sa.Boolean, nullable=False),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("request_body", sa.Text, nullable=True),
        sa.Column("response_body", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_request_logs_created_at", "request_logs", ["created_at"])
    op.create_index(
        "ix_request_logs_user_key_created_at", "request_logs", ["user_key_id", "created_at"]
    )
    op.create_index(
        "ix_request_logs_model_created_at", "request_logs", ["model_requested", "created_at"]
    )


def downgrade() -> None:
    op.drop_table("request_logs")
    op.drop_table("user_keys")
    op.drop_table("models")
    op.drop_table("providers")
