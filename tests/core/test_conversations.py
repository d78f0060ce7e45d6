"""Conversations in the app database: CRUD, search, streaming replies that survive a killed
process, presets per model, Markdown and JSON export, and the upgrade from schema version 4."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.chat.conversations import (
    Conversation,
    ConversationNotFoundError,
    ConversationStore,
    MessageNotFoundError,
    MessageState,
    ModelRef,
    Role,
    VersionNotFoundError,
    title_from_message,
)
from app.chat.export import export_json, export_markdown
from app.llm.stats import GenerationStats
from app.store import Database
from app.store.database import _MIGRATIONS

REPO_ROOT = Path(__file__).resolve().parents[2]
SHA = "a" * 64
LOCAL_MODEL = ModelRef.local(
    path="/models/llama-3-8b.Q4_K_M.gguf",
    name="Llama 3 8B Q4_K_M",
    sha256=SHA,
    repo_id="org/llama-3-8b-GGUF",
)
SETTINGS = {"temperature": 0.7, "top_p": 0.9, "load": {"n_ctx": 4096, "n_gpu_layers": -1}}


class TickingClock:
    """A clock that moves one second on every reading, so order never hangs on timing."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def store(database: Database) -> ConversationStore:
    return ConversationStore(database, clock=TickingClock())


def new_conversation(store: ConversationStore, title: str = "Chat") -> Conversation:
    return store.create(title, system_prompt="Be brief.", model=LOCAL_MODEL, settings=SETTINGS)


def message_count(database: Database) -> int:
    row = database.fetch_one("SELECT COUNT(*) FROM messages")
    assert row is not None
    return int(row[0])


# --- conversations ----------------------------------------------------------------------------


def test_a_created_conversation_reads_back_the_same(store: ConversationStore) -> None:
    created = new_conversation(store)

    assert store.get(created.id) == created
    assert created.model == LOCAL_MODEL
    assert created.settings == SETTINGS
    assert created.system_prompt == "Be brief."
    assert created.created_at == created.updated_at
    assert store.messages(created.id) == []


def test_a_conversation_without_a_model_reads_back(store: ConversationStore) -> None:
    created = store.create("Draft")

    assert store.get(created.id).model is None
    assert store.get(created.id).settings == {}


def test_rename_and_setters_change_one_field_each(store: ConversationStore) -> None:
    created = new_conversation(store)
    remote = ModelRef.remote(url="http://localhost:8080/v1", name="qwen2.5-7b")

    store.rename(created.id, "Renamed")
    store.set_system_prompt(created.id, "Answer in French.")
    store.set_settings(created.id, {"temperature": 0.2})
    store.set_model(created.id, remote)

    again = store.get(created.id)
    assert (again.title, again.system_prompt, again.settings, again.model) == (
        "Renamed",
        "Answer in French.",
        {"temperature": 0.2},
        remote,
    )
    assert again.created_at == created.created_at
    assert again.updated_at > created.updated_at

    store.set_model(created.id, None)
    assert store.get(created.id).model is None


def test_a_missing_conversation_is_a_lookup_error(store: ConversationStore) -> None:
    gone = new_conversation(store)
    store.delete(gone.id)

    with pytest.raises(ConversationNotFoundError) as caught:
        store.get(gone.id)
    assert isinstance(caught.value, LookupError)
    assert caught.value.conversation_id == gone.id
    for call in (
        lambda: store.rename(gone.id, "x"),
        lambda: store.set_settings(gone.id, {}),
        lambda: store.messages(gone.id),
        lambda: store.append_message(gone.id, Role.USER, "hello"),
        lambda: store.add_marker(gone.id, dropped=2),
        lambda: store.truncate_from(gone.id, 0),
    ):
        with pytest.raises(ConversationNotFoundError):
            call()
    store.delete(gone.id)  # deleting twice is no error


