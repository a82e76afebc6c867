"""Reading request logs: filtered, newest first, paginated."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from llm_gateway.db.tables import request_logs
from llm_gateway.state.store import Store

_LIST_COLUMNS = [c for c in request_logs.c if c.name not in ("request_body", "response_body")]


@dataclass(frozen=True)
class LogFilter:
    key_id: uuid.UUID | None = None
    model: str | None = None
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
    columns = list(request_logs.c) if with_bodies else _LIST_COLUMNS
    query = (
        sa.select(*columns)
        .where(*conditions)
        .order_by(request_logs.c.created_at.desc(), request_logs.c.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    count = sa.select(sa.func.count()).select_from(request_logs).where(*conditions)
    async with store.engine.connect() as conn:
        rows = [dict(row._mapping) for row in await conn.execute(query)]
        total = await conn.scalar(count) or 0
    return {"data": rows, "total": total, "page": page, "per_page": per_page}


async def get_log(store: Store, log_id: int) -> dict[str, Any] | None:
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(sa.select(request_logs).where(request_logs.c.id == log_id))
        ).first()
    return None if row is None else dict(row._mapping)
