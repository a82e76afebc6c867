"""Prometheus metrics.

Counters and histograms are tallied per call (an addition each, where a Prometheus update takes
a lock and, for a histogram, walks its buckets in Python) and the tallies moved into the
Prometheus objects before every scrape, and every second when several worker processes write
their values for each other (`flush`). Gauges that mirror state (log queue, cache, dependency
health) are read at scrape time. With several worker processes,
`PROMETHEUS_MULTIPROC_DIR` is set by `serve --workers` and the exposition merges every process.

Label values never come from what a client invents: a call is labelled with its model name only
when that name resolved to a configured model (a route); every other name counts under
`(unknown)`, so a key holder cannot create new series.
"""

from __future__ import annotations

import asyncio
import os
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

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

from llm_gateway.limits.policy import NANO_PER_USD
from llm_gateway.proxy.record import CallRecord
from llm_gateway.services.stats import UNKNOWN_MODEL

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)

StateReader = Callable[[], dict[str, float]]
_RECENT_MASK = 2047  # the overhead p99 is read over the last 2,048 calls
# (model, provider, deployment id, seconds of cooldown left) for every routed deployment.
DeploymentReader = Callable[[], list[tuple[str, str, str, float]]]


class _StateCollector(Collector):
    def __init__(self, read: StateReader) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, value in self._read().items():
            family = GaugeMetricFamily(f"llm_gateway_{name}", name.replace("_", " "))
            family.add_metric([], value)
            yield family


class _DeploymentCollector(Collector):
    def __init__(self, read: DeploymentReader) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "llm_gateway_deployment_cooling_seconds",
            "Seconds of cooldown left per deployment (0: healthy).",
            labels=["model", "provider", "deployment"],
        )
        for model, provider, deployment, seconds in self._read():
            family.add_metric([model, provider, deployment], seconds)
        yield family


class Metrics:
    def __init__(
        self, read_state: StateReader, read_deployments: DeploymentReader | None = None
    ) -> None:
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
        self.attempts = Counter(
            "llm_gateway_upstream_attempts",
            "Upstream attempts by provider and outcome (answered, failed).",
            ["provider", "outcome"],
            registry=registry,
        )
        self.failovers = Counter(
            "llm_gateway_failed_attempts",
            "Failed upstream attempts (each one moves on to the next deployment when the "
            "attempt budget allows) by provider and reason (status or error kind).",
            ["provider", "reason"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "llm_gateway_rate_limited",
            "Requests refused by a key's rate limit, by the limit that refused (requests, tokens).",
            ["limit"],
            registry=registry,
        )
        self.cost = Counter(
            "llm_gateway_cost_usd",
            "Cost of calls at the serving model's prices, in USD, by model (priced models only).",
            ["model"],
            registry=registry,
        )
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._counts: dict[Any, float] = {}  # counter (child) -> what to add at the next flush
        self._tallies: dict[Any, list[float]] = {}  # histogram -> [sum, count per bucket...]
        self.recent_overhead = [0.0] * (_RECENT_MASK + 1)  # a ring of the last calls' overhead
        self._calls = 0
        self.state_gauges = _StateCollector(read_state)
        self.deployment_gauges = (
            None if read_deployments is None else _DeploymentCollector(read_deployments)
        )
        if self.multiprocess:
            MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]  # registers itself
        else:
            self.registry.register(self.state_gauges)
            if self.deployment_gauges is not None:
                self.registry.register(self.deployment_gauges)

    def _child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, looked up once: label values are bounded (configured
        models and providers, statuses), and `labels()` costs more than the update itself."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_call(self, call: CallRecord) -> None:
        now = time.perf_counter()
        model = call.model_requested
        if call.provider_id is None or not model:  # not resolved to a configured model
            model = UNKNOWN_MODEL
        provider = call.provider_name or ""
        child, add, observe = self._child, self._add, self._observe
        add(child(self.requests, model, provider, str(call.status_code)), 1)
        observe(child(self.latency, provider), now - call.started)
        if call.first_byte_at is not None:
            observe(child(self.ttfb, provider), call.first_byte_at - call.started)
        overhead = call.gateway_seconds(now)
        observe(self.overhead, overhead)
        self.recent_overhead[self._calls & _RECENT_MASK] = overhead
        self._calls += 1
        if call.prompt_tokens:
            add(child(self.tokens, model, "prompt"), call.prompt_tokens)
        if call.completion_tokens:
            add(child(self.tokens, model, "completion"), call.completion_tokens)
        if call.weighted_tokens:
            add(child(self.tokens, model, "weighted"), call.weighted_tokens)
        if call.cost_nanousd:
            add(child(self.cost, model), call.cost_nanousd / NANO_PER_USD)
        if call.upstream_error_kind is not None:
            add(child(self.upstream_errors, call.upstream_error_kind), 1)

    def observe_attempt(self, provider: str, failure_reason: str | None) -> None:
        if failure_reason is None:
            self._add(self._child(self.attempts, provider, "answered"), 1)
        else:
            self._add(self._child(self.attempts, provider, "failed"), 1)
            self._add(self._child(self.failovers, provider, failure_reason), 1)

    def _add(self, counter: Any, amount: float) -> None:
        counts = self._counts
        counts[counter] = counts.get(counter, 0) + amount

    def _observe(self, histogram: Any, value: float) -> None:
        """What `histogram.observe(value)` does, as a tally: the bucket is the first whose
        upper bound is at least `value` (`observe` walks them in order and stops there)."""
        bounds = histogram._upper_bounds
        tally = self._tallies.get(histogram)
        if tally is None:
            tally = self._tallies[histogram] = [0.0] * (len(bounds) + 1)
        tally[0] += value
        tally[1 + bisect_left(bounds, value)] += 1

    def flush(self) -> None:
        """Move the tallies into the Prometheus objects (their files, with several workers)."""
        counts, self._counts = self._counts, {}
        for counter, amount in counts.items():
            counter.inc(amount)
        tallies, self._tallies = self._tallies, {}
        for histogram, tally in tallies.items():
            histogram._sum.inc(tally[0])
            for bucket, count in zip(histogram._buckets, tally[1:], strict=True):
                if count:
                    bucket.inc(count)

    async def run_flusher(self, interval: float = 1.0) -> None:
        """With several workers: a scrape reaches one of them and reads every worker's values
        from their files, so each one writes its tallies there every `interval` seconds."""
        while True:
            await asyncio.sleep(interval)
            self.flush()

    def overhead_p99(self) -> float:
        """The 99th percentile of the gateway's own time over the last calls (at most 2,048)."""
        recent = sorted(self.recent_overhead[: min(self._calls, _RECENT_MASK + 1)])
        return recent[int(len(recent) * 0.99)] if recent else 0.0

    def render(self) -> tuple[bytes, str]:
        self.flush()
        output = generate_latest(self.registry)
        if self.multiprocess:
            # State gauges describe this process only; add them unmerged, labelled by pid.
            local = CollectorRegistry(auto_describe=True)
            local.register(self.state_gauges)
            if self.deployment_gauges is not None:
                local.register(self.deployment_gauges)
            output += generate_latest(local)
        return output, CONTENT_TYPE_LATEST
