"""`create_app(config)`: the proxy's lean routes in front of the FastAPI admin app.

`/v1/chat/completions` and `/v1/models` are served by raw ASGI handlers (no routing table, no
middleware, no validation layer); every other path goes to FastAPI, which brings OpenAPI docs,
request validation for the admin API, and the lifespan that opens and closes every resource.
Around it all, when enabled, the access log (one line per request).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fastapi import FastAPI, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from llm_gateway import __version__
from llm_gateway.access_log import AccessLog
from llm_gateway.api import admin_keys, admin_logs, admin_models, admin_providers, health
from llm_gateway.api.errors import install_error_handlers
from llm_gateway.lifespan import lifespan
from llm_gateway.proxy.auth import FailedAuthThrottle
from llm_gateway.proxy.endpoints.chat import Chat
from llm_gateway.proxy.endpoints.messages import Messages
from llm_gateway.proxy.endpoints.openai_shape import OpenAIEndpoint
from llm_gateway.proxy.endpoints.responses import Responses
from llm_gateway.proxy.models_list import ModelList
from llm_gateway.proxy.pipeline import Proxy
from llm_gateway.runtime import Runtime
from llm_gateway.settings import Config
from llm_gateway.upstream.kinds import COMPLETIONS, EMBEDDINGS

UI_DIR = Path(__file__).parent / "ui"
FAVICON = UI_DIR / "favicon.svg"


class Gateway:
    """The ASGI entry point: dispatch the hot paths directly, everything else to FastAPI."""

    def __init__(self, runtime: Runtime, admin: ASGIApp) -> None:
        self.runtime = runtime
        self.admin = admin
        self._proxies = {
            endpoint.path: Proxy(runtime, endpoint)
            for endpoint in (
                Chat(),
                OpenAIEndpoint(COMPLETIONS, "/completions", required="prompt", streams=True),
                OpenAIEndpoint(EMBEDDINGS, "/embeddings", required="input", streams=False),
                Responses(),
                Messages(),
                Messages(count_tokens=True),
            )
        }
        models: ASGIApp = ModelList(runtime)
        # The proxies write their own access lines; everything else goes through the middleware.
        self._models = AccessLog(models) if runtime.config.access_log else models

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            proxy = self._proxies.get(path)
            if proxy is not None:
                await proxy(scope, receive, send)
                return
            if path == "/v1/models":
                await self._models(scope, receive, send)
                return
        await self.admin(scope, receive, send)


def create_app_from_environment() -> ASGIApp:
    """The app factory each `serve --workers N` process calls: configuration from the env."""
    from llm_gateway.settings import Settings

    return create_app(dataclasses.replace(Settings.load().resolve(), settle_gc=True))


def create_app(config: Config) -> ASGIApp:
    runtime = Runtime(config=config, auth_throttle=FailedAuthThrottle(config.auth_failure_limit))
    admin = FastAPI(
        title="llm-gateway admin API",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    admin.state.runtime = runtime
    install_error_handlers(admin)
    for router in (
        health.router,
        admin_providers.router,
        admin_models.router,
        admin_keys.router,
        admin_logs.router,
    ):
        admin.include_router(router)
    if UI_DIR.is_dir() and any(UI_DIR.iterdir()):
        _serve_ui(admin)
    app: ASGIApp = Gateway(runtime, AccessLog(admin) if config.access_log else admin)
    if config.cors_origins:
        app = CORSMiddleware(
            app,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
            allow_headers=["authorization", "content-type", "x-request-id"],
            expose_headers=["x-gateway-request-id", "x-request-id"],
        )
    return app


def _serve_ui(admin: FastAPI) -> None:
    """The admin page under `/ui/`; `/` leads there, and browsers find its icon."""
    admin.mount("/ui", StaticFiles(directory=UI_DIR, html=True), name="ui")

    @admin.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    if FAVICON.is_file():
        icon = FAVICON.read_bytes()

        @admin.api_route("/favicon.ico", methods=["GET", "HEAD"], include_in_schema=False)
        async def favicon() -> Response:
            headers = {"cache-control": "public, max-age=86400"}
            return Response(icon, media_type="image/svg+xml", headers=headers)
