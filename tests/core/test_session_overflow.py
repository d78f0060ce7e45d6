"""The session's context-overflow rules, fast: a fake engine with a word tokenizer.

`test_chat_session.py` drives the same rules through llama.cpp (integration); here the
`ChatEngine` protocol is met in-process, so every number below is exact and known.

Tokenizer: one token per word of each message's content, plus one per message (its role).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from app.chat.conversations import ConversationStore, Role
from app.chat.session import ChatSession, ContextOverflowError, Overflow, ReplyState
from app.engines.protocol import Event, EventKind, TextChunk
from app.engines.supervisor import RequestHandle
from app.llm.messages import Generated
from app.llm.sampling import Sampling
from app.llm.stats import GenerationStats
from app.store import Database

SYSTEM = "Be brief."  # 2 words + 1 = 3 tokens
REPLY = "ok"  # 1 word + 1 = 2 tokens
REPLY_ROOM = 10  # Sampling(max_tokens=10) with a context of at least 20


class FakeChatEngine:
    """A `ChatEngine` that counts words and answers `REPLY` at once."""

    def __init__(self, context_length: int | None) -> None:
        self._context_length = context_length
        self.prompts: list[list[dict[str, str]]] = []  # what `generate` was given

    @property
    def context_length(self) -> int | None:
        return self._context_length

    def prompt_tokens(self, messages: Sequence[Mapping[str, str]]) -> int:
        return sum(len(m["content"].split()) + 1 for m in messages)

    def generate(self, messages: Sequence[Mapping[str, str]], sampling: Sampling) -> RequestHandle:
        self.prompts.append([dict(m) for m in messages])
        handle = RequestHandle(len(self.prompts), lambda _handle: None)
        handle.put(Event(handle.id, EventKind.CHUNK, TextChunk(REPLY)))
        stats = GenerationStats(prompt_tokens=self.prompt_tokens(messages), generated_tokens=1)
        handle.put(Event(handle.id, EventKind.RESULT, Generated(stats)))
        return handle


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ConversationStore]:
    database = Database(tmp_path / "app.sqlite3")
    yield ConversationStore(database)
    database.close()


def session_with(
    store: ConversationStore, context: int | None, *, system_prompt: str = SYSTEM
) -> tuple[ChatSession, FakeChatEngine]:
    engine = FakeChatEngine(context)
    conversation = store.create("Test", system_prompt=system_prompt)
    return ChatSession(store, conversation.id, engine), engine


def add_exchanges(store: ConversationStore, conversation_id: int, *words: str) -> None:
    """One stored exchange per word: six of it from the user (7 tokens), then `REPLY` (2)."""
    for word in words:
        store.append_message(conversation_id, Role.USER, " ".join([word] * 6))
        store.append_message(conversation_id, Role.ASSISTANT, REPLY)


def sampling() -> Sampling:
    return Sampling(max_tokens=REPLY_ROOM)


# Three stored exchanges (3 x 9) + the system prompt (3) + "what now" (3) = 33 tokens.
FULL_PROMPT = 33


def test_an_overflowing_send_is_refused_with_the_figures_and_nothing_is_added(
    store: ConversationStore,
) -> None:
    session, engine = session_with(store, context=30)
    add_exchanges(store, session.conversation_id, "alpha", "bravo", "charlie")
    before = store.messages(session.conversation_id)
    with pytest.raises(ContextOverflowError) as caught:
        session.send("what now", sampling())
    error = caught.value
    assert (error.prompt_tokens, error.reply_tokens, error.context_length) == (FULL_PROMPT, 10, 30)
    assert "is 33 tokens; with 10 for the reply it outgrows the context of 30" in str(error)
    assert store.messages(session.conversation_id) == before
    assert engine.prompts == []


def test_the_refusal_says_how_many_of_the_oldest_turns_must_go(store: ConversationStore) -> None:
    # 33 tokens, 20 of room: alpha's exchange (2 turns) leaves 24, bravo's too (4 turns) 15.
    session, engine = session_with(store, context=30)
    add_exchanges(store, session.conversation_id, "alpha", "bravo", "charlie")
    with pytest.raises(ContextOverflowError) as caught:
        session.send("what now", sampling())
    assert caught.value.turns_to_drop == 4
    assert "Dropping the oldest 4 turns would make room." in str(caught.value)
    assert engine.prompts == []
    # The count is the one dropping then takes: its marker says the same.
    session.send("what now", sampling(), overflow=Overflow.DROP_OLDEST).wait(5)
    markers = [m for m in store.messages(session.conversation_id) if m.role is Role.MARKER]
    assert [m.dropped for m in markers] == [4]


def test_a_refusal_that_no_dropping_would_cure_says_so(store: ConversationStore) -> None:
    long_system = " ".join(["rule"] * 17)  # 18 tokens: + "what now" (3) = 21 > 20
    session, _engine = session_with(store, context=30, system_prompt=long_system)
    add_exchanges(store, session.conversation_id, "alpha")
    with pytest.raises(ContextOverflowError) as caught:
        session.send("what now", sampling())
    assert caught.value.turns_to_drop is None
    assert caught.value.prompt_tokens == 30  # asking: the whole conversation's size
    assert "Even without the earlier turns it would not fit." in str(caught.value)


def test_dropping_the_oldest_turns_stores_a_marker_and_the_prompt_then_fits(
    store: ConversationStore,
) -> None:
    # 30 - 10 leaves 20 for the prompt: 33 -> 24 (one exchange gone) -> 15 (two gone).
    session, engine = session_with(store, context=30)
    add_exchanges(store, session.conversation_id, "alpha", "bravo", "charlie")
    reply = session.send("what now", sampling(), overflow=Overflow.DROP_OLDEST)
    assert reply.wait(5).state is ReplyState.COMPLETE

    (prompt,) = engine.prompts
    assert prompt == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": " ".join(["charlie"] * 6)},
        {"role": "assistant", "content": REPLY},
        {"role": "user", "content": "what now"},
    ]
    assert engine.prompt_tokens(prompt) + REPLY_ROOM <= 30

    messages = store.messages(session.conversation_id)
    markers = [m for m in messages if m.role is Role.MARKER]
    assert len(markers) == 1
    # The marker counts exactly the turns the prompt left out, and sits before the first sent.
    assert markers[0].dropped == 4
    after_marker = messages[messages.index(markers[0]) + 1]
    assert (after_marker.role, after_marker.content) == (Role.USER, " ".join(["charlie"] * 6))
    # Nothing is deleted: every turn is still stored, plus the new message and its reply.
    turns = [(m.role, m.content) for m in messages if m.role is not Role.MARKER]
    assert len(turns) == 8
    assert turns[-2:] == [(Role.USER, "what now"), (Role.ASSISTANT, REPLY)]


def test_the_next_send_after_a_marker_leaves_the_dropped_turns_out(
    store: ConversationStore,
) -> None:
    session, engine = session_with(store, context=30)
    add_exchanges(store, session.conversation_id, "alpha", "bravo", "charlie")
    session.send("what now", sampling(), overflow=Overflow.DROP_OLDEST).wait(5)
    # After the marker: charlie (9) + "what now"/ok (5) + system (3) + "and" (2) = 19 <= 20.
    session.send("and", sampling()).wait(5)
    sent = " ".join(m["content"] for m in engine.prompts[-1])
    assert "alpha" not in sent and "bravo" not in sent and "charlie" in sent
    assert sum(1 for m in store.messages(session.conversation_id) if m.role is Role.MARKER) == 1


def test_the_system_prompt_is_never_dropped(store: ConversationStore) -> None:
    long_system = " ".join(["rule"] * 11)  # 12 tokens
    session, engine = session_with(store, context=30, system_prompt=long_system)
    add_exchanges(store, session.conversation_id, "alpha", "bravo")
    # 12 + 18 + 3 = 33 > 20: both exchanges must go, leaving 12 + 3 = 15.
    session.send("what now", sampling(), overflow=Overflow.DROP_OLDEST).wait(5)
    (prompt,) = engine.prompts
    assert prompt == [
        {"role": "system", "content": long_system},
        {"role": "user", "content": "what now"},
    ]


def test_when_the_system_prompt_and_message_alone_overflow_dropping_still_refuses(
    store: ConversationStore,
) -> None:
    long_system = " ".join(["rule"] * 17)  # 18 tokens: + "what now" (3) = 21 > 20
    session, engine = session_with(store, context=30, system_prompt=long_system)
    add_exchanges(store, session.conversation_id, "alpha")
    before = store.messages(session.conversation_id)
    with pytest.raises(ContextOverflowError) as caught:
        session.send("what now", sampling(), overflow=Overflow.DROP_OLDEST)
    assert caught.value.prompt_tokens == 21  # the system prompt was kept in the count
    assert store.messages(session.conversation_id) == before
    assert engine.prompts == []


@pytest.mark.parametrize(("context", "fits"), [(36, True), (35, False)])
def test_a_prompt_that_exactly_fits_is_accepted_and_one_token_more_is_not(
    store: ConversationStore, context: int, fits: bool
) -> None:
    # Prompt 3 + 9 + 9 + 5 = 26; 26 + 10 for the reply == 36.
    session, engine = session_with(store, context=context)
    add_exchanges(store, session.conversation_id, "alpha", "bravo")
    message = "one two three four"
    if fits:
        session.send(message, sampling()).wait(5)
        assert engine.prompt_tokens(engine.prompts[0]) + REPLY_ROOM == context
        assert not any(m.role is Role.MARKER for m in store.messages(session.conversation_id))
    else:
        with pytest.raises(ContextOverflowError) as caught:
            session.send(message, sampling())
        assert caught.value.prompt_tokens + caught.value.reply_tokens == context + 1


def test_a_regenerate_that_does_not_fit_keeps_the_last_reply(store: ConversationStore) -> None:
    # Three exchanges without the last reply: 3 + 27 - 2 = 28 > 20.
    session, engine = session_with(store, context=30)
    add_exchanges(store, session.conversation_id, "alpha", "bravo", "charlie")
    before = store.messages(session.conversation_id)
    assert before[-1].role is Role.ASSISTANT
    with pytest.raises(ContextOverflowError) as caught:
        session.regenerate(sampling())
    assert caught.value.prompt_tokens == 28
    assert store.messages(session.conversation_id) == before
    assert engine.prompts == []


def test_a_regenerate_that_drops_turns_replaces_only_the_last_reply(
    store: ConversationStore,
) -> None:
    session, engine = session_with(store, context=30)
    add_exchanges(store, session.conversation_id, "alpha", "bravo", "charlie")
    session.regenerate(sampling(), overflow=Overflow.DROP_OLDEST).wait(5)
    # 28 tokens without the last reply; dropping alpha's exchange leaves 19 <= 20.
    (prompt,) = engine.prompts
    assert [m["role"] for m in prompt] == ["system", "user", "assistant", "user"]
    assert [m["content"].split()[0] for m in prompt] == ["Be", "bravo", REPLY, "charlie"]
    messages = store.messages(session.conversation_id)
    assert [m.dropped for m in messages if m.role is Role.MARKER] == [2]
    assert sum(1 for m in messages if m.role is Role.USER) == 3
    assert sum(1 for m in messages if m.role is Role.ASSISTANT) == 3  # two kept + the new one


def test_an_edit_that_does_not_fit_leaves_the_conversation_alone(
    store: ConversationStore,
) -> None:
    session, engine = session_with(store, context=30)
    add_exchanges(store, session.conversation_id, "alpha", "bravo")
    before = store.messages(session.conversation_id)
    first = before[0]
    with pytest.raises(ContextOverflowError):
        session.edit_and_resend(first.id, " ".join(["long"] * 30), sampling())
    assert store.messages(session.conversation_id) == before
    assert engine.prompts == []


def test_an_engine_that_cannot_tell_its_context_sends_everything(
    store: ConversationStore,
) -> None:
    session, engine = session_with(store, context=None)
    add_exchanges(store, session.conversation_id, "alpha", "bravo", "charlie")
    session.send("what now", sampling()).wait(5)
    assert engine.prompt_tokens(engine.prompts[0]) == FULL_PROMPT
