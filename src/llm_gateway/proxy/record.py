"""What one proxied call did: timings, status, tokens; becomes a usage charge and a log row."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from llm_gateway.db.tables import utcnow
from llm_gateway.errors import GatewayError, UpstreamError
from llm_gateway.limits.local import Admission
from llm_gateway.limits.policy import NANO_PER_USD
from llm_gateway.routing.table import Deployment, ModelRoute
from llm_gateway.state.cache import Cache, KeyEntry

_BYTES_PER_TOKEN_ESTIMATE = 4


def estimate_tokens(size_in_bytes: int) -> int:
    """A rough token count for text of this size, when nothing better is known."""
    return size_in_bytes // _BYTES_PER_TOKEN_ESTIMATE


_UNCOUNTED_BYTES = 64 * 1024  # a stream's sent pieces held at most before their events are counted


class CallRecord:
    __slots__ = (
        "admission",
        "attempts",
        "budget_asked",
        "cached_tokens",
        "chunks",
        "client_gone",
        "completion_tokens",
        "cost_nanousd",
        "cost_reserved",
        "endpoint",
        "entry",
        "error_message",
        "events_sent",
        "failed_attempts",
        "first_byte_at",
        "gateway_id",
        "is_error",
        "is_stream",
        "key_id",
        "key_name",
        "model_requested",
        "model_sent",
        "model_served",
        "notes",
        "prompt_tokens",
        "provider_id",
        "provider_kind",
        "provider_name",
        "request_body",
        "reserved",
        "response_body",
        "response_id",
        "served_route",
        "shared_reservation",
        "started",
        "status_code",
        "total_tokens",
        "uncounted",
        "uncounted_bytes",
        "upstream_error_kind",
        "upstream_finished_at",
        "upstream_started_at",
        "usage_reported",
        "weighted_tokens",
    )

    def __init__(self, gateway_id: str, key: KeyEntry, started: float, endpoint: str) -> None:
        self.gateway_id = gateway_id
        self.endpoint = endpoint
        self.notes: str | None = None
        self.entry = key  # the key's cache entry when the call began (see `Cache.current`)
        self.key_id = key.id
        self.key_name: str | None = key.name
        self.started = started
        self.model_requested: str | None = None
        self.model_sent: str | None = None
        self.model_served: str | None = None
        self.served_route: ModelRoute | None = None
        self.attempts = 0
        self.failed_attempts: list[dict[str, Any]] | None = None
        self.provider_id: uuid.UUID | None = None
        self.provider_kind: str | None = None
        self.provider_name: str | None = None
        self.status_code = 0
        self.is_error = False
        self.is_stream = False
        self.error_message: str | None = None
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.total_tokens = 0
        self.weighted_tokens = 0
        self.usage_reported = False
        self.upstream_started_at: float | None = None
        self.first_byte_at: float | None = None
        self.upstream_finished_at: float | None = None
        self.response_id: str | None = None
        self.request_body: bytes | None = None
        self.response_body: bytes | None = None
        self.chunks: list[bytes] | None = None
        self.events_sent = 0
        self.uncounted: list[bytes] | None = None  # pieces sent whose events are not counted
        self.uncounted_bytes = 0
        self.client_gone = False
        self.upstream_error_kind: str | None = None
        self.reserved = 0  # the budget this call holds while in flight
        self.cost_reserved = 0  # the same for a cost budget, in nano-USD
        self.shared_reservation: str | None = None
        self.budget_asked = False  # the shared budget was asked with the rate limits
        self.admission: Admission | None = None  # what the key's rate limits took
        self.cached_tokens = 0  # prompt tokens read from the provider's cache
        self.cost_nanousd: int | None = None  # None: the serving model has no prices

    def reserve(self, key: KeyEntry, tokens: int) -> None:
        if tokens > 0:
            key.reserved += tokens
            self.reserved = tokens

    def reserve_cost(self, key: KeyEntry, nanousd: int) -> None:
        if nanousd > 0:
            key.cost_reserved += nanousd
            self.cost_reserved = nanousd

    def release(self, cache: Cache) -> None:
        """Give the reservations back to the key's current cache entry.

        The entry may have been replaced since (an admin change, a resync); the new one
        carries the reservations over, so the release goes to whichever entry is current.
        """
        if self.reserved or self.cost_reserved:
            entry = cache.current(self.entry)
            if entry is not None:
                entry.reserved = max(0, entry.reserved - self.reserved)
                entry.cost_reserved = max(0, entry.cost_reserved - self.cost_reserved)
            self.reserved = self.cost_reserved = 0

    def attempt(self, route: ModelRoute, deployment: Deployment) -> None:
        """An upstream attempt begins: the row describes the latest one."""
        self.attempts += 1
        self.served_route = route
        self.model_served = route.model_name
        self.model_sent = deployment.upstream_model
        self.provider_id = deployment.provider_id
        self.provider_kind = deployment.provider_kind
        self.provider_name = deployment.provider_name
        if self.upstream_started_at is None:
            self.upstream_started_at = time.perf_counter()

    def attempt_failed(self, deployment: Deployment, reason: str, began: float) -> None:
        if self.failed_attempts is None:
            self.failed_attempts = []
        self.failed_attempts.append(
            {
                "provider_id": str(deployment.provider_id),
                "provider_name": deployment.provider_name,
                "deployment_id": str(deployment.id),
                "status": int(reason) if reason.isdigit() else None,
                "error": None if reason.isdigit() else reason,
                "ms": round((time.perf_counter() - began) * 1000),
            }
        )

    def fail(self, error: GatewayError) -> None:
        self.status_code = error.status
        self.is_error = True
        self.error_message = error.message
        if isinstance(error, UpstreamError):
            self.upstream_error_kind = error.code
        self.upstream_done()

    def first_byte(self) -> None:
        self.first_byte_at = time.perf_counter()

    def upstream_done(self) -> None:
        if self.upstream_started_at is not None and self.upstream_finished_at is None:
            self.upstream_finished_at = time.perf_counter()

    def chunk_sent(self, data: bytes, keep: bool) -> None:
        """A piece of the stream went to the client. Its events matter only if the stream ends
        without usage (the estimate counts them), so pieces wait, up to 64 KiB, to be counted
        then: a stream that reports its usage never pays for the count (3 us for 4 KiB)."""
        if keep:
            if self.chunks is None:
                self.chunks = []
            self.chunks.append(data)
        if self.uncounted is None:
            self.uncounted = []
        self.uncounted.append(data)
        self.uncounted_bytes += len(data)
        if self.uncounted_bytes > _UNCOUNTED_BYTES:
            self._count_events()

    def _count_events(self) -> None:
        if self.uncounted:
            self.events_sent += sum(piece.count(b"\n\n") or 1 for piece in self.uncounted)
        self.uncounted, self.uncounted_bytes = None, 0

    def stream_usage(self, usage: dict[str, Any] | None) -> None:
        self.take_usage(usage)
        if self.usage_reported:
            self.uncounted = None
            return
        self._count_events()
        if self.events_sent:
            # The stream ended before its usage chunk (cut or abandoned): charge an estimate,
            # one token per content event plus the prompt's size, rather than nothing.
            self.completion_tokens = self.events_sent
            self.prompt_tokens = estimate_tokens(len(self.request_body or b""))
            self.total_tokens = self.prompt_tokens + self.completion_tokens

    def take_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        prompt = usage.get("prompt_tokens")
        completion = usage.get("completion_tokens")
        self.prompt_tokens = prompt if isinstance(prompt, int) and prompt > 0 else 0
        self.completion_tokens = completion if isinstance(completion, int) and completion > 0 else 0
        total = usage.get("total_tokens")
        self.total_tokens = (
            total
            if isinstance(total, int) and total > 0
            else self.prompt_tokens + self.completion_tokens
        )
        self.cached_tokens = min(_cached_tokens(usage), self.prompt_tokens)
        self.usage_reported = True

    def weigh(self, route: ModelRoute | None) -> int:
        if route is not None:
            self.weighted_tokens = route.weighted_tokens(self.prompt_tokens, self.completion_tokens)
        return self.weighted_tokens

    def price(self, route: ModelRoute | None) -> int:
        """The call's cost in nano-USD at the serving model's prices (0, and no cost on the
        log row, when it has none)."""
        if route is None or not route.priced:
            self.cost_nanousd = None
            return 0
        self.cost_nanousd = route.cost_nanousd(
            self.prompt_tokens, self.cached_tokens, self.completion_tokens
        )
        return self.cost_nanousd

    # timings in milliseconds ----------------------------------------------------------------
    def latency_ms(self) -> int:
        return round((time.perf_counter() - self.started) * 1000)

    def ttfb_ms(self) -> int | None:
        if self.first_byte_at is None:
            return None
        return round((self.first_byte_at - self.started) * 1000)

    def gateway_seconds(self, now: float) -> float:
        """Time spent in the gateway itself: the whole call minus the upstream's part."""
        upstream = 0.0
        if self.upstream_started_at is not None and self.upstream_finished_at is not None:
            upstream = self.upstream_finished_at - self.upstream_started_at
        return max(0.0, now - self.started - upstream)

    def to_row(self, keep_request: bool, keep_response: bool) -> dict[str, Any]:
        response_body = None
        if keep_response:
            if self.chunks is not None:
                response_body = orjson.dumps(
                    [chunk.decode("utf-8", "replace") for chunk in self.chunks]
                ).decode()
            elif self.response_body is not None:
                response_body = self.response_body.decode("utf-8", "replace")
        request_body = None
        if keep_request and self.request_body is not None:
            request_body = self.request_body.decode("utf-8", "replace")
        return {
            "gateway_request_id": self.gateway_id,
            "endpoint": self.endpoint,
            "notes": self.notes,
            "request_id": self.response_id,
            "user_key_id": self.key_id,
            "model_requested": self.model_requested,
            "model_sent": self.model_sent,
            "model_served": self.model_served,
            "provider_id": self.provider_id,
            "provider_kind": self.provider_kind,
            "status_code": self.status_code,
            "is_error": self.is_error,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "weighted_total_tokens": self.weighted_tokens,
            "cached_tokens": self.cached_tokens,
            "cost_usd": (None if self.cost_nanousd is None else self.cost_nanousd / NANO_PER_USD),
            "latency_ms": self.latency_ms(),
            "ttfb_ms": self.ttfb_ms(),
            "is_stream": self.is_stream,
            "error_message": self.error_message,
            "attempts": self.attempts,
            "failed_attempts": (
                orjson.dumps(self.failed_attempts).decode() if self.failed_attempts else None
            ),
            "request_body": request_body,
            "response_body": response_body,
            "created_at": utcnow(),
        }


def _cached_tokens(usage: dict[str, Any]) -> int:
    """Cached prompt tokens: the normalised `cached_tokens`, OpenAI's
    `prompt_tokens_details.cached_tokens`, or DeepSeek's `prompt_cache_hit_tokens`."""
    found = usage.get("cached_tokens")
    if not isinstance(found, int):
        details = usage.get("prompt_tokens_details")
        found = details.get("cached_tokens") if isinstance(details, dict) else None
    if not isinstance(found, int):
        found = usage.get("prompt_cache_hit_tokens")
    return found if isinstance(found, int) and found > 0 else 0
