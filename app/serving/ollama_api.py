"""Ollama's API on the local server's port, over the same models as the OpenAI endpoints.

Endpoints (under /api): `GET /tags`, `POST /show`, `POST /chat`, `POST /generate`,
`POST /embed`, `GET /ps`, `GET /version`. Chats and generations stream by default, as
Ollama's do: NDJSON, one object a line, the last with `"done": true` and the figures
(`eval_count`, durations in nanoseconds); `"stream": false` answers one object. A request
with no messages (or an empty prompt) only loads the model (`done_reason: "load"`).

Errors have Ollama's shape, `{"error": "message"}`, with the status Ollama uses (400 for a
bad body, 401 for a key, 404 for an unknown model, 503 while loading, with Retry-After).

`format` ("json", or a JSON schema) constrains the reply by a grammar (`Sampling.json_schema`).
`tools` (OpenAI's shape, as Ollama takes them) are rendered by the model's template; the
reply's calls come back as `message.tool_calls` (arguments as objects), streamed in one line
before the last. `keep_alive` is accepted and not yet acted on.

`options` map to the sampler: temperature, top_p, top_k, min_p, repeat_penalty, seed, stop,
num_predict (-1 and -2: up to the context's end). Options that set how a model is loaded
(num_ctx, num_gpu, …) are ignored: the served model keeps the context it was loaded with.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from starlette.background import BackgroundTask

from app.chat.tool_calls import ParsedReply, ToolCall, ToolCallStream, parse_tool_calls
from app.chat.tools import Tools
from app.engines.errors import EngineError, EngineErrorKind
from app.engines.supervisor import RequestHandle
from app.library.sniff import Checkpoint, sniff
from app.llm.grammar import JSON_OBJECT_SCHEMA, grammar_for_schema_text
from app.llm.sampling import Sampling
from app.llm.stats import GenerationStats
from app.serving.api_keys import KeyCheck, check_key
from app.serving.generation_stream import (
    STATUS_CLIENT_CLOSED,
    ClosingStreamingResponse,
    Failed,
    Finished,
    GenerationFailure,
    OpenGeneration,
    StreamItem,
    TextPiece,
    start_generation,
)
from app.serving.model_pool import ModelPool
from app.serving.request_body import BodyError, parse_body
from app.serving.schemas import MAX_MESSAGES, MAX_MODEL_NAME_CHARS, MAX_STOP_CHARS, MAX_TOP_K
from app.serving.served_models import ListedModel, ModelLease, ModelSource, ServedModelError
from app.serving.structured_fields import ToolsField, tools_of

__all__ = ["OLLAMA_API_VERSION", "OllamaError", "ollama_error_response", "ollama_routes"]

# The Ollama release whose API these endpoints follow; clients read it to decide which
# features to use.
OLLAMA_API_VERSION = "0.12.0"
MAX_STOP_STRINGS = 16
MAX_EMBED_INPUTS = 2048
NS = 1_000_000_000

_BODY = ConfigDict(extra="ignore", allow_inf_nan=False)
_DONE_REASONS = {"stop": "stop", "length": "length", "context-full": "length"}

BodyT = TypeVar("BodyT", bound=BaseModel)
ModelName = Annotated[str, Field(min_length=1, max_length=MAX_MODEL_NAME_CHARS)]
StopString = Annotated[str, Field(max_length=MAX_STOP_CHARS)]


class OllamaError(Exception):
    """An error answer in Ollama's shape."""

    def __init__(
        self, status: int, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.message}, status_code=self.status, headers=self.headers)


def ollama_error_response(
    status: int, message: str, code: str, headers: Mapping[str, str] | None = None
) -> Response:
    """An error from outside these endpoints (the browser guard, a body too large) in
    Ollama's shape; `code` has no place in it."""
    return OllamaError(status, message, headers=headers).response()


# -- request bodies -------------------------------------------------------------------------


# Ollama's `keep_alive`: seconds, or a duration ("5m", "1h", "30s", "-1"); negative: forever.
_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _duration(value: float | str | None) -> float | str | None:
    if isinstance(value, str) and not _DURATION.match(value):
        raise ValueError('keep_alive must be seconds or a duration such as "5m" or "1h"')
    return value


KeepAlive = Annotated[float | str | None, AfterValidator(_duration)]


def keep_alive_seconds(value: float | str) -> float:
    """A valid `keep_alive` in seconds (negative: keep the model loaded for good)."""
    if not isinstance(value, str):
        return float(value)
    match = _DURATION.match(value)
    assert match is not None  # checked by the body's validation
    number, unit = match.groups()
    return float(number) * _UNIT_SECONDS[unit]


