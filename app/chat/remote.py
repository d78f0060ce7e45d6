"""A chat engine on someone else's machine: any server that speaks OpenAI's chat completions.

llama.cpp's server, vLLM, Ollama, LM Studio and TGI all answer `POST /v1/chat/completions`.
`RemoteEngine` drives one through the `openai` client on a worker thread per reply and feeds
the same events as the local engine: CHUNK events (coalesced, the first at once) and one
terminal event — RESULT with the reply's statistics, CANCELLED, or ERROR with a kind and a
line a person can act on ("Cannot reach http://127.0.0.1:9/v1 — is the server running?").

Cancelling ends the request at once (CANCELLED is delivered before the thread has stopped) and
shuts down the streaming socket, so the worker thread wakes from its read and the server sees
the disconnect and stops generating. A request cancelled before the server sent its headers is
dropped as soon as they come (or the timeout ends it); its thread delivers nothing more.

The API key is kept out of every repr, message and error; `openai` is imported only when a
request is made (it costs most of a second), so the GUI starts without it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from app.engines.errors import EngineError, EngineErrorKind
from app.engines.protocol import (
    FLUSH_INTERVAL_S,
    Empty,
    Event,
    EventKind,
    Failure,
    Payload,
    TextChunk,
)
from app.engines.supervisor import RequestHandle
from app.errors import SettingsError
from app.hub.credentials import redact
from app.llm.messages import Generated
from app.llm.sampling import Sampling
from app.llm.stats import GenerationStats
from app.text import one_line

if TYPE_CHECKING:
    from openai import OpenAI, Stream
    from openai.types.chat import ChatCompletionChunk

DEFAULT_TIMEOUT_S = 60.0
# Sent as the key to servers that need none: the client insists on one, and a keyless server
# ignores it (llama.cpp's documentation uses the same trick).
_NO_KEY = "no-key"
# llama.cpp-style sampling settings, outside OpenAI's schema; most local servers accept them.
_EXTRA_SAMPLING = ("top_k", "min_p", "repeat_penalty")
# Words in a 400/422 answer that say the server rejects a field OpenAI's own API lacks.
_UNKNOWN_FIELD_HINTS = ("stream_options", *_EXTRA_SAMPLING, "extra", "unrecognized", "unknown")
_MESSAGE_LIMIT = 300  # characters of a server's error message worth showing


@dataclass(frozen=True)
class RemoteEndpoint:
    """Where a remote model is served, and which one to ask for.

    Args:
        base_url: the API root, usually ending in `/v1` ("http://gpu-box:8080/v1");
            a trailing slash is dropped.
        model: the model name the server knows (`list_models` says which it has).
        api_key: sent as a bearer token; None for servers that need none. Never shown in
            `repr`, `str` or any message.
        name: what the endpoint is called on screen; `label` falls back to model and host.

    Raises:
        SettingsError: `base_url` is not an http(s) URL with a host.
    """

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    name: str | None = None

    def __post_init__(self) -> None:
        url = self.base_url.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError(
                f"{self.base_url!r} is not a server address.",
                hint="Use a URL like http://127.0.0.1:8080/v1.",
            )
        object.__setattr__(self, "base_url", url)
        object.__setattr__(self, "model", self.model.strip())

    @property
    def label(self) -> str:
        """The endpoint's name, else "model at host"."""
        if self.name:
            return self.name
        host = urlsplit(self.base_url).netloc
        return f"{self.model} at {host}" if self.model else host