def test_the_list_is_newest_activity_first(store: ConversationStore) -> None:
    first = new_conversation(store, "first")
    second = new_conversation(store, "second")
    third = new_conversation(store, "third")
    assert [c.title for c in store.list()] == ["third", "second", "first"]

    store.append_message(first.id, Role.USER, "back to this one")
    assert [c.id for c in store.list()] == [first.id, third.id, second.id]

    store.rename(second.id, "second, renamed")
    assert [c.id for c in store.list()] == [second.id, first.id, third.id]


def test_the_list_breaks_ties_by_newest_id(database: Database) -> None:
    frozen = datetime(2024, 1, 1, tzinfo=UTC)
    store = ConversationStore(database, clock=lambda: frozen)
    ids = [store.create(f"c{n}").id for n in range(3)]

    assert [c.id for c in store.list()] == ids[::-1]


def test_search_matches_titles_and_messages_ignoring_case(store: ConversationStore) -> None:
    pasta = new_conversation(store, "Pasta recipes")
    rust = new_conversation(store, "Borrow checker")
    store.append_message(rust.id, Role.USER, "Why does the BORROW checker complain?")
    store.append_message(rust.id, Role.ASSISTANT, "Because of Lifetimes.")
    new_conversation(store, "Empty")

    assert [c.id for c in store.list("pasta")] == [pasta.id]
    assert [c.id for c in store.list("lifetimes")] == [rust.id]
    assert [c.id for c in store.list("  borrow ")] == [rust.id]  # title and message: once
    assert store.list("nothing like this") == []
    assert len(store.list("")) == len(store.list("   ")) == 3


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("100%", ["100% sure"]),
        ("%", ["100% sure"]),
        ("a_b", ["a_b"]),
        ("_", ["a_b"]),
        ("c\\d", ["c\\d"]),
    ],
)
def test_search_treats_like_wildcards_as_text(
    store: ConversationStore, query: str, expected: list[str]
) -> None:
    for title in ("100% sure", "1000 sure", "a_b", "axb", "c\\d", "cd"):
        new_conversation(store, title)
    in_message = new_conversation(store, "plain")
    store.append_message(in_message.id, Role.USER, "nothing special")

    assert [c.title for c in store.list(query)] == expected


# --- messages ---------------------------------------------------------------------------------


def test_messages_come_back_in_order_with_positions(store: ConversationStore) -> None:
    conversation = new_conversation(store)
    texts = ["hi", "hello!", "how are you?", "fine."]
    for n, text in enumerate(texts):
        store.append_message(conversation.id, Role.USER if n % 2 == 0 else Role.ASSISTANT, text)

    messages = store.messages(conversation.id)
    assert [m.content for m in messages] == texts
    assert [m.position for m in messages] == [0, 1, 2, 3]
    assert [m.role for m in messages] == [Role.USER, Role.ASSISTANT] * 2
    assert {m.state for m in messages} == {MessageState.COMPLETE}
    assert store.get(conversation.id).updated_at == messages[-1].created_at


def test_appending_a_marker_as_a_message_is_refused(store: ConversationStore) -> None:
    conversation = new_conversation(store)

    with pytest.raises(ValueError, match="add_marker"):
        store.append_message(conversation.id, Role.MARKER, "x")
    with pytest.raises(ValueError, match="at least one"):
        store.add_marker(conversation.id, dropped=0)


def test_deleting_a_conversation_deletes_its_messages(
    store: ConversationStore, database: Database
) -> None:
    kept = new_conversation(store, "kept")
    gone = new_conversation(store, "gone")
    for conversation in (kept, gone):
        store.append_message(conversation.id, Role.USER, "question")
        store.append_message(conversation.id, Role.ASSISTANT, "answer")

    store.delete(gone.id)

    assert message_count(database) == 2
    assert [c.id for c in store.list()] == [kept.id]
    assert len(store.messages(kept.id)) == 2


