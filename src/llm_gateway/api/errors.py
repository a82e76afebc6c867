"""Every admin-side failure rendered once, in the OpenAI error shape.

That covers what Starlette raises itself too: an unknown path (404 `not_found`, also from the
static files under `/ui/`) and a method a path does not take (405 `method_not_allowed`, with
`Allow`), so no answer is ever Starlette's bare `{"detail": ...}`.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from starlette.exceptions import HTTPException

from llm_gateway.errors import GatewayError, error_body

log = logging.getLogger("llm_gateway.api")

_HTTP_TYPES = {401: "authentication_error", 404: "invalid_request_error"}
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def _json(status: int, body: bytes) -> Response:
    return Response(body, status_code=status, media_type="application/json")


async def _gateway_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return _json(exc.status, exc.body())


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(location) or None
    if first.get("type") == "json_invalid":
        message, param = "request body is not valid JSON", None
    else:
        message = f"{param or 'body'}: {first.get('msg', 'invalid value')}"
    return _json(400, error_body(message, "invalid_request_error", "invalid_request", param))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    message = str(exc.detail)
    if status in _HTTP_CODES and message == HTTPStatus(status).phrase:  # Starlette's own
        where = f"{request.method} {request.url.path}"  # the path only, never the query
        message = f"no such path: {where}" if status == 404 else f"method not allowed: {where}"
    error_type = _HTTP_TYPES.get(status, "invalid_request_error")
    response = _json(status, error_body(message, error_type, _HTTP_CODES.get(status)))
    response.headers.update(exc.headers or {})  # e.g. `Allow` on a 405
    return response


async def _database_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, SQLAlchemyError)
    connection_problem = isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or "connect" in type(exc.orig).__name__.lower()
    )
    log.error("database error in admin call: %s", type(exc).__name__)
    message = "the database is unavailable; try again shortly"
    if not connection_problem:
        message = "the database could not complete the operation; try again shortly"
    return _json(503, error_body(message, "service_unavailable", "database_unavailable"))


async def _connection_error(_: Request, exc: Exception) -> Response:
    log.error("dependency unreachable in admin call: %s", type(exc).__name__)
    body = error_body(
        "the database is unavailable; try again shortly",
        "service_unavailable",
        "database_unavailable",
    )
    return _json(503, body)


async def _unexpected_error(_: Request, exc: Exception) -> Response:
    log.exception("unexpected error in admin call")
    return _json(500, error_body("internal error", "server_error", "internal_error"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(SQLAlchemyError, _database_error)
    app.add_exception_handler(OSError, _connection_error)
    app.add_exception_handler(TimeoutError, _connection_error)
    app.add_exception_handler(Exception, _unexpected_error)
