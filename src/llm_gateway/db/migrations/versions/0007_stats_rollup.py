"""Sums of the request logs per hour and per day for `/admin/stats`: `request_stats_hourly` and
`request_stats_daily`, backfilled.

One row per UTC hour (day), key, endpoint, requested model and provider (see db/tables.py); from
now on the log writer adds each batch's sums in the same transaction as its rows. The rows
already logged are summed in here: into the hourly table one hour at a time (found with one
index probe per hour that has rows), then the daily table from it one day at a time. Migrations
run on the gateway's engine, whose statements time out after 30 s on PostgreSQL, so no
statement grows with the table. On PostgreSQL request_logs is locked against writes meanwhile
(readers go on), so that rows an instance of an older version logs during the backfill wait for
it instead of slipping between two hours; rows such an instance logs after this migration are
not summed (it does not know the tables): upgrade every instance.

`backfill` is also what bench/ uses after filling request_logs directly.

Revision ID: 0007
Revises: 0006
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Connection

from llm_gateway.db.tables import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLES = {"hour": "request_stats_hourly", "day": "request_stats_daily"}
KEY = "user_key_id, endpoint, model_requested, provider_id, provider_kind"
MEASURES = "requests, errors, tokens, latency_ms_sum, cost_usd"
# Each backend's expressions for the start of a timestamp's UTC hour or day, stored as
# UTCDateTime stores it (SQLite: text, the format a bound parameter), and for NOT_ROUTED.
_TRUNCATE = {
    "postgresql": "date_trunc('{unit}', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    "sqlite": "strftime(:{unit}_format, {column})",
}
_SQLITE_FORMATS = {
    "hour_format": "%Y-%m-%d %H:00:00.000000",
    "day_format": "%Y-%m-%d 00:00:00.000000",
}
_NOT_ROUTED = {
    "postgresql": "'00000000-0000-0000-0000-000000000000'::uuid",
    "sqlite": "'00000000000000000000000000000000'",
}


def upgrade() -> None:
    for period, name in TABLES.items():
        op.create_table(
            name,
            sa.Column(period, UTCDateTime, nullable=False),
            sa.Column("user_key_id", sa.Uuid, nullable=False),
            sa.Column("endpoint", sa.String(32), nullable=False),
            sa.Column("model_requested", sa.String(256), nullable=False),
            sa.Column("provider_id", sa.Uuid, nullable=False),
            sa.Column("provider_kind", sa.String(32), nullable=False),
            sa.Column("requests", sa.BigInteger, nullable=False),
            sa.Column("errors", sa.BigInteger, nullable=False),
            sa.Column("tokens", sa.BigInteger, nullable=False),
            sa.Column("latency_ms_sum", sa.BigInteger, nullable=False),
            sa.Column("cost_usd", sa.Float, nullable=False),
            sa.PrimaryKeyConstraint(period, *KEY.split(", "), name=f"pk_{name}"),
        )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql("LOCK TABLE request_logs IN SHARE MODE")
    backfill(bind)


def downgrade() -> None:
    for name in TABLES.values():
        op.drop_table(name)


def backfill(bind: Connection) -> None:
    """Sum every request-log row into the hourly and daily tables, which must be empty."""
    dialect = bind.dialect.name
    hour = _TRUNCATE[dialect].format(unit="hour", column="created_at")
    from_logs = (
        f"INSERT INTO request_stats_hourly (hour, {KEY}, {MEASURES})"  # noqa: S608
        f" SELECT {hour}, user_key_id, endpoint, coalesce(model_requested, ''),"
        f" coalesce(provider_id, {_NOT_ROUTED[dialect]}), coalesce(provider_kind, ''),"
        " count(*), sum(CASE WHEN is_error THEN 1 ELSE 0 END), sum(total_tokens),"
        " sum(latency_ms), coalesce(sum(cost_usd), 0)"
        " FROM request_logs WHERE created_at >= :lower AND created_at < :upper"
        " GROUP BY 1, 2, 3, 4, 5, 6"
    )
    day = _TRUNCATE[dialect].format(unit="day", column="hour")
    from_hours = (
        f"INSERT INTO request_stats_daily (day, {KEY}, {MEASURES})"  # noqa: S608
        f" SELECT {day}, {KEY}, sum(requests), sum(errors), sum(tokens), sum(latency_ms_sum),"
        " sum(cost_usd) FROM request_stats_hourly WHERE hour >= :lower AND hour < :upper"
        f" GROUP BY 1, {KEY}"
    )
    _in_slices(bind, from_logs, "request_logs", "created_at", "hour")
    _in_slices(bind, from_hours, "request_stats_hourly", "hour", "day")


def _in_slices(bind: Connection, statement: str, table: str, column: str, unit: str) -> None:
    """Run `statement` for each UTC hour or day [lower, upper) in which `table` has rows,
    oldest first: one probe of the index on `column` per slice."""
    probe = (
        sa.text(f"SELECT min({column}) AS first FROM {table} WHERE {column} >= :after")  # noqa: S608
        .bindparams(sa.bindparam("after", type_=UTCDateTime))
        .columns(first=UTCDateTime)
    )
    run = sa.text(statement).bindparams(
        sa.bindparam("lower", type_=UTCDateTime), sa.bindparam("upper", type_=UTCDateTime)
    )
    formats = _SQLITE_FORMATS if bind.dialect.name == "sqlite" else {}
    after = datetime(1, 1, 1, tzinfo=UTC)
    while (found := bind.execute(probe, {"after": after}).scalar()) is not None:
        lower = found.replace(minute=0, second=0, microsecond=0)
        if unit == "day":
            lower = lower.replace(hour=0)
        after = lower + (timedelta(days=1) if unit == "day" else timedelta(hours=1))
        bind.execute(run, {"lower": lower, "upper": after, **formats})
