"""Table definitions (SQLAlchemy Core), shared by queries and migrations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite forgets the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        stamp: datetime = value
        return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


metadata = sa.MetaData()

providers = sa.Table(
    "providers",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("base_url", sa.String(2048), nullable=False),
    sa.Column("api_key", sa.Text, nullable=False),
    sa.Column("is_active", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(256), nullable=False, unique=True),
    sa.Column("is_active", sa.Boolean, nullable=False, default=True),
    sa.Column("input_token_coefficient", sa.Float, nullable=False, default=1.0),
    sa.Column("output_token_coefficient", sa.Float, nullable=False, default=1.0),
    # A larger max_tokens from a client is lowered to this instead of failing upstream.
    sa.Column("max_output_tokens", sa.Integer, nullable=True),
    # USD per million tokens; a model without input and output prices is unpriced.
    sa.Column("input_price_per_million", sa.Float, nullable=True),
    sa.Column("cached_input_price_per_million", sa.Float, nullable=True),  # else the input price
    sa.Column("output_price_per_million", sa.Float, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Where a model is served: a provider, its name for the model there, a weight and a priority.
model_deployments = sa.Table(
    "model_deployments",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("model_id", sa.Uuid, sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    sa.Column(
        "provider_id", sa.Uuid, sa.ForeignKey("providers.id", ondelete="RESTRICT"), nullable=False
    ),
    sa.Column("provider_model_name", sa.String(256), nullable=True),
    sa.Column("weight", sa.Integer, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),  # order in the admin's list
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_model_deployments_model_id", "model_id"),
    sa.Index("ix_model_deployments_provider_id", "provider_id"),
)

# The models tried, in order, once every deployment of a model has been tried.
model_fallbacks = sa.Table(
    "model_fallbacks",
    metadata,
    sa.Column(
        "model_id", sa.Uuid, sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column(
        "fallback_id", sa.Uuid, sa.ForeignKey("models.id", ondelete="RESTRICT"), nullable=False
    ),
    sa.Index("ix_model_fallbacks_fallback_id", "fallback_id"),
)

user_keys = sa.Table(
    "user_keys",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("key_prefix", sa.String(16), nullable=False),
    sa.Column("is_active", sa.Boolean, nullable=False, default=True),
    sa.Column("token_budget", sa.BigInteger, nullable=True),
    sa.Column("tokens_used", sa.BigInteger, nullable=False, default=0),
    # Usage flushes counted from before this instant are dropped (see state/usage.py).
    sa.Column("usage_reset_at", UTCDateTime, nullable=True),
    # Spend in billionths of a USD, counted like tokens_used (per period when there is one).
    sa.Column("cost_used_nanousd", sa.BigInteger, nullable=False, default=0),
    sa.Column("cost_budget_nanousd", sa.BigInteger, nullable=True),
    # Policies (limits/policy.py). Null: no restriction.
    sa.Column("allowed_models", sa.JSON, nullable=True),  # names and `*` globs
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("rpm_limit", sa.Integer, nullable=True),
    sa.Column("tpm_limit", sa.BigInteger, nullable=True),
    sa.Column("budget_period", sa.String(16), nullable=True),  # daily, weekly, monthly
    # The period tokens_used and cost_used_nanousd count in (null without a period); a charge
    # for a later period starts them from zero (state/usage.py).
    sa.Column("period_started_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

request_logs = sa.Table(
    "request_logs",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("gateway_request_id", sa.String(128), nullable=False),
    sa.Column("request_id", sa.String(256), nullable=True),
    sa.Column("endpoint", sa.String(32), nullable=False, default="chat"),
    sa.Column("user_key_id", sa.Uuid, nullable=False),
    sa.Column("model_requested", sa.String(256), nullable=True),
    sa.Column("model_sent", sa.String(256), nullable=True),
    sa.Column("model_served", sa.String(256), nullable=True),  # differs after a fallback
    sa.Column("provider_id", sa.Uuid, nullable=True),
    sa.Column("provider_kind", sa.String(32), nullable=True),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("is_error", sa.Boolean, nullable=False),
    sa.Column("prompt_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("completion_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("total_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("weighted_total_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("cached_tokens", sa.Integer, nullable=False, default=0),  # part of prompt_tokens
    sa.Column("cost_usd", sa.Float, nullable=True),  # null: the serving model has no prices
    sa.Column("latency_ms", sa.Integer, nullable=False),
    sa.Column("ttfb_ms", sa.Integer, nullable=True),
    sa.Column("is_stream", sa.Boolean, nullable=False),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=1),
    sa.Column("failed_attempts", sa.Text, nullable=True),  # JSON list, one entry per failure
    sa.Column("notes", sa.Text, nullable=True),  # what a bridge left out, for the operator
    sa.Column("request_body", sa.Text, nullable=True),
    sa.Column("response_body", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_request_logs_created_at", "created_at"),
    sa.Index("ix_request_logs_user_key_created_at", "user_key_id", "created_at"),
    sa.Index("ix_request_logs_model_created_at", "model_requested", "created_at"),
    sa.Index("ix_request_logs_endpoint_created_at", "endpoint", "created_at"),
)

# Sums of request_logs per UTC hour, and per UTC day, written by the log writer in the same
# transaction as the rows (state/log_writer.py) and read by /admin/stats (the daily tier keeps
# week-long and all-time figures from reading every hour of every key). Every key column is
# NOT NULL, so that `INSERT ... ON CONFLICT` finds the row on both backends (NULLs never
# conflict): '' stands for no model or no provider kind, NOT_ROUTED for no provider.
NOT_ROUTED = uuid.UUID(int=0)
STATS_KEY = ("user_key_id", "endpoint", "model_requested", "provider_id", "provider_kind")
STATS_MEASURES = ("requests", "errors", "tokens", "latency_ms_sum", "cost_usd")


def _stats_table(name: str, period: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column(period, UTCDateTime, nullable=False),  # the start of the UTC hour or day
        sa.Column("user_key_id", sa.Uuid, nullable=False),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("model_requested", sa.String(256), nullable=False),
        sa.Column("provider_id", sa.Uuid, nullable=False),
        sa.Column("provider_kind", sa.String(32), nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("errors", sa.BigInteger, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),  # sum of total_tokens
        sa.Column("latency_ms_sum", sa.BigInteger, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),  # sum of the priced rows' cost_usd
        # The conflict target of the writer's upsert; led by the period, so it also serves
        # ranges of hours or days.
        sa.PrimaryKeyConstraint(period, *STATS_KEY, name=f"pk_{name}"),
    )


request_stats_hourly = _stats_table("request_stats_hourly", "hour")
request_stats_daily = _stats_table("request_stats_daily", "day")
