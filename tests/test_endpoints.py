"""Every endpoint through the official SDKs: passed through where the provider serves it,
bridged where it does not (Responses and Messages to chat, chat to Anthropic), refused where
nothing can serve it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import Admin
from tests.servers import ThreadedGateway, Upstream, wait_until

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
CHAT_TOOL = {"type": "function", "function": {k: v for k, v in WEATHER_TOOL.items() if k != "type"}}
ANTHROPIC_TOOL = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": WEATHER_TOOL["parameters"],
}


@dataclass
class World:
    gateway: ThreadedGateway
    admin: Admin
    upstream: Upstream
    key: dict[str, Any]
    bases: dict[str, str]  # model name -> the base URL its provider was given
    clients: list[Any] = field(default_factory=list)

    def openai(self) -> openai.OpenAI:
        client = openai.OpenAI(
            api_key=self.key["key"], base_url=self.gateway.url + "/v1", max_retries=0
        )
        self.clients.append(client)
        return client

    def anthropic(self, key: str | None = None) -> anthropic.Anthropic:
        client = anthropic.Anthropic(
            api_key=key or self.key["key"], base_url=self.gateway.url, max_retries=0
        )
        self.clients.append(client)
        return client

    def paths(self, model: str) -> list[str]:
        base = self.bases[model]
        prefix = base.removeprefix(self.upstream.url)
        return [r["path"].removeprefix(prefix) for r in self.upstream.requests(base)]

    def tokens_used(self) -> int:
        return self.admin.tokens_used(self.key["id"])

    def logs(self, **filters: Any) -> list[dict[str, Any]]:
        return list(self.admin.ok("GET", "/admin/logs", params=filters)["data"])


@pytest.fixture
def world(gateway: ThreadedGateway, admin: Admin, upstream: Upstream) -> Iterator[World]:
    bases: dict[str, str] = {}
    for model, kind in [
        ("gpt-native", "openai"),
        ("qwen-chat", "dashscope"),
        ("claude", "anthropic"),
        ("deep", "deepseek"),
    ]:
        base = upstream.base_url()
        if kind == "anthropic":
            base = base.removesuffix("/v1")  # Anthropic's base URL has no /v1
        provider = admin.provider(base, kind=kind)
        admin.model(provider["id"], model, provider_model_name=f"{model}-upstream")
        bases[model] = base
    prepared = World(gateway, admin, upstream, admin.key(), bases)
    yield prepared
    for client in prepared.clients:
        client.close()


# embeddings and legacy completions -----------------------------------------------------------
@pytest.mark.parametrize("encoding", ["base64", "float"])
def test_embeddings_in_either_encoding_are_charged_their_prompt_tokens(
    world: World, encoding: str
) -> None:
    client = world.openai()
    if encoding == "base64":  # the SDK's default: base64 on the wire, floats for the caller
        result = client.embeddings.create(model="gpt-native", input=["red apple", "pear"])
    else:
        result = client.embeddings.create(
            model="gpt-native", input=["red apple", "pear"], encoding_format="float"
        )
    assert [len(item.embedding) for item in result.data] == [8, 8]
    assert all(isinstance(value, float) for value in result.data[0].embedding)
    [seen] = world.upstream.requests(world.bases["gpt-native"])
    assert seen["body"]["model"] == "gpt-native-upstream"
    assert seen["body"].get("encoding_format") == encoding  # as sent
    wait_until(lambda: world.tokens_used() == result.usage.prompt_tokens)
    [row] = wait_until(lambda: world.logs(endpoint="embeddings"))
    assert (row["endpoint"], row["is_stream"]) == ("embeddings", False)


def test_an_endpoint_no_deployment_serves_is_refused_clearly(world: World) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        world.openai().embeddings.create(model="deep", input="hi")
    assert refused.value.code == "endpoint_not_supported"
    assert world.upstream.requests(world.bases["deep"]) == []


def test_legacy_completions_stream_and_not(world: World) -> None:
    client = world.openai()
    plain = client.completions.create(model="deep", prompt="Say hi")
    assert plain.choices[0].text
    chunks = list(client.completions.create(model="deep", prompt="Say hi", stream=True))
    assert all(chunk.choices for chunk in chunks)  # the usage chunk we asked for stays hidden
    assert "".join(c.choices[0].text for c in chunks)
    upstream = world.upstream.requests(world.bases["deep"])
    assert upstream[1]["body"]["stream_options"] == {"include_usage": True}
    wait_until(lambda: world.tokens_used() == 30)  # 15 per call, read from both answers


# Responses ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "upstream_path"),
    [
        ("gpt-native", "/responses"),
        ("qwen-chat", "/chat/completions"),
    ],
)
def test_responses_native_and_bridged(world: World, model: str, upstream_path: str) -> None:
    client = world.openai()
    answer = client.responses.create(model=model, input="Hello!", instructions="Be brief.")
    assert answer.status == "completed"
    assert answer.output_text
    assert answer.model in (model, f"{model}-upstream")
    assert answer.usage is not None
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (10, 5)
    with client.responses.stream(model=model, input="Hello!") as stream:
        final = stream.get_final_response()
    assert final.output_text
    assert world.paths(model) == [upstream_path, upstream_path]
    wait_until(lambda: world.tokens_used() == 30)
    wait_until(lambda: [row["endpoint"] for row in world.logs()] == ["responses", "responses"])


def test_a_bridged_responses_stream_carries_tool_calls(world: World) -> None:
    client = world.openai()
    with client.responses.stream(
        model="qwen-chat", input="mode:tool what is the weather?", tools=[WEATHER_TOOL]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    [call] = [item for item in final.output if item.type == "function_call"]
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert "response.function_call_arguments.delta" in kinds
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    sent = world.upstream.requests(world.bases["qwen-chat"])[0]["body"]
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    # The tool result goes back as chat's tool message.
    follow = client.responses.create(
        model="qwen-chat",
        input=[
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": "get_weather",
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    assert follow.output_text
    messages = world.upstream.requests(world.bases["qwen-chat"])[1]["body"]["messages"]
    assert [m["role"] for m in messages] == ["assistant", "tool"]
    assert messages[1] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny"}


def test_what_the_bridge_cannot_honour_is_a_clear_400(world: World) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        world.openai().responses.create(
            model="qwen-chat", input="hi", previous_response_id="resp_123"
        )
    assert refused.value.param == "previous_response_id"
    assert world.upstream.requests(world.bases["qwen-chat"]) == []


# Anthropic Messages --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "upstream_path"),
    [
        ("claude", "/v1/messages"),
        ("qwen-chat", "/chat/completions"),
    ],
)
def test_messages_through_the_anthropic_sdk(world: World, model: str, upstream_path: str) -> None:
    client = world.anthropic()
    message = client.messages.create(
        model=model, max_tokens=100, messages=[{"role": "user", "content": "Hello!"}]
    )
    assert message.model in (model, f"{model}-upstream")  # bridged answers name the client's
    assert message.content[0].type == "text"
    assert message.content[0].text
    with client.messages.stream(
        model=model,
        max_tokens=100,
        messages=[{"role": "user", "content": "mode:tool weather?"}],
        tools=[ANTHROPIC_TOOL],  # type: ignore[list-item]
    ) as stream:
        final = stream.get_final_message()
    [tool] = [block for block in final.content if block.type == "tool_use"]
    assert (tool.name, tool.input) == ("get_weather", {"city": "Paris"})
    assert final.stop_reason == "tool_use"
    assert world.paths(model) == [upstream_path, upstream_path]
    wait_until(lambda: world.tokens_used() == 30)
    wait_until(lambda: [row["endpoint"] for row in world.logs()] == ["messages", "messages"])


def test_messages_keys_by_x_api_key_and_errors_in_anthropics_shape(world: World) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        world.anthropic("sk-not-a-gateway-key").messages.create(
            model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(anthropic.NotFoundError) as missing:
        world.anthropic().messages.create(
            model="nope", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert missing.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "the model 'nope' does not exist"},
    }
    raw = httpx.post(
        world.gateway.url + "/v1/messages",
        headers={"x-api-key": world.key["key"], "anthropic-version": "2023-06-01"},
        json={"model": "claude", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert raw.status_code == 400
    assert raw.json()["error"]["type"] == "invalid_request_error"


def test_anthropic_headers_are_forwarded_to_anthropic_deployments(world: World) -> None:
    response = httpx.post(
        world.gateway.url + "/v1/messages?beta=true",
        headers={
            "x-api-key": world.key["key"],
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "interleaved-thinking-2025-05-14",
        },
        json={"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 200
    [seen] = world.upstream.requests(world.bases["claude"])
    assert seen["headers"]["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert seen["headers"]["anthropic-version"] == "2023-06-01"
    assert seen["headers"]["x-api-key"] == "sk-upstream-secret-0001"
    assert "authorization" not in seen["headers"]
    assert seen["body"]["model"] == "claude-upstream"


@pytest.mark.parametrize("model", ["claude", "qwen-chat"])
def test_count_tokens_never_answers_404(world: World, model: str) -> None:
    counted = world.anthropic().messages.count_tokens(
        model=model, messages=[{"role": "user", "content": "one two three four"}]
    )
    assert counted.input_tokens > 0
    paths = world.paths(model)
    assert paths == (["/v1/messages/count_tokens"] if model == "claude" else [])


# chat to an Anthropic deployment ---------------------------------------------------------------
def test_chat_completions_reach_an_anthropic_deployment(world: World) -> None:
    client = world.openai()
    answer = client.chat.completions.create(
        model="claude",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    )
    assert answer.choices[0].message.content
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == 10
    stream = client.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "mode:tool weather?"}],
        tools=[CHAT_TOOL],  # type: ignore[list-item]
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    for chunk in stream:
        for delta_call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            entry = calls.setdefault(delta_call.index, {"name": "", "arguments": ""})
            if delta_call.function and delta_call.function.name:
                entry["name"] = delta_call.function.name
            if delta_call.function and delta_call.function.arguments:
                entry["arguments"] += delta_call.function.arguments
    assert calls == {0: {"name": "get_weather", "arguments": '{"city": "Paris"}'}} or (
        json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    )
    sent = world.upstream.requests(world.bases["claude"])
    assert sent[0]["body"]["system"] == "Be brief."
    assert sent[0]["body"]["max_tokens"] == 4096  # the documented default
    assert sent[1]["body"]["tools"][0]["name"] == "get_weather"
    wait_until(lambda: world.tokens_used() == 30)


def test_stats_count_each_endpoint(world: World) -> None:
    client = world.openai()
    client.embeddings.create(model="gpt-native", input="hi")
    client.chat.completions.create(model="gpt-native", messages=[{"role": "user", "content": "x"}])
    wait_until(lambda: len(world.logs()) == 2)
    stats = world.admin.ok("GET", "/admin/stats")
    assert {row["endpoint"]: row["requests"] for row in stats["endpoint_usage"]} == {
        "embeddings": 1,
        "chat": 1,
    }
    assert [row["endpoint"] for row in world.logs(endpoint="chat")] == ["chat"]


def test_a_models_output_cap_lowers_larger_requests_on_every_endpoint(world: World) -> None:
    [model] = [m for m in world.admin.ok("GET", "/admin/models") if m["name"] == "qwen-chat"]
    updated = world.admin.ok("PUT", f"/admin/models/{model['id']}", json={"max_output_tokens": 100})
    assert updated["max_output_tokens"] == 100
    say = [{"role": "user", "content": "hi"}]
    world.openai().chat.completions.create(model="qwen-chat", messages=say, max_tokens=5000)  # type: ignore[arg-type]
    world.openai().chat.completions.create(model="qwen-chat", messages=say, max_tokens=50)  # type: ignore[arg-type]
    world.anthropic().messages.create(model="qwen-chat", max_tokens=8000, messages=say)  # type: ignore[arg-type]
    world.openai().responses.create(model="qwen-chat", input="hi", max_output_tokens=999)
    sent = [r["body"] for r in world.upstream.requests(world.bases["qwen-chat"])]
    assert [body.get("max_tokens") for body in sent] == [100, 50, 100, 100]
    reset = world.admin.ok("PUT", f"/admin/models/{model['id']}", json={"max_output_tokens": None})
    assert reset["max_output_tokens"] is None
