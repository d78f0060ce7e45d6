"""The OpenAI-compatible API over the app's LLM engine, as a FastAPI app.

Endpoints (under /v1): `GET /models`, `POST /chat/completions`, `POST /completions`, each
streamed as server-sent events (`data: {chunk}` lines, then `data: [DONE]`) when the body
says `"stream": true`. Errors have OpenAI's shape, `{"error": {"message", "type", "param",
"code"}}`, and status:

- 400: a body that is not JSON or fails validation (a missing field names it in `param`), a
  negative temperature, a prompt longer than the context (`context_length_exceeded`);
  bodies are bounded before they are parsed (`request_body`);
- 401: a missing or wrong API key when the server has one (`invalid_api_key`);
- 403: a request from a web page whose origin is not allowed (`origin_not_allowed`), or, on
  a loopback server, a Host header that does not name this machine (`host_not_allowed`:
  DNS rebinding). See `browser_guard`; allowed origins get CORS answers;
- 404: a model other than the loaded one (`model_not_found`); `model` may be left out;
- 413: a body over `MAX_BODY_BYTES` (`request_too_large`). FastAPI counts the bytes as they
  arrive; to a body that declares a Content-Length over the limit it answers itself, in
  plain text, before anything here runs;
- 415: a body not declared `application/json` (`unsupported_media_type`);
- 503: a model is loading (with `Retry-After`), or none is loaded.

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
from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.engines.errors import EngineError
from app.engines.protocol import Event, EventKind
from app.engines.supervisor import RequestHandle
from app.errors import ChatTemplateError
from app.llm.messages import Generated
from app.llm.sampling import Sampling
from app.llm.stats import GenerationStats
from app.serving.browser_guard import BrowserGuard
from app.serving.engine_queue import EngineQueue, Generation, ServerClosingError
from app.serving.request_body import MAX_BODY_BYTES, BodyError, parse_body
from app.serving.request_log import RequestLog, RequestLogEntry
from app.serving.schemas import (
    COMPLETION_DEFAULT_MAX_TOKENS,
    ChatCompletionRequest,
    CompletionRequest,
    SamplingFields,
)
from app.serving.served_engine import ServedEngine

T = TypeVar("T")
BodyT = TypeVar("BodyT", bound=BaseModel)

RETRY_AFTER_LOADING_S = 5
CANCEL_WAIT_S = 5.0  # how long a left request waits for the engine to confirm the stop
STATUS_CLIENT_CLOSED = 499  # nginx's "client closed request": for the log only

# finish_reason as OpenAI names it; the engine's "context-full" is a "length" stop.
_FINISH_REASONS = {"stop": "stop", "length": "length", "context-full": "length"}


class ApiError(Exception):
    """An error answer in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def create_api(
    served: ServedEngine,
    queue: EngineQueue,
    *,
    api_key: str | None,
    log: RequestLog,
    allowed_origins: Collection[str] = (),
    loopback_only: bool = True,
) -> FastAPI:
    """The ASGI app serving `served` (one generation at a time, through `queue`).

    Args:
        api_key: when set, every /v1 request needs `Authorization: Bearer <api_key>`.
        log: where each answered request is recorded.
        allowed_origins: web origins whose pages may call the API (normalized, see
            `app.settings.validate_origins`); none by default.
        loopback_only: the server listens on loopback only, so the Host header must name
            this machine.
    """
    api = _Api(served, queue, api_key=api_key)
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
    router.add_api_route("/models", api.models, methods=["GET"])
    router.add_api_route("/chat/completions", api.chat_completions, methods=["POST"])
    router.add_api_route("/completions", api.completions, methods=["POST"])
    app.include_router(router, prefix="/v1")
    app.add_exception_handler(ApiError, _api_error)
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


def _refusal(status: int, message: str, code: str) -> Response:
    """An answer in OpenAI's shape for the browser guard."""
    return ApiError(status, message, code=code).response()


@dataclass(frozen=True)
class _Reply:
    """What every chunk and answer of one request repeats."""

    kind: str  # "chat" or "completion"
    id: str
    created: int
    model: str
    include_usage: bool

    @classmethod
    def new(cls, kind: str, model: str, *, include_usage: bool) -> _Reply:
        prefix = "chatcmpl" if kind == "chat" else "cmpl"
        return cls(
            kind, f"{prefix}-{uuid.uuid4().hex[:24]}", int(time.time()), model, include_usage
        )

    def _envelope(self, object_: str) -> dict[str, Any]:
        return {"id": self.id, "object": object_, "created": self.created, "model": self.model}

    def answer(self, text: str, result: GenerationStats) -> dict[str, Any]:
        finish = _finish_reason(result)
        if self.kind == "chat":
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish,
            }
            envelope = self._envelope("chat.completion")
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
            envelope = self._envelope("text_completion")
        return {**envelope, "choices": [choice], "usage": _usage(result)}

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


