from __future__ import annotations

import httpx
import pytest

from tests.conftest import assert_openai_error
from tests.servers import ThreadedGateway

ADMIN_PATHS = [
    ("GET", "/admin/providers"),
    ("POST", "/admin/providers"),
    ("GET", "/admin/models"),
    ("POST", "/admin/keys"),
    ("GET", "/admin/keys"),
    ("DELETE", "/admin/keys/00000000-0000-0000-0000-000000000000"),
    ("GET", "/admin/logs"),
    ("GET", "/admin/stats"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_PATHS)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-admin-key-000000000", "Basic abc", "Bearer"]
)
def test_admin_endpoints_refuse_missing_or_wrong_admin_key(
    gateway: ThreadedGateway, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.request(method, gateway.url + path, headers=headers, json={})
    assert_openai_error(response, 401)
    assert "test-admin-key" not in response.text


def test_health_and_ready(gateway: ThreadedGateway) -> None:
    assert httpx.get(gateway.url + "/health").json() == {"status": "ok"}
    ready = httpx.get(gateway.url + "/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": True, "caches": True}


def test_openapi_documents_the_admin_api(gateway: ThreadedGateway) -> None:
    spec = httpx.get(gateway.url + "/openapi.json").json()
    for path in ("/admin/providers", "/admin/models", "/admin/keys", "/admin/keys/{key_id}/rotate"):
        assert path in spec["paths"]
    assert httpx.get(gateway.url + "/docs").status_code == 200


def test_unknown_path_is_an_openai_shaped_404(gateway: ThreadedGateway) -> None:
    assert_openai_error(httpx.get(gateway.url + "/nope"), 404)
