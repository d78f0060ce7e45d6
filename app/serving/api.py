"""The OpenAI-compatible API over the app's LLM engine, as a FastAPI app.

Endpoints (under /v1): `GET /models`, `POST /chat/completions`, `POST /completions`, each
streamed as server-sent events (`data: {chunk}` lines, then `data: [DONE]`) when the body
says `"stream": true`. Errors have OpenAI's shape, `{"error": {"message", "type", "param",
"code"}}`, and status:

- 400: a body that is not JSON or fails validation (a missing field names it in `param`), a
  negative temperature, a prompt longer than the context (`context_length_exceeded`), a
  `response_format` schema no grammar can express (`invalid_schema`), a `tool_choice` that
  names no offered tool (param `tools`); bodies are bounded before they are parsed
  (`request_body`);
- 401: a missing or wrong API key when the server has one (`invalid_api_key`);
- 403: a request from a web page whose origin is not allowed (`origin_not_allowed`), or, on
  a loopback server, a Host header that does not name this machine (`host_not_allowed`:
  DNS rebinding). See `browser_guard`; allowed origins get CORS answers;
- 404: a model this server does not serve (`model_not_found`); `model` may be left out
  when one model is served (or one is loaded, when the whole library is);
- 413: a body over `MAX_BODY_BYTES` (`request_too_large`). FastAPI counts the bytes as they
  arrive; to a body that declares a Content-Length over the limit it answers itself, in
  plain text, before anything here runs;
- 415: a body not declared `application/json` (`unsupported_media_type`);
- 503: a model is loading (with `Retry-After`), none is loaded, or — serving the whole
  library — there is no room to load the model while every loaded one generates
  (`models_busy`, with `Retry-After`). See `served_models` for how routers get a model.

Chat replies honour `response_format` (JSON, enforced by a grammar) and `tools`: calls are
parsed from the model's output, or forced by a grammar (`structured_fields`, `tool_replies`).
Images come as `image_url` parts with data: URIs (a vision model only). A body's
`"modeldeck": {"documents": "NAME"}` answers the last user message from that document
collection, with the sources in the answer (`request_documents`).

`max_tokens` larger than the context is clamped, not refused (OpenAI answers 400): clients
written for hosted models send limits no local context has, and the reply then simply ends
at the context's end with finish_reason "length". Generations run one at a time in arrival
order (`EngineQueue`); a client that goes away — while queued, waiting, or mid-stream —
cancels its generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.chat.tools import Tools
from app.engines.supervisor import RequestHandle
from app.llm.sampling import Sampling
from app.llm.stats import GenerationStats
from app.serving.api_context import ApiContext, Endpoints
from app.serving.browser_guard import BrowserGuard
from app.serving.dialects import add_dialects, error_response
from app.serving.engine_queue import EngineQueue
from app.serving.error_answers import ErrorAnswer
from app.serving.generation_stream import (
    STATUS_CLIENT_CLOSED,
    FailureKind,
    Finished,
    GenerationFailure,
    OpenGeneration,
    TextPiece,
    start_generation,
)
from app.serving.openai_errors import ApiError
from app.serving.request_body import MAX_BODY_BYTES, BodyError, parse_body
from app.serving.request_documents import (
    DocumentSource,
    Sourced,
)
from app.serving.request_log import RequestLog, RequestLogEntry
from app.serving.schemas import (
    COMPLETION_DEFAULT_MAX_TOKENS,
    ChatCompletionRequest,
    CompletionRequest,
    SamplingFields,
)
from app.serving.served_models import ModelLease, ModelSource, ServedModelError
from app.serving.structured_fields import tools_of
from app.serving.tool_replies import FINISH_TOOL_CALLS, ToolDeltas, tool_message

BodyT = TypeVar("BodyT", bound=BaseModel)


# finish_reason as OpenAI names it; the engine's "context-full" is a "length" stop.
_FINISH_REASONS = {"stop": "stop", "length": "length", "context-full": "length"}


def create_api(
    models: ModelSource,
    *,
    api_key: str | None,
    log: RequestLog,
    allowed_origins: Collection[str] = (),
    loopback_only: bool = True,
    documents: Callable[[], DocumentSource] | None = None,
) -> FastAPI:
    """The ASGI app answering from `models` (one generation at a time per model, through
    each lease's queue).

    Args:
        api_key: when set, every /v1 request needs `Authorization: Bearer <api_key>`.
        log: where each answered request is recorded.
        allowed_origins: web origins whose pages may call the API (normalized, see
            `app.settings.validate_origins`); none by default.
        loopback_only: the server listens on loopback only, so the Host header must name
            this machine.
        documents: the document collections a request may name (`request_documents`).
    """
    context = ApiContext(models, api_key, documents)
    api = _Api(context)
    app = FastAPI(
        title="ModelDeck",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # FastAPI ≥ 0.164 counts body bytes as they arrive and answers 413 past this.
        max_body_size=MAX_BODY_BYTES,
        # No OpenTelemetry spans from the app process (FastAPI ≥ 0.164 makes them by default).
        telemetry={"tracing": False, "metrics": False, "logs": False, "auto_configure": False},
    )
    router = APIRouter(dependencies=[Depends(api.check_access)])
    router.add_api_route("/models", api.list_models, methods=["GET"])
    router.add_api_route("/chat/completions", api.chat_completions, methods=["POST"])
    router.add_api_route("/completions", api.completions, methods=["POST"])
    app.include_router(router, prefix="/v1")
    add_dialects(app, context)  # Ollama's, Anthropic's, embeddings
    app.add_exception_handler(ErrorAnswer, _error_answer)  # each API's own shape
    app.add_exception_handler(ServedModelError, _served_model_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    # The last added runs first: the log records every request, refused ones included.
    app.add_middleware(
        BrowserGuard,
        allowed_origins=allowed_origins,
        loopback_only=loopback_only,
        refuse=_refusal,
    )
    app.add_middleware(_RequestLogMiddleware, log=log)
    return app


def _refusal(path: str, status: int, message: str, code: str) -> Response:
    """The browser guard's answer, in the shape of the API `path` belongs to."""
    shaped = error_response(path, status, message, code)
    return shaped if shaped is not None else ApiError(status, message, code=code).response()


@dataclass(frozen=True)
class _Reply:
    """What every chunk and answer of one request repeats."""

    kind: str  # "chat" or "completion"
    id: str
    created: int
    model: str
    include_usage: bool
    tools: Tools | None = None  # tools offered to the model: its reply is parsed for calls
    sourced: Sourced | None = None  # the documents' passages sent with the question

    @classmethod
    def new(
        cls,
        kind: str,
        model: str,
        *,
        include_usage: bool,
        tools: Tools | None = None,
        sourced: Sourced | None = None,
    ) -> _Reply:
        prefix = "chatcmpl" if kind == "chat" else "cmpl"
        offered = tools if tools is not None and tools.offered else None
        return cls(
            kind, f"{prefix}-{uuid.uuid4().hex[:24]}", int(time.time()), model, include_usage,
            offered, sourced,
        )  # fmt: skip

    @property
    def headers(self) -> dict[str, str]:
        return self.sourced.headers() if self.sourced is not None else {}

    def _envelope(self, object_: str) -> dict[str, Any]:
        return {"id": self.id, "object": object_, "created": self.created, "model": self.model}

    def answer(self, text: str, result: GenerationStats) -> dict[str, Any]:
        finish = _finish_reason(result)
        if self.kind == "chat":
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if self.tools is not None:
                message, called = tool_message(text, self.tools)
                finish = FINISH_TOOL_CALLS if called else finish
            choice: dict[str, Any] = {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish,
            }
            envelope = self._envelope("chat.completion")
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
            envelope = self._envelope("text_completion")
        answer = {**envelope, "choices": [choice], "usage": _usage(result)}
        if self.sourced is not None:
            answer["modeldeck"] = self.sourced.field()
        return answer

    def chunk(
        self, text: str | None = None, *, finish: str | None = None, role: bool = False
    ) -> dict[str, Any]:
        if self.kind == "chat":
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
            if text is not None:
                delta["content"] = text
            choice: dict[str, Any] = {"index": 0, "delta": delta}
            envelope = self._envelope("chat.completion.chunk")
        else:
            choice = {"index": 0, "text": text or ""}
            envelope = self._envelope("text_completion")
        choice |= {"logprobs": None, "finish_reason": finish}
        chunk = {**envelope, "choices": [choice]}
        if self.include_usage:
            chunk["usage"] = None
        if role and self.sourced is not None:  # the first chunk says what was sent
            chunk["modeldeck"] = self.sourced.field()
        return chunk

    def delta_chunk(self, delta: Mapping[str, Any]) -> dict[str, Any]:
        """A chat chunk carrying `delta` as it is (tool-call deltas)."""
        chunk = self.chunk()
        chunk["choices"][0]["delta"] = dict(delta)
        return chunk

    def usage_chunk(self, result: GenerationStats) -> dict[str, Any]:
        object_ = "chat.completion.chunk" if self.kind == "chat" else "text_completion"
        return {**self._envelope(object_), "choices": [], "usage": _usage(result)}


def _usage(result: GenerationStats) -> dict[str, int]:
    prompt = result.prompt_tokens or 0
    completion = result.generated_tokens or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _finish_reason(result: GenerationStats) -> str:
    return _FINISH_REASONS.get(result.finish_reason or "stop", "stop")


def _dumps(document: Mapping[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


class _Api(Endpoints):
    """The endpoints, over the served models (`ModelSource.acquire` gives each request its
    model's engine and queue)."""

    # -- checks, in the order a request meets them ---------------------------------------

    def refusal(self, status: int, message: str, *, param: str | None = None) -> ApiError:
        return ApiError(status, message, param=param)

    async def check_access(self, request: Request) -> None:
        """The API key, when the server has one (the browser guard has checked Host and
        Origin before this)."""
        if self.api_key is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise ApiError(
                401,
                "You didn't provide an API key. Send it in an Authorization header using "
                "Bearer auth (Authorization: Bearer YOUR_KEY).",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not _same_secret(given.strip(), self.api_key):
            raise ApiError(
                401,
                "Incorrect API key provided.",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def sampling(
        self, body: SamplingFields, lease: ModelLease, *, default_max_tokens: int | None
    ) -> Sampling:
        context = lease.loaded.context_length
        try:
            return body.sampling(
                default_max_tokens=default_max_tokens or context, context_length=context
            )
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None

    # -- endpoints -----------------------------------------------------------------------

    async def list_models(self) -> dict[str, Any]:
        listed = await asyncio.to_thread(self.models.listing)
        data = [
            {
                "id": model.model_id,
                "object": "model",
                "created": model.created,
                "owned_by": "modeldeck",
                "loaded": model.loaded,
                **({"context_length": model.context_length} if model.context_length else {}),
            }
            for model in listed
        ]
        return {"object": "list", "data": data}

    async def chat_completions(self, request: Request) -> Response:
        body = await _parse(request, ChatCompletionRequest)
        try:
            messages = [message.as_template_message() for message in body.messages]
            images = [image for message in body.messages for image in message.images()]
        except ValueError as exc:
            raise ApiError(400, str(exc), param="messages") from None
        schema, tools = _structured_output(body)
        async with self.models.acquire(body.model) as lease:
            self.check_sees(lease, images)
            sampling = self.sampling(body, lease, default_max_tokens=None)
            sampling = replace(sampling, json_schema=schema)
            sourced = await self.with_documents(
                body.modeldeck, messages, lease, max_tokens=sampling.max_tokens, tools=tools
            )
            if sourced is not None:
                messages = sourced.messages
            engine = lease.engine
            reply = _Reply.new(
                "chat", lease.model_id, include_usage=body.include_usage, tools=tools,
                sourced=sourced,
            )  # fmt: skip
            return await self._answer(
                request,
                lambda: engine.generate(messages, sampling, tools=tools, images=images),
                reply,
                body.stream, "messages", queue=lease.queue,
            )  # fmt: skip

    async def completions(self, request: Request) -> Response:
        body = await _parse(request, CompletionRequest)
        async with self.models.acquire(body.model) as lease:
            sampling = self.sampling(body, lease, default_max_tokens=COMPLETION_DEFAULT_MAX_TOKENS)
            prompt = body.prompt_text
            engine = lease.engine
            reply = _Reply.new("completion", lease.model_id, include_usage=body.include_usage)
            return await self._answer(
                request, lambda: engine.generate_from_prompt(prompt, sampling), reply,
                body.stream, "prompt", queue=lease.queue,
            )  # fmt: skip

    # -- one generation ------------------------------------------------------------------

    async def _answer(
        self,
        request: Request,
        submit: Callable[[], RequestHandle],
        reply: _Reply,
        stream: bool,
        prompt_param: str,
        *,
        queue: EngineQueue,
    ) -> Response:
        """Queue the generation, and answer once its first event is in (`generation_stream`):
        an error as an error, anything else as a stream or, at its end, one JSON answer."""
        try:
            opened = await start_generation(request, queue, submit)
        except GenerationFailure as exc:
            raise _failure_error(exc, prompt_param) from None
        if opened is None:
            return Response(status_code=STATUS_CLIENT_CLOSED)
        if stream:
            return EventSourceResponse(
                _stream(request, opened, reply),
                sep="\n",
                headers=reply.headers,
                background=BackgroundTask(opened.cancel_unless_done),
            )
        try:
            whole = await opened.collect(request)
        except GenerationFailure as exc:
            raise _failure_error(exc, prompt_param) from None
        if whole is None:
            return Response(status_code=STATUS_CLIENT_CLOSED)
        return JSONResponse(reply.answer(whole.text, whole.stats), headers=reply.headers)


async def _stream(request: Request, opened: OpenGeneration, reply: _Reply) -> AsyncIterator[str]:
    """The SSE lines of one generation. The first line is sent with the first item, so a
    client that leaves at any line closes `items`, which stops the engine."""
    deltas = ToolDeltas(reply.tools) if reply.tools is not None else None
    started = False
    async with contextlib.aclosing(opened.items(request)) as items:
        async for item in items:
            if not started and reply.kind == "chat":
                yield _dumps(reply.chunk(role=True))
            started = True
            if isinstance(item, TextPiece):
                if deltas is not None:
                    for delta in deltas.feed(item.text):
                        yield _dumps(reply.delta_chunk(delta))
                else:
                    yield _dumps(reply.chunk(item.text))
            elif isinstance(item, Finished):
                finish = _finish_reason(item.stats)
                if deltas is not None:
                    for delta in deltas.finish():
                        yield _dumps(reply.delta_chunk(delta))
                    finish = FINISH_TOOL_CALLS if deltas.called else finish
                yield _dumps(reply.chunk(finish=finish))
                if reply.include_usage:
                    yield _dumps(reply.usage_chunk(item.stats))
                yield "[DONE]"
            else:
                yield _dumps(_failure_error(item.failure, None).body())


def _structured_output(body: ChatCompletionRequest) -> tuple[str | None, Tools | None]:
    """The JSON schema (`response_format`) and the tools a chat request asks for; 400 for
    a schema no grammar can express, or a tool choice that makes no sense."""
    try:
        schema = body.response_format.schema_text() if body.response_format else None
    except ValueError as exc:
        raise ApiError(400, str(exc), param="response_format", code="invalid_schema") from None
    try:
        tools = tools_of(body.tools, body.tool_choice)
    except ValueError as exc:
        raise ApiError(400, str(exc), param="tools") from None
    return schema, tools


async def _parse(request: Request, model: type[BodyT]) -> BodyT:
    """The JSON body as `model`; 400 in OpenAI's words when it is not JSON or not valid."""
    raw = await request.body()
    try:
        return parse_body(raw, model)
    except BodyError as exc:
        raise ApiError(400, exc.message, param=exc.param) from None


def _same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _failure_error(failure: GenerationFailure, prompt_param: str | None) -> ApiError:
    """A generation that gave no reply, in OpenAI's words."""
    kind, message = failure.kind, failure.message
    if kind is FailureKind.CONTEXT_FULL:
        return ApiError(400, message, param=prompt_param, code="context_length_exceeded")
    if kind is FailureKind.BAD_PROMPT:
        return ApiError(400, message, param=prompt_param)
    code = failure.engine_kind.replace("-", "_")  # "bad_input", "engine_stopped"…
    if kind is FailureKind.BAD_INPUT:  # an image that is not one, or for a text model
        return ApiError(400, message, param=prompt_param, code=code)
    if kind is FailureKind.STOPPING:
        return ApiError(503, message, type="server_error", code="server_stopping")
    if kind is FailureKind.NOT_LOADED:
        return ApiError(503, message, type="server_error", code="model_not_loaded")
    return ApiError(500, message, type="server_error", code=code)


async def _error_answer(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ErrorAnswer)
    return exc.response()


async def _served_model_error(request: Request, exc: Exception) -> Response:
    """Why the request's model cannot answer, in OpenAI's shape (404, 503 + Retry-After…)."""
    assert isinstance(exc, ServedModelError)
    retry = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else {}
    kind = "invalid_request_error" if exc.client_error else "server_error"
    error = ApiError(exc.status, str(exc), type=kind, param=exc.param, code=exc.code, headers=retry)
    return error.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(
        exc.status_code
    )
    message = str(exc.detail)
    if exc.status_code == 413:
        message = f"The request body is larger than the {MAX_BODY_BYTES:,} bytes allowed."
    shaped = error_response(request.url.path, exc.status_code, message, code or "", exc.headers)
    if shaped is not None:
        return shaped
    error = ApiError(exc.status_code, message, code=code, headers=exc.headers)
    return error.response()


async def _internal_error(request: Request, exc: Exception) -> Response:
    message = f"The server failed: {type(exc).__name__}: {exc}"
    shaped = error_response(request.url.path, 500, message, "server_error")
    return shaped if shaped is not None else ApiError(500, message, type="server_error").response()


class _RequestLogMiddleware:
    """Records every request in the `RequestLog` once its answer is sent (or abandoned)."""

    def __init__(self, app: ASGIApp, log: RequestLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived, started = time.time(), time.perf_counter()
        status = 0
        state: dict[str, Any] = scope.setdefault("state", {})

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        except BaseException:
            status = status or 500
            raise
        finally:
            client = scope.get("client")
            self.log.add(
                RequestLogEntry(
                    time=arrived,
                    method=str(scope.get("method", "")),
                    path=str(scope.get("path", "")),
                    status=status,
                    duration_s=time.perf_counter() - started,
                    tokens=state.get("tokens"),
                    client=f"{client[0]}:{client[1]}" if client else "",
                    outcome=str(state.get("outcome", "")),
                )
            )