class _Api:
    """The endpoints, over one served engine and its queue."""

    def __init__(self, served: ServedEngine, queue: EngineQueue, *, api_key: str | None) -> None:
        self.served = served
        self.queue = queue
        self.api_key = api_key

    # -- checks, in the order a request meets them ---------------------------------------

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

    def check_not_loading(self) -> None:
        if self.served.loading:
            raise ApiError(
                503,
                "The model is loading; try again in a few seconds.",
                type="server_error",
                code="model_loading",
                headers={"Retry-After": str(RETRY_AFTER_LOADING_S)},
            )

    def check_model(self, requested: str | None) -> str:
        """The id of the model to answer with; raises 404 for another model's name."""
        self.check_not_loading()
        model_id = self.served.model_id
        if model_id is None:
            raise ApiError(
                503,
                "No model is loaded. Load one in ModelDeck, then try again.",
                type="server_error",
                code="model_not_loaded",
            )
        if requested is not None and requested not in self.served.names():
            raise ApiError(
                404,
                f"The model {requested!r} does not exist here; this server serves {model_id!r}.",
                param="model",
                code="model_not_found",
            )
        return model_id

    def sampling(self, body: SamplingFields, *, default_max_tokens: int | None) -> Sampling:
        context = self.served.loaded.context_length if self.served.loaded else 4096
        try:
            return body.sampling(
                default_max_tokens=default_max_tokens or context, context_length=context
            )
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None

    # -- endpoints -----------------------------------------------------------------------

    async def models(self) -> dict[str, Any]:
        self.check_not_loading()
        loaded, model_id = self.served.loaded, self.served.model_id
        data = []
        if loaded is not None and model_id is not None:
            data.append(
                {
                    "id": model_id,
                    "object": "model",
                    "created": int(_modified(loaded.settings.path)),
                    "owned_by": "modeldeck",
                    "context_length": loaded.context_length,
                }
            )
        return {"object": "list", "data": data}

    async def chat_completions(self, request: Request) -> Response:
        body = await _parse(request, ChatCompletionRequest)
        model_id = self.check_model(body.model)
        try:
            messages = [message.as_template_message() for message in body.messages]
        except ValueError as exc:
            raise ApiError(400, str(exc), param="messages") from None
        sampling = self.sampling(body, default_max_tokens=None)
        engine = self.served.engine
        reply = _Reply.new("chat", model_id, include_usage=body.include_usage)
        return await self._answer(
            request, lambda: engine.generate(messages, sampling), reply, body.stream, "messages"
        )

    async def completions(self, request: Request) -> Response:
        body = await _parse(request, CompletionRequest)
        model_id = self.check_model(body.model)
        sampling = self.sampling(body, default_max_tokens=COMPLETION_DEFAULT_MAX_TOKENS)
        prompt = body.prompt_text
        engine = self.served.engine
        reply = _Reply.new("completion", model_id, include_usage=body.include_usage)
        return await self._answer(
            request, lambda: engine.generate_from_prompt(prompt, sampling), reply, body.stream,
            "prompt",
        )  # fmt: skip

    # -- one generation ------------------------------------------------------------------

    async def _answer(
        self,
        request: Request,
        submit: Callable[[], RequestHandle],
        reply: _Reply,
        stream: bool,
        prompt_param: str,
    ) -> Response:
        """Queue the generation, and answer once its first event is in: an error as an error,
        anything else as a stream or, at its end, one JSON answer."""

        async def first_event() -> tuple[Generation, Event]:
            generation = await self.queue.start(submit)
            try:
                return generation, await generation.next_event()
            except asyncio.CancelledError:
                generation.cancel()
                raise

        try:
            opened = await _unless_disconnected(request, first_event())
        except ChatTemplateError as exc:
            raise ApiError(400, str(exc), param=prompt_param) from None
        except ServerClosingError:
            raise _stopping() from None
        except EngineError as exc:
            raise _engine_error(exc.kind, str(exc), prompt_param) from None
        if opened is None:
            return _client_left(request)
        generation, first = opened
        if first.terminal and first.kind is not EventKind.RESULT:
            _note_outcome(request, first)
            raise _terminal_error(first, prompt_param)
        if stream:
            return EventSourceResponse(
                _stream(request, generation, first, reply),
                sep="\n",
                background=BackgroundTask(_cancel_unless_done, generation),
            )
        return await self._collect(request, generation, first, reply, prompt_param)

    async def _collect(
        self,
        request: Request,
        generation: Generation,
        first: Event,
        reply: _Reply,
        prompt_param: str,
    ) -> Response:
        parts: list[str] = []

        async def to_the_end() -> Event:
            event = first
            try:
                while not event.terminal:
                    if event.kind is EventKind.CHUNK:
                        parts.append(event.text)
                    event = await generation.next_event()
            except asyncio.CancelledError:
                generation.cancel()
                raise
            return event

        outcome = await _unless_disconnected(request, to_the_end())
        if outcome is None:
            _note_outcome(request, await generation.finish(CANCEL_WAIT_S))
            return Response(status_code=STATUS_CLIENT_CLOSED)
        _note_outcome(request, outcome)
        if outcome.kind is not EventKind.RESULT:
            raise _terminal_error(outcome, prompt_param)
        return JSONResponse(reply.answer("".join(parts), _result(outcome)))


