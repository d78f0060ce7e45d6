"""The chat controller, fast: which engine answers, the seed, starting replies, and what the
conversation records — with a fake local engine in-process (real engines: the GUI tests).

The fake engine counts one token per word of each message plus one per message, and answers
`REPLY` at once, like the one in `test_session_overflow.py`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest

from app.chat.controller import (
    Answerer,
    ChatController,
    EditAndResend,
    NoEngineError,
    Regenerate,
    Send,
    with_seed,
)
from app.chat.conversations import ConversationStore, ModelRef, Role
from app.chat.remote import RemoteEndpoint
from app.chat.session import ContextOverflowError, Overflow, ReplyState
from app.engines.protocol import Event, EventKind, TextChunk
from app.engines.supervisor import RequestHandle
from app.llm.engine import LoadedModel
from app.llm.messages import Generated, LoadSettings
from app.llm.sampling import MAX_SEED, Sampling
from app.llm.stats import GenerationStats
from app.store import Database

if TYPE_CHECKING:
    from app.chat.local import LocalChatEngine

REPLY = "ok"
REF = ModelRef.local(path="/models/tiny.gguf", name="tiny")
SETTINGS = LoadSettings(path=Path("/models/tiny.gguf"), context_length=64, gpu_layers=3)


class FakeLocalEngine:
    """What the controller uses of a `LocalChatEngine`: a loaded model, the template
    override, and the `ChatEngine` protocol."""

    def __init__(self, context_length: int = 64) -> None:
        self.loaded: LoadedModel | None = LoadedModel(
            settings=SETTINGS,
            context_length=context_length,
            trained_context_length=context_length,
            architecture=None,
            name="tiny",
            chat_template=None,
            bos_token="",
            eos_token="",
            gpu_layers_placed=0,
            layer_count=None,
        )
        self.template_override: str | None = None
        self.samplings: list[Sampling] = []  # what `generate` was given
        self.prompts: list[list[dict[str, str]]] = []

    def unload(self) -> None:
        self.loaded = None

    @property
    def context_length(self) -> int | None:
        return self.loaded.context_length if self.loaded is not None else None

    def prompt_tokens(self, messages: Sequence[Mapping[str, str]]) -> int:
        return sum(len(m["content"].split()) + 1 for m in messages)

    def generate(self, messages: Sequence[Mapping[str, str]], sampling: Sampling) -> RequestHandle:
        self.samplings.append(sampling)
        self.prompts.append([dict(m) for m in messages])
        handle = RequestHandle(len(self.prompts), lambda _handle: None)
        handle.put(Event(handle.id, EventKind.CHUNK, TextChunk(REPLY)))
        stats = GenerationStats(generated_tokens=1, seed=sampling.seed)
        handle.put(Event(handle.id, EventKind.RESULT, Generated(stats)))
        return handle


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ConversationStore]:
    database = Database(tmp_path / "app.sqlite3")
    yield ConversationStore(database)
    database.close()


@pytest.fixture
def engine() -> FakeLocalEngine:
    return FakeLocalEngine()


@pytest.fixture
def controller(store: ConversationStore, engine: FakeLocalEngine) -> ChatController:
    return ChatController(lambda: store, lambda: cast("LocalChatEngine", engine))


def answering_locally(controller: ChatController) -> ChatController:
    controller.local()
    controller.use_local(REF)
    return controller


# -- which engine answers ------------------------------------------------------------------


def test_nothing_answers_until_a_model_is_chosen(
    controller: ChatController, store: ConversationStore
) -> None:
    assert controller.answerer is None
    assert controller.engine is None and controller.model_ref() is None
    conversation = store.create("Test")
    with pytest.raises(NoEngineError):
        controller.start_reply(conversation.id, Send("Hi"), Sampling())
    assert store.messages(conversation.id) == []


def test_a_loaded_local_model_answers_with_its_load_settings(
    controller: ChatController, engine: FakeLocalEngine
) -> None:
    answering_locally(controller)
    assert controller.answerer is Answerer.LOCAL
    assert controller.engine is engine
    assert controller.local_engine is cast("LocalChatEngine", engine)
    assert controller.model_ref() == REF
    assert controller.load_settings() == SETTINGS


def test_a_failed_load_leaves_nothing_answering_only_if_the_local_model_is_gone(
    controller: ChatController, engine: FakeLocalEngine
) -> None:
    answering_locally(controller)
    assert not controller.local_failed()  # the earlier model is still loaded: it answers
    engine.loaded = None
    assert controller.local_failed()
    assert controller.answerer is None and controller.engine is None


def test_a_remote_endpoint_answers_until_closed(
    controller: ChatController, engine: FakeLocalEngine
) -> None:
    answering_locally(controller)
    remote = controller.use_remote(RemoteEndpoint("http://127.0.0.1:9/v1", "m1"))
    assert controller.answerer is Answerer.REMOTE
    assert controller.engine is remote and controller.local_engine is None
    assert controller.model_ref() == ModelRef.remote(url="http://127.0.0.1:9/v1", name="m1")
    assert controller.load_settings() is None  # no llama.cpp command for a remote reply
    engine.loaded = None
    assert not controller.local_failed()  # the remote one answers, whatever the local did
    controller.close()
    assert controller.answerer is None and controller.engine is None


def test_the_template_override_reaches_the_local_engine_before_and_after_it_is_built(
    controller: ChatController, engine: FakeLocalEngine
) -> None:
    controller.set_template_override("{{ messages }}")
    assert engine.template_override is None  # not built yet
    controller.local()
    assert engine.template_override == "{{ messages }}"
    controller.set_template_override(None)
    assert engine.template_override is None


# -- the seed ------------------------------------------------------------------------------


def test_a_sampling_without_a_seed_gets_one_and_a_chosen_seed_is_kept() -> None:
    seeded = with_seed(Sampling(temperature=0.2))
    assert seeded.seed is not None and 0 <= seeded.seed < MAX_SEED
    assert seeded.temperature == 0.2
    assert with_seed(Sampling(seed=42)).seed == 42


def test_a_reply_uses_the_chosen_seed_and_reports_it_for_the_command(
    controller: ChatController, engine: FakeLocalEngine, store: ConversationStore
) -> None:
    answering_locally(controller)
    conversation = store.create("Test")
    started = controller.start_reply(conversation.id, Send("Hi"), Sampling())
    assert started.reply.wait(5).state is ReplyState.COMPLETE
    seed = started.sampling.seed
    assert seed is not None
    assert engine.samplings == [started.sampling]  # the engine was given that very seed
    recipe = controller.recipe(started.reply.message_id)
    assert recipe is not None
    assert (recipe.load, recipe.sampling.seed) == (SETTINGS, seed)


# -- starting replies and recording the model ----------------------------------------------


def test_a_reply_records_the_model_and_its_settings_on_the_conversation(
    controller: ChatController, store: ConversationStore
) -> None:
    answering_locally(controller)
    conversation = store.create("Test")
    sampling = Sampling(temperature=0.3, seed=7)
    controller.start_reply(conversation.id, Send("Hi"), sampling).reply.wait(5)
    recorded = store.get(conversation.id)
    assert recorded.model == REF
    assert recorded.settings["sampling"] == sampling.to_dict()
    load = {k: v for k, v in SETTINGS.to_args().items() if k != "path"}
    assert recorded.settings["load"] == load


def test_regenerate_and_edit_and_resend_reach_the_session(
    controller: ChatController, engine: FakeLocalEngine, store: ConversationStore
) -> None:
    answering_locally(controller)
    conversation = store.create("Test")
    controller.start_reply(conversation.id, Send("first"), Sampling()).reply.wait(5)
    controller.start_reply(conversation.id, Regenerate(), Sampling()).reply.wait(5)
    assert [(m.role, m.content, m.version) for m in store.messages(conversation.id)] == [
        (Role.USER, "first", 1),
        (Role.ASSISTANT, REPLY, 2),
    ]
    first = store.messages(conversation.id)[0]
    edit = EditAndResend(first.id, "changed")
    controller.start_reply(conversation.id, edit, Sampling()).reply.wait(5)
    assert [m.content for m in store.messages(conversation.id)] == ["changed", REPLY]
    assert engine.prompts[-1] == [{"role": "user", "content": "changed"}]


def test_an_overflow_is_asked_about_first_and_nothing_is_recorded(
    store: ConversationStore,
) -> None:
    engine = FakeLocalEngine(context_length=20)  # 10 for the reply: 10 for the prompt
    controller = answering_locally(
        ChatController(lambda: store, lambda: cast("LocalChatEngine", engine))
    )
    conversation = store.create("Test")
    store.append_message(conversation.id, Role.USER, "one two three four five six")
    store.append_message(conversation.id, Role.ASSISTANT, REPLY)
    sampling = Sampling(max_tokens=10)
    with pytest.raises(ContextOverflowError) as caught:
        controller.start_reply(conversation.id, Send("what now"), sampling)
    assert caught.value.turns_to_drop == 2
    assert store.get(conversation.id).model is None  # a refused message records nothing
    assert engine.prompts == []

    started = controller.start_reply(
        conversation.id, Send("what now"), sampling, overflow=Overflow.DROP_OLDEST
    )
    assert started.reply.wait(5).state is ReplyState.COMPLETE
    assert engine.prompts == [[{"role": "user", "content": "what now"}]]
    assert store.get(conversation.id).model == REF


def test_regenerated_versions_keep_their_own_recipes_and_the_model_sees_the_chosen_one(
    controller: ChatController, engine: FakeLocalEngine, store: ConversationStore
) -> None:
    answering_locally(controller)
    conversation = store.create("Test")
    first = controller.start_reply(conversation.id, Send("Hi"), Sampling(seed=1)).reply
    first.wait(5)
    second = controller.start_reply(conversation.id, Regenerate(), Sampling(seed=2)).reply
    second.wait(5)
    assert second.message_id == first.message_id and (first.version, second.version) == (1, 2)
    one, two = controller.recipe(first.message_id, 1), controller.recipe(first.message_id, 2)
    assert one is not None and two is not None
    assert (one.sampling.seed, two.sampling.seed) == (1, 2)

    # Version 1 shown again: it is what the next prompt carries.
    store.finish_message(first.message_id, content="two", state="complete")
    store.choose_version(first.message_id, 1)
    store.finish_message(first.message_id, content="one", state="complete")
    shown = controller.choose_version(first.message_id, 2)
    assert (shown.content, shown.version, shown.versions) == ("two", 2, 2)
    controller.choose_version(first.message_id, 1)
    controller.start_reply(conversation.id, Send("And?"), Sampling()).reply.wait(5)
    assert engine.prompts[-1][1] == {"role": "assistant", "content": "one"}


def test_unloading_the_local_model_leaves_nothing_answering(
    controller: ChatController, engine: FakeLocalEngine
) -> None:
    answering_locally(controller)
    assert controller.unload_local() is True
    assert engine.loaded is None and controller.answerer is None and controller.engine is None
    assert controller.unload_local() is False  # nothing more to change
