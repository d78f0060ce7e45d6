"""A conversation in motion: send a message, stream the reply into the store, stop, regenerate.

`ChatSession` is what the Chat page and `modeldeck chat` drive. Each reply is a `Reply`: a
thread reads the engine's events, keeps the text so far for the screen, and writes it to
SQLite at least every `FLUSH_INTERVAL_S` — a crash of the app, or of the engine, loses at
most that much. A dead engine ends the reply as "interrupted" with its text kept; the next
message starts a fresh engine.

The conversation never outgrows the context silently: `send` raises `ContextOverflowError`
unless the caller chose to drop the oldest turns, which leaves a visible marker.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from app.chat.conversations import ConversationStore, Message, Role
from app.chat.image_store import ChatImageStore, StoredImage
from app.chat.vision import ImageAttachment, VisionError, content_with_images
from app.engines.protocol import Event, EventKind
from app.engines.supervisor import RequestHandle
from app.errors import AppError
from app.llm.messages import Generated
from app.llm.sampling import Sampling
from app.llm.stats import GenerationStats
from app.llm.vision import IMAGE_MARKER

FLUSH_INTERVAL_S = 0.25


class ChatEngine(Protocol):
    """What a session needs of an engine (local llama.cpp, or a remote OpenAI-compatible one)."""

    @property
    def context_length(self) -> int | None: ...

    def prompt_tokens(self, messages: Sequence[Mapping[str, str]]) -> int | None:
        """The prompt's size in tokens, or None when the engine cannot tell."""

    def generate(self, messages: Sequence[Mapping[str, str]], sampling: Sampling) -> RequestHandle:
        """Start a reply; CHUNK events carry text; RESULT carries a `Generated`."""


@runtime_checkable
class SeeingChatEngine(ChatEngine, Protocol):
    """A chat engine that takes images (`LocalChatEngine` with a projector loaded)."""

    @property
    def sees_images(self) -> bool: ...

    def generate(
        self,
        messages: Sequence[Mapping[str, str]],
        sampling: Sampling,
        *,
        images: Sequence[ImageAttachment] = (),
    ) -> RequestHandle:
        """Start a reply to `messages` with `images` at their markers."""


class ChatBusyError(AppError, RuntimeError):
    """A reply is still streaming: stop it, or wait, before sending another message."""


class ContextOverflowError(AppError, ValueError):
    """The conversation does not fit the model's context with room for the reply.

    `turns_to_drop` is how many of the oldest turns (messages) would have to go for it to
    fit, so the person can weigh the choice; None when even dropping every earlier turn
    would not make room (the system prompt and the new message alone are too long).
    """

    def __init__(
        self,
        *,
        prompt_tokens: int,
        context_length: int,
        reply_tokens: int,
        turns_to_drop: int | None,
    ) -> None:
        if turns_to_drop is None:
            remedy = "Even without the earlier turns it would not fit."
        else:
            turns = "turn" if turns_to_drop == 1 else "turns"
            remedy = f"Dropping the oldest {turns_to_drop} {turns} would make room."
        super().__init__(
            f"The conversation is {prompt_tokens:,} tokens; with {reply_tokens:,} for the reply "
            f"it outgrows the context of {context_length:,}. {remedy}",
            hint="Drop the oldest turns, start a new conversation, or load with a longer context.",
        )
        self.prompt_tokens = prompt_tokens
        self.context_length = context_length
        self.reply_tokens = reply_tokens
        self.turns_to_drop = turns_to_drop


class Overflow(StrEnum):
    """What to do when the conversation outgrows the context."""

    ASK = "ask"  # raise ContextOverflowError and let the person choose
    DROP_OLDEST = "drop-oldest"  # drop the oldest turns, with a marker in the conversation


class ReplyState(StrEnum):
    STREAMING = "streaming"
    COMPLETE = "complete"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # the engine died mid-reply: the text so far is kept
    ERROR = "error"


@dataclass(frozen=True)
class ReplySnapshot:
    """A reply as it stands, for the screen."""

    text: str
    state: ReplyState
    stats: GenerationStats | None
    error: str | None


