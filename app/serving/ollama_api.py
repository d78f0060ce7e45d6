"""Ollama's API on the local server's port, over the same models as the OpenAI endpoints.

Endpoints (under /api): `GET /tags`, `POST /show`, `POST /chat`, `POST /generate`,
`POST /embed`, `GET /ps`, `GET /version`. Chats and generations stream by default, as
Ollama's do: NDJSON, one object a line, the last with `"done": true` and the figures
(`eval_count`, durations in nanoseconds); `"stream": false` answers one object. A request
with no messages (or an empty prompt) only loads the model (`done_reason: "load"`).

Errors have Ollama's shape, `{"error": "message"}`, with the status Ollama uses (400 for a
bad body, 401 for a key, 404 for an unknown model, 503 while loading, with Retry-After).

`images` (base64, on a chat message or a generation) reach a vision model (one served with its
projector) as OpenAI's `image_url` parts do; to a text model, with `raw`, or as malformed
base64 or bytes that are not an image, they are a 400. `"modeldeck": {"documents": "NAME"}`
answers from a document collection; the last line carries the sources (`request_documents`).

`format` ("json", or a JSON schema) constrains the reply by a grammar (`Sampling.json_schema`).
`tools` (OpenAI's shape, as Ollama takes them) are rendered by the model's template; the
reply's calls come back as `message.tool_calls` (arguments as objects), streamed in one line
before the last. `keep_alive` sets how long the library pool keeps the model once idle
(`keep_alive: 0` with no messages unloads it: `done_reason: "unload"`); a single served model
is the app's and stays. Bodies and `options`: `ollama_schemas`; /api/tags, /ps and /show:
`ollama_models`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from app.chat.tool_calls import ParsedReply, ToolCall, ToolCallStream, parse_tool_calls
from app.chat.tools import Tools
from app.chat.vision import content_with_images
from app.engines.errors import EngineError, EngineErrorKind
from app.llm.grammar import grammar_for_schema_text
from app.llm.stats import GenerationStats
from app.serving.api_context import ApiContext, Endpoints
from app.serving.api_keys import KeyCheck, check_key
from app.serving.generation_stream import (
    Failed,
    Finished,
    GenerationFailure,
    OpenGeneration,
    StreamItem,
    TextPiece,
    answer_generation,
)
from app.serving.generation_stream import Reply as GeneratedReply
from app.serving.model_pool import ModelPool
from app.serving.ollama_models import described, shown, timestamp
from app.serving.ollama_schemas import (
    ChatBody,
    EmbedBody,
    GenerateBody,
    KeepAlive,
    OllamaError,
    ShowBody,
    keep_alive_seconds,
    ollama_error_response,
)
from app.serving.request_body import BodyError, parse_body
from app.serving.request_documents import (
    Sourced,
)
from app.serving.served_models import ListedModel, ModelLease, ModelSource, ServedModelError

__all__ = ["OLLAMA_API_VERSION", "OllamaError", "ollama_error_response", "ollama_routes"]

# The Ollama release whose API these endpoints follow; clients read it to decide which
# features to use.
OLLAMA_API_VERSION = "0.12.0"
NS = 1_000_000_000

_DONE_REASONS = {"stop": "stop", "length": "length", "context-full": "length"}

BodyT = TypeVar("BodyT", bound=BaseModel)


# -- the endpoints --------------------------------------------------------------------------


def ollama_routes(context: ApiContext) -> APIRouter:
    """The Ollama endpoints over `context`; with an API key, each needs it as a Bearer
    token."""
    api = _OllamaApi(context)
    router = APIRouter(prefix="/api", dependencies=[Depends(api.check_access)])
    router.add_api_route("/version", api.version, methods=["GET"])
    router.add_api_route("/tags", api.tags, methods=["GET"])
    router.add_api_route("/ps", api.ps, methods=["GET"])
    router.add_api_route("/show", api.show, methods=["POST"])
    router.add_api_route("/chat", api.chat, methods=["POST"])
    router.add_api_route("/generate", api.generate, methods=["POST"])
    router.add_api_route("/embed", api.embed, methods=["POST"])
    return router


class _OllamaApi(Endpoints):
    async def check_access(self, request: Request) -> None:
        verdict = check_key(request.headers, self.api_key)
        if verdict is KeyCheck.MISSING:
            raise OllamaError(401, "unauthorized: this server needs an API key (Bearer).")
        if verdict is KeyCheck.WRONG:
            raise OllamaError(401, "unauthorized: the API key is not this server's.")

    async def version(self) -> dict[str, str]:
        return {"version": OLLAMA_API_VERSION}

    async def tags(self) -> dict[str, Any]:
        listed = await self._listing()
        return {"models": [await described(model) for model in listed]}

    async def ps(self) -> dict[str, Any]:
        listed = [model for model in await self._listing() if model.loaded]
        entries = []
        for model in listed:
            entry = await described(model)
            entry |= {"expires_at": None, "context_length": model.context_length}
            entries.append(entry)
        return {"models": entries}

    async def show(self, request: Request) -> dict[str, Any]:
        body = await _parse(request, ShowBody)
        requested = body.requested
        for model in await self._listing():
            if requested in (model.model_id, f"{model.model_id}:latest"):
                return await shown(model)
        raise OllamaError(404, f"model '{requested}' not found")

    async def chat(self, request: Request) -> Response:
        arrived = time.perf_counter()
        body = await _parse(request, ChatBody)
        messages = [message.as_template_message() for message in body.messages]
        images = body.images()
        tools = body.app_tools()
        async with self._lease(body.model) as lease:
            self._keep_alive(lease.model_id, body.keep_alive)
            if not messages:
                return _loaded_answer(lease, "chat", arrived, self._unloads(body.keep_alive))
            sampling = body.sampling(lease.loaded.context_length)
            opened, sourced = await self.start_chat(
                request, lease, messages, sampling, tools=tools, images=images,
                fields=body.modeldeck,
            )  # fmt: skip
        offered = tools if tools is not None and tools.offered else None
        shape = _Shape("chat", lease.model_id, offered, sourced)
        return await _answer(request, opened, shape, body.stream, arrived)

    async def generate(self, request: Request) -> Response:
        arrived = time.perf_counter()
        body = await _parse(request, GenerateBody)
        images = body.decoded_images()
        if images and body.raw:
            raise OllamaError(400, "images need the model's template: they cannot go raw.")
        if body.suffix:
            raise OllamaError(400, f"{body.model} does not support insert (suffix).")
        async with self._lease(body.model) as lease:
            self._keep_alive(lease.model_id, body.keep_alive)
            if not body.prompt and not images:
                return _loaded_answer(lease, "generate", arrived, self._unloads(body.keep_alive))
            self.check_sees(lease, images)
            sampling = body.sampling(lease.loaded.context_length)
            engine, prompt = lease.engine, body.prompt or ""
            sourced: Sourced | None = None
            if body.raw:
                if body.modeldeck is not None and body.modeldeck.documents is not None:
                    raise OllamaError(400, "documents need the model's template: not with raw.")
                schema = sampling.json_schema
                grammar = grammar_for_schema_text(schema) if schema is not None else None
                opened = await self.start(
                    request,
                    lease,
                    lambda: engine.generate_from_prompt(prompt, sampling, grammar=grammar),
                )
            else:
                system = [{"role": "system", "content": body.system}] if body.system else []
                user = {"role": "user", "content": content_with_images(prompt, len(images))}
                messages = [*system, user]
                opened, sourced = await self.start_chat(
                    request, lease, messages, sampling, images=images, fields=body.modeldeck
                )
        shape = _Shape("generate", lease.model_id, None, sourced)
        return await _answer(request, opened, shape, body.stream, arrived)

    async def embed(self, request: Request) -> Response:
        arrived = time.perf_counter()
        body = await _parse(request, EmbedBody)
        texts = body.texts
        if not all(texts):
            raise OllamaError(400, "Every input to embed must be non-empty text.")
        async with self._lease(body.model, embedding=True) as lease:
            self._keep_alive(lease.model_id, body.keep_alive)
            loaded_at = time.perf_counter()
            try:
                embedded = await anyio.to_thread.run_sync(lease.engine.embed, texts)
            except EngineError as exc:
                refused = exc.kind in (EngineErrorKind.UNSUPPORTED, EngineErrorKind.BAD_INPUT)
                raise OllamaError(400 if refused else 500, str(exc)) from None
        ended = time.perf_counter()
        return JSONResponse(
            {
                "model": lease.model_id,
                "embeddings": [list(vector) for vector in embedded.vectors],
                "total_duration": _ns(ended - arrived),
                "load_duration": _ns(loaded_at - arrived),
                "prompt_eval_count": embedded.prompt_tokens,
            }
        )

    # -- helpers -------------------------------------------------------------------------

    async def _listing(self) -> list[ListedModel]:
        try:
            return await anyio.to_thread.run_sync(self.models.listing)
        except ServedModelError as exc:
            raise _model_error(exc) from None

    def _lease(self, requested: str, *, embedding: bool = False) -> _Lease:
        return _Lease(self.models, requested, embedding=embedding)

    def _unloads(self, keep_alive: KeepAlive) -> bool:
        """Whether `keep_alive` asks the pool to unload the model as soon as it is idle."""
        return (
            keep_alive is not None
            and keep_alive_seconds(keep_alive) == 0
            and isinstance(self.models, ModelPool)
        )

    def _keep_alive(self, model_id: str, keep_alive: KeepAlive) -> None:
        """Ollama's `keep_alive`: how long the model stays loaded once idle. Only the library
        pool unloads models; a single served model is the app's, and stays."""
        if keep_alive is not None and isinstance(self.models, ModelPool):
            self.models.keep_alive(model_id, keep_alive_seconds(keep_alive))

    def refusal(self, status: int, message: str, *, param: str | None = None) -> OllamaError:
        return OllamaError(status, message)


