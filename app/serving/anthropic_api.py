"""Anthropic's Messages API on the local server's port: `POST /v1/messages` (and
`POST /v1/messages/count_tokens`, which coding agents use to watch their context).

A request names its `model` and `max_tokens` (both required, as Anthropic's are) and gives
`messages` (user and assistant turns, each a string or blocks), an optional `system`,
`stop_sequences`, `temperature`, `top_p` and `top_k`. The answer is a `message` with one text
block, `stop_reason` (`end_turn`; `stop_sequence` with the one that matched; `max_tokens`
when the limit or the context ended it) and `usage`; `"stream": true` sends Anthropic's
server-sent events: `message_start`, `content_block_start`, `ping`, `content_block_delta`
(text_delta)…, `content_block_stop`, `message_delta` (stop_reason and usage, input tokens
included), `message_stop`.

Errors have Anthropic's shape, `{"type": "error", "error": {"type", "message"}}`, with its
types: invalid_request_error (400), authentication_error (401), permission_error (403),
not_found_error (404), request_too_large (413), api_error (500), overloaded_error (503,
with Retry-After while a model loads). A key is accepted as `x-api-key` or as a Bearer token.

Tools: `tools` and `tool_choice` become the app's `Tools` (rendered by the model's template,
a forced choice sampled under a grammar); the reply's calls, parsed from the model's own
format (`app.chat.tool_calls`), come back as `tool_use` blocks with `stop_reason: "tool_use"`,
streamed as `content_block_start` + `input_json_delta` once the reply has ended. Assistant
`tool_use` and user `tool_result` blocks go back through the template.

Images: `image` blocks with a base64 source reach a vision model (one served with its
projector) as OpenAI's `image_url` parts do; to a text model they are a 400
invalid_request_error, and so are malformed base64, bytes that are not an image, and a `url`
source (nothing is fetched). Document blocks are refused; a body's
`"modeldeck": {"documents": "NAME"}` answers from a document collection instead, with the
sources on the message (`request_documents`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, TypeVar

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from app.chat.tool_calls import ParsedReply, ToolCall, ToolCallStream, parse_tool_calls
from app.chat.tools import Tools
from app.engines.errors import EngineError
from app.errors import ChatTemplateError
from app.llm.stats import GenerationStats
from app.serving.anthropic_schemas import CountTokensRequest, MessagesRequest, call_input
from app.serving.api_context import ApiContext, Endpoints
from app.serving.api_keys import KeyCheck, check_key
from app.serving.error_answers import ErrorAnswer
from app.serving.generation_stream import (
    Failed,
    Finished,
    GenerationFailure,
    OpenGeneration,
    TextPiece,
    answer_generation,
)
from app.serving.generation_stream import Reply as GeneratedReply
from app.serving.request_body import BodyError, parse_body
from app.serving.request_documents import (
    Sourced,
)
from app.serving.served_models import ServedModelError

__all__ = ["AnthropicError", "anthropic_error_response", "anthropic_routes"]

BodyT = TypeVar("BodyT", bound=BaseModel)

# Anthropic's error type for each status it uses.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
}


class AnthropicError(ErrorAnswer):
    """An error answer in Anthropic's shape."""

    @property
    def type(self) -> str:
        return _ERROR_TYPES.get(self.status, "api_error")

    def body(self) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self.type, "message": self.message}}


def anthropic_error_response(
    status: int, message: str, code: str, headers: Mapping[str, str] | None = None
) -> Response:
    """An error from outside this endpoint (the browser guard, a body too large) in
    Anthropic's shape (its type says what `code` says)."""
    return AnthropicError(status, message, headers=headers).response()


# -- the endpoint ---------------------------------------------------------------------------


def anthropic_routes(context: ApiContext) -> APIRouter:
    """`POST /v1/messages` over `context`; with an API key, it needs the key (x-api-key or
    Bearer)."""
    api = _AnthropicApi(context)
    router = APIRouter(dependencies=[Depends(api.check_access)])
    router.add_api_route("/v1/messages", api.messages, methods=["POST"])
    router.add_api_route("/v1/messages/count_tokens", api.count_tokens, methods=["POST"])
    return router


