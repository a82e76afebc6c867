"""Request and response bodies of the admin API, validated once at the edge."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
)
from pydantic.json_schema import SkipJsonSchema

from llm_gateway.errors import BadRequest

ProviderKindName = Literal[
    "openai",
    "openrouter",
    "dashscope",
    "ark",
    "gemini",
    "deepseek",
    "azure",
    "openai_compatible",
    "anthropic",
]


def _stripped_nonempty(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def _http_url(value: str) -> str:
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials; use api_key")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query string or fragment")
    return value.rstrip("/")


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


_VISIBLE = r"\S"  # at least one non-space character
Name = Annotated[
    StrictStr,
    Field(min_length=1, max_length=128, pattern=_VISIBLE),
    AfterValidator(_stripped_nonempty),
]
ModelName = Annotated[
    StrictStr,
    Field(min_length=1, max_length=256, pattern=_VISIBLE),
    AfterValidator(_stripped_nonempty),
]
Secret = Annotated[StrictStr, Field(min_length=1, max_length=4096)]
BaseUrl = Annotated[
    StrictStr,
    Field(max_length=2048, pattern=r"^\s*https?://[^\s/?#@:]+(:[0-9]{1,5})?(/[^\s?#@]*)?\s*$"),
    AfterValidator(_http_url),
]
Coefficient = Annotated[float, Field(ge=0, le=1_000_000), AfterValidator(_finite)]
Budget = Annotated[StrictInt, Field(ge=0, le=2**62)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderCreate(_Input):
    name: Name
    kind: ProviderKindName
    api_key: Secret
    base_url: BaseUrl | None = None
    is_active: StrictBool = True


class ProviderUpdate(_Input):
    name: Name | SkipJsonSchema[None] = None
    kind: ProviderKindName | SkipJsonSchema[None] = None
    api_key: Secret | SkipJsonSchema[None] = None
    base_url: BaseUrl | None = None
    is_active: StrictBool | SkipJsonSchema[None] = None


class ProviderInfo(BaseModel):
    id: uuid.UUID
    name: str
    kind: str
    base_url: str
    api_key_preview: str
    is_active: bool
    created_at: datetime
    updated_at: datetime


class DeploymentInput(_Input):
    provider_id: uuid.UUID
    provider_model_name: ModelName | None = None
    weight: Annotated[StrictInt, Field(ge=1, le=1000)] = 1
    priority: Annotated[StrictInt, Field(ge=0, le=100)] = 0


Deployments = Annotated[list[DeploymentInput], Field(min_length=1, max_length=32)]
Fallbacks = Annotated[list[ModelName], Field(max_length=8)]
OutputCap = Annotated[StrictInt, Field(ge=1, le=10_000_000)]
Price = Annotated[
    float,
    Field(ge=0, le=1_000_000, description="USD per million tokens."),
    AfterValidator(_finite),
]


class ModelCreate(_Input):
    """Either `provider_id` (one deployment) or `deployments`, not both."""

    name: ModelName
    provider_id: uuid.UUID | SkipJsonSchema[None] = None
    provider_model_name: ModelName | None = None
    deployments: Deployments | SkipJsonSchema[None] = None
    fallbacks: Fallbacks = []
    is_active: StrictBool = True
    input_token_coefficient: Coefficient = 1.0
    output_token_coefficient: Coefficient = 1.0
    max_output_tokens: OutputCap | None = None
    input_price_per_million: Price | None = None
    cached_input_price_per_million: Price | None = None
    output_price_per_million: Price | None = None


class ModelUpdate(_Input):
    name: ModelName | SkipJsonSchema[None] = None
    provider_id: uuid.UUID | SkipJsonSchema[None] = None
    provider_model_name: ModelName | None = None
    deployments: Deployments | SkipJsonSchema[None] = None
    fallbacks: Fallbacks | SkipJsonSchema[None] = None
    is_active: StrictBool | SkipJsonSchema[None] = None
    input_token_coefficient: Coefficient | SkipJsonSchema[None] = None
    output_token_coefficient: Coefficient | SkipJsonSchema[None] = None
    max_output_tokens: OutputCap | None = None
    input_price_per_million: Price | None = None
    cached_input_price_per_million: Price | None = None
    output_price_per_million: Price | None = None


class DeploymentInfo(BaseModel):
    id: uuid.UUID
    provider_id: uuid.UUID
    provider_name: str
    provider_model_name: str
    weight: int
    priority: int
    status: Literal["healthy", "cooling"]
    cooling_until: datetime | None
    last_error: str | None


class ModelInfo(BaseModel):
    id: uuid.UUID
    name: str
    provider_id: uuid.UUID = Field(description="The first deployment's provider.")
    provider_name: str
    provider_model_name: str
    deployments: list[DeploymentInfo]
    fallbacks: list[str]
    is_active: bool
    input_token_coefficient: float
    output_token_coefficient: float
    max_output_tokens: int | None
    input_price_per_million: float | None
    cached_input_price_per_million: float | None
    output_price_per_million: float | None
    created_at: datetime
    updated_at: datetime


class PriceImport(BaseModel):
    """The prices set by `POST /admin/models/import-prices`."""

    model: str
    matched: str = Field(description="The entry of the price file that matched.")
    input_price_per_million: float | None
    cached_input_price_per_million: float | None
    output_price_per_million: float | None


class PriceImportResult(BaseModel):
    updated: list[PriceImport]
    unmatched: list[str] = Field(description="Models no entry of the file matched.")
    dry_run: bool


AllowedModels = Annotated[
    list[ModelName],
    Field(max_length=256, description="Model names and `*` globs; null: every model."),
]
RateLimit = Annotated[StrictInt, Field(ge=1, le=2**31 - 1)]
TokenRate = Annotated[StrictInt, Field(ge=1, le=2**62)]
Dollars = Annotated[float, Field(ge=0, le=1_000_000_000), AfterValidator(_finite)]
BudgetPeriod = Literal["daily", "weekly", "monthly"]


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Instant = Annotated[datetime, AfterValidator(_aware)]


class KeyPolicyFields(_Input):
    """What a key may do (section "Key policies" of the README); null: no restriction."""

    allowed_models: AllowedModels | None = None
    expires_at: Instant | None = Field(
        default=None, description="The key stops working at this instant (UTC if no zone)."
    )
    rpm_limit: RateLimit | None = Field(default=None, description="Requests per rolling minute.")
    tpm_limit: TokenRate | None = Field(default=None, description="Tokens per rolling minute.")
    budget_period: BudgetPeriod | None = Field(
        default=None,
        description="Budgets restart at each UTC day, ISO week (Monday) or month; null: never.",
    )
    cost_budget_usd: Dollars | None = Field(
        default=None, description="Spend limit in USD per period (or for ever)."
    )


class KeyCreate(KeyPolicyFields):
    name: Name
    token_budget: Budget | None = None


class KeyUpdate(KeyPolicyFields):
    name: Name | SkipJsonSchema[None] = None
    token_budget: Budget | None = None
    reset_usage: StrictBool = False


class KeyInfo(BaseModel):
    id: uuid.UUID
    name: str
    key_prefix: str
    is_active: bool
    token_budget: int | None
    tokens_used: int = Field(description="Weighted tokens in the current budget period.")
    allowed_models: list[str] | None
    expires_at: datetime | None
    rpm_limit: int | None
    tpm_limit: int | None
    budget_period: BudgetPeriod | None
    budget_resets_at: datetime | None = Field(
        description="When the current budget period ends (null without a period)."
    )
    cost_budget_usd: float | None
    cost_used_usd: float = Field(description="Spend in the current budget period, in USD.")
    created_at: datetime
    updated_at: datetime


class KeyCreated(KeyInfo):
    key: str = Field(description="The plaintext key. Shown only in this response.")


def not_null_changes(model: BaseModel, nullable: frozenset[str] = frozenset()) -> dict[str, object]:
    """The fields a partial update set; `null` is accepted only for the `nullable` ones."""
    changes = model.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None and name not in nullable:
            raise BadRequest(f"'{name}' cannot be null", param=name)
    return changes


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str | None
    param: str | None


class ErrorBody(BaseModel):
    """Every error, in the OpenAI shape."""

    error: ErrorDetail


def _error(description: str) -> dict[str, object]:
    return {"model": ErrorBody, "description": description}


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    400: _error("Invalid input"),
    401: _error("Missing or wrong admin key"),
    404: _error("No such resource"),
    409: _error("Conflicts with existing data"),
    429: _error("Too many failed authentications"),
    503: _error("Database unavailable"),
}
