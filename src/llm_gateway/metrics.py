"""Prometheus metrics.

Counters and histograms are updated per call; gauges that mirror state (log queue, cache,
dependency health) are read at scrape time. With several worker processes,
`PROMETHEUS_MULTIPROC_DIR` is set by `serve --workers` and the exposition merges every process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from llm_gateway.proxy.record import CallRecord

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)

StateReader = Callable[[], dict[str, float]]


class _StateCollector(Collector):
    def __init__(self, read: StateReader) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, value in self._read().items():
            family = GaugeMetricFamily(f"llm_gateway_{name}", name.replace("_", " "))
            family.add_metric([], value)
            yield family


class Metrics:
    def __init__(self, read_state: StateReader) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        registry = None if self.multiprocess else self.registry
        self.requests = Counter(
            "llm_gateway_requests",
            "Proxied requests by model, provider and status.",
            ["model", "provider", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "llm_gateway_request_duration_seconds",
            "Whole request time.",
            ["provider"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.ttfb = Histogram(
            "llm_gateway_time_to_first_byte_seconds",
            "Time until the upstream's first byte.",
            ["provider"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.overhead = Histogram(
            "llm_gateway_overhead_seconds",
            "Time spent in the gateway itself, upstream excluded.",
            buckets=_OVERHEAD_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "llm_gateway_tokens",
            "Tokens by model and kind (prompt, completion, weighted).",
            ["model", "type"],
            registry=registry,
        )
        self.upstream_errors = Counter(
            "llm_gateway_upstream_errors",
            "Upstream failures by kind.",
            ["kind"],
            registry=registry,
        )
        self.state_gauges = _StateCollector(read_state)
        if self.multiprocess:
            MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]  # registers itself
        else:
            self.registry.register(self.state_gauges)

    def observe_call(self, call: CallRecord) -> None:
        now = time.perf_counter()
        model = call.model_requested or ""
        provider = call.provider_name or ""
        self.requests.labels(model, provider, str(call.status_code)).inc()
        self.latency.labels(provider).observe(now - call.started)
        if call.first_byte_at is not None:
            self.ttfb.labels(provider).observe(call.first_byte_at - call.started)
        self.overhead.observe(call.gateway_seconds(now))
        if call.prompt_tokens:
            self.tokens.labels(model, "prompt").inc(call.prompt_tokens)
        if call.completion_tokens:
            self.tokens.labels(model, "completion").inc(call.completion_tokens)
        if call.weighted_tokens:
            self.tokens.labels(model, "weighted").inc(call.weighted_tokens)
        if call.upstream_error_kind is not None:
            self.upstream_errors.labels(call.upstream_error_kind).inc()

    def render(self) -> tuple[bytes, str]:
        output = generate_latest(self.registry)
        if self.multiprocess:
            # State gauges describe this process only; add them unmerged, labelled by pid.
            local = CollectorRegistry(auto_describe=True)
            local.register(self.state_gauges)
            output += generate_latest(local)
        return output, CONTENT_TYPE_LATEST