def test_truncate_from_deletes_that_message_and_later_ones(store: ConversationStore) -> None:
    conversation = new_conversation(store)
    for n in range(5):
        store.append_message(conversation.id, Role.USER if n % 2 == 0 else Role.ASSISTANT, f"m{n}")

    assert store.truncate_from(conversation.id, 2) == 3
    assert [m.content for m in store.messages(conversation.id)] == ["m0", "m1"]

    edited = store.append_message(conversation.id, Role.USER, "m2, edited")
    assert edited.position == 2  # positions carry on where the kept ones end
    assert store.truncate_from(conversation.id, 10) == 0
    assert store.truncate_from(conversation.id, 0) == 3
    assert store.messages(conversation.id) == []


def test_a_marker_records_dropped_turns_and_is_not_searched(store: ConversationStore) -> None:
    conversation = new_conversation(store)
    store.append_message(conversation.id, Role.USER, "one")
    store.append_message(conversation.id, Role.ASSISTANT, "two")

    marker = store.add_marker(conversation.id, dropped=2)

    assert (marker.role, marker.position, marker.dropped) == (Role.MARKER, 2, 2)
    assert marker.content == "2 earlier messages were left out here to fit the model's context."
    assert store.messages(conversation.id)[-1] == marker
    assert store.list("left out") == []
    assert store.add_marker(conversation.id, dropped=1).content.startswith("1 earlier message ")


def test_a_marker_can_go_before_the_first_turn_still_sent(store: ConversationStore) -> None:
    conversation = new_conversation(store)
    for n in range(4):
        store.append_message(conversation.id, Role.USER if n % 2 == 0 else Role.ASSISTANT, f"m{n}")

    marker = store.add_marker(
        conversation.id, dropped=2, before_position=2, text="2 turns dropped to fit"
    )

    messages = store.messages(conversation.id)
    assert [(m.position, m.content) for m in messages] == [
        (0, "m0"),
        (1, "m1"),
        (2, "2 turns dropped to fit"),
        (3, "m2"),
        (4, "m3"),
    ]
    assert messages[2] == marker
    assert store.append_message(conversation.id, Role.USER, "next").position == 5
    beyond = store.add_marker(conversation.id, dropped=1, before_position=99)
    assert beyond.position == 6


def test_roles_and_states_may_be_given_as_text(store: ConversationStore) -> None:
    conversation = new_conversation(store)
    store.append_message(conversation.id, "user", "hi")
    reply = store.append_message(conversation.id, "assistant", "", state="streaming")

    finished = store.finish_message(
        reply.id,
        content="hello",
        state="complete",
        stats=GenerationStats(prompt_tokens=3, generated_tokens=1, finish_reason="stop"),
    )

    assert (reply.role, reply.state) == (Role.ASSISTANT, MessageState.STREAMING)
    assert finished.stats == GenerationStats(
        prompt_tokens=3, generated_tokens=1, finish_reason="stop"
    )
    with pytest.raises(ValueError):
        store.append_message(conversation.id, "wizard", "x")
    with pytest.raises(ValueError):
        store.append_message(conversation.id, "user", "x", state="pondering")


def test_a_streamed_reply_is_flushed_then_finished(store: ConversationStore) -> None:
    conversation = new_conversation(store)
    store.append_message(conversation.id, Role.USER, "count to three")
    reply = store.append_message(conversation.id, Role.ASSISTANT, "", state=MessageState.STREAMING)

    store.update_content(reply.id, "one")
    store.update_content(reply.id, "one, two")
    flushed = store.messages(conversation.id)[-1]
    assert (flushed.content, flushed.state) == ("one, two", MessageState.STREAMING)
    assert flushed.updated_at > reply.updated_at

    stats = GenerationStats(
        prompt_tokens=12,
        generated_tokens=5,
        time_to_first_token_s=0.25,
        tokens_per_second=31.5,
        duration_s=0.4,
        finish_reason="stop",
        model="Llama 3 8B Q4_K_M",
        settings={"temperature": 0.7},
    )
    finished = store.finish_message(
        reply.id, content="one, two, three", state=MessageState.COMPLETE, stats=stats
    )

    assert store.messages(conversation.id)[-1] == finished
    assert (finished.content, finished.state, finished.stats) == (
        "one, two, three",
        MessageState.COMPLETE,
        stats,
    )
    assert store.get(conversation.id).updated_at == finished.updated_at

    store.update_content(reply.id, "a late flush")  # ignored: the reply is finished
    assert store.messages(conversation.id)[-1].content == "one, two, three"


