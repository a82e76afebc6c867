"""The routing table the hot path reads: public model names to deployments and fallbacks."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field

from llm_gateway.upstream.kinds import ProviderKind


@dataclass(frozen=True, slots=True, eq=False)  # compared by identity: cheap on the hot path
class Deployment:
    id: uuid.UUID
    provider_id: uuid.UUID
    provider_name: str
    provider_kind: str
    kind: ProviderKind
    base_url: str  # without a trailing slash; each endpoint appends its path
    auth_headers: tuple[tuple[str, str], ...]  # the provider's key, as its kind sends it
    upstream_model: str  # what the provider calls the model (its public name unless set)
    weight: int
    priority: int


@dataclass(frozen=True, slots=True)
class ModelRoute:
    model_id: uuid.UUID
    model_name: str
    # Deployments grouped by priority, lowest number first; list order inside a group.
    tiers: tuple[tuple[Deployment, ...], ...]
    fallbacks: tuple[str, ...]
    input_coefficient: float
    output_coefficient: float
    created: int  # unix seconds, for /v1/models
    max_output_tokens: int | None = None  # a larger request is lowered to it
    # USD per million tokens; cached prompt tokens cost the input price when none is set.
    input_price: float | None = None
    cached_input_price: float | None = None
    output_price: float | None = None
    priced: bool = field(init=False)  # input and output prices are both known
    # Each priority group's running sum of weights, for `random.choices`.
    cumulative: tuple[tuple[int, ...], ...] = field(init=False)

    def __post_init__(self) -> None:
        priced = self.input_price is not None and self.output_price is not None
        object.__setattr__(self, "priced", priced)
        cumulative = tuple(
            tuple(itertools.accumulate(d.weight for d in tier)) for tier in self.tiers
        )
        object.__setattr__(self, "cumulative", cumulative)

    def weighted_tokens(self, prompt_tokens: int, completion_tokens: int) -> int:
        return round(
            prompt_tokens * self.input_coefficient + completion_tokens * self.output_coefficient
        )

    def cost_nanousd(self, prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> int:
        """What a call cost in billionths of a USD (0 when unpriced; check `priced` first)."""
        if self.input_price is None or self.output_price is None:
            return 0
        cached = min(cached_tokens, prompt_tokens)
        cached_price = (
            self.input_price if self.cached_input_price is None else (self.cached_input_price)
        )
        per_million = (
            (prompt_tokens - cached) * self.input_price
            + cached * cached_price
            + completion_tokens * self.output_price
        )
        return round(per_million * 1000)  # USD per million tokens -> nano-USD per token

    def deployments(self) -> tuple[Deployment, ...]:
        return tuple(deployment for tier in self.tiers for deployment in tier)


def group_by_priority(deployments: list[Deployment]) -> tuple[tuple[Deployment, ...], ...]:
    """`deployments` in list order, grouped by priority (a stable sort keeps list order)."""
    ordered = sorted(deployments, key=lambda deployment: deployment.priority)
    tiers: list[tuple[Deployment, ...]] = []
    for deployment in ordered:
        if tiers and tiers[-1][0].priority == deployment.priority:
            tiers[-1] = (*tiers[-1], deployment)
        else:
            tiers.append((deployment,))
    return tuple(tiers)
