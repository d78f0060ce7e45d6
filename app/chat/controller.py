"""The chat's workflow, once for every front end: which engine answers, the seed, starting a
reply, and what the conversation records of it.

The Chat page and its model panel are views over a `ChatController`: they keep the widgets
and call it (its blocking methods on a worker); `modeldeck chat` takes the same seed rule.
A reply's recipe (the load settings and the sampling with the seed actually used) is kept per
message, so the llama.cpp command for a reply repeats it exactly.

The controller is built from the core's parts, not from `Core` (which sits above `app.chat`):
getters of the conversation store and of the local engine, so neither is built before use.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING

from app.chat.conversations import ConversationStore, Message, ModelRef
from app.errors import AppError
from app.llm.sampling import MAX_SEED, Sampling

if TYPE_CHECKING:  # the engines are imported when first used: the Chat page paints sooner
    from app.chat.image_store import ChatImageStore
    from app.chat.local import LocalChatEngine
    from app.chat.remote import RemoteEndpoint, RemoteEngine
    from app.chat.session import ChatEngine, ChatSession, Overflow, Reply
    from app.chat.vision import ImageAttachment
    from app.llm.engine import LoadedModel
    from app.llm.messages import LoadSettings


class Answerer(Enum):
    """Which engine answers the chat."""

    LOCAL = "local"  # the loaded GGUF, in the core's llama.cpp engine
    REMOTE = "remote"  # an OpenAI-compatible server


class NoEngineError(AppError, LookupError):
    """A reply was asked for before a model was loaded or an endpoint chosen."""

    def __init__(self) -> None:
        super().__init__("No model answers yet.", hint="Load a model, or use a remote endpoint.")


@dataclass(frozen=True)
class Send:
    """A new message from the person, with the images they attached."""

    text: str
    images: tuple[ImageAttachment, ...] = ()


@dataclass(frozen=True)
class Regenerate:
    """A new version of the last reply (the earlier ones are kept, and can be chosen again)."""


@dataclass(frozen=True)
class EditAndResend:
    """A past message of the person's, changed: what followed it goes, a new reply starts."""

    message_id: int
    text: str


ReplyRequest = Send | Regenerate | EditAndResend


@dataclass(frozen=True)
class ReplyRecipe:
    """What made a local reply, for its llama.cpp command: the load settings and the sampling,
    with the seed that was used."""

    load: LoadSettings
    sampling: Sampling


@dataclass(frozen=True)
class StartedReply:
    """A reply that started, and the sampling it uses (its seed chosen)."""

    reply: Reply
    sampling: Sampling


def with_seed(sampling: Sampling) -> Sampling:
    """`sampling` with a concrete seed: a random one when it has none.

    Choosing it here rather than in the engine lets the reply be recorded, and its llama.cpp
    command written, with the seed that made it.
    """
    if sampling.seed is not None:
        return sampling
    return replace(sampling, seed=random.randrange(MAX_SEED))


@dataclass(frozen=True)
class _Answering:
    """The engine that answers, and what the conversation records of it (one snapshot, so
    a reply started on a worker sees one consistent choice)."""

    answerer: Answerer
    engine: ChatEngine
    ref: ModelRef | None
    load: LoadSettings | None  # local replies only


