"""Dependencies of the admin routes: the admin-key check and the store."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from llm_gateway.errors import AuthenticationError, ServiceUnavailable
from llm_gateway.proxy.auth import TOO_MANY_FAILURES
from llm_gateway.runtime import Runtime
from llm_gateway.security import secrets_equal
from llm_gateway.state.store import Store

_bearer = HTTPBearer(auto_error=False, description="The gateway's ADMIN_KEY.")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    runtime = get_runtime(request)
    given = credentials.credentials if credentials is not None else ""
    # Compare even when nothing was given, so timing says nothing about the key.
    if not secrets_equal(given, runtime.config.admin_key) or not given:
        if runtime.auth_throttle.failed(request.client.host if request.client else "unknown"):
            raise TOO_MANY_FAILURES
        raise AuthenticationError("invalid admin key", code="invalid_admin_key")


def get_store(request: Request) -> Store:
    store = get_runtime(request).store
    if store is None:
        raise ServiceUnavailable("the gateway is starting")
    return store


StoreDep = Annotated[Store, Depends(get_store)]
