"""`/admin/logs` and `/admin/stats`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query

from llm_gateway.api.deps import StoreDep, require_admin
from llm_gateway.api.schemas import ERROR_RESPONSES
from llm_gateway.errors import NotFound
from llm_gateway.services import logs, stats
from llm_gateway.services.logs import LogFilter

router = APIRouter(
    prefix="/admin",
    tags=["observability"],
    dependencies=[Depends(require_admin)],
    responses=ERROR_RESPONSES,
)


@router.get("/logs")
async def list_logs(
    store: StoreDep,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 50,
    key_id: uuid.UUID | None = None,
    model: Annotated[str | None, Query(max_length=256)] = None,
    endpoint: Annotated[
        Literal["chat", "completions", "embeddings", "responses", "messages", "count_tokens"]
        | None,
        Query(),
    ] = None,
    status_code: Annotated[int | None, Query(ge=100, le=599)] = None,
    is_error: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Request logs, newest first. Bodies (when stored) come with `/admin/logs/{id}`."""
    filters = LogFilter(key_id, model, endpoint, status_code, is_error, since, until)
    return await logs.list_logs(store, filters, page, per_page)


@router.get("/logs/{log_id}")
async def get_log(log_id: Annotated[int, Path(ge=1, le=2**62)], store: StoreDep) -> dict[str, Any]:
    row = await logs.get_log(store, log_id)
    if row is None:
        raise NotFound(f"log {log_id} not found")
    return row


@router.get("/stats")
async def get_stats(store: StoreDep) -> dict[str, Any]:
    """24-hour totals, hourly buckets, and 7-day usage per model and per provider."""
    return await stats.dashboard(store)