class _AnthropicApi(Endpoints):
    def refusal(self, status: int, message: str, *, param: str | None = None) -> AnthropicError:
        return AnthropicError(status, message)

    async def check_access(self, request: Request) -> None:
        verdict = check_key(request.headers, self.api_key, x_api_key=True)
        if verdict is KeyCheck.MISSING:
            raise AnthropicError(401, "x-api-key header is required.")
        if verdict is KeyCheck.WRONG:
            raise AnthropicError(401, "invalid x-api-key")

    async def count_tokens(self, request: Request) -> dict[str, int]:
        """How many tokens the prompt is once templated (tools included), for the model."""
        body = await _parse(request, CountTokensRequest)
        try:
            messages = body.template_messages()
            tools = body.app_tools()
        except ValueError as exc:
            raise AnthropicError(400, str(exc)) from None
        try:
            async with self.models.acquire(body.model) as lease:
                engine = lease.engine
                count = await anyio.to_thread.run_sync(
                    lambda: engine.count_tokens(engine.render(messages, tools).text)
                )
        except ServedModelError as exc:
            raise _model_error(exc) from None
        except ChatTemplateError as exc:
            raise AnthropicError(400, str(exc)) from None
        except EngineError as exc:
            raise AnthropicError(500, str(exc)) from None
        return {"input_tokens": count}

    async def messages(self, request: Request) -> Response:
        body = await _parse(request, MessagesRequest)
        try:
            messages = body.template_messages()
            images = body.images()
            tools = body.app_tools()
        except ValueError as exc:  # Content/Vision/GrammarError, a tool_choice without tools
            raise AnthropicError(400, str(exc)) from None
        try:
            async with self.models.acquire(body.model) as lease:
                sampling = body.sampling(context_length=lease.loaded.context_length)
                opened, sourced = await self.start_chat(
                    request, lease, messages, sampling, tools=tools, images=images,
                    fields=body.modeldeck,
                )  # fmt: skip
        except ServedModelError as exc:
            raise _model_error(exc) from None
        offered = tools if tools is not None and tools.offered else None
        reply = _Reply(f"msg_{uuid.uuid4().hex[:24]}", lease.model_id, body.stop_sequences, sourced)

        def whole(generated: GeneratedReply) -> Response:
            parsed = (
                parse_tool_calls(generated.text, offered.names)
                if offered is not None
                else ParsedReply(generated.text)
            )
            return JSONResponse(reply.message(parsed, generated.stats), headers=reply.headers)

        return await answer_generation(
            request,
            opened,
            stream=body.stream,
            lines=lambda opened: _events(request, opened, reply, offered),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **reply.headers},
            whole=whole,
            error=_failure_error,
        )


class _Reply:
    """What every event of one message repeats."""

    def __init__(
        self, id: str, model: str, stop_sequences: Sequence[str], sourced: Sourced | None
    ) -> None:
        self.id = id
        self.model = model
        self.stop_sequences = frozenset(stop_sequences)
        self.sourced = sourced  # the documents' passages sent with the question

    @property
    def headers(self) -> dict[str, str]:
        return self.sourced.headers() if self.sourced is not None else {}

    def ending(self, stats: GenerationStats, *, called: bool) -> dict[str, str | None]:
        """`stop_reason` and `stop_sequence`: a call, one of the request's stop sequences,
        the token limit (or the context's end), or the model's own end of turn."""
        if called:
            return {"stop_reason": "tool_use", "stop_sequence": None}
        if stats.stop_string is not None and stats.stop_string in self.stop_sequences:
            return {"stop_reason": "stop_sequence", "stop_sequence": stats.stop_string}
        if stats.finish_reason in ("length", "context-full"):
            return {"stop_reason": "max_tokens", "stop_sequence": None}
        return {"stop_reason": "end_turn", "stop_sequence": None}

    def message(self, parsed: ParsedReply | None, stats: GenerationStats | None) -> dict[str, Any]:
        """The message: whole (its text and calls, and stats) or, for `message_start`, empty."""
        content: list[dict[str, Any]] = []
        if parsed is not None:
            if parsed.content or not parsed.tool_calls:
                content.append({"type": "text", "text": parsed.content})
            content += [_tool_use(call) for call in parsed.tool_calls]
        called = parsed is not None and bool(parsed.tool_calls)
        ending = (
            self.ending(stats, called=called)
            if stats is not None
            else {"stop_reason": None, "stop_sequence": None}
        )
        message = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            **ending,
            "usage": _usage(stats),
        }
        if self.sourced is not None:  # in message_start too: a stream says it first
            message["modeldeck"] = self.sourced.field()
        return message


