"""Per-call metrics are tallied and moved into the Prometheus objects at a scrape: what a scrape
shows must be what updating those objects directly would have shown."""

from __future__ import annotations

from llm_gateway.metrics import Metrics

# Bucket bounds themselves, values between and beyond them, zero and a negative one.
VALUES = [0.0, 0.0001, 0.000100001, 0.0005, 0.004, 0.01, 0.1, 0.25, 7.0, 300.0, 1e9, -1.0]


def _exposition(metrics: Metrics) -> list[str]:
    text = metrics.render()[0].decode()
    return [line for line in text.splitlines() if "_created" not in line]  # creation times


def test_a_scrape_shows_tallies_as_direct_updates_would() -> None:
    tallied, direct = Metrics(lambda: {}), Metrics(lambda: {})
    for value in VALUES:
        tallied._observe(tallied.overhead, value)
        direct.overhead.observe(value)
        tallied._observe(tallied._child(tallied.latency, "provider"), value)
        direct.latency.labels("provider").observe(value)
        tallied._add(tallied._child(tallied.requests, "model", "provider", "200"), 1)
        direct.requests.labels("model", "provider", "200").inc()
        tallied._add(tallied._child(tallied.tokens, "model", "prompt"), 12)
        direct.tokens.labels("model", "prompt").inc(12)
    expected = _exposition(direct)
    assert any('le="0.0001"} 3.0' in line for line in expected)  # the bounds are inclusive
    assert _exposition(tallied) == expected
    # A second scrape adds nothing that was already moved.
    assert _exposition(tallied) == expected


def test_attempts_are_counted_by_outcome() -> None:
    metrics = Metrics(lambda: {})
    metrics.observe_attempt("provider", None)
    metrics.observe_attempt("provider", "503")
    metrics.observe_attempt("provider", "503")
    text = "\n".join(_exposition(metrics))
    assert 'llm_gateway_upstream_attempts_total{outcome="answered",provider="provider"} 1.0' in text
    assert 'llm_gateway_upstream_attempts_total{outcome="failed",provider="provider"} 2.0' in text
    assert 'llm_gateway_failed_attempts_total{provider="provider",reason="503"} 2.0' in text