class _Lease:
    """`ModelSource.acquire` with its refusals in Ollama's words; a name with Ollama's
    default tag (":latest") is tried without it when the server knows no such name."""

    def __init__(self, models: ModelSource, requested: str, *, embedding: bool = False) -> None:
        self.models = models
        self.requested = requested
        self.embedding = embedding
        self._context: AbstractAsyncContextManager[ModelLease] | None = None

    async def __aenter__(self) -> ModelLease:
        names = [self.requested]
        if self.requested.endswith(":latest"):
            names.append(self.requested.removesuffix(":latest"))
        for index, name in enumerate(names):
            context = self.models.acquire(name, embedding=self.embedding)
            try:
                lease = await context.__aenter__()
            except ServedModelError as exc:
                if index + 1 < len(names) and exc.status == 404:
                    continue
                raise _model_error(exc, self.requested) from None
            self._context = context
            return lease
        raise AssertionError("unreachable: the last name raises or returns")

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        assert self._context is not None
        return await self._context.__aexit__(*exc_info)


def _now() -> str:
    return timestamp(time.time())


def _ns(seconds: float) -> int:
    return max(0, round(seconds * NS))


def _loaded_answer(lease: ModelLease, kind: str, arrived: float, unloads: bool) -> Response:
    """What Ollama answers to a chat without messages or a generation without a prompt: the
    model is loaded, nothing is generated (or, with `keep_alive: 0`, it is to be unloaded)."""
    answer: dict[str, Any] = {"model": lease.model_id, "created_at": _now()}
    if kind == "chat":
        answer["message"] = {"role": "assistant", "content": ""}
    else:
        answer["response"] = ""
    answer |= {
        "done_reason": "unload" if unloads else "load",
        "done": True,
        "total_duration": _ns(time.perf_counter() - arrived),
    }
    return JSONResponse(answer)