def test_a_failed_reply_keeps_its_error(store: ConversationStore) -> None:
    conversation = new_conversation(store)
    reply = store.append_message(conversation.id, Role.ASSISTANT, "", state=MessageState.STREAMING)

    failed = store.finish_message(
        reply.id, content="partial", state=MessageState.ERROR, error="The engine stopped."
    )

    assert (failed.state, failed.error, failed.stats) == (
        MessageState.ERROR,
        "The engine stopped.",
        None,
    )


def test_finishing_a_missing_or_streaming_message_is_refused(store: ConversationStore) -> None:
    conversation = new_conversation(store)
    reply = store.append_message(conversation.id, Role.ASSISTANT, "", state=MessageState.STREAMING)

    with pytest.raises(ValueError, match="streaming"):
        store.finish_message(reply.id, content="x", state=MessageState.STREAMING)
    store.truncate_from(conversation.id, 0)
    with pytest.raises(MessageNotFoundError) as caught:
        store.finish_message(reply.id, content="x", state=MessageState.CANCELLED)
    assert isinstance(caught.value, LookupError)


def test_stats_of_the_wrong_type_are_dropped() -> None:
    stats = GenerationStats.from_json(
        {"prompt_tokens": "12", "generated_tokens": 3, "tokens_per_second": True, "model": 5}
    )

    assert stats == GenerationStats(generated_tokens=3)
    assert GenerationStats.from_json([1, 2]) is None
    assert GenerationStats().to_json() == {}


def test_recover_interrupted_keeps_the_text(store: ConversationStore) -> None:
    conversation = new_conversation(store)
    reply = store.append_message(conversation.id, Role.ASSISTANT, "", state=MessageState.STREAMING)
    store.update_content(reply.id, "half a sen")
    done = store.append_message(conversation.id, Role.USER, "done")

    assert store.recover_interrupted() == 1
    assert store.recover_interrupted() == 0
    recovered, untouched = store.messages(conversation.id)
    assert (recovered.state, recovered.content) == (MessageState.INTERRUPTED, "half a sen")
    assert untouched == done


# A process that streams a reply into the database forever, flushing every 10 ms.
STREAMER = """
import sys, time
from pathlib import Path
from app.chat.conversations import ConversationStore, MessageState, Role
from app.store import Database

store = ConversationStore(Database(Path(sys.argv[1])))
reply = store.append_message(int(sys.argv[2]), Role.ASSISTANT, "", state=MessageState.STREAMING)
text = ""
n = 0
while True:
    text += f"tok{n} "
    n += 1
    store.update_content(reply.id, text)
    time.sleep(0.01)
"""


def read_reply(path: Path) -> str | None:
    with closing(sqlite3.connect(path)) as connection:
        row = connection.execute("SELECT content FROM messages WHERE role = 'assistant'").fetchone()
    return None if row is None else str(row[0])


