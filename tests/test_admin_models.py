from __future__ import annotations

import uuid

import pytest

from tests.conftest import Admin, assert_openai_error


@pytest.fixture
def provider(admin: Admin) -> dict[str, object]:
    return admin.provider("http://127.0.0.1:9/v1", name="dashscope")


def test_model_defaults_and_fields(admin: Admin, provider: dict[str, str]) -> None:
    model = admin.model(provider["id"], "gpt-4o")
    assert model["provider_model_name"] == "gpt-4o"
    assert model["provider_name"] == "dashscope"
    assert model["input_token_coefficient"] == 1.0
    assert model["output_token_coefficient"] == 1.0
    assert model["is_active"] is True
    assert set(model) == {
        "id",
        "name",
        "provider_id",
        "provider_name",
        "provider_model_name",
        "deployments",
        "fallbacks",
        "is_active",
        "input_token_coefficient",
        "output_token_coefficient",
        "max_output_tokens",
        "input_price_per_million",
        "cached_input_price_per_million",
        "output_price_per_million",
        "created_at",
        "updated_at",
    }
    assert model["max_output_tokens"] is None
    assert model["input_price_per_million"] is None  # unpriced until set
    # The one-provider form is one deployment, described by the top-level fields too.
    [deployment] = model["deployments"]
    assert deployment["provider_id"] == provider["id"]
    assert deployment["provider_model_name"] == "gpt-4o"
    assert (deployment["weight"], deployment["priority"]) == (1, 0)
    assert (deployment["status"], deployment["cooling_until"]) == ("healthy", None)
    assert model["fallbacks"] == []


def test_model_rewrite_name_and_reset(admin: Admin, provider: dict[str, str]) -> None:
    model = admin.model(
        provider["id"],
        "qwen-max",
        provider_model_name="qwen-max-latest",
        input_token_coefficient=2,
        output_token_coefficient=3.5,
    )
    assert model["provider_model_name"] == "qwen-max-latest"
    assert model["output_token_coefficient"] == 3.5
    reset = admin.ok("PUT", f"/admin/models/{model['id']}", json={"provider_model_name": None})
    assert reset["provider_model_name"] == "qwen-max"
    assert reset["input_token_coefficient"] == 2
    listed = admin.ok("GET", "/admin/models")
    assert [m["name"] for m in listed] == ["qwen-max"]


def test_model_pointing_at_missing_provider_is_a_400(admin: Admin) -> None:
    response = admin.request(
        "POST", "/admin/models", json={"name": "m", "provider_id": str(uuid.uuid4())}
    )
    assert_openai_error(response, 400)
    assert admin.ok("GET", "/admin/models") == []


def test_model_moved_to_missing_provider_is_a_400(admin: Admin, provider: dict[str, str]) -> None:
    model = admin.model(provider["id"], "m")
    response = admin.request(
        "PUT", f"/admin/models/{model['id']}", json={"provider_id": str(uuid.uuid4())}
    )
    assert_openai_error(response, 400)
    assert admin.ok("GET", "/admin/models")[0]["provider_id"] == provider["id"]


@pytest.mark.parametrize(
    "fields",
    [
        {"name": ""},
        {"provider_id": "nope"},
        {"input_token_coefficient": -1},
        {"output_token_coefficient": "x"},
        {"is_active": 1},
        {"provider_model_name": ""},
    ],
)
def test_invalid_model_is_refused(
    admin: Admin, provider: dict[str, str], fields: dict[str, object]
) -> None:
    body = {"name": "m", "provider_id": provider["id"], **fields}
    assert_openai_error(admin.request("POST", "/admin/models", json=body), 400)
    assert admin.ok("GET", "/admin/models") == []


def test_duplicate_model_name_is_a_conflict(admin: Admin, provider: dict[str, str]) -> None:
    admin.model(provider["id"], "gpt-4o")
    response = admin.request(
        "POST", "/admin/models", json={"name": "gpt-4o", "provider_id": provider["id"]}
    )
    assert_openai_error(response, 409)


@pytest.mark.parametrize("ident", [str(uuid.uuid4()), "garbage"])
def test_unknown_model_id_is_a_404(admin: Admin, ident: str) -> None:
    assert_openai_error(admin.request("PUT", f"/admin/models/{ident}", json={}), 404)
    assert_openai_error(admin.request("DELETE", f"/admin/models/{ident}"), 404)
