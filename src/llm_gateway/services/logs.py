"""Reading request logs: filtered, newest first, paginated.

The `total` of a page is counted exactly up to `COUNT_CAP` matching rows; past it, on PostgreSQL,
it is the planner's estimate (at least `COUNT_CAP + 1`) and `total_is_estimate` says so, since
counting tens of millions of rows would take seconds on every page. SQLite counts exactly.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from llm_gateway.db.tables import providers, request_logs, user_keys
from llm_gateway.state.store import Store

COUNT_CAP = 10_000  # matching rows counted exactly; past it, the planner's estimate
_NAMED = ("key_name", "provider_name")
_LIST_COLUMNS = [
    c for c in request_logs.c if c.name not in ("request_body", "response_body", *_NAMED)
]
_ALL_COLUMNS = [c for c in request_logs.c if c.name not in _NAMED]
# The key's and the provider's names beside their ids (the name recorded with the row first,
# when the table has one; the provider's current name otherwise).
_NAMES = [
    user_keys.c.name.label("key_name"),
    (
        sa.func.coalesce(request_logs.c.provider_name, providers.c.name)
        if "provider_name" in request_logs.c
        else providers.c.name
    ).label("provider_name"),
]
_JOINED = request_logs.outerjoin(user_keys, request_logs.c.user_key_id == user_keys.c.id).outerjoin(
    providers, request_logs.c.provider_id == providers.c.id
)


@dataclass(frozen=True)
class LogFilter:
    key_id: uuid.UUID | None = None
    model: str | None = None
    endpoint: str | None = None
    status_code: int | None = None
    is_error: bool | None = None
    since: datetime | None = None
    until: datetime | None = None

    def conditions(self) -> list[sa.ColumnElement[bool]]:
        c = request_logs.c
        found: list[sa.ColumnElement[bool]] = []
        if self.key_id is not None:
            found.append(c.user_key_id == self.key_id)
        if self.model is not None:
            found.append(c.model_requested == self.model)
        if self.endpoint is not None:
            found.append(c.endpoint == self.endpoint)
        if self.status_code is not None:
            found.append(c.status_code == self.status_code)
        if self.is_error is not None:
            found.append(c.is_error == self.is_error)
        if self.since is not None:
            found.append(c.created_at >= self.since)
        if self.until is not None:
            found.append(c.created_at < self.until)
        return found


async def list_logs(
    store: Store, filters: LogFilter, page: int, per_page: int, with_bodies: bool = False
) -> dict[str, Any]:
    conditions = filters.conditions()
    columns = _ALL_COLUMNS if with_bodies else _LIST_COLUMNS
    query = (
        sa.select(*columns, *_NAMES)
        .select_from(_JOINED)
        .where(*conditions)
        .order_by(request_logs.c.created_at.desc(), request_logs.c.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    async with store.engine.connect() as conn:
        rows = [_decoded(row) for row in await conn.execute(query)]
        total, estimated = await count_logs(conn, conditions)
    return {
        "data": rows,
        "total": total,
        "total_is_estimate": estimated,
        "page": page,
        "per_page": per_page,
    }


async def count_logs(
    conn: AsyncConnection, conditions: list[sa.ColumnElement[bool]]
) -> tuple[int, bool]:
    """How many rows match, and whether that is an estimate: exact up to `COUNT_CAP`, then (on
    PostgreSQL) the planner's estimate, never below `COUNT_CAP + 1`."""
    matching = sa.select(sa.literal(1)).select_from(request_logs).where(*conditions)
    if conn.dialect.name != "postgresql":
        count = sa.select(sa.func.count()).select_from(matching.subquery())
        return await conn.scalar(count) or 0, False
    capped = sa.select(sa.func.count()).select_from(matching.limit(COUNT_CAP + 1).subquery())
    exact = await conn.scalar(capped) or 0
    if exact <= COUNT_CAP:
        return exact, False
    plan = await conn.scalar(_Explain(matching))
    found = orjson.loads(plan) if isinstance(plan, str | bytes) else plan
    return max(int(found[0]["Plan"]["Plan Rows"]), COUNT_CAP + 1), True


async def get_log(store: Store, log_id: int) -> dict[str, Any] | None:
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(*_ALL_COLUMNS, *_NAMES)
                .select_from(_JOINED)
                .where(request_logs.c.id == log_id)
            )
        ).first()
    return None if row is None else _decoded(row)


def _decoded(row: Any) -> dict[str, Any]:
    """A log row as the API shows it: the failed attempts as a list, not JSON text."""
    fields = dict(row._mapping)
    failed = fields.get("failed_attempts")
    fields["failed_attempts"] = orjson.loads(failed) if failed else []
    return fields


class _Explain(sa.sql.expression.Executable, sa.sql.expression.ClauseElement):
    """`EXPLAIN (FORMAT JSON)` of a query, its parameters bound as the query's own."""

    inherit_cache = False

    def __init__(self, statement: sa.Select[Any]) -> None:
        self.statement = statement


@compiles(_Explain, "postgresql")
def _compile_explain(element: _Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + compiler.process(element.statement, **kw)