def test_a_reply_survives_its_process_being_killed_mid_stream(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite3"
    database = Database(path)
    conversation = new_conversation(ConversationStore(database))
    database.close()

    process = subprocess.Popen(
        [sys.executable, "-c", STREAMER, str(path), str(conversation.id)],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        seen = None
        while not (seen and seen.count("tok") >= 5):
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the streamer wrote nothing"
            time.sleep(0.01)
            seen = read_reply(path)
    finally:
        process.kill()  # SIGKILL: no handler, no cleanup, maybe mid-statement
        process.communicate()
    assert process.returncode == -9
    last_flushed = read_reply(path)
    assert last_flushed is not None
    assert last_flushed.startswith(seen)

    reopened = Database(path)
    try:
        store = ConversationStore(reopened)
        assert store.recover_interrupted() == 1
        reply = store.messages(conversation.id)[-1]
        assert reply.state is MessageState.INTERRUPTED
        assert reply.content == last_flushed
        count = last_flushed.count("tok")
        assert reply.content == "".join(f"tok{n} " for n in range(count))  # no torn write
        assert store.recover_interrupted() == 0
    finally:
        reopened.close()


# --- presets ----------------------------------------------------------------------------------


def test_presets_round_trip_per_model(store: ConversationStore) -> None:
    other = ModelRef.local(path="/models/other.gguf", name="Other")
    assert store.load_preset(LOCAL_MODEL.preset_key) is None

    store.save_preset(LOCAL_MODEL.preset_key, SETTINGS)
    store.save_preset(other.preset_key, {"temperature": 1.0})
    assert store.load_preset(LOCAL_MODEL.preset_key) == SETTINGS

    store.save_preset(LOCAL_MODEL.preset_key, {"temperature": 0.1, "label": "präzise"})
    assert store.load_preset(LOCAL_MODEL.preset_key) == {"temperature": 0.1, "label": "präzise"}
    assert store.load_preset(other.preset_key) == {"temperature": 1.0}

    store.delete_preset(LOCAL_MODEL.preset_key)
    assert store.load_preset(LOCAL_MODEL.preset_key) is None


def test_preset_keys_prefer_the_sha256() -> None:
    moved = ModelRef.local(path="/elsewhere/x.gguf", name="Llama", sha256=SHA)

    assert moved.preset_key == LOCAL_MODEL.preset_key == f"sha256:{SHA}"
    assert ModelRef.local(path="/m/x.gguf", name="x").preset_key == "path:/m/x.gguf"
    assert ModelRef.remote(url="http://h/v1", name="m").preset_key == "remote:http://h/v1#m"


# --- titles -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("What is a GGUF file?", "What is a GGUF file?"),
        ("\n\n  Explain   this:\nsecond line", "Explain this:"),
        (
            "Please write a long story about a dragon who learns to bake bread",
            "Please write a long story about a…",
        ),
        ("x" * 60, "x" * 39 + "…"),
        ("   \n ", "New conversation"),
    ],
)
def test_title_from_the_first_message(text: str, title: str) -> None:
    assert title_from_message(text) == title
    assert len(title_from_message(text)) <= 40


# --- export -----------------------------------------------------------------------------------


@pytest.fixture
def full_conversation(store: ConversationStore) -> Conversation:
    conversation = new_conversation(store, "Über GGUF")
    store.append_message(conversation.id, Role.USER, "What is GGUF?")
    reply = store.append_message(conversation.id, Role.ASSISTANT, "", state=MessageState.STREAMING)
    store.finish_message(
        reply.id,
        content="A file format for llama.cpp.",
        state=MessageState.COMPLETE,
        stats=GenerationStats(
            prompt_tokens=20, generated_tokens=8, time_to_first_token_s=0.31, tokens_per_second=42
        ),
    )
    store.add_marker(conversation.id, dropped=2)
    store.append_message(conversation.id, Role.USER, "And safetensors?")
    cut = store.append_message(conversation.id, Role.ASSISTANT, "", state=MessageState.STREAMING)
    store.update_content(cut.id, "Safetensors is")
    store.recover_interrupted()
    return store.get(conversation.id)


