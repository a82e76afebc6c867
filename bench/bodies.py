"""What goes over the wire: the mock upstream's static answers and the clients' request bodies."""

from __future__ import annotations

import json
import random
from typing import Any

UPSTREAM_MODEL = "bench-upstream"
EMBEDDING_DIMENSIONS = 1536  # text-embedding-3-small's default: about 30 KB of JSON per answer


def _completion_chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": UPSTREAM_MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n"


def chat_answer() -> str:
    """A chat completion, as an OpenAI-style upstream answers it."""
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": UPSTREAM_MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
        }
    )


def chat_stream_answer() -> str:
    """A 20-chunk chat completion stream, with a usage chunk and `[DONE]`."""
    parts = [_completion_chunk({"role": "assistant", "content": ""})]
    parts += [_completion_chunk({"content": f" word{i}"}) for i in range(20)]
    parts.append(_completion_chunk({}, "stop"))
    usage = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": UPSTREAM_MODEL,
        "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": 20, "total_tokens": 32},
    }
    parts.append(f"data: {json.dumps(usage)}\n\n")
    parts.append("data: [DONE]\n\n")
    return "".join(parts)


def embeddings_answer() -> str:
    """One embedding of EMBEDDING_DIMENSIONS floats (fixed seed: the same bytes every run)."""
    rng = random.Random(1536)
    vector = [round(rng.uniform(-0.1, 0.1), 10) for _ in range(EMBEDDING_DIMENSIONS)]
    return json.dumps(
        {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": vector}],
            "model": UPSTREAM_MODEL,
            "usage": {"prompt_tokens": 9, "total_tokens": 9},
        }
    )


def chat_request(model: str, stream: bool, size: int = 0) -> str:
    """A chat-completions request; `size` pads the user message to about that many bytes."""
    content = "Say hello." + ("x" * max(0, size - 120))
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
    return json.dumps(body)


def embeddings_request(model: str) -> str:
    return json.dumps({"model": model, "input": "The food was delicious and the waiter friendly."})


def responses_request(model: str, stream: bool) -> str:
    body: dict[str, Any] = {"model": model, "input": "Say hello."}
    if stream:
        body["stream"] = True
    return json.dumps(body)


# The name the older scripts (soak, compare_servers, scaling) use.
request_body = chat_request
