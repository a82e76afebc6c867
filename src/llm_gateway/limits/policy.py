"""A key's policy as the hot path reads it: built once per cache load, never per request.

A key with no allowed-models list, no expiry, no rate limits, no budget period and no cost
budget has no policy at all (`None`), so the hot path pays one attribute check for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

NANO_PER_USD = 1_000_000_000  # costs are counted in billionths of a US dollar, as integers


class AllowedModels:
    """Model names and `*` globs (`*` matches any run of characters, `/` included)."""

    __slots__ = ("_memo", "_names", "_patterns", "entries")

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries = tuple(entries)
        self._names = frozenset(entry for entry in self.entries if "*" not in entry)
        self._patterns = tuple(
            re.compile(".*".join(re.escape(part) for part in entry.split("*")))
            for entry in self.entries
            if "*" in entry
        )
        self._memo: dict[str, bool] = {}  # names of configured models only: bounded

    def __call__(self, model: str) -> bool:
        known = self._memo.get(model)
        if known is None:
            known = model in self._names or any(p.fullmatch(model) for p in self._patterns)
            if len(self._memo) < 10_000:
                self._memo[model] = known
        return known


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    allowed: AllowedModels | None = None  # None: every model
    expires_at: float | None = None  # unix seconds
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    budget_period: str | None = None
    cost_budget: int | None = None  # nano-USD per period (or for ever)
    rate_limited: bool = field(init=False)

    def __post_init__(self) -> None:
        limited = self.rpm_limit is not None or self.tpm_limit is not None
        object.__setattr__(self, "rate_limited", limited)

    def allows(self, model: str) -> bool:
        return self.allowed is None or self.allowed(model)

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def policy_from_row(row: Any) -> KeyPolicy | None:
    """The policy of a `user_keys` row, or None when the key has none."""
    allowed = row.allowed_models
    expires = row.expires_at
    if (
        allowed is None
        and expires is None
        and row.rpm_limit is None
        and row.tpm_limit is None
        and row.budget_period is None
        and row.cost_budget_nanousd is None
    ):
        return None
    return KeyPolicy(
        allowed=None if allowed is None else AllowedModels(allowed),
        expires_at=None if expires is None else expires.timestamp(),
        rpm_limit=row.rpm_limit,
        tpm_limit=row.tpm_limit,
        budget_period=row.budget_period,
        cost_budget=row.cost_budget_nanousd,
    )


def usd_to_nano(usd: float) -> int:
    return round(usd * NANO_PER_USD)


def nano_to_usd(nano: int) -> float:
    return round(nano / NANO_PER_USD, 9)
