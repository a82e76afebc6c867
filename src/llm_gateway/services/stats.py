"""Dashboard numbers from the request logs, computed the same way on SQLite and PostgreSQL.

Costs are sums of the log rows' `cost_usd` (calls to unpriced models add nothing), per hour,
model, provider and key.

Usage per model has a row for each configured model only: a name counts as itself when it is a
model in the models table (active or not), or when the request was routed to a provider (so a
model deleted since keeps its history); any other name a client sent counts under
`UNKNOWN_MODEL`. The request-log rows themselves keep the name as it was requested.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from llm_gateway.db.tables import models, providers, request_logs, user_keys, utcnow
from llm_gateway.state.store import Store

HOURS = 24
UNKNOWN_MODEL = "(unknown)"  # where requests for names that are not configured models count


def _hour_bucket(dialect: str) -> sa.ColumnElement[Any]:
    created = request_logs.c.created_at
    if dialect == "postgresql":
        return sa.func.date_trunc("hour", sa.func.timezone("UTC", created))
    return sa.func.strftime("%Y-%m-%d %H:00:00", created)


def _model_name() -> sa.ColumnElement[Any]:
    c = request_logs.c
    configured = sa.or_(c.provider_id.is_not(None), c.model_requested.in_(sa.select(models.c.name)))
    return sa.case(
        (configured, c.model_requested), else_=sa.literal(UNKNOWN_MODEL, literal_execute=True)
    ).label("model")


def _usd(value: Any) -> float:
    return round(float(value or 0), 9)


def _as_hour(value: Any) -> datetime:
    hour: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return hour.replace(tzinfo=UTC) if hour.tzinfo is None else hour.astimezone(UTC)


async def dashboard(store: Store) -> dict[str, Any]:
    now = utcnow()
    day_ago = now - timedelta(hours=HOURS)
    week_ago = now - timedelta(days=7)
    c = request_logs.c
    errors = sa.func.sum(sa.case((c.is_error, 1), else_=0))
    cost = sa.func.sum(c.cost_usd)
    bucket = _hour_bucket(store.engine.dialect.name).label("hour")
    async with store.engine.connect() as conn:
        total = await conn.scalar(sa.select(sa.func.count()).select_from(request_logs)) or 0
        day = (
            await conn.execute(
                sa.select(
                    sa.func.count(),
                    errors,
                    sa.func.sum(c.total_tokens),
                    sa.func.avg(c.latency_ms),
                    cost,
                ).where(c.created_at >= day_ago)
            )
        ).one()
        hourly = await conn.execute(
            sa.select(
                bucket,
                sa.func.count(),
                errors,
                sa.func.sum(c.total_tokens),
                sa.func.avg(c.latency_ms),
                cost,
            )
            .where(c.created_at >= day_ago)
            .group_by(bucket)
        )
        by_hour = {_as_hour(row[0]): row for row in hourly}
        model = _model_name()
        by_model = await conn.execute(
            sa.select(model, sa.func.count(), sa.func.sum(c.total_tokens), cost)
            .where(c.created_at >= week_ago, c.model_requested.is_not(None))
            .group_by(model)
            .order_by(sa.func.count().desc())
        )
        provider_name = sa.func.coalesce(providers.c.name, c.provider_kind).label("provider")
        by_provider = await conn.execute(
            sa.select(provider_name, sa.func.count(), errors, cost)
            .select_from(request_logs.outerjoin(providers, c.provider_id == providers.c.id))
            .where(c.created_at >= week_ago, c.provider_id.is_not(None))
            .group_by(provider_name)
            .order_by(sa.func.count().desc())
        )
        by_endpoint = await conn.execute(
            sa.select(c.endpoint, sa.func.count(), errors, sa.func.sum(c.total_tokens))
            .where(c.created_at >= week_ago)
            .group_by(c.endpoint)
            .order_by(sa.func.count().desc())
        )
        by_key = await conn.execute(
            sa.select(
                c.user_key_id, user_keys.c.name, sa.func.count(), sa.func.sum(c.total_tokens), cost
            )
            .select_from(request_logs.outerjoin(user_keys, c.user_key_id == user_keys.c.id))
            .where(c.created_at >= week_ago)
            .group_by(c.user_key_id, user_keys.c.name)
            .order_by(sa.func.count().desc())
        )
        key_usage = [
            {
                "key_id": str(k),
                "key_name": name,
                "requests": n,
                "tokens": int(t or 0),
                "cost_usd": _usd(spent),
            }
            for k, name, n, t, spent in by_key
        ]
        endpoint_usage = [
            {"endpoint": e, "requests": n, "errors": int(f or 0), "tokens": int(t or 0)}
            for e, n, f, t in by_endpoint
        ]
        model_usage = [
            {"model": m, "requests": n, "tokens": int(t or 0), "cost_usd": _usd(spent)}
            for m, n, t, spent in by_model
        ]
        provider_usage = [
            {"provider": p, "requests": n, "errors": int(e or 0), "cost_usd": _usd(spent)}
            for p, n, e, spent in by_provider
        ]
    first_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS - 1)
    requests_per_hour = []
    for offset in range(HOURS):
        hour = first_hour + timedelta(hours=offset)
        row = by_hour.get(hour)
        requests_per_hour.append(
            {
                "hour": hour.isoformat().replace("+00:00", "Z"),
                "requests": row[1] if row else 0,
                "errors": int(row[2] or 0) if row else 0,
                "tokens": int(row[3] or 0) if row else 0,
                "avg_latency": round(float(row[4]), 1) if row and row[4] is not None else 0.0,
                "cost_usd": _usd(row[5]) if row else 0.0,
            }
        )
    return {
        "total_requests": total,
        "total_requests_24h": day[0],
        "total_errors_24h": int(day[1] or 0),
        "total_tokens_24h": int(day[2] or 0),
        "avg_latency_24h": round(float(day[3]), 1) if day[3] is not None else 0.0,
        "total_cost_usd_24h": _usd(day[4]),
        "requests_per_hour": requests_per_hour,
        "model_usage": model_usage,
        "provider_usage": provider_usage,
        "endpoint_usage": endpoint_usage,
        "key_usage": key_usage,
    }
