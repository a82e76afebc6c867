"""The SSE usage tap: framing across chunk boundaries, usage read, usage chunk dropped."""

from __future__ import annotations

import json
import uuid

import pytest

from llm_gateway.proxy.record import CallRecord, estimate_tokens
from llm_gateway.proxy.sse import UsageTap
from llm_gateway.state.cache import KeyEntry


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


def _named(kind: str, payload: object) -> bytes:
    return f"event: {kind}\n".encode() + _event(payload)


ANTHROPIC_STREAM = b"".join(
    [
        _named(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "usage": {"input_tokens": 6, "cache_read_input_tokens": 4, "output_tokens": 1}
                },
            },
        ),
        _named("content_block_delta", {"type": "content_block_delta", "delta": {"text": "hi"}}),
        _named("message_delta", {"type": "message_delta", "usage": {"output_tokens": 7}}),
        _named("message_stop", {"type": "message_stop"}),
    ]
)


@pytest.mark.parametrize("size", [1, 5, 64, 10_000])
def test_a_passed_through_anthropic_stream_is_unchanged_and_its_usage_read(size: int) -> None:
    from llm_gateway.proxy.endpoints.messages import _error_event, _event_usage
    from llm_gateway.proxy.sse import EventUsageTap

    tap = EventUsageTap(_event_usage, _error_event)
    out = b"".join(
        tap.feed(ANTHROPIC_STREAM[i : i + size]) for i in range(0, len(ANTHROPIC_STREAM), size)
    )
    assert out + tap.finish() == ANTHROPIC_STREAM
    # input 6 + cache read 4 from the start, output 7 from the end: counted once each; the
    # cache read is also reported apart, to be priced at the cached price
    assert tap.usage == {
        "prompt_tokens": 10,
        "completion_tokens": 7,
        "total_tokens": 17,
        "cached_tokens": 4,
    }


@pytest.mark.parametrize("size", [1, 3, 64, 10_000])
def test_events_are_read_whole_whatever_the_chunking(size: int) -> None:
    from llm_gateway.proxy.sse import EventReader

    reader = EventReader()
    found = []
    for i in range(0, len(ANTHROPIC_STREAM), size):
        found += reader.feed(ANTHROPIC_STREAM[i : i + size])
    assert [kind for kind, _ in found] == [
        "message_start",
        "content_block_delta",
        "message_delta",
        "message_stop",
    ]
    assert found[1][1]["delta"] == {"text": "hi"}


@pytest.mark.parametrize("events", [3, 5_000])  # under and well over the 64 KiB held uncounted
def test_a_stream_cut_before_its_usage_is_charged_one_token_per_event_sent(events: int) -> None:
    key = KeyEntry(uuid.uuid4(), "k", "hash", None, 0)
    content = _event({"choices": [{"delta": {"content": "word"}}]})
    cut = CallRecord("id", key, 0.0, "chat")
    cut.request_body = b"x" * 400
    for _ in range(events):
        cut.chunk_sent(content, keep=False)
    cut.stream_usage(None)
    assert cut.completion_tokens == events
    assert cut.prompt_tokens == estimate_tokens(400)
    assert cut.uncounted is None  # nothing held once the stream is over

    whole = CallRecord("id", key, 0.0, "chat")
    for _ in range(events):
        whole.chunk_sent(content, keep=False)
    whole.stream_usage({"prompt_tokens": 9, "completion_tokens": 2})
    assert (whole.prompt_tokens, whole.completion_tokens) == (9, 2)
    assert whole.uncounted is None
