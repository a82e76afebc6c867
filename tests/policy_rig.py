"""A gateway with one provider on the mock upstream, keys with policies, and the gateway's clock.

Shared by the tests of key policies, rate limits and costs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import openai

from llm_gateway.clock import Clock
from tests.conftest import Admin
from tests.servers import ThreadedGateway, Upstream

SAY = [{"role": "user", "content": "Hello!"}]


@dataclass
class Rig:
    gateway: ThreadedGateway
    admin: Admin
    upstream: Upstream
    provider: dict[str, Any]
    clients: list[openai.OpenAI] = field(default_factory=list)

    @classmethod
    def build(cls, gateway: ThreadedGateway, admin: Admin, upstream: Upstream) -> Rig:
        return cls(gateway, admin, upstream, admin.provider(upstream.base_url()))

    def close(self) -> None:
        for client in self.clients:
            client.close()

    # the gateway's state ---------------------------------------------------------------------
    @property
    def clock(self) -> Clock:
        clock: Clock = self.gateway.runtime.store.clock
        return clock

    def flush(self) -> None:
        store = self.gateway.runtime.store
        self.gateway.run(store.ledger.flush(store.engine))
        self.gateway.run(self.gateway.runtime.log_writer.write_pending())

    # admin -----------------------------------------------------------------------------------
    def model(self, name: str, **fields: Any) -> dict[str, Any]:
        return self.admin.model(self.provider["id"], name, **fields)

    def key(self, **fields: Any) -> dict[str, Any]:
        return self.admin.key(**fields)

    def info(self, key_id: str) -> dict[str, Any]:
        return dict(next(k for k in self.admin.ok("GET", "/admin/keys") if k["id"] == key_id))

    def update(self, key_id: str, **fields: Any) -> dict[str, Any]:
        return dict(self.admin.ok("PUT", f"/admin/keys/{key_id}", json=fields))

    # calls -----------------------------------------------------------------------------------
    def client(self, key: dict[str, Any]) -> openai.OpenAI:
        client = openai.OpenAI(api_key=key["key"], base_url=self.gateway.url + "/v1", max_retries=0)
        self.clients.append(client)
        return client

    def chat(self, key: dict[str, Any], model: str = "gpt-4o", **fields: Any) -> Any:
        return self.client(key).chat.completions.create(model=model, messages=SAY, **fields)

    def post(
        self, key: dict[str, Any], body: dict[str, Any], path: str = "/v1/chat/completions"
    ) -> httpx.Response:
        return httpx.post(
            self.gateway.url + path,
            json=body,
            headers={"Authorization": f"Bearer {key['key']}"},
            timeout=30,
        )


def at(text: str) -> datetime:
    """A UTC instant from `YYYY-MM-DD HH:MM:SS`."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