def test_markdown_export_reads_like_the_chat(
    store: ConversationStore, full_conversation: Conversation
) -> None:
    text = export_markdown(full_conversation, store.messages(full_conversation.id))

    assert text.startswith("# Über GGUF\n\n- **Model:** Llama 3 8B Q4_K_M · from org/llama-3-8b")
    assert f"sha256 `{SHA}`" in text
    assert "temperature 0.7 · top_p 0.9 · load.n_ctx 4096 · load.n_gpu_layers -1" in text
    assert "## System prompt\n\nBe brief." in text
    assert "## User\n\nWhat is GGUF?\n\n## Assistant\n\nA file format for llama.cpp." in text
    assert "*20 prompt tokens · 8 tokens generated · 0.31 s to first token · 42.0 tokens/s*" in text
    assert "> *2 earlier messages were left out here to fit the model's context.*" in text
    assert (
        "Safetensors is\n\n*(Interrupted: the app stopped before this reply was finished.)*" in text
    )
    assert text.index("llama.cpp.") < text.index("> *2 earlier") < text.index("And safetensors?")
    assert text.endswith("finished.)*\n")
    assert "\n\n\n" not in text


def test_markdown_export_of_an_error_and_no_model(store: ConversationStore) -> None:
    conversation = store.create("Broken")
    reply = store.append_message(conversation.id, Role.ASSISTANT, "", state=MessageState.STREAMING)
    store.finish_message(reply.id, content="", state=MessageState.ERROR, error="Out of memory.")

    text = export_markdown(store.get(conversation.id), store.messages(conversation.id))

    assert "- **Model:** none chosen" in text
    assert "Settings" not in text
    assert text.endswith("## Assistant\n\n*(Error: Out of memory.)*\n")


def test_json_export_is_a_versioned_document(
    store: ConversationStore, full_conversation: Conversation
) -> None:
    messages = store.messages(full_conversation.id)
    text = export_json(full_conversation, messages)
    document = json.loads(text)

    assert list(document) == [
        "format",
        "version",
        "title",
        "created_at",
        "updated_at",
        "model",
        "settings",
        "system_prompt",
        "messages",
    ]
    assert (document["format"], document["version"]) == ("modeldeck.conversation", 1)
    assert document["title"] == "Über GGUF"
    assert "Über GGUF" in text  # ensure_ascii=False
    assert document["created_at"] == full_conversation.created_at
    assert document["model"] == {
        "kind": "local",
        "name": "Llama 3 8B Q4_K_M",
        "path": "/models/llama-3-8b.Q4_K_M.gguf",
        "sha256": SHA,
        "repo_id": "org/llama-3-8b-GGUF",
    }
    assert document["settings"] == SETTINGS
    assert document["system_prompt"] == "Be brief."
    assert [(m["role"], m["state"]) for m in document["messages"]] == [
        ("user", "complete"),
        ("assistant", "complete"),
        ("marker", "complete"),
        ("user", "complete"),
        ("assistant", "interrupted"),
    ]
    assert document["messages"][1]["stats"] == {
        "generated_tokens": 8,
        "prompt_tokens": 20,
        "time_to_first_token_s": 0.31,
        "tokens_per_second": 42.0,
    }
    assert document["messages"][2]["dropped"] == 2
    assert document["messages"][4]["content"] == "Safetensors is"
    assert text.startswith('{\n  "format": "modeldeck.conversation",\n  "version": 1,')
    assert export_json(full_conversation, messages) == text  # the same input, the same text


def test_json_export_of_a_remote_model(store: ConversationStore) -> None:
    remote = ModelRef.remote(url="http://localhost:11434/v1", name="qwen2.5")
    conversation = store.create("Remote", model=remote)

    document = json.loads(export_json(conversation, []))

    assert document["model"] == {"kind": "remote", "name": "qwen2.5", "url": remote.url}
    assert ModelRef.from_json(document["model"]) == remote
    assert document["messages"] == []


# --- the schema -------------------------------------------------------------------------------


