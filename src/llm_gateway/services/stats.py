"""Dashboard numbers from the rollups of the request logs, the same on SQLite and PostgreSQL.

Every figure comes from `request_stats_hourly` and `request_stats_daily` (db/tables.py), which
the log writer fills in the same transaction as the log rows, so no query here grows with the
number of rows logged. Their grain is the UTC hour: the 24-hour figures are those of the 24
hourly buckets ending with the current hour, the 7-day figures those of the hours from the
start of the hour 7 days ago, and `total_requests` counts what retention has kept, to the hour.
A span of hours is read from the hourly table up to the first day that retention keeps whole,
then from the daily table (see `_since`): over 10 million rows from a thousand keys, a week is
some 10,000 rollup rows to add up instead of 168,000 hourly ones.

Costs are sums of the log rows' `cost_usd` (calls to unpriced models add nothing), per hour,
model, provider and key.

Usage per model has a row for each configured model only: a name counts as itself when it is a
model in the models table (active or not), or when the request was routed to a provider (so a
model deleted since keeps its history); any other name a client sent counts under
`UNKNOWN_MODEL`. The request-log rows themselves keep the name as it was requested; requests
with no model name are left out.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from llm_gateway.db.tables import (
    NOT_ROUTED,
    STATS_KEY,
    STATS_MEASURES,
    models,
    providers,
    request_stats_daily,
    request_stats_hourly,
    user_keys,
)
from llm_gateway.state.store import Store

HOURS = 24
UNKNOWN_MODEL = "(unknown)"  # where requests for names that are not configured models count

_hourly, _daily = request_stats_hourly.c, request_stats_daily.c


def _constant(value: Any, type_: Any = None) -> sa.ColumnElement[Any]:
    """A value written into the SQL: an expression grouped by must read the same in SELECT and
    GROUP BY, which bound parameters (a new one each time, on PostgreSQL) do not."""
    return sa.literal(value, type_, literal_execute=True)


def _next_day(instant: datetime) -> datetime:
    day = instant.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if day == instant else day + timedelta(days=1)


def _since(start: datetime, oldest: datetime) -> sa.Subquery:
    """The rollup rows of the hours from `start`: hourly ones up to the first whole day, daily
    ones from then on. Retention deletes the hours before the oldest kept and the days that
    begin before it, so a day from the next one after `oldest` (the oldest hour left) is whole.
    """
    split = _next_day(max(start, oldest))
    columns = (*STATS_KEY, *STATS_MEASURES)
    return sa.union_all(
        sa.select(*(_hourly[c] for c in columns)).where(
            _hourly.hour >= start, _hourly.hour < split
        ),
        sa.select(*(_daily[c] for c in columns)).where(_daily.day >= split),
    ).subquery("rollup")


def _usd(value: Any) -> float:
    return round(float(value or 0), 9)


def _avg_latency(latency_ms_sum: Any, requests: Any) -> float:
    return round(int(latency_ms_sum) / int(requests), 1) if requests else 0.0


async def dashboard(store: Store) -> dict[str, Any]:
    this_hour = store.clock.now().replace(minute=0, second=0, microsecond=0)
    async with store.engine.connect() as conn:
        oldest = await conn.scalar(sa.select(sa.func.min(_hourly.hour))) or this_hour
        total = await conn.scalar(sa.select(sa.func.sum(_since(oldest, oldest).c.requests)))
        last_day = await _last_hours(conn, this_hour)
        last_week = await _usage(conn, _since(this_hour - timedelta(days=7), oldest))
    return {"total_requests": int(total or 0), **last_day, **last_week}


async def _last_hours(conn: AsyncConnection, this_hour: datetime) -> dict[str, Any]:
    """The 24-hour totals and the figures of each of the 24 hours ending with this one."""
    first_hour = this_hour - timedelta(hours=HOURS - 1)
    found = await conn.execute(
        sa.select(
            _hourly.hour,
            sa.func.sum(_hourly.requests),
            sa.func.sum(_hourly.errors),
            sa.func.sum(_hourly.tokens),
            sa.func.sum(_hourly.latency_ms_sum),
            sa.func.sum(_hourly.cost_usd),
        )
        .where(_hourly.hour.between(first_hour, this_hour))
        .group_by(_hourly.hour)
    )
    by_hour = {hour: tuple(sums) for hour, *sums in found}
    hours = [first_hour + timedelta(hours=n) for n in range(HOURS)]
    # Per hour: requests, errors, tokens, latency_ms_sum, cost_usd.
    sums = [by_hour.get(hour, (0, 0, 0, 0, 0.0)) for hour in hours]
    requests, errors, tokens, latency_ms, cost = (sum(column) for column in zip(*sums, strict=True))
    return {
        "total_requests_24h": int(requests),
        "total_errors_24h": int(errors),
        "total_tokens_24h": int(tokens),
        "avg_latency_24h": _avg_latency(latency_ms, requests),
        "total_cost_usd_24h": _usd(cost),
        "requests_per_hour": [
            {
                "hour": hour.isoformat().replace("+00:00", "Z"),
                "requests": int(n),
                "errors": int(e),
                "tokens": int(t),
                "avg_latency": _avg_latency(ms, n),
                "cost_usd": _usd(spent),
            }
            for hour, (n, e, t, ms, spent) in zip(hours, sums, strict=True)
        ],
    }


async def _usage(conn: AsyncConnection, rollup: sa.Subquery) -> dict[str, Any]:
    """Usage per model, provider, endpoint and key over the rollup rows given, busiest first."""
    r = rollup.c
    requests, errors = sa.func.sum(r.requests), sa.func.sum(r.errors)
    tokens, cost = sa.func.sum(r.tokens), sa.func.sum(r.cost_usd)
    routed = r.provider_id != _constant(NOT_ROUTED, sa.Uuid)
    configured = sa.or_(routed, r.model_requested.in_(sa.select(models.c.name)))
    model = sa.case((configured, r.model_requested), else_=_constant(UNKNOWN_MODEL))
    by_model = await conn.execute(
        sa.select(model, requests, tokens, cost)
        .where(r.model_requested != "")
        .group_by(model)
        .order_by(requests.desc())
    )
    provider = sa.func.coalesce(providers.c.name, sa.func.nullif(r.provider_kind, _constant("")))
    by_provider = await conn.execute(
        sa.select(provider, requests, errors, cost)
        .select_from(rollup.outerjoin(providers, r.provider_id == providers.c.id))
        .where(routed)
        .group_by(provider)
        .order_by(requests.desc())
    )
    by_endpoint = await conn.execute(
        sa.select(r.endpoint, requests, errors, tokens)
        .group_by(r.endpoint)
        .order_by(requests.desc())
    )
    by_key = await conn.execute(
        sa.select(r.user_key_id, user_keys.c.name, requests, tokens, cost)
        .select_from(rollup.outerjoin(user_keys, r.user_key_id == user_keys.c.id))
        .group_by(r.user_key_id, user_keys.c.name)
        .order_by(requests.desc())
    )
    return {
        "model_usage": [
            {"model": m, "requests": int(n), "tokens": int(t), "cost_usd": _usd(spent)}
            for m, n, t, spent in by_model
        ],
        "provider_usage": [
            {"provider": p, "requests": int(n), "errors": int(e), "cost_usd": _usd(spent)}
            for p, n, e, spent in by_provider
        ],
        "endpoint_usage": [
            {"endpoint": name, "requests": int(n), "errors": int(e), "tokens": int(t)}
            for name, n, e, t in by_endpoint
        ],
        "key_usage": [
            {
                "key_id": str(k),
                "key_name": name,
                "requests": int(n),
                "tokens": int(t),
                "cost_usd": _usd(spent),
            }
            for k, name, n, t, spent in by_key
        ],
    }
