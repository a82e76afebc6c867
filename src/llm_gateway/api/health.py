"""`/health` (the process answers), `/ready` (database reachable, caches warm), `/metrics`."""

from __future__ import annotations

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Request, Response

from llm_gateway.api.deps import get_runtime

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> Response:
    runtime = get_runtime(request)
    checks = {"database": False, "caches": runtime.warm}
    if runtime.store is not None:
        try:
            async with runtime.store.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
            checks["database"] = True
        except Exception:  # noqa: S110 - any failure means "not ready"
            pass
    ok = checks["database"] and checks["caches"]
    if runtime.bus is not None:  # reported, but Redis being down does not make us unready
        checks["redis"] = runtime.bus.connected
    body = {"status": "ready" if ok else "not ready", "checks": checks}
    return Response(orjson.dumps(body), 200 if ok else 503, media_type="application/json")


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    runtime = get_runtime(request)
    if runtime.metrics is None:
        return Response(status_code=503)
    body, content_type = runtime.metrics.render()
    return Response(body, media_type=content_type)
