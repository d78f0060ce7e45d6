"""One generation seen by an HTTP endpoint, whatever API shape it answers in.

The OpenAI, Ollama and Anthropic endpoints all do the same thing around the engine: wait
their turn in the `EngineQueue`, read the first event (so an error becomes an error answer,
not a broken stream), then either collect the whole reply or stream it, and stop the engine
when the client goes away — while queued, while waiting for a collected reply, or mid-stream.
This module does that once; each API only turns `TextPiece` / `Finished` / `Failed` into its
own lines and maps a `GenerationFailure` to its own error shape.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

import anyio
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Send

from app.chat.vision import VisionError
from app.engines.errors import EngineError
from app.engines.protocol import Event, EventKind
from app.engines.supervisor import RequestHandle
from app.errors import ChatTemplateError
from app.llm.messages import Generated
from app.llm.stats import GenerationStats
from app.serving.engine_queue import EngineQueue, Generation, ServerClosingError

__all__ = [
    "CANCEL_WAIT_S",
    "STATUS_CLIENT_CLOSED",
    "ClosingStreamingResponse",
    "Failed",
    "FailureKind",
    "Finished",
    "GenerationFailure",
    "OpenGeneration",
    "Reply",
    "StreamItem",
    "TextPiece",
    "answer_generation",
    "note",
    "note_outcome",
    "start_generation",
    "unless_disconnected",
]

T = TypeVar("T")

CANCEL_WAIT_S = 5.0  # how long a left request waits for the engine to confirm the stop
STATUS_CLIENT_CLOSED = 499  # nginx's "client closed request": for the log only


class FailureKind(Enum):
    """Why a generation gave no reply, in the terms every API maps to a status."""

    BAD_PROMPT = "bad-prompt"  # the chat template refused the messages: 400
    BAD_INPUT = "bad-input"  # an image that is not one, or images for a model that can't see: 400
    CONTEXT_FULL = "context-full"  # the prompt is longer than the context: 400
    NOT_LOADED = "not-loaded"  # no model: 503
    STOPPING = "stopping"  # the server is stopping: 503
    ENGINE_STOPPED = "engine-stopped"  # the engine's process died: 500
    ENGINE_FAILED = "engine-failed"  # the engine reported another error: 500

    @property
    def status(self) -> int:
        return {
            FailureKind.BAD_PROMPT: 400,
            FailureKind.BAD_INPUT: 400,
            FailureKind.CONTEXT_FULL: 400,
            FailureKind.NOT_LOADED: 503,
            FailureKind.STOPPING: 503,
        }.get(self, 500)


class GenerationFailure(Exception):
    """A generation that ended without a reply; `engine_kind` is the engine's own word for
    it (for an error code), `message` a sentence a person can read."""

    def __init__(self, kind: FailureKind, message: str, *, engine_kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.engine_kind = engine_kind or kind.value


@dataclass(frozen=True)
class TextPiece:
    """Streamed text, as the engine coalesced it."""

    text: str


@dataclass(frozen=True)
class Finished:
    """The reply ended: its statistics (token counts, why it stopped)."""

    stats: GenerationStats


@dataclass(frozen=True)
class Failed:
    """The reply ended with an error after its stream had begun."""

    failure: GenerationFailure


StreamItem = TextPiece | Finished | Failed


@dataclass(frozen=True)
class Reply:
    """A whole reply: its text and statistics."""

    text: str
    stats: GenerationStats


@dataclass
class OpenGeneration:
    """A generation whose first event is in (not an error): collect it, or stream it."""

    generation: Generation
    first: Event

    async def collect(self, request: Request) -> Reply | None:
        """The whole reply; None when the client left first (its generation is stopped and
        the request noted as cancelled).

        Raises:
            GenerationFailure: the engine ended the reply with an error.
        """
        generation, parts = self.generation, []

        async def to_the_end() -> Event:
            event = self.first
            try:
                while not event.terminal:
                    if event.kind is EventKind.CHUNK:
                        parts.append(event.text)
                    event = await generation.next_event()
            except asyncio.CancelledError:
                generation.cancel()
                raise
            return event

        outcome = await unless_disconnected(request, to_the_end())
        if outcome is None:
            note_outcome(request, await generation.finish(CANCEL_WAIT_S))
            return None
        note_outcome(request, outcome)
        if outcome.kind is not EventKind.RESULT:
            raise failure_of(outcome)
        return Reply("".join(parts), stats_of(outcome))

    async def items(self, request: Request) -> AsyncGenerator[StreamItem, None]:
        """The reply as it comes, ending with `Finished` or `Failed`. Closing the iterator
        early (the client left) stops the generation."""
        generation, event = self.generation, self.first
        try:
            while True:
                if event.kind is EventKind.CHUNK:
                    if event.text:
                        yield TextPiece(event.text)
                elif event.kind is EventKind.RESULT:
                    yield Finished(stats_of(event))
                    return
                elif event.terminal:
                    yield Failed(failure_of(event))
                    return
                event = await generation.next_event()
        finally:
            outcome = generation.outcome
            if outcome is None:  # the client left (or the server is stopping)
                generation.cancel()
                with anyio.CancelScope(shield=True):
                    outcome = await generation.finish(CANCEL_WAIT_S)
            note_outcome(request, outcome)

    def cancel_unless_done(self) -> None:
        """Stop a generation whose stream never started (the client left at once)."""
        if self.generation.outcome is None:
            self.generation.cancel()


async def start_generation(
    request: Request, queue: EngineQueue, submit: Callable[[], RequestHandle]
) -> OpenGeneration | None:
    """Queue a generation made by `submit` and wait for its first event; None when the
    client left meanwhile (the generation is stopped, the request noted as cancelled).

    Raises:
        GenerationFailure: the request could not be made, or its first event is an error.
    """

    async def first_event() -> tuple[Generation, Event]:
        generation = await queue.start(submit)
        try:
            return generation, await generation.next_event()
        except asyncio.CancelledError:
            generation.cancel()
            raise

    try:
        opened = await unless_disconnected(request, first_event())
    except ChatTemplateError as exc:
        raise GenerationFailure(FailureKind.BAD_PROMPT, str(exc)) from None
    except VisionError as exc:  # images that cannot be placed in the rendered prompt
        raise GenerationFailure(FailureKind.BAD_INPUT, str(exc), engine_kind="bad-input") from None
    except ServerClosingError:
        raise GenerationFailure(FailureKind.STOPPING, "The server is stopping.") from None
    except EngineError as exc:
        raise _engine_failure(exc.kind, str(exc)) from None
    if opened is None:
        note(request, tokens=None, outcome="cancelled")
        return None
    generation, first = opened
    if first.terminal and first.kind is not EventKind.RESULT:
        note_outcome(request, first)
        raise failure_of(first)
    return OpenGeneration(generation, first)


class ClosingStreamingResponse(StreamingResponse):
    """A streaming response that closes its body iterator however the stream ends.

    Starlette leaves the iterator suspended when a send fails (ASGI 2.4 servers report a
    gone client that way), so its `finally` — which stops the engine — would wait for the
    garbage collector.
    """

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()


async def answer_generation(
    request: Request,
    opened: OpenGeneration | None,
    *,
    stream: bool,
    lines: Callable[[OpenGeneration], AsyncIterator[str]],
    media_type: str,
    headers: Mapping[str, str],
    whole: Callable[[Reply], Response],
    error: Callable[[GenerationFailure], Exception],
) -> Response:
    """The answer to an opened generation: its `lines` as a stream, or `whole` of the collected
    reply; a `GenerationFailure` raised as the API's `error`, and 499 when the client left."""
    if opened is None:
        return Response(status_code=STATUS_CLIENT_CLOSED)
    if stream:
        return ClosingStreamingResponse(
            lines(opened),
            media_type=media_type,
            headers=dict(headers),
            background=BackgroundTask(opened.cancel_unless_done),
        )
    try:
        reply = await opened.collect(request)
    except GenerationFailure as exc:
        raise error(exc) from None
    if reply is None:
        return Response(status_code=STATUS_CLIENT_CLOSED)
    return whole(reply)


