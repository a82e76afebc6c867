"""Provider kinds: default base URLs, how they authenticate, which client headers they receive and
which endpoints they serve natively (the others are bridged, or the deployment is skipped)."""

from __future__ import annotations

from dataclasses import dataclass

# Endpoint names, as in the request log's `endpoint` column.
CHAT = "chat"
COMPLETIONS = "completions"
EMBEDDINGS = "embeddings"
RESPONSES = "responses"
MESSAGES = "messages"

_OPENAI_HEADERS = (b"openai-organization",)
_ANTHROPIC_HEADERS = (b"anthropic-version", b"anthropic-beta")
ANTHROPIC_VERSION = "2023-06-01"


@dataclass(frozen=True)
class ProviderKind:
    name: str
    default_base_url: str | None  # None: the operator must give one
    forwarded_headers: tuple[bytes, ...]
    endpoints: frozenset[str]
    auth_header: str = "Authorization"  # "Authorization" carries "Bearer <key>"
    path_prefix: str = ""  # put before each endpoint's path (Anthropic's base URL has no /v1)

    def auth_headers(self, api_key: str) -> tuple[tuple[str, str], ...]:
        if self.auth_header == "Authorization":
            return (("Authorization", "Bearer " + api_key),)
        if self.auth_header == "x-api-key":
            return (("x-api-key", api_key), ("anthropic-version", ANTHROPIC_VERSION))
        return ((self.auth_header, api_key),)


_OPENAI_LIKE = frozenset({CHAT, COMPLETIONS, EMBEDDINGS})

KINDS: dict[str, ProviderKind] = {
    kind.name: kind
    for kind in (
        ProviderKind(
            "openai",
            "https://api.openai.com/v1",
            _OPENAI_HEADERS,
            _OPENAI_LIKE | {RESPONSES},
        ),
        ProviderKind(
            "openrouter",
            "https://openrouter.ai/api/v1",
            (b"http-referer", b"x-title"),
            _OPENAI_LIKE,
        ),
        ProviderKind(
            "dashscope",
            "https://dashscope.aliyuncs.com/compatible-mode/v1",
            _OPENAI_HEADERS,
            _OPENAI_LIKE,
        ),
        ProviderKind(
            "ark",
            "https://ark.cn-beijing.volces.com/api/v3",
            _OPENAI_HEADERS,
            frozenset({CHAT, EMBEDDINGS}),
        ),
        ProviderKind(
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta/openai",
            (),
            frozenset({CHAT, EMBEDDINGS}),
        ),
        ProviderKind(
            "deepseek",
            "https://api.deepseek.com/v1",
            (),
            frozenset({CHAT, COMPLETIONS}),
        ),
        ProviderKind(
            "azure",
            None,
            _OPENAI_HEADERS,
            _OPENAI_LIKE | {RESPONSES},
            auth_header="api-key",
        ),
        ProviderKind("openai_compatible", None, _OPENAI_HEADERS, _OPENAI_LIKE),
        ProviderKind(
            "anthropic",
            "https://api.anthropic.com",
            _ANTHROPIC_HEADERS,
            frozenset({MESSAGES}),
            auth_header="x-api-key",
            path_prefix="/v1",
        ),
    )
}