async def _stream(
    request: Request, generation: Generation, first: Event, reply: _Reply
) -> AsyncIterator[str]:
    """The SSE lines of one generation; a client that leaves cancels it (sse-starlette
    cancels this generator, and the `finally` stops the engine)."""
    event = first
    try:
        if reply.kind == "chat":
            yield _dumps(reply.chunk(role=True))
        while True:
            if event.kind is EventKind.CHUNK:
                text = event.text
                if text:
                    yield _dumps(reply.chunk(text))
            elif event.kind is EventKind.RESULT:
                yield _dumps(reply.chunk(finish=_finish_reason(_result(event))))
                if reply.include_usage:
                    yield _dumps(reply.usage_chunk(_result(event)))
                yield "[DONE]"
                return
            elif event.terminal:
                yield _dumps(_terminal_error(event, None).body())
                return
            event = await generation.next_event()
    finally:
        outcome = generation.outcome
        if outcome is None:  # the client left (or the server is stopping)
            generation.cancel()
            with anyio.CancelScope(shield=True):
                outcome = await generation.finish(CANCEL_WAIT_S)
        _note_outcome(request, outcome)


def _cancel_unless_done(generation: Generation) -> None:
    """After a stream: stop a generation whose stream never started (the client left at once)."""
    if generation.outcome is None:
        generation.cancel()


async def _unless_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T | None:
    """Run `work` until it ends or the client disconnects (then cancel it: None)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


async def _disconnected(request: Request) -> None:
    """Return when the client has gone (the body was read: the next message is a disconnect)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _client_left(request: Request) -> Response:
    _note(request, tokens=None, outcome="cancelled")
    return Response(status_code=STATUS_CLIENT_CLOSED)


def _note(request: Request, *, tokens: int | None, outcome: str) -> None:
    """What the request log should say of this request beyond its status."""
    request.state.tokens = tokens
    request.state.outcome = outcome


def _note_outcome(request: Request, event: Event | None) -> None:
    """Note how the engine ended a generation (None: it did not say in time)."""
    if event is None or event.kind is EventKind.CANCELLED:
        _note(request, tokens=None, outcome="cancelled")
    elif event.kind is EventKind.RESULT:
        result = _result(event)
        tokens = result.generated_tokens or 0
        _note(request, tokens=tokens, outcome=_finish_reason(result))
    else:
        _note(request, tokens=None, outcome="error")


async def _parse(request: Request, model: type[BodyT]) -> BodyT:
    """The JSON body as `model`; 400 in OpenAI's words when it is not JSON or not valid."""
    raw = await request.body()
    try:
        return parse_body(raw, model)
    except BodyError as exc:
        raise ApiError(400, exc.message, param=exc.param) from None


def _same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


def _stopping() -> ApiError:
    return ApiError(503, "The server is stopping.", type="server_error", code="server_stopping")


def _engine_error(kind: str, message: str, prompt_param: str | None) -> ApiError:
    if kind == "context-full":
        return ApiError(400, message, param=prompt_param, code="context_length_exceeded")
    if kind == "not-loaded":
        return ApiError(503, message, type="server_error", code="model_not_loaded")
    return ApiError(500, message, type="server_error", code=kind.replace("-", "_"))


def _terminal_error(event: Event, prompt_param: str | None) -> ApiError:
    """The error answer for a generation that ended other than with a RESULT."""
    failure = event.failure
    if event.kind is EventKind.CANCELLED:
        return _stopping()
    if event.kind is EventKind.STOPPED:
        return ApiError(500, failure.message, type="server_error", code="engine_stopped")
    return _engine_error(failure.kind, failure.message, prompt_param)


def _result(event: Event) -> GenerationStats:
    """What a RESULT event says of the generation (token counts, why it stopped)."""
    return event.expect(Generated).stats


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(
        exc.status_code
    )
    message = str(exc.detail)
    if exc.status_code == 413:
        message = f"The request body is larger than the {MAX_BODY_BYTES:,} bytes allowed."
    error = ApiError(exc.status_code, message, code=code, headers=exc.headers)
    return error.response()


async def _internal_error(request: Request, exc: Exception) -> Response:
    message = f"The server failed: {type(exc).__name__}: {exc}"
    return ApiError(500, message, type="server_error").response()


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