def test_a_version_4_database_upgrades_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite3"
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        for number, script in enumerate(_MIGRATIONS[:4], start=1):
            connection.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
        connection.execute(
            "INSERT INTO download_jobs (endpoint, repo_id, revision, label, state, created_at, "
            "ref) VALUES ('https://hub', 'org/m', 'abc', 'Q4', 'queued', '2024-01-01', 'main')"
        )
        connection.execute("INSERT INTO settings VALUES ('answer', '42')")

    database = Database(path)
    try:
        (version,) = database.fetch_one("PRAGMA user_version") or (0,)
        assert version == len(_MIGRATIONS) >= 5
        assert database.get_setting("answer") == 42
        assert database.fetch_one("SELECT repo_id, ref FROM download_jobs") == ("org/m", "main")

        store = ConversationStore(database)
        conversation = new_conversation(store)
        store.append_message(conversation.id, Role.USER, "hello")
        store.save_preset("k", {"a": 1})
        store.delete(conversation.id)
        assert message_count(database) == 0  # foreign keys cascade in the upgraded file
        assert store.load_preset("k") == {"a": 1}
    finally:
        database.close()


# -- versions of a reply ---------------------------------------------------------------------


def test_a_new_version_keeps_the_reply_it_replaces_and_either_can_be_chosen(
    store: ConversationStore,
) -> None:
    conversation = new_conversation(store)
    store.append_message(conversation.id, Role.USER, "Hi")
    reply = store.append_message(conversation.id, Role.ASSISTANT, "first")
    stats = GenerationStats(generated_tokens=3)
    store.finish_message(reply.id, content="first", state=MessageState.COMPLETE, stats=stats)

    streaming = store.new_version(reply.id)
    assert (streaming.id, streaming.position) == (reply.id, reply.position)
    assert (streaming.content, streaming.state, streaming.stats) == (
        "",
        MessageState.STREAMING,
        None,
    )
    assert (streaming.version, streaming.versions) == (2, 2)
    store.finish_message(reply.id, content="second", state=MessageState.COMPLETE)

    back = store.choose_version(reply.id, 1)
    assert (back.content, back.stats, back.version, back.versions) == ("first", stats, 1, 2)
    assert store.messages(conversation.id)[-1] == back  # the one shown is the one stored
    again = store.choose_version(reply.id, 2)
    assert (again.content, again.version, again.versions) == ("second", 2, 2)
    # A third version is numbered after the last, whichever was shown.
    store.choose_version(reply.id, 1)
    third = store.new_version(reply.id)
    assert (third.version, third.versions) == (3, 3)


def test_versions_refuse_what_cannot_be_done(store: ConversationStore) -> None:
    conversation = new_conversation(store)
    question = store.append_message(conversation.id, Role.USER, "Hi")
    reply = store.append_message(conversation.id, Role.ASSISTANT, "", state="streaming")
    with pytest.raises(ValueError, match="only a reply"):
        store.new_version(question.id)
    with pytest.raises(ValueError, match="streaming"):
        store.new_version(reply.id)
    with pytest.raises(ValueError, match="streaming"):
        store.choose_version(reply.id, 1)
    store.finish_message(reply.id, content="done", state=MessageState.COMPLETE)
    with pytest.raises(VersionNotFoundError):
        store.choose_version(reply.id, 5)
    with pytest.raises(MessageNotFoundError):
        store.new_version(reply.id + 100)


def test_deleting_a_conversation_deletes_the_versions_of_its_replies(
    store: ConversationStore, database: Database
) -> None:
    conversation = new_conversation(store)
    store.append_message(conversation.id, Role.USER, "Hi")
    reply = store.append_message(conversation.id, Role.ASSISTANT, "first")
    store.new_version(reply.id)
    store.delete(conversation.id)
    assert database.fetch_one("SELECT COUNT(*) FROM reply_versions") == (0,)