class OllamaOptions(BaseModel):
    """The sampler's part of Ollama's `options` (the rest is ignored)."""

    model_config = _BODY

    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0, le=MAX_TOP_K)
    min_p: float | None = Field(default=None, ge=0, le=1)
    repeat_penalty: float | None = Field(default=None, gt=0)
    seed: int | None = None
    num_predict: int | None = None
    stop: Annotated[list[StopString], Field(max_length=MAX_STOP_STRINGS)] | None = None

    @field_validator("num_predict")
    @classmethod
    def _known_limit(cls, value: int | None) -> int | None:
        if value is not None and value < 1 and value not in (-1, -2):
            raise ValueError("num_predict must be positive, or -1 (no limit) or -2 (the context)")
        return value

    @field_validator("seed")
    @classmethod
    def _seed_fits(cls, value: int | None) -> int | None:
        # llama.cpp takes a 32-bit seed; a bigger one (or Ollama's -1, "random") is folded.
        return None if value is None or value < 0 else value % 2**32

    def sampling(self, *, context_length: int, json_schema: str | None = None) -> Sampling:
        """These options as `Sampling`; the token limit is clamped to the context, and the
        reply constrained to `json_schema` (JSON text) when one is given.

        Raises:
            ValueError: a value `Sampling` refuses (a schema the grammar cannot express
                is a `GrammarError`, a ValueError).
        """
        limit = self.num_predict if self.num_predict and self.num_predict > 0 else context_length
        values: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "repeat_penalty": self.repeat_penalty,
            "seed": self.seed,
        }
        given = {name: value for name, value in values.items() if value is not None}
        stop = tuple(text for text in self.stop or () if text)
        return Sampling(
            **given,
            max_tokens=max(1, min(limit, context_length)),
            stop=stop,
            json_schema=json_schema,
        )


Format = Literal["", "json"] | dict[str, Any] | None


class _GenerationBody(BaseModel):
    model_config = _BODY

    model: ModelName
    stream: bool = True  # Ollama streams unless told not to
    format: Format = None
    options: OllamaOptions | None = None
    keep_alive: KeepAlive = None

    def sampling(self, context_length: int) -> Sampling:
        """The options as `Sampling`, with `format` as its JSON schema ("json": any object)."""
        options = self.options or OllamaOptions()
        schema: str | None = None
        if self.format:
            schema = json.dumps(JSON_OBJECT_SCHEMA if self.format == "json" else self.format)
        try:
            return options.sampling(context_length=context_length, json_schema=schema)
        except ValueError as exc:
            raise OllamaError(400, str(exc)) from None


class CallFunction(BaseModel):
    model_config = _BODY

    name: str
    arguments: dict[str, Any] = {}


class MessageToolCall(BaseModel):
    """A call an assistant made, as Ollama writes it (arguments as an object, no id)."""

    model_config = _BODY

    function: CallFunction


class ChatMessage(BaseModel):
    model_config = _BODY

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    images: list[str] | None = None
    tool_calls: list[MessageToolCall] | None = None
    tool_name: str | None = None  # a tool message: the tool that answered

    def as_template_message(self) -> dict[str, Any]:
        """The message as a chat template reads it (calls and results as transformers
        passes them, see `app.chat.tools`)."""
        if self.images:
            raise OllamaError(400, "This model reads text only; a message has images.")
        message: dict[str, Any] = {"role": self.role, "content": self.content or ""}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
                for call in self.tool_calls
            ]
        if self.role == "tool" and self.tool_name:
            message["name"] = self.tool_name
        return message


class ChatBody(_GenerationBody):
    messages: Annotated[list[ChatMessage], Field(max_length=MAX_MESSAGES)] = []
    tools: ToolsField = None  # OpenAI's shape; Ollama's client always sends a list

    def app_tools(self) -> Tools | None:
        """The tools the model may call (Ollama has no tool_choice: the model decides)."""
        try:
            return tools_of(self.tools, None)
        except ValueError as exc:  # GrammarError included
            raise OllamaError(400, str(exc)) from None


class GenerateBody(_GenerationBody):
    prompt: str | None = None
    system: str | None = None
    suffix: str | None = None
    raw: bool = False
    images: list[str] | None = None