class _Shape:
    """The lines of one chat or generation in Ollama's words."""

    def __init__(
        self,
        kind: str,
        model_id: str,
        tools: Tools | None = None,
        sourced: Sourced | None = None,
    ) -> None:
        self.kind = kind
        self.model_id = model_id
        self.tools = tools  # offered to the model: its reply is parsed for calls
        self.sourced = sourced  # the documents' passages sent with the question

    @property
    def headers(self) -> dict[str, str]:
        return self.sourced.headers() if self.sourced is not None else {}

    def part(self, text: str, *, done: bool, calls: Sequence[ToolCall] = ()) -> dict[str, Any]:
        line: dict[str, Any] = {"model": self.model_id, "created_at": _now()}
        if self.kind == "chat":
            line["message"] = {"role": "assistant", "content": text}
            if calls:
                line["message"]["tool_calls"] = [_tool_call(call) for call in calls]
        else:
            line["response"] = text
        line["done"] = done
        return line

    def parsed(self, text: str) -> ParsedReply:
        """A whole reply split into its text and calls (none when no tools were offered)."""
        if self.tools is None:
            return ParsedReply(text)
        return parse_tool_calls(text, self.tools.names)

    def call_stream(self) -> ToolCallStream | None:
        return ToolCallStream(self.tools.names) if self.tools is not None else None

    def last(
        self,
        text: str,
        stats: GenerationStats,
        arrived: float,
        calls: Sequence[ToolCall] = (),
    ) -> dict[str, Any]:
        generated = stats.generated_tokens or 0
        speed = stats.tokens_per_second
        eval_s = (generated - 1) / speed if speed and generated > 1 else 0.0
        line = self.part(text, done=True, calls=calls) | {
            "done_reason": _DONE_REASONS.get(stats.finish_reason or "stop", "stop"),
            "total_duration": _ns(time.perf_counter() - arrived),
            "load_duration": 0,
            "prompt_eval_count": stats.prompt_tokens or 0,
            "prompt_eval_duration": _ns(stats.time_to_first_token_s or 0.0),
            "eval_count": generated,
            "eval_duration": _ns(eval_s),
        }
        if self.sourced is not None:
            line["modeldeck"] = self.sourced.field()
        return line


