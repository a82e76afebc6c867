"""The SSE usage tap: framing across chunk boundaries, usage read, usage chunk dropped."""

from __future__ import annotations

import json

import pytest

from llm_gateway.proxy.sse import UsageTap


def _event(payload: object, newline: bytes = b"\n") -> bytes:
    return b"data: " + json.dumps(payload).encode() + newline + newline


def _stream(newline: bytes = b"\n", usage_null: bool = True) -> tuple[bytes, bytes]:
    extra = {"usage": None} if usage_null else {}
    content = [
        _event({"choices": [{"delta": {"content": w}}], **extra}, newline) for w in ("a", "b", "c")
    ]
    usage = _event({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}, newline)
    done = b"data: [DONE]" + newline + newline
    return b"".join(content) + usage + done, b"".join(content) + done


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
@pytest.mark.parametrize("size", [1, 7, 64, 10_000])
def test_usage_chunk_dropped_and_read_whatever_the_chunking(newline: bytes, size: int) -> None:
    full, without_usage = _stream(newline)
    tap = UsageTap(drop_usage_chunk=True)
    out = b"".join(tap.feed(full[i : i + size]) for i in range(0, len(full), size))
    out += tap.finish()
    assert out == without_usage
    assert tap.usage == {"prompt_tokens": 3, "completion_tokens": 4}


@pytest.mark.parametrize("usage_null", [True, False])
def test_stream_passes_unchanged_when_the_client_asked_for_usage(usage_null: bool) -> None:
    full, _ = _stream(usage_null=usage_null)
    tap = UsageTap(drop_usage_chunk=False)
    out = b"".join(tap.feed(full[i : i + 13]) for i in range(0, len(full), 13)) + tap.finish()
    assert out == full
    assert tap.usage == {"prompt_tokens": 3, "completion_tokens": 4}


def test_complete_events_are_released_at_once() -> None:
    tap = UsageTap(drop_usage_chunk=True)
    first = _event({"choices": [{"delta": {"content": "x"}}]})
    assert tap.feed(first + b'data: {"partial') == first
    assert tap.feed(b'": 1}\n\n') == b'data: {"partial": 1}\n\n'