class EmbedBody(BaseModel):
    model_config = _BODY

    model: ModelName
    input: str | Annotated[list[str], Field(min_length=1, max_length=MAX_EMBED_INPUTS)]
    truncate: bool = True
    keep_alive: KeepAlive = None

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class ShowBody(BaseModel):
    model_config = _BODY

    model: ModelName | None = None
    name: ModelName | None = None  # what older clients send

    @property
    def requested(self) -> str:
        requested = self.model or self.name
        if requested is None:
            raise OllamaError(400, "Missing required parameter: 'model'.")
        return requested


# -- the endpoints --------------------------------------------------------------------------


def ollama_routes(models: ModelSource, *, api_key: str | None) -> APIRouter:
    """The Ollama endpoints over `models`; with `api_key`, each needs it as a Bearer token."""
    api = _OllamaApi(models, api_key)
    router = APIRouter(prefix="/api", dependencies=[Depends(api.check_access)])
    router.add_api_route("/version", api.version, methods=["GET"])
    router.add_api_route("/tags", api.tags, methods=["GET"])
    router.add_api_route("/ps", api.ps, methods=["GET"])
    router.add_api_route("/show", api.show, methods=["POST"])
    router.add_api_route("/chat", api.chat, methods=["POST"])
    router.add_api_route("/generate", api.generate, methods=["POST"])
    router.add_api_route("/embed", api.embed, methods=["POST"])
    return router


class _OllamaApi:
    def __init__(self, models: ModelSource, api_key: str | None) -> None:
        self.models = models
        self.api_key = api_key

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
        return {"models": [await _described(model) for model in listed]}

    async def ps(self) -> dict[str, Any]:
        listed = [model for model in await self._listing() if model.loaded]
        entries = []
        for model in listed:
            entry = await _described(model)
            entry |= {"expires_at": None, "context_length": model.context_length}
            entries.append(entry)
        return {"models": entries}

    async def show(self, request: Request) -> dict[str, Any]:
        body = await _parse(request, ShowBody)
        requested = body.requested
        for model in await self._listing():
            if requested in (model.model_id, f"{model.model_id}:latest"):
                return await _shown(model)
        raise OllamaError(404, f"model '{requested}' not found")

    async def chat(self, request: Request) -> Response:
        arrived = time.perf_counter()
        body = await _parse(request, ChatBody)
        messages = [message.as_template_message() for message in body.messages]
        tools = body.app_tools()
        async with self._lease(body.model) as lease:
            self._keep_alive(lease.model_id, body.keep_alive)
            if not messages:
                return _loaded_answer(lease, "chat", arrived, self._unloads(body.keep_alive))
            sampling = body.sampling(lease.loaded.context_length)
            engine = lease.engine
            opened = await self._start(
                request, lease, lambda: engine.generate(messages, sampling, tools=tools)
            )
        shape = _Shape(
            "chat", lease.model_id, tools if tools is not None and tools.offered else None
        )
        return await _answer(request, opened, shape, body.stream, arrived)

    async def generate(self, request: Request) -> Response:
        arrived = time.perf_counter()
        body = await _parse(request, GenerateBody)
        if body.images:
            raise OllamaError(400, "This model reads text only; the request has images.")
        if body.suffix:
            raise OllamaError(400, f"{body.model} does not support insert (suffix).")
        async with self._lease(body.model) as lease:
            self._keep_alive(lease.model_id, body.keep_alive)
            if not body.prompt:
                return _loaded_answer(lease, "generate", arrived, self._unloads(body.keep_alive))
            sampling = body.sampling(lease.loaded.context_length)
            engine, prompt = lease.engine, body.prompt
            if body.raw:
                schema = sampling.json_schema
                grammar = grammar_for_schema_text(schema) if schema is not None else None
                opened = await self._start(
                    request,
                    lease,
                    lambda: engine.generate_from_prompt(prompt, sampling, grammar=grammar),
                )
            else:
                system = [{"role": "system", "content": body.system}] if body.system else []
                messages = [*system, {"role": "user", "content": prompt}]
                opened = await self._start(
                    request, lease, lambda: engine.generate(messages, sampling)
                )
        shape = _Shape("generate", lease.model_id)
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

    async def _start(
        self, request: Request, lease: ModelLease, submit: Callable[[], RequestHandle]
    ) -> OpenGeneration | None:
        try:
            return await start_generation(request, lease.queue, submit)
        except GenerationFailure as exc:
            raise _failure_error(exc) from None


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


@functools.lru_cache(maxsize=256)
def _sniffed(path: Path, size: int, modified_ns: int) -> Checkpoint | None:
    """The file's header (cached while the file is unchanged); None if it cannot be read."""
    try:
        return sniff(path)
    except (OSError, ValueError):
        return None


