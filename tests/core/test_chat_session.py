"""Chat sessions end to end: the store, the real llama.cpp engine, and the tiny scripted GGUFs."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.chat.conversations import ConversationStore, MessageState, Role
from app.chat.local import LocalChatEngine
from app.chat.session import (
    ChatBusyError,
    ChatSession,
    ContextOverflowError,
    Overflow,
    ReplyState,
)
from app.llm.messages import LoadSettings
from app.llm.sampling import Sampling
from app.store import Database
from tests.support.gguf_builder import SCRIPTED_REPLY, ScriptedGgufs
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def engine() -> Iterator[LocalChatEngine]:
    engine = LocalChatEngine()
    yield engine
    engine.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ConversationStore]:
    database = Database(tmp_path / "app.sqlite3")
    yield ConversationStore(database)
    database.close()


def session_with(
    store: ConversationStore, engine: LocalChatEngine, model: Path, *, context: int = 2048
) -> ChatSession:
    if (
        engine.loaded is None
        or engine.loaded.settings.path != model
        or (engine.loaded.context_length != context)
    ):
        engine.load(LoadSettings(path=model, context_length=context))
    conversation = store.create("Test", system_prompt="Be brief.")
    return ChatSession(store, conversation.id, engine)


def test_a_reply_streams_into_the_store(
    store: ConversationStore, engine: LocalChatEngine, ggufs: ScriptedGgufs
) -> None:
    session = session_with(store, engine, ggufs.scripted_4k)
    seen: list[str] = []
    reply = session.send("Hello?", Sampling(), on_text=seen.append)
    snapshot = reply.wait(30)
    assert snapshot.state is ReplyState.COMPLETE
    assert snapshot.text == SCRIPTED_REPLY == "".join(seen)
    assert snapshot.stats is not None and snapshot.stats.generated_tokens == len(SCRIPTED_REPLY)
    user, assistant = store.messages(session.conversation_id)
    assert (user.role, user.content) == (Role.USER, "Hello?")
    assert (assistant.role, assistant.content, assistant.state) == (
        Role.ASSISTANT,
        SCRIPTED_REPLY,
        MessageState.COMPLETE,
    )
    assert assistant.stats is not None and assistant.stats.prompt_tokens
    assert assistant.stats.seed is not None  # so the reply can be made again


def test_an_empty_message_is_refused(
    store: ConversationStore, engine: LocalChatEngine, ggufs: ScriptedGgufs
) -> None:
    session = session_with(store, engine, ggufs.scripted_4k)
    with pytest.raises(ValueError, match="empty"):
        session.send("  \n", Sampling())
    assert store.messages(session.conversation_id) == []


def test_a_second_send_while_streaming_is_refused_and_stop_keeps_the_text(
    store: ConversationStore, engine: LocalChatEngine, ggufs: ScriptedGgufs
) -> None:
    session = session_with(store, engine, ggufs.endless, context=8192)
    reply = session.send("Go on", Sampling(max_tokens=6000))
    with pytest.raises(ChatBusyError):
        session.send("Another", Sampling())
    wait_until(lambda: len(reply.snapshot().text) > 20, timeout=20)
    session.stop()
    snapshot = reply.wait(10)
    assert snapshot.state is ReplyState.CANCELLED
    stored = store.messages(session.conversation_id)[-1]
    assert stored.state is MessageState.CANCELLED
    assert stored.content == snapshot.text and stored.content.startswith(SCRIPTED_REPLY)
    assert [m.role for m in store.messages(session.conversation_id)] == [Role.USER, Role.ASSISTANT]


def test_the_reply_is_flushed_to_the_store_while_it_streams(
    store: ConversationStore, engine: LocalChatEngine, ggufs: ScriptedGgufs
) -> None:
    session = session_with(store, engine, ggufs.endless, context=8192)
    reply = session.send("Go on", Sampling(max_tokens=6000))
    try:
        wait_until(lambda: len(store.messages(session.conversation_id)[-1].content) > 0, timeout=20)
        streaming = store.messages(session.conversation_id)[-1]
        assert streaming.state is MessageState.STREAMING
        assert SCRIPTED_REPLY.startswith(streaming.content[:10])
    finally:
        session.stop()
        reply.wait(10)


def test_a_killed_engine_keeps_the_partial_reply_and_the_next_message_works(
    store: ConversationStore, engine: LocalChatEngine, ggufs: ScriptedGgufs
) -> None:
    session = session_with(store, engine, ggufs.endless, context=8192)
    reply = session.send("Go on", Sampling(max_tokens=6000))
    wait_until(lambda: len(reply.snapshot().text) > 20, timeout=20)
    assert engine.pid is not None
    os.kill(engine.pid, signal.SIGKILL)
    snapshot = reply.wait(10)
    assert snapshot.state is ReplyState.INTERRUPTED
    assert snapshot.error is not None and "signal 9" in snapshot.error
    stored = store.messages(session.conversation_id)[-1]
    assert stored.state is MessageState.INTERRUPTED
    assert stored.content == snapshot.text and len(stored.content) > 20
    assert stored.error == snapshot.error

    again = session.send("Still there?", Sampling(max_tokens=5)).wait(30)
    assert again.state is ReplyState.COMPLETE
    assert again.text == SCRIPTED_REPLY[:5]


def test_regenerate_writes_a_new_version_of_the_last_reply(
    store: ConversationStore, engine: LocalChatEngine, ggufs: ScriptedGgufs
) -> None:
    session = session_with(store, engine, ggufs.scripted_4k)
    session.send("Hello?", Sampling(max_tokens=3)).wait(30)
    assert store.messages(session.conversation_id)[-1].content == SCRIPTED_REPLY[:3]
    session.regenerate(Sampling()).wait(30)
    messages = store.messages(session.conversation_id)
    assert [m.role for m in messages] == [Role.USER, Role.ASSISTANT]
    assert messages[-1].content == SCRIPTED_REPLY
    # The reply it replaced is kept as version 1 of the same message.
    assert (messages[-1].version, messages[-1].versions) == (2, 2)
    earlier = store.choose_version(messages[-1].id, 1)
    assert earlier.content == SCRIPTED_REPLY[:3]


def test_editing_a_past_message_drops_what_followed(
    store: ConversationStore, engine: LocalChatEngine, ggufs: ScriptedGgufs
) -> None:
    session = session_with(store, engine, ggufs.scripted_4k)
    session.send("First", Sampling()).wait(30)
    session.send("Second", Sampling()).wait(30)
    first = store.messages(session.conversation_id)[0]
    session.edit_and_resend(first.id, "First, edited", Sampling()).wait(30)
    messages = store.messages(session.conversation_id)
    assert [(m.role, m.content) for m in messages] == [
        (Role.USER, "First, edited"),
        (Role.ASSISTANT, SCRIPTED_REPLY),
    ]


def test_an_overflowing_conversation_asks_then_drops_the_oldest_turns_with_a_marker(
    store: ConversationStore, engine: LocalChatEngine, ggufs: ScriptedGgufs
) -> None:
    session = session_with(store, engine, ggufs.scripted_4k, context=256)
    for word in ("alpha", "bravo", "charlie"):
        store.append_message(session.conversation_id, Role.USER, f"{word} " * 30)
        store.append_message(session.conversation_id, Role.ASSISTANT, SCRIPTED_REPLY)
    before = store.messages(session.conversation_id)
    with pytest.raises(ContextOverflowError, match="outgrows the context of 256"):
        session.send("What now?", Sampling(max_tokens=32))
    assert store.messages(session.conversation_id) == before  # nothing was added

    reply = session.send("What now?", Sampling(max_tokens=32), overflow=Overflow.DROP_OLDEST)
    assert reply.wait(30).state is ReplyState.COMPLETE
    messages = store.messages(session.conversation_id)
    markers = [m for m in messages if m.role is Role.MARKER]
    assert len(markers) == 1 and markers[0].dropped is not None and markers[0].dropped >= 2
    # The marker sits before the first turn still sent, which is the person's.
    after_marker = messages[messages.index(markers[0]) + 1]
    assert after_marker.role is Role.USER
    assert messages[-2].content == "What now?"
    # Everything is still stored; only the prompt left the oldest turns out.
    assert sum(1 for m in messages if m.role is Role.USER) == 4


def test_a_regenerate_that_does_not_fit_keeps_the_last_reply(
    store: ConversationStore, engine: LocalChatEngine, ggufs: ScriptedGgufs
) -> None:
    session = session_with(store, engine, ggufs.scripted_4k, context=256)
    for word in ("alpha", "bravo", "charlie"):
        store.append_message(session.conversation_id, Role.USER, f"{word} " * 30)
        store.append_message(session.conversation_id, Role.ASSISTANT, SCRIPTED_REPLY)
    before = store.messages(session.conversation_id)
    with pytest.raises(ContextOverflowError):
        session.regenerate(Sampling(max_tokens=32))
    assert store.messages(session.conversation_id) == before


def test_a_message_too_long_for_any_context_is_refused_even_when_dropping(
    store: ConversationStore, engine: LocalChatEngine, ggufs: ScriptedGgufs
) -> None:
    session = session_with(store, engine, ggufs.scripted_4k, context=256)
    with pytest.raises(ContextOverflowError):
        session.send("word " * 400, Sampling(max_tokens=32), overflow=Overflow.DROP_OLDEST)