async def _answer(
    request: Request,
    opened: OpenGeneration | None,
    shape: _Shape,
    stream: bool,
    arrived: float,
) -> Response:
    def whole(reply: GeneratedReply) -> Response:
        parsed = shape.parsed(reply.text)
        return JSONResponse(
            shape.last(parsed.content, reply.stats, arrived, parsed.tool_calls),
            headers=shape.headers,
        )

    return await answer_generation(
        request,
        opened,
        stream=stream,
        lines=lambda opened: _lines(request, opened, shape, arrived),
        media_type="application/x-ndjson",
        headers=shape.headers,
        whole=whole,
        error=_failure_error,
    )


async def _lines(
    request: Request, opened: OpenGeneration, shape: _Shape, arrived: float
) -> AsyncIterator[str]:
    """The NDJSON lines of one reply. With tools, text that may begin a call is held back;
    the calls come in one line (as Ollama sends them) before the last."""
    calls = shape.call_stream()
    items: AsyncIterator[StreamItem] = opened.items(request)
    async for item in items:
        if isinstance(item, TextPiece):
            shown = calls.feed(item.text) if calls is not None else item.text
            if shown:
                yield _line(shape.part(shown, done=False))
        elif isinstance(item, Finished):
            if calls is not None:
                parsed = calls.finish()
                if parsed.content or parsed.tool_calls:
                    yield _line(shape.part(parsed.content, done=False, calls=parsed.tool_calls))
            yield _line(shape.last("", item.stats, arrived))
        elif isinstance(item, Failed):
            yield _line({"error": item.failure.message})


def _tool_call(call: ToolCall) -> dict[str, Any]:
    """A call as Ollama writes it: the arguments as an object."""
    arguments = json.loads(call.arguments)
    return {"function": {"name": call.name, "arguments": arguments}}


def _line(document: Mapping[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n"


async def _parse(request: Request, model: type[BodyT]) -> BodyT:
    raw = await request.body()
    try:
        return parse_body(raw, model)
    except BodyError as exc:
        raise OllamaError(400, exc.message) from None


def _model_error(exc: ServedModelError, requested: str | None = None) -> OllamaError:
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else None
    if exc.status == 404 and requested is not None:
        return OllamaError(404, f"model '{requested}' not found", headers=headers)
    return OllamaError(exc.status, str(exc), headers=headers)


def _failure_error(failure: GenerationFailure) -> OllamaError:
    return OllamaError(failure.kind.status, failure.message)