async def _checkpoint(model: ListedModel) -> Checkpoint | None:
    try:
        stat = model.path.stat()
    except OSError:
        return None
    return await anyio.to_thread.run_sync(_sniffed, model.path, stat.st_size, stat.st_mtime_ns)


async def _described(model: ListedModel) -> dict[str, Any]:
    """A model as /api/tags and /api/ps list it."""
    checkpoint = await _checkpoint(model)
    return {
        "name": model.model_id,
        "model": model.model_id,
        "modified_at": _timestamp(model.created),
        "size": model.size,
        "digest": _digest(model),
        "details": _details(checkpoint),
    }


async def _shown(model: ListedModel) -> dict[str, Any]:
    """A model as /api/show tells it (Ollama's client needs `model_info`)."""
    checkpoint = await _checkpoint(model)
    info: dict[str, Any] = {}
    if checkpoint is not None:
        architecture = checkpoint.architecture or "unknown"
        info["general.architecture"] = architecture
        if checkpoint.name:
            info["general.name"] = checkpoint.name
        if checkpoint.parameter_count:
            info["general.parameter_count"] = checkpoint.parameter_count
        if checkpoint.context_length:
            info[f"{architecture}.context_length"] = checkpoint.context_length
    parameters = f"num_ctx {model.context_length}" if model.context_length else ""
    return {
        "modelfile": "",
        "parameters": parameters,
        "template": "",
        "details": _details(checkpoint),
        "model_info": info,
        # Tools work with any chat template (described in a system prompt when the template
        # has no place for them: `app.chat.tools`).
        "capabilities": ["completion", "tools"],
        "modified_at": _timestamp(model.created),
    }


def _details(checkpoint: Checkpoint | None) -> dict[str, Any]:
    family = checkpoint.architecture if checkpoint is not None else None
    return {
        "parent_model": "",
        "format": "gguf",
        "family": family or "",
        "families": [family] if family else None,
        "parameter_size": _parameter_size(checkpoint.parameter_count if checkpoint else None),
        "quantization_level": (checkpoint.quantization or "") if checkpoint else "",
    }


def _parameter_size(count: int | None) -> str:
    """Ollama's way of saying a parameter count: "7.6B", "494.03M"."""
    if not count:
        return ""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.2f}".rstrip("0").rstrip(".") + unit
    return str(count)


def _digest(model: ListedModel) -> str:
    """An identity for the file as it is now. Ollama's digest is its manifest's hash; hashing
    gigabytes of weights for a listing is not an option, so this hashes where the file is,
    its size and when it changed."""
    try:
        modified = model.path.stat().st_mtime_ns
    except OSError:
        modified = 0
    identity = f"{model.path}\0{model.size}\0{modified}".encode()
    return hashlib.sha256(identity).hexdigest()


def _timestamp(unix_seconds: float) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).isoformat().replace("+00:00", "Z")


def _now() -> str:
    return _timestamp(time.time())


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

    def __init__(self, kind: str, model_id: str, tools: Tools | None = None) -> None:
        self.kind = kind
        self.model_id = model_id
        self.tools = tools  # offered to the model: its reply is parsed for calls

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
        return self.part(text, done=True, calls=calls) | {
            "done_reason": _DONE_REASONS.get(stats.finish_reason or "stop", "stop"),
            "total_duration": _ns(time.perf_counter() - arrived),
            "load_duration": 0,
            "prompt_eval_count": stats.prompt_tokens or 0,
            "prompt_eval_duration": _ns(stats.time_to_first_token_s or 0.0),
            "eval_count": generated,
            "eval_duration": _ns(eval_s),
        }


async def _answer(
    request: Request,
    opened: OpenGeneration | None,
    shape: _Shape,
    stream: bool,
    arrived: float,
) -> Response:
    if opened is None:
        return Response(status_code=STATUS_CLIENT_CLOSED)
    if stream:
        return ClosingStreamingResponse(
            _lines(request, opened, shape, arrived),
            media_type="application/x-ndjson",
            background=BackgroundTask(opened.cancel_unless_done),
        )
    try:
        reply = await opened.collect(request)
    except GenerationFailure as exc:
        raise _failure_error(exc) from None
    if reply is None:
        return Response(status_code=STATUS_CLIENT_CLOSED)
    parsed = shape.parsed(reply.text)
    return JSONResponse(shape.last(parsed.content, reply.stats, arrived, parsed.tool_calls))


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
