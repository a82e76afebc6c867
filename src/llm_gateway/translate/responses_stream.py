"""A Chat Completions stream turned into the Responses API event stream, chunk by chunk.

The events, each with a `sequence_number` counted from 0:

    response.created, response.in_progress                  (status in_progress, no output)
    per output item, in the order its first delta arrives:
        response.output_item.added
        reasoning: response.content_part.added, response.reasoning_text.delta*,
                   response.reasoning_text.done, response.content_part.done
        text:      response.content_part.added, response.output_text.delta*,
                   response.output_text.done, response.content_part.done
        function:  response.function_call_arguments.delta*, response.function_call_arguments.done
        custom:    response.custom_tool_call_input.delta, response.custom_tool_call_input.done
        response.output_item.done
    response.completed | response.incomplete | response.failed   (the whole Response object)

Reasoning and text are one item at a time: a delta of another kind closes the open one, and text
that resumes later opens a new message item. Tool calls, told apart by the chat delta's `index`,
open when their name is known and stay open until the stream ends, so arguments are never sent
after their item is done; they close in output order. A free-form tool's input is read from the
whole `{"input": ...}` arguments, so it goes as one delta when its call closes. Empty deltas (the
first chunk of DeepSeek or DashScope streams carries only the role) open nothing. Only choice 0
is read. A chunk carrying an `error` object ends the stream as `fail` does.

The final Response equals what `chat_to_response` makes of the same answer. A cut stream ends in
`response.failed` (status `failed`, `error.code` `server_error`, the items so far) rather than an
`error` event: the openai SDK passes it on as an event, and Codex reads it as a failed stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from llm_gateway.translate.responses_request import ChatRequest, Json
from llm_gateway.translate.responses_response import (
    incomplete_reason,
    item_id,
    message_item,
    output_text_part,
    reasoning_item,
    reasoning_text,
    reasoning_text_part,
    response_object,
    tool_call_item,
    usage_from_chat,
)


@dataclass(slots=True)
class _Text:
    """The open reasoning or message item."""

    kind: Literal["reasoning", "message"]
    output_index: int
    item_id: str
    pieces: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Call:
    """One tool call, by its chat `index`; it gets an output item once its name is known."""

    call_id: str | None = None
    name: str | None = None
    pieces: list[str] = field(default_factory=list)
    output_index: int = -1
    custom: bool = False
    done: bool = False

    @property
    def opened(self) -> bool:
        return self.output_index >= 0


class ResponsesStream:
    """Translates parsed chat-completion chunks into Responses SSE events (bytes, ready to send).

    Call `feed` per chunk, then `finish` when the upstream stream ends, or `fail` when it was cut.
    """

    def __init__(
        self, request: ChatRequest, *, model: str, response_id: str, created_at: int
    ) -> None:
        self._request = request
        self._model = model
        self._id = response_id
        self._created_at = created_at
        self._sequence = 0
        self._started = False
        self._ended = False
        self._output: list[Json] = []
        self._text: _Text | None = None
        self._calls: dict[int, _Call] = {}
        self._finish_reason: str | None = None
        self._incomplete: str | None = None
        self._usage: Json | None = None

    @property
    def usage(self) -> Json | None:
        """Usage in the Responses shape (`input_tokens`, `output_tokens`, ...), once reported."""
        return self._usage

    def feed(self, chunk: Json) -> list[bytes]:
        """Take one parsed chat-completion chunk; return the events to send now."""
        if self._ended:
            return []
        error = chunk.get("error")
        if isinstance(error, dict):  # some providers report a failure as a chunk mid-stream
            return self.fail(str(error.get("message") or "The provider reported an error."))
        out = self._start()
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage = usage_from_chat(usage)
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                self._choice(choice, out)
        return out

    def finish(self) -> list[bytes]:
        """The stream ended: close open items and send the terminal event.

        A stream that ended without a `finish_reason` counts as completed; a cut is `fail`'s.
        """
        if self._ended:
            return []
        out = self._start()
        self._incomplete = incomplete_reason(self._finish_reason)
        self._close_text(out)
        for call in sorted(self._calls.values(), key=lambda call: call.output_index):
            if call.opened:  # a call whose name never came cannot be answered: left out
                self._close_call(call, out)
        status = "completed" if self._incomplete is None else "incomplete"
        response = self._response(status, self._output, incomplete_reason=self._incomplete)
        out.append(self._event(f"response.{status}", response=response))
        self._ended = True
        return out

    def fail(self, message: str) -> list[bytes]:
        """The upstream stream broke off: send `response.failed` with what had arrived."""
        if self._ended:
            return []
        out = self._start()
        output = list(self._output)
        if self._text is not None:
            text = self._text
            output[text.output_index] = self._text_item(text, "".join(text.pieces), "incomplete")
        for call in self._calls.values():
            if call.opened and not call.done:
                output[call.output_index] = self._call_item(call, "incomplete")
        error = {"code": "server_error", "message": message}
        response = self._response("failed", output, error=error)
        out.append(self._event("response.failed", response=response))
        self._ended = True
        return out

    # chunks ------------------------------------------------------------------------------------

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        snapshot = self._response("in_progress", [])
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def _choice(self, choice: Json, out: list[bytes]) -> None:
        delta = choice.get("delta") or {}
        reasoning = reasoning_text(delta)
        if reasoning:
            self._text_delta("reasoning", reasoning, out)
        content = delta.get("content")
        if isinstance(content, str) and content:
            self._text_delta("message", content, out)
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                self._call_delta(call, out)
        if choice.get("finish_reason"):
            self._finish_reason = choice["finish_reason"]

    # reasoning and text ------------------------------------------------------------------------

    def _text_delta(
        self, kind: Literal["reasoning", "message"], delta: str, out: list[bytes]
    ) -> None:
        text = self._text
        if text is None or text.kind != kind:
            self._close_text(out)
            text = self._open_text(kind, out)
        text.pieces.append(delta)
        event = (
            "response.output_text.delta" if kind == "message" else "response.reasoning_text.delta"
        )
        extra: Json = {"logprobs": []} if kind == "message" else {}
        out.append(
            self._event(
                event,
                item_id=text.item_id,
                output_index=text.output_index,
                content_index=0,
                delta=delta,
                **extra,
            )
        )

    def _open_text(self, kind: Literal["reasoning", "message"], out: list[bytes]) -> _Text:
        text = _Text(kind, len(self._output), item_id(kind, self._id, len(self._output)))
        item = self._text_item(text, "", "in_progress")
        part = output_text_part("") if kind == "message" else reasoning_text_part("")
        self._output.append(item)
        self._text = text
        out.append(
            self._event("response.output_item.added", output_index=text.output_index, item=item)
        )
        out.append(self._part_event("response.content_part.added", text, part))
        return text

    def _close_text(self, out: list[bytes]) -> None:
        text = self._text
        if text is None:
            return
        self._text = None
        whole = "".join(text.pieces)
        item = self._text_item(text, whole, self._status(text.output_index))
        if text.kind == "message":
            part = output_text_part(whole)
            done = self._event(
                "response.output_text.done",
                item_id=text.item_id,
                output_index=text.output_index,
                content_index=0,
                text=whole,
                logprobs=[],
            )
        else:
            part = reasoning_text_part(whole)
            done = self._event(
                "response.reasoning_text.done",
                item_id=text.item_id,
                output_index=text.output_index,
                content_index=0,
                text=whole,
            )
        out.append(done)
        out.append(self._part_event("response.content_part.done", text, part))
        out.append(
            self._event("response.output_item.done", output_index=text.output_index, item=item)
        )
        self._output[text.output_index] = item

    def _text_item(self, text: _Text, whole: str, status: str) -> Json:
        if text.kind == "message":
            return message_item(text.item_id, whole, status)
        return reasoning_item(text.item_id, whole, status)

    def _part_event(self, event: str, text: _Text, part: Json) -> bytes:
        return self._event(
            event, item_id=text.item_id, output_index=text.output_index, content_index=0, part=part
        )

    # tool calls --------------------------------------------------------------------------------

    def _call_delta(self, delta: Json, out: list[bytes]) -> None:
        index = delta.get("index")
        if not isinstance(index, int):  # no index: a new id starts a call, else the last goes on
            index = len(self._calls) if delta.get("id") else max(self._calls, default=0)
        call = self._calls.setdefault(index, _Call())
        if call.call_id is None and isinstance(delta.get("id"), str) and delta["id"]:
            call.call_id = delta["id"]
        function = delta.get("function") or {}
        name = function.get("name")
        if call.name is None and isinstance(name, str) and name:
            call.name = name
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            call.pieces.append(arguments)
        else:
            arguments = ""
        if not call.opened:
            if call.name is not None:
                self._open_call(call, out)
        elif arguments and not call.custom:
            out.append(self._arguments_delta(call, arguments))

    def _open_call(self, call: _Call, out: list[bytes]) -> None:
        self._close_text(out)
        call.output_index = len(self._output)
        if call.call_id is None:
            call.call_id = item_id("call", self._id, call.output_index)
        item = self._call_item(call, "in_progress", arguments="")
        call.custom = item["type"] == "custom_tool_call"
        self._output.append(item)
        out.append(
            self._event("response.output_item.added", output_index=call.output_index, item=item)
        )
        if call.pieces and not call.custom:  # arguments that came before the name
            out.append(self._arguments_delta(call, "".join(call.pieces)))

    def _close_call(self, call: _Call, out: list[bytes]) -> None:
        call.done = True
        item = self._call_item(call, self._status(call.output_index))
        fields: Json = {"item_id": item["id"], "output_index": call.output_index}
        if call.custom:
            if item["input"]:
                out.append(
                    self._event(
                        "response.custom_tool_call_input.delta", delta=item["input"], **fields
                    )
                )
            out.append(
                self._event("response.custom_tool_call_input.done", input=item["input"], **fields)
            )
        else:
            out.append(
                self._event(
                    "response.function_call_arguments.done", arguments=item["arguments"], **fields
                )
            )
        out.append(
            self._event("response.output_item.done", output_index=call.output_index, item=item)
        )
        self._output[call.output_index] = item

    def _call_item(self, call: _Call, status: str, arguments: str | None = None) -> Json:
        return tool_call_item(
            self._request,
            self._id,
            call.output_index,
            call_id=call.call_id or "",
            chat_name=call.name or "",
            arguments="".join(call.pieces) if arguments is None else arguments,
            status=status,
        )

    def _arguments_delta(self, call: _Call, delta: str) -> bytes:
        return self._event(
            "response.function_call_arguments.delta",
            item_id=self._output[call.output_index]["id"],
            output_index=call.output_index,
            delta=delta,
        )

    # events ------------------------------------------------------------------------------------

    def _status(self, output_index: int) -> str:
        """An item closing now: the last one is incomplete when the response is."""
        last = output_index == len(self._output) - 1
        return "incomplete" if self._incomplete is not None and last else "completed"

    def _response(self, status: str, output: list[Json], **details: Any) -> Json:
        return response_object(
            self._request,
            model=self._model,
            response_id=self._id,
            created_at=self._created_at,
            status=status,
            output=output,
            usage=self._usage,
            **details,
        )

    def _event(self, event: str, **fields: Any) -> bytes:
        payload = {"type": event, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