class Reply:
    """One assistant reply streaming from an engine into a stored message."""

    def __init__(
        self,
        handle: RequestHandle,
        store: ConversationStore,
        message: Message,
        *,
        on_text: Callable[[str], None] | None = None,
    ) -> None:
        self.message_id = message.id
        self.version = message.version  # which version of the message this reply writes
        self._handle = handle
        self._store = store
        self._on_text = on_text
        self._lock = threading.Lock()
        self._parts: list[str] = []
        self._state = ReplyState.STREAMING
        self._stats: GenerationStats | None = None
        self._error: str | None = None
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="chat reply", daemon=True)
        self._thread.start()

    def snapshot(self) -> ReplySnapshot:
        with self._lock:
            return ReplySnapshot("".join(self._parts), self._state, self._stats, self._error)

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    def cancel(self) -> None:
        """Stop the reply; what came so far is kept (state CANCELLED)."""
        self._handle.cancel()

    def wait(self, timeout: float | None = None) -> ReplySnapshot:
        if not self._finished.wait(timeout):
            raise TimeoutError("the reply did not finish in time")
        return self.snapshot()

    def _pump(self) -> None:
        last_flush = time.monotonic()
        flushed = 0
        while True:
            try:
                event = self._handle.next_event(timeout=FLUSH_INTERVAL_S)
            except queue.Empty:
                event = None
            if event is not None and event.kind is EventKind.CHUNK:
                text = event.text
                with self._lock:
                    self._parts.append(text)
                if self._on_text is not None:
                    self._on_text(text)
            if event is not None and event.terminal:
                self._finish(event)
                return
            now = time.monotonic()
            if now - last_flush >= FLUSH_INTERVAL_S:
                with self._lock:
                    count, text = len(self._parts), "".join(self._parts)
                if count != flushed:
                    self._store.update_content(self.message_id, text)
                    flushed = count
                last_flush = now

    def _finish(self, event: Event) -> None:
        state, error, stats = _outcome(event)
        with self._lock:
            text = "".join(self._parts)
            self._state, self._error, self._stats = state, error, stats
        self._store.finish_message(
            self.message_id,
            content=text,
            state=state.value,
            stats=stats,
            error=error,
        )
        self._finished.set()


def _outcome(event: Event) -> tuple[ReplyState, str | None, GenerationStats | None]:
    kind = event.kind
    if kind is EventKind.RESULT:
        return ReplyState.COMPLETE, None, event.expect(Generated).stats
    if kind is EventKind.CANCELLED:
        return ReplyState.CANCELLED, None, None
    message = event.failure.message
    if kind is EventKind.STOPPED:
        return ReplyState.INTERRUPTED, message, None
    return ReplyState.ERROR, message, None