def _tool_use(call: ToolCall) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": f"toolu_{uuid.uuid4().hex[:24]}",
        "name": call.name,
        "input": call_input(call.arguments),
    }


def _usage(stats: GenerationStats | None) -> dict[str, int]:
    if stats is None:  # message_start: the prompt's size comes with the result
        return {"input_tokens": 0, "output_tokens": 0}
    return {
        "input_tokens": stats.prompt_tokens or 0,
        "output_tokens": stats.generated_tokens or 0,
    }


async def _events(
    request: Request, opened: OpenGeneration, reply: _Reply, tools: Tools | None
) -> AsyncIterator[str]:
    """The server-sent events of one streamed message. With tools, text that may begin a
    call is held back (`ToolCallStream`); the calls come as tool_use blocks at the end."""
    calls = ToolCallStream(tools.names) if tools is not None else None
    yield _event("message_start", {"type": "message_start", "message": reply.message(None, None)})
    yield _event("content_block_start", _block_start(0, {"type": "text", "text": ""}))
    yield _event("ping", {"type": "ping"})
    async for item in opened.items(request):
        if isinstance(item, TextPiece):
            shown = calls.feed(item.text) if calls is not None else item.text
            if shown:
                yield _event("content_block_delta", _text_delta(shown))
        elif isinstance(item, Finished):
            parsed = calls.finish() if calls is not None else ParsedReply("")
            if parsed.content:
                yield _event("content_block_delta", _text_delta(parsed.content))
            yield _event("content_block_stop", {"type": "content_block_stop", "index": 0})
            for index, call in enumerate(parsed.tool_calls, start=1):
                block = _tool_use(call)
                arguments = json.dumps(block["input"], ensure_ascii=False)
                yield _event("content_block_start", _block_start(index, block | {"input": {}}))
                delta = {"type": "input_json_delta", "partial_json": arguments}
                yield _event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
                yield _event("content_block_stop", {"type": "content_block_stop", "index": index})
            ended = reply.ending(item.stats, called=bool(parsed.tool_calls))
            yield _event(
                "message_delta",
                {"type": "message_delta", "delta": ended, "usage": _usage(item.stats)},
            )
            yield _event("message_stop", {"type": "message_stop"})
        elif isinstance(item, Failed):
            yield _event("error", _failure_error(item.failure).body())


def _block_start(index: int, block: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": dict(block)}


def _text_delta(text: str) -> dict[str, Any]:
    delta = {"type": "text_delta", "text": text}
    return {"type": "content_block_delta", "index": 0, "delta": delta}


def _event(name: str, data: Mapping[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


async def _parse(request: Request, model: type[BodyT]) -> BodyT:
    raw = await request.body()
    try:
        return parse_body(raw, model)
    except BodyError as exc:
        raise AnthropicError(400, exc.message) from None


def _model_error(exc: ServedModelError) -> AnthropicError:
    retry = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else None
    return AnthropicError(exc.status, str(exc), headers=retry)


def _failure_error(failure: GenerationFailure) -> AnthropicError:
    return AnthropicError(failure.kind.status, failure.message)
