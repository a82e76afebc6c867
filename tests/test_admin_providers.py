from __future__ import annotations

import uuid

import pytest

from tests.conftest import Admin, assert_openai_error

DEFAULT_URLS = {
    "openai": "https://api.openai.com/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "dashscope": "https://dashscope.aliyuncs.com/compatible-mode/v1",
    "ark": "https://ark.cn-beijing.volces.com/api/v3",
}


@pytest.mark.parametrize(("kind", "url"), DEFAULT_URLS.items())
def test_provider_kinds_get_their_default_base_url(admin: Admin, kind: str, url: str) -> None:
    created = admin.ok(
        "POST",
        "/admin/providers",
        201,
        json={"name": f"{kind}-main", "kind": kind, "api_key": "sk-provider-secret-123456"},
    )
    assert created["base_url"] == url
    assert created["kind"] == kind
    assert created["is_active"] is True
    assert set(created) == {
        "id",
        "name",
        "kind",
        "base_url",
        "api_key_preview",
        "is_active",
        "created_at",
        "updated_at",
    }


def test_provider_key_is_only_ever_shown_masked(admin: Admin) -> None:
    secret = "sk-provider-secret-abcdefgh"
    created = admin.provider("http://127.0.0.1:9/v1", api_key=secret)
    listed = admin.ok("GET", "/admin/providers")
    for body in (created, *listed):
        assert secret not in str(body)
    assert created["api_key_preview"] == "sk-p...efgh"


def test_provider_update_is_partial(admin: Admin) -> None:
    created = admin.provider("http://127.0.0.1:9/v1")
    updated = admin.ok(
        "PUT", f"/admin/providers/{created['id']}", json={"api_key": "sk-new-provider-key-9999"}
    )
    assert updated["api_key_preview"] == "sk-n...9999"
    assert updated["name"] == created["name"]
    assert updated["base_url"] == created["base_url"]
    disabled = admin.ok("PUT", f"/admin/providers/{created['id']}", json={"is_active": False})
    assert disabled["is_active"] is False
    reset = admin.ok("PUT", f"/admin/providers/{created['id']}", json={"base_url": None})
    assert reset["base_url"] == DEFAULT_URLS["openai"]


def test_kind_change_follows_the_new_default_url(admin: Admin) -> None:
    created = admin.ok(
        "POST",
        "/admin/providers",
        201,
        json={"name": "switch", "kind": "openai", "api_key": "sk-provider-secret-123456"},
    )
    moved = admin.ok("PUT", f"/admin/providers/{created['id']}", json={"kind": "ark"})
    assert moved["base_url"] == DEFAULT_URLS["ark"]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "kind": "azure", "api_key": "k"},
        {"name": "", "kind": "openai", "api_key": "k"},
        {"name": "   ", "kind": "openai", "api_key": "k"},
        {"name": "x", "kind": "openai"},
        {"name": "x", "kind": "openai", "api_key": ""},
        {"name": 5, "kind": "openai", "api_key": "k"},
        {"name": "x", "kind": "openai", "api_key": "k", "is_active": "yes"},
        {"name": "x", "kind": "openai", "api_key": "k", "base_url": "ftp://host/v1"},
        {"name": "x", "kind": "openai", "api_key": "k", "base_url": "not a url"},
        {"name": "x", "kind": "openai", "api_key": "k", "base_url": "http://u:p@host/v1"},
        {"name": "x", "kind": "openai", "api_key": "k", "unknown": 1},
        {"name": "x" * 129, "kind": "openai", "api_key": "k"},
    ],
)
def test_invalid_provider_is_refused_and_nothing_is_written(
    admin: Admin, body: dict[str, object]
) -> None:
    response = admin.request("POST", "/admin/providers", json=body)
    assert_openai_error(response, 400)
    assert admin.ok("GET", "/admin/providers") == []


def test_malformed_json_is_a_400(admin: Admin) -> None:
    response = admin.request(
        "POST",
        "/admin/providers",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert_openai_error(response, 400)


def test_duplicate_provider_name_is_a_conflict(admin: Admin) -> None:
    admin.provider("http://127.0.0.1:9/v1", name="dup")
    response = admin.request(
        "POST", "/admin/providers", json={"name": "dup", "kind": "openai", "api_key": "k"}
    )
    assert_openai_error(response, 409)
    other = admin.provider("http://127.0.0.1:9/v1", name="other")
    rename = admin.request("PUT", f"/admin/providers/{other['id']}", json={"name": "dup"})
    assert_openai_error(rename, 409)
    assert len(admin.ok("GET", "/admin/providers")) == 2


@pytest.mark.parametrize("ident", [str(uuid.uuid4()), "not-a-uuid", "1"])
@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_unknown_or_malformed_provider_id_is_a_404(admin: Admin, ident: str, method: str) -> None:
    response = admin.request(method, f"/admin/providers/{ident}", json={"is_active": True})
    assert_openai_error(response, 404)


def test_update_with_null_for_a_required_field_is_refused(admin: Admin) -> None:
    created = admin.provider("http://127.0.0.1:9/v1")
    response = admin.request("PUT", f"/admin/providers/{created['id']}", json={"name": None})
    assert_openai_error(response, 400)


def test_provider_in_use_cannot_be_deleted(admin: Admin) -> None:
    provider = admin.provider("http://127.0.0.1:9/v1")
    model = admin.model(provider["id"], "gpt-4o")
    assert_openai_error(admin.request("DELETE", f"/admin/providers/{provider['id']}"), 409)
    admin.ok("DELETE", f"/admin/models/{model['id']}", 204)
    admin.ok("DELETE", f"/admin/providers/{provider['id']}", 204)
    assert admin.ok("GET", "/admin/providers") == []
    assert_openai_error(admin.request("DELETE", f"/admin/providers/{provider['id']}"), 404)
