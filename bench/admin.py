"""Setting the gateway up through its admin API, as an operator would (httpx)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from bench.bodies import UPSTREAM_MODEL
from bench.servers import ADMIN_KEY

UPSTREAM_KEY = "sk-upstream-bench-key"
# A key that is limited, but so generously that nothing is refused: it measures the checks.
LIMITED_KEY = {
    "name": "bench-limited",
    "rpm_limit": 100_000_000,
    "tpm_limit": 100_000_000_000,
    "token_budget": 10**15,
    "budget_period": "daily",
}


def admin_client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120)


def _provider(admin: httpx.Client, name: str, base_url: str, kind: str = "openai") -> str:
    body = {"name": name, "kind": kind, "api_key": UPSTREAM_KEY, "base_url": base_url}
    response = admin.post("/admin/providers", json=body)
    response.raise_for_status()
    return str(response.json()["id"])


def _model(admin: httpx.Client, name: str, **fields: Any) -> None:
    admin.post("/admin/models", json={"name": name, **fields}).raise_for_status()


def configure_gateway(
    url: str, mock_port: int, drip_port: int, extra_models: int = 0, extra_keys: int = 0
) -> str:
    """The plain setup: models bench-json, bench-sse (one deployment each) and bench-drip;
    returns a key with no limits."""
    with admin_client(url) as admin:
        for kind in ("json", "sse"):
            provider = _provider(admin, f"mock-{kind}", f"http://127.0.0.1:{mock_port}/{kind}/v1")
            _model(admin, f"bench-{kind}", provider_id=provider, provider_model_name=UPSTREAM_MODEL)
            for i in range(extra_models // 2):
                _model(admin, f"filler-{kind}-{i}", provider_id=provider)
        drip = _provider(admin, "drip", f"http://127.0.0.1:{drip_port}/v1")
        _model(admin, "bench-drip", provider_id=drip)
        for _ in range(extra_keys):
            admin.post("/admin/keys", json={"name": "filler"}).raise_for_status()
        created = admin.post("/admin/keys", json={"name": "bench"})
        created.raise_for_status()
        return str(created.json()["key"])


@dataclass
class Features:
    limited_key: str | None  # None: the admin API does not take per-key limits (yet)
    limited_refusal: str = ""


def configure_features(url: str, mock_port: int) -> Features:
    """The rows beyond the plain gateway, on the same gateway and the same nginx mock:

    - bench3-json, bench3-sse: three deployments, weights 1/1/1, on three providers whose base
      URLs differ only by a path prefix the mock ignores (/d1, /d2, /d3);
    - bench-embed: embeddings;
    - bench-bridge-json, bench-bridge-sse: on an `openai_compatible` provider (chat only), so
      `/v1/responses` is translated to chat completions and back;
    - a key with rpm/tpm limits and a daily budget, all far above what the run sends.
    """
    mock = f"http://127.0.0.1:{mock_port}"
    with admin_client(url) as admin:
        for kind in ("json", "sse"):
            deployments = [
                {
                    "provider_id": _provider(admin, f"mock-d{i}-{kind}", f"{mock}/d{i}/{kind}/v1"),
                    "provider_model_name": UPSTREAM_MODEL,
                    "weight": 1,
                }
                for i in (1, 2, 3)
            ]
            _model(admin, f"bench3-{kind}", deployments=deployments)
            bridge = _provider(admin, f"chat-only-{kind}", f"{mock}/{kind}/v1", "openai_compatible")
            _model(
                admin,
                f"bench-bridge-{kind}",
                provider_id=bridge,
                provider_model_name=UPSTREAM_MODEL,
            )
        embed = _provider(admin, "mock-embed", f"{mock}/embed/v1")
        _model(admin, "bench-embed", provider_id=embed, provider_model_name=UPSTREAM_MODEL)
        limited = admin.post("/admin/keys", json=LIMITED_KEY)
    if limited.status_code in (400, 422):
        return Features(None, limited.text[:200])
    limited.raise_for_status()
    return Features(str(limited.json()["key"]))
