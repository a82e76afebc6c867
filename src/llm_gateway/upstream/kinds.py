"""Provider kinds: default base URLs and which client headers each one receives."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProviderKind:
    name: str
    default_base_url: str
    forwarded_headers: tuple[bytes, ...]


_OPENAI_HEADERS = (b"openai-organization",)

KINDS: dict[str, ProviderKind] = {
    kind.name: kind
    for kind in (
        ProviderKind("openai", "https://api.openai.com/v1", _OPENAI_HEADERS),
        ProviderKind("openrouter", "https://openrouter.ai/api/v1", (b"http-referer", b"x-title")),
        ProviderKind(
            "dashscope", "https://dashscope.aliyuncs.com/compatible-mode/v1", _OPENAI_HEADERS
        ),
        ProviderKind("ark", "https://ark.cn-beijing.volces.com/api/v3", _OPENAI_HEADERS),
    )
}