class RemoteEngine:
    """A `ChatEngine` on an OpenAI-compatible server.

    Args:
        endpoint: the server and model.
        timeout: seconds to wait to connect, and for each read (also between streamed chunks).
        max_retries: how often the client retries a failed request. 0 by default: a person
            sees the failure at once and can press Regenerate, instead of waiting out several
            timeouts in a row.

    The engine holds one HTTP client (a connection pool); `close` it, or use it as a context
    manager. It is safe to use from several threads.
    """

    def __init__(
        self,
        endpoint: RemoteEndpoint,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_retries: int = 0,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.max_retries = max_retries
        self._lock = threading.Lock()
        self._client: OpenAI | None = None
        self._ids = itertools.count(1)
        self._replies: set[_RemoteReply] = set()
        self._closed = False
        # Cleared when the server rejects fields outside OpenAI's schema (api.openai.com does).
        self.sends_extensions = True

    def __enter__(self) -> RemoteEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the ChatEngine protocol ---------------------------------------------------------

    @property
    def context_length(self) -> int | None:
        """Unknown: the server truncates, or refuses a prompt that does not fit."""
        return None

    def prompt_tokens(self, messages: Sequence[Mapping[str, str]]) -> int | None:
        """Unknown: the API has no standard way to count tokens."""
        return None

    def generate(self, messages: Sequence[Mapping[str, str]], sampling: Sampling) -> RequestHandle:
        """Start a reply on a worker thread and return its handle at once.

        CHUNK events carry text; the terminal event is RESULT (a `Generated`: the reply's
        `GenerationStats` with the model's name, `estimated` when the server sent no token
        counts, so the generated count is the number of streamed chunks and the prompt's
        is 0), CANCELLED, or ERROR (a `Failure`; kinds: "unreachable", "timeout", "auth",
        "not-found", "rejected", "rate-limited", "server-error", "bad-response",
        "disconnected", "internal").

        Raises:
            EngineError: the engine was closed (kind "closed").
        """
        client = self._require_client()
        messages_sent = [dict(m) for m in messages]
        reply = _RemoteReply(self, client, next(self._ids), messages_sent, sampling)
        with self._lock:
            self._replies.add(reply)
        reply.start()
        return reply.handle

    # -- endpoint checks -----------------------------------------------------------------

    def list_models(self, *, timeout: float | None = None) -> list[str]:
        """The model names the server lists (`GET {base_url}/models`), in its order.

        Raises:
            EngineError: with the same kinds and messages as a reply's ERROR event.
        """
        client = self._require_client()
        try:
            answer = client.get(
                "/models", cast_to=object, options={"timeout": timeout or self.timeout}
            )
        except Exception as error:
            kind, message = _describe_failure(
                error, self.endpoint, timeout=timeout or self.timeout, what="the model list"
            )
            raise EngineError(message, kind=kind) from None
        models = _model_ids(answer)
        if models is None:
            raise EngineError(
                f"{self.endpoint.base_url}/models is not an OpenAI-style model list"
                " — is the URL right (it usually ends in /v1)?",
                kind="bad-response",
            )
        return models

    def check(self, *, timeout: float | None = None) -> str:
        """One line on what the endpoint serves, for a "Test connection" button.

        Raises:
            EngineError: the server cannot be reached or does not answer like OpenAI's API.
        """
        models = self.list_models(timeout=timeout)
        where = self.endpoint.base_url
        model = self.endpoint.model
        if not models:
            return f"{where} answers, but lists no models."
        listed = ", ".join(models[:5]) + (f" and {len(models) - 5} more" if len(models) > 5 else "")
        if not model:
            return f"{where} answers and lists {_count(len(models), 'model')}: {listed}."
        if model in models:
            others = len(models) - 1
            also = f" (and {_count(others, 'other model')})" if others else ""
            return f"{where} answers and serves {model}{also}."
        return f"{where} answers, but does not list {model}; it lists {listed}."

    def close(self) -> None:
        """Cancel the replies still streaming and close the HTTP client."""
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
            replies = list(self._replies)
        for reply in replies:
            reply.handle.cancel()
        if client is not None:
            client.close()

    # -- internals -----------------------------------------------------------------------

    def _require_client(self) -> OpenAI:
        with self._lock:
            if self._closed:
                raise EngineError("The remote engine was closed.", kind="closed")
            if self._client is None:
                from openai import OpenAI

                self._client = OpenAI(
                    base_url=self.endpoint.base_url,
                    api_key=self.endpoint.api_key or _NO_KEY,
                    timeout=self.timeout,
                    max_retries=self.max_retries,
                )
            return self._client

    def _forget(self, reply: _RemoteReply) -> None:
        with self._lock:
            self._replies.discard(reply)


class _RemoteReply:
    """One streamed reply: the worker thread that reads it, and the handle that reports it."""

    def __init__(
        self,
        engine: RemoteEngine,
        client: OpenAI,
        request_id: int,
        messages: list[dict[str, str]],
        sampling: Sampling,
    ) -> None:
        self._engine = engine
        self._client = client
        self._sampling = sampling
        self._messages = messages
        self.handle = RequestHandle(request_id, self._cancel)
        self._lock = threading.Lock()
        self._finished = False  # a terminal event went out: nothing more may follow
        self._cancelled = threading.Event()
        self._stream: Stream[ChatCompletionChunk] | None = None
        self._thread = threading.Thread(target=self._run, name="remote reply", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # -- events, from either thread ------------------------------------------------------

    def _emit(self, kind: EventKind, payload: Payload) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = kind in (EventKind.RESULT, EventKind.ERROR, EventKind.CANCELLED)
            self.handle.put(Event(self.handle.id, kind, payload))

    def _cancel(self, handle: RequestHandle) -> None:
        self._cancelled.set()
        self._emit(EventKind.CANCELLED, Empty())
        with self._lock:
            stream = self._stream
        if stream is not None:
            _abort(stream)

    # -- the worker thread -----------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._stream_reply()
        except Exception as error:  # a bug here must still end the request
            self._fail("internal", f"{type(error).__name__}: {error}")
        finally:
            self._engine._forget(self)

    def _stream_reply(self) -> None:
        started = time.monotonic()
        try:
            stream = self._open()
        except Exception as error:
            if not self._cancelled.is_set():
                self._fail(*self._describe(error))
            return
        with self._lock:
            self._stream = stream
        if self._cancelled.is_set():  # cancelled while waiting for the headers
            stream.close()
            return
        tally = _Tally(started)
        try:
            with stream:
                for chunk in stream:
                    if self._cancelled.is_set():
                        return
                    if tally.add(chunk) and tally.due():
                        self._emit(EventKind.CHUNK, TextChunk(tally.take()))
        except Exception as error:
            if self._cancelled.is_set():
                return
            self._flush(tally)
            where = self._engine.endpoint.base_url
            if isinstance(error, _MalformedChunk):
                self._fail("bad-response", self._not_openai(str(error)))
            elif tally.chunks and _is_timeout(error):
                self._fail(
                    "timeout",
                    f"{where} stopped sending the reply for {self._engine.timeout:g} s"
                    " — the server may be overloaded; try again, or allow it more time.",
                )
            elif tally.chunks and _is_connection_error(error):
                self._fail("disconnected", f"The connection to {where} broke mid-reply.")
            else:
                self._fail(*self._describe(error))
            return
        if self._cancelled.is_set():
            return
        self._flush(tally)
        if not tally.chunks:
            self._fail("bad-response", self._not_openai("no streamed reply came"))
            return
        result = tally.result(time.monotonic(), model=self._engine.endpoint.model)
        self._emit(EventKind.RESULT, result)

    def _open(self) -> Stream[ChatCompletionChunk]:
        """Send the request; if the server rejects the fields outside OpenAI's schema, send it
        again without them (once per engine: it remembers)."""
        from openai import BadRequestError, UnprocessableEntityError

        try:
            return self._create(extensions=self._engine.sends_extensions)
        except (BadRequestError, UnprocessableEntityError) as error:
            text = _server_message(error.body).lower()
            if not self._engine.sends_extensions or not any(
                word in text for word in _UNKNOWN_FIELD_HINTS
            ):
                raise
        if self._cancelled.is_set():
            raise _Cancelled
        stream = self._create(extensions=False)
        self._engine.sends_extensions = False
        return stream

    def _create(self, *, extensions: bool) -> Stream[ChatCompletionChunk]:
        from openai import omit

        sampling = self._sampling
        extra = {name: getattr(sampling, name) for name in _EXTRA_SAMPLING}
        return self._client.chat.completions.create(
            model=self._engine.endpoint.model,
            messages=cast(Any, self._messages),
            stream=True,
            stream_options={"include_usage": True} if extensions else omit,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            seed=sampling.seed if sampling.seed is not None else omit,
            stop=list(sampling.stop) if sampling.stop else omit,
            response_format=_response_format(sampling) or omit,
            extra_body=extra if extensions else None,
        )

    def _flush(self, tally: _Tally) -> None:
        text = tally.take()
        if text:
            self._emit(EventKind.CHUNK, TextChunk(text))

    def _describe(self, error: BaseException) -> tuple[str, str]:
        engine = self._engine
        return _describe_failure(error, engine.endpoint, timeout=engine.timeout)

    def _fail(self, kind: EngineErrorKind | str, message: str) -> None:
        message = redact(message, self._engine.endpoint.api_key)
        self._emit(EventKind.ERROR, Failure(EngineErrorKind.of(kind), message))

    def _not_openai(self, detail: str) -> str:
        where = self._engine.endpoint.base_url
        return (
            f"{where} did not answer like an OpenAI-compatible server ({detail})"
            " — is the URL right (it usually ends in /v1)?"
        )


class _Tally:
    """What a reply streamed so far: text waiting to be sent, token counts, times."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.chunks = 0  # OpenAI-shaped chunks seen (usage-only ones included)
        self.content_chunks = 0
        self.first_token_at: float | None = None
        self.last_flush = 0.0
        self.pending: list[str] = []
        self.finish_reason: str | None = None
        self.usage: tuple[int, int] | None = None  # prompt, completion

    def add(self, chunk: object) -> bool:
        """Take in one chunk; True when it carried text.

        Raises:
            _MalformedChunk: the chunk is not shaped like a chat completion chunk.
        """
        choices = getattr(chunk, "choices", None)
        usage = getattr(chunk, "usage", None)
        if not isinstance(choices, list):
            raise _MalformedChunk("a streamed chunk has no choices")
        self.chunks += 1
        if usage is not None:
            prompt = getattr(usage, "prompt_tokens", None)
            completion = getattr(usage, "completion_tokens", None)
            if isinstance(prompt, int) and isinstance(completion, int):
                self.usage = (prompt, completion)
        text: str | None = None
        for choice in choices:
            if getattr(choice, "index", 0) not in (0, None):
                continue  # only the first choice is asked for; ignore extras
            reason = getattr(choice, "finish_reason", None)
            if isinstance(reason, str) and reason:
                self.finish_reason = reason
            content = getattr(getattr(choice, "delta", None), "content", None)
            if content is not None and not isinstance(content, str):
                raise _MalformedChunk("a streamed chunk's content is not text")
            if content:
                text = content
        if text is None:
            return False
        self.content_chunks += 1
        self.pending.append(text)
        return True

    def due(self) -> bool:
        """True when the pending text should go now: the first text at once, then at most
        one message per `FLUSH_INTERVAL_S`."""
        now = time.monotonic()
        if self.first_token_at is None:
            self.first_token_at = now
        elif now - self.last_flush < FLUSH_INTERVAL_S:
            return False
        self.last_flush = now
        return True

    def take(self) -> str:
        text = "".join(self.pending)
        self.pending.clear()
        return text

    def result(self, ended: float, *, model: str) -> Generated:
        """The reply's RESULT: the server's token counts, or estimates when it sent none."""
        if self.usage is not None:
            prompt, generated = self.usage
        else:
            prompt, generated = 0, self.content_chunks
        decode_seconds = ended - self.first_token_at if self.first_token_at is not None else 0.0
        stats = GenerationStats(
            prompt_tokens=prompt,
            generated_tokens=generated,
            time_to_first_token_s=(
                self.first_token_at - self.started if self.first_token_at is not None else None
            ),
            tokens_per_second=(
                (generated - 1) / decode_seconds if generated > 1 and decode_seconds > 0 else None
            ),
            finish_reason=self.finish_reason or "stop",
            model=model,
        )
        return Generated(stats, estimated=self.usage is None)


class _MalformedChunk(ValueError):
    """A streamed chunk that is not a chat completion chunk."""


class _Cancelled(Exception):
    """The reply was cancelled between two attempts."""


# -- failures, for a person ------------------------------------------------------------------


def _describe_failure(
    error: BaseException, endpoint: RemoteEndpoint, *, timeout: float, what: str = "the answer"
) -> tuple[str, str]:
    """The kind and one-line message of a failed request to `endpoint` (the key redacted).

    Args:
        error: what the `openai` client (or its JSON decoding) raised.
        endpoint: the server that was asked.
        timeout: the timeout the request had, in seconds (for the message).
        what: what came back, in a message ("the model list").
    """
    from openai import (
        APIConnectionError,
        APIResponseValidationError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        NotFoundError,
        PermissionDeniedError,
        RateLimitError,
    )

    where = endpoint.base_url
    kind, message = "internal", f"{type(error).__name__}: {error}"
    if isinstance(error, APITimeoutError):
        kind = "timeout"
        message = (
            f"{where} did not answer within {timeout:g} s — the server may be busy or"
            " overloaded; try again, or allow it more time."
        )
    elif isinstance(error, APIConnectionError):
        kind = "unreachable"
        message = f"Cannot reach {where} — is the server running?"
        reason = _connection_reason(error)
        if reason:
            message += f" ({reason})"
    elif isinstance(error, APIResponseValidationError):
        kind = "bad-response"
        message = (
            f"{where} did not answer like an OpenAI-compatible server ({what} had an"
            " unexpected shape) — is the URL right (it usually ends in /v1)?"
        )
    elif isinstance(error, AuthenticationError | PermissionDeniedError):
        kind = "auth"
        status = error.status_code
        if endpoint.api_key:
            message = f"The server refused the API key (HTTP {status}) — check the key for {where}."
        else:
            message = f"{where} wants an API key (HTTP {status}) — add one to the endpoint."
    elif isinstance(error, NotFoundError):
        kind = "not-found"
        detail = _server_message(error.body)
        message = (
            f"{where} has no model {endpoint.model!r}, or the URL is wrong (HTTP 404"
            + (f": {detail}" if detail else "")
            + ") — check the model name, and that the URL ends where the API starts (often /v1)."
        )
    elif isinstance(error, RateLimitError):
        kind = "rate-limited"
        detail = _server_message(error.body)
        message = f"{where} asks to slow down (HTTP 429){_colon(detail)} — wait a moment."
    elif isinstance(error, APIStatusError) and error.status_code >= 500:
        kind = "server-error"
        detail = _server_message(error.body) or "no reason given"
        message = f"The server at {where} failed (HTTP {error.status_code}): {detail}"
    elif isinstance(error, APIStatusError):
        kind = "rejected"
        detail = _server_message(error.body) or "no reason given"
        message = f"The server at {where} refused the request (HTTP {error.status_code}): {detail}"
    elif _is_openai_error(error):
        # An error the server sent inside the stream ({"error": {...}}).
        kind = "server-error"
        detail = _server_message(getattr(error, "body", None)) or str(error)
        detail = one_line(detail, limit=_MESSAGE_LIMIT)
        message = f"The server at {where} failed mid-reply: {detail}"
    elif isinstance(error, ValueError | AttributeError | TypeError):
        kind = "bad-response"  # JSON that does not decode, or is not OpenAI-shaped
        message = (
            f"{where} did not answer like an OpenAI-compatible server ({what} was not valid"
            " JSON) — is the URL right (it usually ends in /v1)?"
        )
    return kind, redact(message, endpoint.api_key)


def _is_openai_error(error: BaseException) -> bool:
    from openai import OpenAIError

    return isinstance(error, OpenAIError)


def _is_timeout(error: BaseException) -> bool:
    from openai import APITimeoutError

    return isinstance(error, APITimeoutError)


def _is_connection_error(error: BaseException) -> bool:
    from openai import APIConnectionError, APITimeoutError

    return isinstance(error, APIConnectionError) and not isinstance(error, APITimeoutError)


def _connection_reason(error: BaseException) -> str | None:
    """Why a connection failed, unless it was plainly refused (the message says enough)."""
    cause: BaseException | None = error
    last: BaseException = error
    seen = 0
    while cause is not None and seen < 10:
        if isinstance(cause, ConnectionRefusedError):
            return None
        last = cause
        cause = cause.__cause__ or cause.__context__
        seen += 1
    text = one_line(str(last), limit=_MESSAGE_LIMIT)
    if not text or last is error or "connection refused" in text.lower():
        return None
    return text


def _server_message(body: object) -> str:
    """The message in an error body: OpenAI's {"message"}, FastAPI's {"detail"}, or text."""
    text: object = body
    if isinstance(body, Mapping):
        text = body.get("message") or body.get("detail") or body.get("error") or ""
        if isinstance(text, Mapping):
            text = text.get("message") or ""
        if isinstance(text, list):  # FastAPI's validation errors: [{"msg": ...}, ...]
            text = "; ".join(str(item.get("msg", item)) for item in text if isinstance(item, dict))
    if not isinstance(text, str):
        text = "" if text is None else json.dumps(text)
    return one_line(text, limit=_MESSAGE_LIMIT)


def _colon(detail: str) -> str:
    return f": {detail}" if detail else ""


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _model_ids(answer: object) -> list[str] | None:
    """The ids of an OpenAI model list ({"data": [{"id": ...}, ...]}), or None if it is not one.

    Ollama's older `{"models": [{"name": ...}]}` is accepted too.
    """
    if isinstance(answer, str):
        try:
            answer = json.loads(answer)
        except ValueError:
            return None
    if not isinstance(answer, Mapping):
        return None
    entries = answer.get("data", answer.get("models"))
    if not isinstance(entries, list):
        return None
    ids: list[str] = []
    for entry in entries:
        name = entry.get("id", entry.get("name")) if isinstance(entry, Mapping) else None
        if not isinstance(name, str):
            return None
        ids.append(name)
    return ids


def _abort(stream: Stream[ChatCompletionChunk]) -> None:
    """Wake the thread reading `stream` now: shut its socket down (a close alone does not
    interrupt a blocked read on Linux). The server sees the disconnect and stops."""
    network = stream.response.extensions.get("network_stream")
    get_info: Callable[[str], object] | None = getattr(network, "get_extra_info", None)
    sock = get_info("socket") if get_info is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):  # already closed: the thread is done with it
            sock.shutdown(socket.SHUT_RDWR)


def _response_format(sampling: Sampling) -> Any:
    """The JSON schema of the sampling settings as OpenAI's `response_format` (None: none):
    a server that honours it (ModelDeck's, llama.cpp's, vLLM's) constrains the reply too."""
    if sampling.json_schema is None:
        return None
    schema = json.loads(sampling.json_schema)
    format_ = {"name": "reply", "schema": schema, "strict": True}
    return {"type": "json_schema", "json_schema": format_}