class ChatController:
    """Which engine answers, and starting replies with it in stored conversations.

    Args:
        conversations: gets the conversation store (built on first use by the core).
        local_engine: gets the local LLM engine (the core's `llm`: one per app, shared with
            the API server).
    """

    def __init__(
        self,
        conversations: Callable[[], ConversationStore],
        local_engine: Callable[[], LocalChatEngine],
        images: Callable[[], ChatImageStore] | None = None,
    ) -> None:
        self._conversations = conversations
        self._local_engine = local_engine
        self._images = images  # where attached images are kept (None: no attaching)
        # The choice of engine is made on the GUI thread and read on workers.
        self._lock = threading.Lock()
        self._answerer: Answerer | None = None
        self._local: LocalChatEngine | None = None
        self._local_ref: ModelRef | None = None
        self._remote: RemoteEngine | None = None
        self._recipes: dict[tuple[int, int], ReplyRecipe] = {}  # (message id, version)
        self._template_override: str | None = None

    # -- which engine answers ------------------------------------------------------------

    @property
    def answerer(self) -> Answerer | None:
        """Which engine answers (None: nothing yet)."""
        return self._answerer

    @property
    def engine(self) -> ChatEngine | None:
        """The engine that answers: the loaded local model, or the remote endpoint in use."""
        answering = self._answering()
        return answering.engine if answering is not None else None

    @property
    def local_engine(self) -> LocalChatEngine | None:
        """The local engine, when a local model answers."""
        return self._local if self._answerer is Answerer.LOCAL else None

    @property
    def remote_engine(self) -> RemoteEngine | None:
        """The remote engine in use, when one answers."""
        return self._remote if self._answerer is Answerer.REMOTE else None

    @property
    def local_model(self) -> LoadedModel | None:
        """The model loaded in the local engine, whether or not it answers now."""
        return self._local.loaded if self._local is not None else None

    def local(self) -> LocalChatEngine:
        """The local engine, to load a model into (built on first use: call on a worker)."""
        engine = self._local_engine()
        engine.template_override = self._template_override
        with self._lock:
            self._local = engine
        return engine

    def set_template_override(self, override: str | None) -> None:
        """Render the local model's prompts with `override` (a Jinja chat template) instead of
        its own; None: its own. Before the local engine is built this waits for `local`."""
        self._template_override = override
        if self._local is not None:
            self._local.template_override = override

    def use_local(self, ref: ModelRef) -> None:
        """The local engine answers from now on, with the model `ref` (loaded by the caller)."""
        with self._lock:
            if self._local is None:
                raise NoEngineError()
            self._answerer, self._local_ref = Answerer.LOCAL, ref

    def local_failed(self) -> bool:
        """A load failed: if the local engine was answering and now holds no model, nothing
        answers any more. True when that changed which engine answers."""
        with self._lock:
            local = self._local
            if self._answerer is Answerer.LOCAL and (local is None or local.loaded is None):
                self._answerer = None
                return True
            return False

    def unload_local(self) -> bool:
        """Unload the local model, freeing its memory (blocks: call on a worker). When it was
        answering, nothing answers any more. True when that changed which engine answers."""
        with self._lock:
            local = self._local
        if local is not None:
            local.unload()
        with self._lock:
            if self._answerer is Answerer.LOCAL:
                self._answerer, self._local_ref = None, None
                return True
            return False

    def use_remote(self, endpoint: RemoteEndpoint) -> RemoteEngine:
        """`endpoint` answers from now on; the previous remote client is closed (blocks:
        call on a worker)."""
        from app.chat.remote import RemoteEngine

        engine = RemoteEngine(endpoint)
        with self._lock:
            previous, self._remote = self._remote, engine
            self._answerer = Answerer.REMOTE
        if previous is not None:
            previous.close()
        return engine

    def model_ref(self) -> ModelRef | None:
        """What a conversation records as the model that answers."""
        answering = self._answering()
        return answering.ref if answering is not None else None

    def load_settings(self) -> LoadSettings | None:
        """How the local model that answers was loaded (None: a remote one answers, or none)."""
        answering = self._answering()
        return answering.load if answering is not None else None

    def close(self) -> None:
        """Close the remote client (the local engine belongs to the core, which closes it)."""
        with self._lock:
            remote, self._remote = self._remote, None
            if self._answerer is Answerer.REMOTE:
                self._answerer = None
        if remote is not None:
            remote.close()

    # -- replies -------------------------------------------------------------------------

    def start_reply(
        self,
        conversation_id: int,
        request: ReplyRequest,
        sampling: Sampling,
        *,
        overflow: Overflow | None = None,
    ) -> StartedReply:
        """Start a reply in a conversation with the engine that answers (blocks: it counts
        tokens through the engine; call on a worker), and record on the conversation which
        model answered and how.

        A sampling without a seed gets a random one (see `with_seed`). `overflow` says what
        to do when the conversation outgrows the context (default: ask, by raising).

        Raises:
            NoEngineError: no engine answers yet.
            ContextOverflowError: the conversation does not fit and `overflow` is ASK.
            ValueError: the message is empty, or is not the person's to edit.
            AppError: the store or the engine failed (a failed start may store an error reply).
        """
        from app.chat.session import ChatSession, Overflow

        answering = self._answering()
        if answering is None:
            raise NoEngineError()
        sampling = with_seed(sampling)
        images = self._images() if self._images is not None else None
        session = ChatSession(self._conversations(), conversation_id, answering.engine, images)
        reply = _start(session, request, sampling, overflow or Overflow.ASK)
        if answering.load is not None:
            self._recipes[reply.message_id, reply.version] = ReplyRecipe(answering.load, sampling)
        # The reply streams already and owns its message: a conversation deleted meanwhile
        # shows in the reply's own writes, so failing to note the model must not hide it.
        with contextlib.suppress(AppError):
            self._record(conversation_id, answering, sampling)
        return StartedReply(reply, sampling)

    def recipe(self, message_id: int, version: int = 1) -> ReplyRecipe | None:
        """How version `version` of a local reply was made, when this controller started it
        (None: not one of them)."""
        return self._recipes.get((message_id, version))

    def choose_version(self, message_id: int, number: int) -> Message:
        """Show version `number` of a regenerated reply: from now on it is the one the model
        sees in the conversation (blocks: call on a worker). Returns the message as it is now.

        Raises:
            MessageNotFoundError: the reply is gone.
            VersionNotFoundError: it has no such version.
            ValueError: it is still streaming.
        """
        return self._conversations().choose_version(message_id, number)

    # -- internals -----------------------------------------------------------------------

    def _answering(self) -> _Answering | None:
        with self._lock:
            if self._answerer is Answerer.LOCAL and self._local is not None:
                loaded = self._local.loaded
                load = loaded.settings if loaded is not None else None
                return _Answering(Answerer.LOCAL, self._local, self._local_ref, load)
            if self._answerer is Answerer.REMOTE and self._remote is not None:
                endpoint = self._remote.endpoint
                ref = ModelRef.remote(url=endpoint.base_url, name=endpoint.model)
                return _Answering(Answerer.REMOTE, self._remote, ref, None)
            return None

    def _record(self, conversation_id: int, answering: _Answering, sampling: Sampling) -> None:
        """Record on the conversation the model that answered and its settings, so reopening
        it (or exporting it) says what made its replies."""
        settings: dict[str, object] = {"sampling": sampling.to_dict()}
        if answering.load is not None:
            settings["load"] = {k: v for k, v in answering.load.to_args().items() if k != "path"}
        store = self._conversations()
        store.set_model(conversation_id, answering.ref)
        store.set_settings(conversation_id, settings)


def _start(
    session: ChatSession, request: ReplyRequest, sampling: Sampling, overflow: Overflow
) -> Reply:
    match request:
        case Send(text=text, images=images):
            return session.send(text, sampling, overflow=overflow, images=images)
        case Regenerate():
            return session.regenerate(sampling, overflow=overflow)
        case EditAndResend(message_id=message_id, text=text):
            return session.edit_and_resend(message_id, text, sampling, overflow=overflow)
