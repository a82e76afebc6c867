"""Requests and tokens per rolling minute, kept in this process.

The whole limit on the embedded default (one process). With Redis this is the fallback while
Redis cannot be reached: each process then enforces its share of every limit (the limit divided
by the number of live processes last counted), which holds the total near the limit instead of
multiplying it, or failing open.

An admission checks and takes both limits at once: a request refused by either takes nothing.
The tokens taken are an estimate (see the proxy); `settle` later adds the difference between
the real usage and the estimate to the window the estimate went to.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from llm_gateway.limits import window
from llm_gateway.limits.policy import KeyPolicy

Headers = list[tuple[bytes, bytes]]
REQUESTS, TOKENS = "requests", "tokens"


@dataclass(slots=True)
class Admission:
    """The outcome of one admission: what was taken, and the headers the answer carries."""

    refused: str | None  # REQUESTS or TOKENS when refused, else None
    retry_after: float  # seconds (0 when admitted)
    headers: Headers
    index: int  # the window the tokens went to (for `settle`)
    tokens: int  # tokens taken
    shared: bool = False  # taken in Redis (settled there), else in this process
    # A token-budget reservation asked in the same Redis call: True held, False refused (and
    # nothing taken), None not asked.
    budget_room: bool | None = None
    counts: _Counts | None = None  # the key's counts in this process the tokens went to


@dataclass(slots=True)
class _Counts:
    index: int = 0
    requests_previous: int = 0
    requests_current: int = 0
    tokens_previous: int = 0
    tokens_current: int = 0

    def roll(self, index: int) -> None:
        if index == self.index:
            return
        if index == self.index + 1:
            self.requests_previous, self.tokens_previous = (
                self.requests_current,
                self.tokens_current,
            )
        else:
            self.requests_previous = self.tokens_previous = 0
        self.requests_current = self.tokens_current = 0
        self.index = index

    def correct(self, index: int, delta: int) -> None:
        """Add `delta` to the tokens counted in window `index` (when it still counts)."""
        if index == self.index:
            self.tokens_current = max(0, self.tokens_current + delta)
        elif index == self.index - 1:
            self.tokens_previous = max(0, self.tokens_previous + delta)


def decide(
    policy: KeyPolicy,
    elapsed: float,
    index: int,
    counts: tuple[int, int, int, int],
    tokens: int,
    admitted: bool,
    share: int = 1,
) -> Admission:
    """The admission for counts read after the attempt to take (`admitted` says if it did).

    `counts` are (requests previous, requests current, tokens previous, tokens current) as they
    stand after the attempt; the headers describe the limits this process enforced (`share`).
    Runs for every request of a limited key: plain arithmetic, no helper calls when admitted.
    """
    requests_previous, requests_current, tokens_previous, tokens_current = counts
    headers: Headers = []
    refused: str | None = None
    wait = 0.0
    weight = (window.WINDOW_SECONDS - elapsed) / window.WINDOW_SECONDS
    tpm = None
    if policy.rpm_limit is not None:
        rpm = policy.rpm_limit if share == 1 else max(1, policy.rpm_limit // share)
        level = (requests_previous * weight if requests_previous > 0 else 0.0) + (
            requests_current if requests_current > 0 else 0
        )
        if not admitted and level + 1 > rpm:
            refused = REQUESTS
            wait = window.wait_for_room(requests_previous, requests_current, elapsed, rpm, 1)
        _describe(
            headers, _REQUEST_HEADERS, rpm, level, requests_previous, requests_current, elapsed
        )
    if policy.tpm_limit is not None:
        tpm = policy.tpm_limit if share == 1 else max(1, policy.tpm_limit // share)
        level = (tokens_previous * weight if tokens_previous > 0 else 0.0) + (
            tokens_current if tokens_current > 0 else 0
        )
        amount = tokens if tokens < tpm else tpm
        if not admitted and level + amount > tpm:
            refused = refused or TOKENS
            wait = max(
                wait,
                window.wait_for_room(tokens_previous, tokens_current, elapsed, tpm, amount),
            )
        _describe(headers, _TOKEN_HEADERS, tpm, level, tokens_previous, tokens_current, elapsed)
    if not admitted and refused is None:  # refused by the other side's view; retry soon
        refused, wait = REQUESTS, 1.0
    if refused is not None:
        headers.append((b"retry-after", str(max(1, math.ceil(wait))).encode()))
        headers.append((b"retry-after-ms", str(max(1, round(wait * 1000))).encode()))
    taken = (tokens if tokens < tpm else tpm) if admitted and tpm is not None else 0
    return Admission(refused, wait, headers, index, taken)


_REQUEST_HEADERS = tuple(
    f"x-ratelimit-{part}-{REQUESTS}".encode() for part in ("limit", "remaining", "reset")
)
_TOKEN_HEADERS = tuple(
    f"x-ratelimit-{part}-{TOKENS}".encode() for part in ("limit", "remaining", "reset")
)


def _describe(
    headers: Headers,
    names: tuple[bytes, ...],
    limit: int,
    level: float,
    previous: int,
    current: int,
    elapsed: float,
) -> None:
    left = limit - level + 1e-9
    if current > 0:
        reset = 2 * window.WINDOW_SECONDS - elapsed
    elif previous > 0:
        reset = window.WINDOW_SECONDS - elapsed
    else:
        reset = 0.0
    headers.append((names[0], _NUMBERS.get(limit) or _number(limit)))
    headers.append((names[1], str(int(left)).encode() if left > 0 else b"0"))
    headers.append((names[2], _reset_text(reset)))


_NUMBERS: dict[int, bytes] = {}  # the limits' header values (a few per configured key)


def _number(limit: int) -> bytes:
    """A limit's header value, remembered (`_NUMBERS.get(limit) or _number(limit)`)."""
    text = str(limit).encode()
    if len(_NUMBERS) < 10_000:
        _NUMBERS[limit] = text
    return text


