"""Request and response bodies of the admin API, validated once at the edge."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
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

from llm_gateway.errors import BadRequest

ProviderKindName = Literal["openai", "openrouter", "dashscope", "ark"]


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


Name = Annotated[StrictStr, Field(max_length=128), AfterValidator(_stripped_nonempty)]
ModelName = Annotated[StrictStr, Field(max_length=256), AfterValidator(_stripped_nonempty)]
Secret = Annotated[StrictStr, Field(min_length=1, max_length=4096)]
BaseUrl = Annotated[StrictStr, Field(max_length=2048), AfterValidator(_http_url)]
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
    name: Name | None = None
    kind: ProviderKindName | None = None
    api_key: Secret | None = None
    base_url: BaseUrl | None = None
    is_active: StrictBool | None = None


class ProviderInfo(BaseModel):
    id: uuid.UUID
    name: str
    kind: str
    base_url: str
    api_key_preview: str
    is_active: bool
    created_at: datetime
    updated_at: datetime


class ModelCreate(_Input):
    name: ModelName
    provider_id: uuid.UUID
    provider_model_name: ModelName | None = None
    is_active: StrictBool = True
    input_token_coefficient: Coefficient = 1.0
    output_token_coefficient: Coefficient = 1.0


class ModelUpdate(_Input):
    name: ModelName | None = None
    provider_id: uuid.UUID | None = None
    provider_model_name: ModelName | None = None
    is_active: StrictBool | None = None
    input_token_coefficient: Coefficient | None = None
    output_token_coefficient: Coefficient | None = None


class ModelInfo(BaseModel):
    id: uuid.UUID
    name: str
    provider_id: uuid.UUID
    provider_name: str
    provider_model_name: str
    is_active: bool
    input_token_coefficient: float
    output_token_coefficient: float
    created_at: datetime
    updated_at: datetime


class KeyCreate(_Input):
    name: Name
    token_budget: Budget | None = None


class KeyUpdate(_Input):
    name: Name | None = None
    token_budget: Budget | None = None
    reset_usage: StrictBool = False


class KeyInfo(BaseModel):
    id: uuid.UUID
    name: str
    key_prefix: str
    is_active: bool
    token_budget: int | None
    tokens_used: int
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
