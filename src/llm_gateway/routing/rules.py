"""What fails over, how long to wait before asking the same deployment again, and why.

Failover happens only while nothing has been sent to the client. A failure is described by a
`reason`: an HTTP status as text ("503") or a transport error kind ("upstream_unreachable",
"first_byte_timeout", ...), which is also the label of the failover metric.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

# Statuses that mean "this deployment cannot answer now", not "the request is wrong".
FAILOVER_STATUSES = frozenset({401, 403, 404, 408, 429, 500, 502, 503, 504, 529})
# A misconfigured deployment (bad key, no access, unknown model): asking again will not help.
MISCONFIGURED_STATUSES = frozenset({401, 403, 404})
# Transport failures before the answer (codes of `upstream.client.classify`).
FAILOVER_ERRORS = frozenset(
    {
        "upstream_unreachable",
        "upstream_connect_timeout",
        "upstream_dns_error",
        "upstream_tls_error",
        "upstream_disconnected",
        "upstream_error",
        "first_byte_timeout",
    }
)


def fails_over(status: int) -> bool:
    return status in FAILOVER_STATUSES


def retry_after_seconds(headers: Mapping[str, str], now: float) -> float | None:
    """The wait an upstream asked for: `retry-after-ms`, or `Retry-After` in seconds or as a
    date. `headers` has lower-case names; `now` is a unix time (for the date form)."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def backoff_seconds(retry: int, bound: float) -> float:
    """Jittered exponential backoff before retry number `retry` (0-based): 0.5·2ⁿ s, at most
    `bound`, drawn from its upper half so that retries of many requests spread out."""
    ceiling: float = min(bound, 0.5 * 2.0**retry)
    return ceiling * (0.5 + random.random() / 2)