async def unless_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T | None:
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


def note(request: Request, *, tokens: int | None, outcome: str) -> None:
    """What the request log should say of this request beyond its status."""
    request.state.tokens = tokens
    request.state.outcome = outcome


def note_outcome(request: Request, event: Event | None) -> None:
    """Note how the engine ended a generation (None: it did not say in time)."""
    if event is None or event.kind is EventKind.CANCELLED:
        note(request, tokens=None, outcome="cancelled")
    elif event.kind is EventKind.RESULT:
        stats = stats_of(event)
        outcome = "length" if stats.finish_reason in ("length", "context-full") else "stop"
        note(request, tokens=stats.generated_tokens or 0, outcome=outcome)
    else:
        note(request, tokens=None, outcome="error")


def stats_of(event: Event) -> GenerationStats:
    """What a RESULT event says of the generation (token counts, why it stopped)."""
    return event.expect(Generated).stats


def failure_of(event: Event) -> GenerationFailure:
    """The failure of a generation that ended other than with a RESULT."""
    failure = event.failure
    if event.kind is EventKind.CANCELLED:
        return GenerationFailure(FailureKind.STOPPING, "The server is stopping.")
    if event.kind is EventKind.STOPPED:
        return GenerationFailure(
            FailureKind.ENGINE_STOPPED, failure.message, engine_kind="engine-stopped"
        )
    return _engine_failure(failure.kind, failure.message)


def _engine_failure(kind: str, message: str) -> GenerationFailure:
    if kind == "context-full":
        return GenerationFailure(FailureKind.CONTEXT_FULL, message, engine_kind=kind)
    if kind == "not-loaded":
        return GenerationFailure(FailureKind.NOT_LOADED, message, engine_kind=kind)
    if kind in ("bad-input", "no-vision"):
        return GenerationFailure(FailureKind.BAD_INPUT, message, engine_kind=kind)
    return GenerationFailure(FailureKind.ENGINE_FAILED, message, engine_kind=kind)