_LONG_RESETS = {  # a reset a minute or more away, by whole seconds: "1m0s" ... "2m0s"
    seconds: window.duration_text(seconds).encode() for seconds in range(60, 121)
}


def _reset_text(seconds: float) -> bytes:
    """`window.duration_text` as header bytes; a table for the usual case, resets of a minute
    or more (every key that took something in the current window)."""
    if seconds > 60:
        return _LONG_RESETS[min(120, math.ceil(seconds))]
    return window.duration_text(seconds).encode()


class LocalLimiter:
    def __init__(self) -> None:
        self._counts: dict[int, _Counts] = {}  # by the key id's integer (a C-level hash)

    def take(
        self, key_id: uuid.UUID, policy: KeyPolicy, tokens: int, now: float, share: int = 1
    ) -> Admission:
        span = window.WINDOW_SECONDS
        index = int(now // span)
        elapsed = now - index * span
        counts = self._counts.get(key_id.int)
        if counts is None:
            counts = self._counts[key_id.int] = _Counts(index)
            if len(self._counts) > 100_000:
                self._forget_idle(index)
        if counts.index != index:
            counts.roll(index)
        weight = (span - elapsed) / span  # counts here are never negative (settle clamps)
        admitted = True
        rpm, tpm = policy.rpm_limit, policy.tpm_limit
        if rpm is not None:
            if share != 1:
                rpm = max(1, rpm // share)
            admitted = counts.requests_previous * weight + counts.requests_current + 1 <= rpm
        amount = 0
        if admitted and tpm is not None:
            if share != 1:
                tpm = max(1, tpm // share)
            amount = tokens if tokens < tpm else tpm
            admitted = counts.tokens_previous * weight + counts.tokens_current + amount <= tpm
        if not admitted:
            found = (
                counts.requests_previous,
                counts.requests_current,
                counts.tokens_previous,
                counts.tokens_current,
            )
            return decide(policy, elapsed, index, found, tokens, False, share)
        # The usual case, written out: `decide`'s headers for an admitted call (a test checks).
        # A window that took something resets between one and two minutes from now.
        headers: Headers = []
        if rpm is not None:
            counts.requests_current += 1
            left = rpm - counts.requests_previous * weight - counts.requests_current + 1e-9
            headers += (
                (_REQUEST_HEADERS[0], _NUMBERS.get(rpm) or _number(rpm)),
                (_REQUEST_HEADERS[1], str(int(left)).encode() if left > 0 else b"0"),
                (_REQUEST_HEADERS[2], _LONG_RESETS[math.ceil(2 * span - elapsed)]),
            )
        if tpm is not None:
            counts.tokens_current += amount
            previous, current = counts.tokens_previous, counts.tokens_current
            if current > 0:
                left = tpm - previous * weight - current + 1e-9
                headers += (
                    (_TOKEN_HEADERS[0], _NUMBERS.get(tpm) or _number(tpm)),
                    (_TOKEN_HEADERS[1], str(int(left)).encode() if left > 0 else b"0"),
                    (_TOKEN_HEADERS[2], _LONG_RESETS[math.ceil(2 * span - elapsed)]),
                )
            else:  # nothing taken yet in this window
                level = previous * weight
                _describe(headers, _TOKEN_HEADERS, tpm, level, previous, current, elapsed)
        return Admission(None, 0.0, headers, index, amount, False, None, counts)

    def peek(self, key_id: uuid.UUID, policy: KeyPolicy, now: float, share: int = 1) -> Headers:
        """The key's headers as its windows stand now, taking nothing."""
        index, elapsed = window.window_index(now)
        counts = self._counts.get(key_id.int)
        found = (0, 0, 0, 0)
        if counts is not None and counts.index >= index - 1:
            if counts.index == index:
                found = (
                    counts.requests_previous,
                    counts.requests_current,
                    counts.tokens_previous,
                    counts.tokens_current,
                )
            else:  # the counts' current window is now the previous one
                found = (counts.requests_current, 0, counts.tokens_current, 0)
        return decide(policy, elapsed, index, found, 0, True, share).headers

    def settle(self, admission: Admission, key_id: uuid.UUID, used_tokens: int) -> None:
        """Correct the tokens an admission took to the tokens the call really used."""
        delta = used_tokens - admission.tokens
        counts = admission.counts or self._counts.get(key_id.int)
        if counts is not None and delta:
            counts.correct(admission.index, delta)

    def _forget_idle(self, index: int) -> None:
        idle = [key for key, counts in self._counts.items() if counts.index < index - 1]
        for key in idle:
            del self._counts[key]