class ChatSession:
    """One conversation with one engine: the operations behind the Chat page's buttons."""

    def __init__(
        self,
        store: ConversationStore,
        conversation_id: int,
        engine: ChatEngine,
        images: ChatImageStore | None = None,
    ) -> None:
        self.store = store
        self.conversation_id = conversation_id
        self.engine = engine
        self.images = images  # where attached images are kept; None: no images here
        self._reply: Reply | None = None

    @property
    def busy(self) -> bool:
        return self._reply is not None and not self._reply.done

    @property
    def reply(self) -> Reply | None:
        return self._reply

    def send(
        self,
        text: str,
        sampling: Sampling,
        *,
        overflow: Overflow = Overflow.ASK,
        on_text: Callable[[str], None] | None = None,
        images: Sequence[ImageAttachment] = (),
    ) -> Reply:
        """Add the user's message (with its `images`) and start the reply.

        Raises:
            ValueError: the message is empty.
            VisionError: images for a model that cannot see them (nothing is added).
            ChatBusyError: a reply is still streaming.
            ContextOverflowError: the conversation does not fit and `overflow` is ASK
                (the message is not added).
        """
        if not text.strip() and not images:
            raise ValueError("The message is empty.")
        self._check_idle()
        if images and (not self._sees_images() or self.images is None):
            raise VisionError(
                "This model can't see images.", hint="Load a model with a vision projector."
            )
        history = self.store.messages(self.conversation_id)
        prompt, dropped = self._fit(
            self._prompt_messages(history, extra_user=text, extra_images=len(images)),
            sampling,
            overflow,
        )
        sent = [*self._history_images(history), *images]  # before anything is written
        stored = tuple(self._keep(image) for image in images)
        self.store.append_message(self.conversation_id, "user", text, images=stored)
        self._mark_dropped(dropped)
        return self._start(prompt, sampling, on_text, images=_kept_images(prompt, sent))

    def regenerate(
        self,
        sampling: Sampling,
        *,
        overflow: Overflow = Overflow.ASK,
        on_text: Callable[[str], None] | None = None,
    ) -> Reply:
        """Write the last reply again. The reply it replaces is kept as an earlier version
        of the same message (`ConversationStore.choose_version` goes back to it)."""
        self._check_idle()
        history = self.store.messages(self.conversation_id)
        last_user = max((m.position for m in history if m.role is Role.USER), default=None)
        if last_user is None:
            raise ValueError("There is no message to answer yet.")
        kept = [m for m in history if m.position <= last_user]
        previous = next(
            (m for m in history if m.position > last_user and m.role is Role.ASSISTANT), None
        )
        # Fit first: a refusal (ContextOverflowError) must leave the last reply in place.
        prompt, dropped = self._fit(self._prompt_messages(kept), sampling, overflow)
        images = _kept_images(prompt, self._history_images(kept))
        if previous is None:
            self.store.truncate_from(self.conversation_id, last_user + 1)
            self._mark_dropped(dropped)
            return self._start(prompt, sampling, on_text, images=images)
        self.store.truncate_from(self.conversation_id, previous.position + 1)
        message = self.store.new_version(previous.id)
        self._mark_dropped(dropped)
        return self._start(prompt, sampling, on_text, into=message, images=images)

    def edit_and_resend(
        self,
        message_id: int,
        text: str,
        sampling: Sampling,
        *,
        overflow: Overflow = Overflow.ASK,
        on_text: Callable[[str], None] | None = None,
    ) -> Reply:
        """Change a past user message: everything after it goes, and a new reply starts."""
        if not text.strip():
            raise ValueError("The message is empty.")
        self._check_idle()
        history = self.store.messages(self.conversation_id)
        target = next((m for m in history if m.id == message_id), None)
        if target is None or target.role != "user":
            raise ValueError("Only your own messages can be edited.")
        kept = [m for m in history if m.position < target.position]
        # The edited message keeps its images (the text is what changed).
        prompt, dropped = self._fit(
            self._prompt_messages(kept, extra_user=text, extra_images=len(target.images)),
            sampling,
            overflow,
        )
        sent = self._history_images([*kept, target])
        self.store.truncate_from(self.conversation_id, target.position)
        self.store.append_message(self.conversation_id, "user", text, images=target.images)
        self._mark_dropped(dropped)
        return self._start(prompt, sampling, on_text, images=_kept_images(prompt, sent))

    def stop(self) -> None:
        if self._reply is not None:
            self._reply.cancel()

    # -- internals -----------------------------------------------------------------------

    def _check_idle(self) -> None:
        if self.busy:
            raise ChatBusyError(
                "A reply is still being written.", hint="Wait for it, or press Stop."
            )

    def _turns(self, history: Sequence[Message]) -> list[Message]:
        """The stored turns the model sees: those after the last marker, empty replies left out."""
        start = max((m.position for m in history if m.role is Role.MARKER), default=-1)
        return [
            m
            for m in history
            if m.position > start
            and m.role in (Role.USER, Role.ASSISTANT)
            and (m.role is Role.USER or m.content)
        ]

    def _prompt_messages(
        self,
        history: Sequence[Message],
        *,
        extra_user: str | None = None,
        extra_images: int = 0,
    ) -> list[dict[str, str]]:
        """The messages the model sees: the system prompt, then the turns. A model that sees
        gets an image marker per image (`content_with_images`); others get the text alone."""
        sees = self._sees_images()

        def content(text: str, images: int) -> str:
            return content_with_images(text, images) if sees else text

        conversation = self.store.get(self.conversation_id)
        messages: list[dict[str, str]] = []
        if conversation.system_prompt:
            messages.append({"role": "system", "content": content(conversation.system_prompt, 0)})
        messages += [
            {"role": m.role.value, "content": content(m.content, len(m.images))}
            for m in self._turns(history)
        ]
        if extra_user is not None:
            messages.append({"role": "user", "content": content(extra_user, extra_images)})
        return messages

    def _sees_images(self) -> bool:
        return isinstance(self.engine, SeeingChatEngine) and self.engine.sees_images

    def _keep(self, image: ImageAttachment) -> StoredImage:
        assert self.images is not None
        return self.images.put(image.data, image.name)

    def _history_images(self, history: Sequence[Message]) -> list[ImageAttachment]:
        """The images of the turns the model sees, read back from the store, in order.

        Raises:
            ChatImageMissingError: an image file is gone.
        """
        if not self._sees_images() or self.images is None:
            return []
        store = self.images
        return [
            ImageAttachment(store.read(image), image.name)
            for message in self._turns(history)
            for image in message.images
        ]

    def _fit(
        self, messages: list[dict[str, str]], sampling: Sampling, overflow: Overflow
    ) -> tuple[list[dict[str, str]], int]:
        """The messages that fit the context with room for the reply, and how many turns
        were dropped from the front (0 unless `overflow` allows dropping)."""
        context = self.engine.context_length
        if context is None:
            return messages, 0
        reply_room = min(sampling.max_tokens, context // 2)
        tokens = self.engine.prompt_tokens(messages)
        if tokens is None or tokens + reply_room <= context:
            return messages, 0
        # Asking or dropping, the same count of oldest turns is what it takes to fit.
        fitted, dropped, fitted_tokens = self._drop_oldest(messages, tokens, context - reply_room)
        if fitted_tokens is not None and fitted_tokens + reply_room > context:
            raise ContextOverflowError(  # not even dropping every earlier turn makes room
                prompt_tokens=tokens if overflow is Overflow.ASK else fitted_tokens,
                context_length=context,
                reply_tokens=reply_room,
                turns_to_drop=None,
            )
        if overflow is Overflow.ASK:
            raise ContextOverflowError(
                prompt_tokens=tokens,
                context_length=context,
                reply_tokens=reply_room,
                turns_to_drop=dropped,
            )
        return fitted, dropped

    def _drop_oldest(
        self, messages: list[dict[str, str]], tokens: int, room: int
    ) -> tuple[list[dict[str, str]], int, int | None]:
        """Drop the oldest turns until the prompt is at most `room` tokens (or only the new
        message is left): the messages kept, how many turns went, and the kept size (None
        when the engine stopped telling). Whole exchanges go, so the first turn left is the
        person's; the system prompt always stays."""
        system = [m for m in messages if m["role"] == "system"]
        turns = [m for m in messages if m["role"] != "system"]
        dropped = 0
        size: int | None = tokens
        while len(turns) > 1 and size is not None and size > room:
            turns.pop(0)
            dropped += 1
            while len(turns) > 1 and turns[0]["role"] != "user":
                turns.pop(0)
                dropped += 1
            size = self.engine.prompt_tokens(system + turns)
        return system + turns, dropped, size

    def _mark_dropped(self, dropped: int) -> None:
        """Put a visible marker before the first turn still sent (the store has the prompt's
        turns by now: the oldest `dropped` of them were left out)."""
        if dropped < 1:
            return
        turns = self._turns(self.store.messages(self.conversation_id))
        self.store.add_marker(
            self.conversation_id, dropped=dropped, before_position=turns[dropped].position
        )

    def _start(
        self,
        prompt: list[dict[str, str]],
        sampling: Sampling,
        on_text: Callable[[str], None] | None,
        *,
        into: Message | None = None,
        images: Sequence[ImageAttachment] = (),
    ) -> Reply:
        """Stream a reply to `prompt` (with `images` at its markers) into `into` (a new version
        of a reply), or into a new message after the last one."""
        message = into or self.store.append_message(
            self.conversation_id, "assistant", "", state=ReplyState.STREAMING.value
        )
        try:
            if images:  # only a local engine with a projector takes them (`_sees_images`)
                assert isinstance(self.engine, SeeingChatEngine)
                handle = self.engine.generate(prompt, sampling, images=images)
            else:
                handle = self.engine.generate(prompt, sampling)
        except AppError as error:
            self.store.finish_message(
                message.id, content="", state=ReplyState.ERROR.value, error=str(error)
            )
            raise
        self._reply = Reply(handle, self.store, message, on_text=on_text)
        return self._reply


def _kept_images(
    prompt: Sequence[Mapping[str, str]], images: Sequence[ImageAttachment]
) -> list[ImageAttachment]:
    """The last of `images` that the prompt still has markers for: turns dropped to fit the
    context took the first ones with them."""
    markers = sum(message["content"].count(IMAGE_MARKER) for message in prompt)
    return list(images[len(images) - markers :]) if markers else []
