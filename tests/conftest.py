"""Fixtures: real servers (mock upstream, PostgreSQL, Redis) and a gateway per test.

Tests that take `gateway` run once on the embedded default (SQLite) and once on PostgreSQL.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.audit import AUDIT
from tests.servers import (
    ADMIN_KEY,
    SECRET_KEY,
    Postgres,
    Redis,
    ThreadedGateway,
    Upstream,
    gateway_config,
    postgres_available,
    run_postgres,
    run_redis,
    run_upstream,
)

BACKENDS = ["sqlite", "postgres"]
SUITE_LOG = "suite-gateway.log"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `last` run after all others (the secrets audit reads what they left)."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


@pytest.fixture(scope="session", autouse=True)
def secret_audit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Log every in-process gateway to one file, and dump databases for the audit."""
    AUDIT.folder = tmp_path_factory.mktemp("secret-audit")
    AUDIT.register(ADMIN_KEY, SECRET_KEY)
    handler = logging.FileHandler(AUDIT.folder / SUITE_LOG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    watched = [logging.getLogger(name) for name in ("llm_gateway", "uvicorn")]
    levels = [logger.level for logger in watched]
    for logger in watched:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield
    for logger, level in zip(watched, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)
    handler.close()


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    with run_upstream() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    if not postgres_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL 15 is required in CI (/usr/lib/postgresql/15/bin)")
        pytest.skip("PostgreSQL binaries not available")
    with run_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Redis]:
    with run_redis() as server:
        yield server


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gateway.db'}"
        return
    server: Postgres = request.getfixturevalue("postgres_server")
    name = server.create_database()
    try:
        yield server.dsn(name)
    finally:
        server.drop_database(name)


GatewayFactory = Callable[..., ThreadedGateway]


@pytest.fixture
def make_gateway(database_url: str) -> Iterator[GatewayFactory]:
    started: list[ThreadedGateway] = []

    def make(**overrides: Any) -> ThreadedGateway:
        gateway = ThreadedGateway(gateway_config(database_url, **overrides)).start()
        started.append(gateway)
        return gateway

    yield make
    for gateway in reversed(started):
        gateway.stop()


@pytest.fixture
def gateway(make_gateway: GatewayFactory) -> ThreadedGateway:
    return make_gateway()


class Admin:
    """The admin API over real HTTP, with helpers that build a working setup."""

    def __init__(self, url: str, admin_key: str = ADMIN_KEY) -> None:
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30
        )

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        if response.headers.get("content-type", "").startswith("application/json"):
            AUDIT.register_admin_exchange(kwargs.get("json"), response.json())
        return response

    def ok(self, method: str, path: str, expected: int = 200, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        assert response.status_code == expected, response.text
        return response.json() if response.content else None

    def provider(self, base_url: str, **fields: Any) -> dict[str, Any]:
        body = {
            "name": f"p-{os.urandom(4).hex()}",
            "kind": "openai",
            "api_key": "sk-upstream-secret-0001",
            "base_url": base_url,
            **fields,
        }
        return dict(self.ok("POST", "/admin/providers", 201, json=body))

    def model(self, provider_id: str, name: str, **fields: Any) -> dict[str, Any]:
        body = {"name": name, "provider_id": provider_id, **fields}
        return dict(self.ok("POST", "/admin/models", 201, json=body))

    def key(self, **fields: Any) -> dict[str, Any]:
        body = {"name": f"k-{os.urandom(4).hex()}", **fields}
        return dict(self.ok("POST", "/admin/keys", 201, json=body))

    def tokens_used(self, key_id: str) -> int:
        keys = self.ok("GET", "/admin/keys")
        return int(next(k for k in keys if k["id"] == key_id)["tokens_used"])


@pytest.fixture
def admin(gateway: ThreadedGateway) -> Iterator[Admin]:
    client = Admin(gateway.url)
    yield client
    client.http.close()


def assert_openai_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code
