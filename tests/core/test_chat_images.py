"""Images in a chat session, for real: kept content-addressed beside the database, listed with
the message, sent again with every later turn, and exported as links (Markdown) and sha256s
(JSON). The engine is llama.cpp with the tiny projector."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from app.chat.conversations import ConversationStore
from app.chat.export import export_json, export_markdown
from app.chat.image_store import ChatImageMissingError, ChatImageStore, StoredImage
from app.chat.local import LocalChatEngine
from app.chat.session import ChatSession, ReplyState
from app.chat.vision import ImageAttachment, VisionError
from app.llm.messages import LoadSettings
from app.llm.sampling import Sampling
from app.store import Database
from app.tiny_gguf import write_projector
from tests.support.gguf_builder import SCRIPTED_REPLY, ScriptedGgufs

IMAGE_TOKENS = 16


def png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(buffer, format="PNG")
    return buffer.getvalue()


RED, BLUE = png((255, 0, 0)), png((0, 0, 255))


@pytest.fixture(scope="module")
def engine(
    ggufs: ScriptedGgufs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalChatEngine]:
    projector = write_projector(tmp_path_factory.mktemp("chat-vision") / "mmproj-F16.gguf")
    engine = LocalChatEngine()
    engine.load(LoadSettings(path=ggufs.scripted_4k, context_length=2048, projector=projector))
    yield engine
    engine.close()


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "app.sqlite3")
    yield database
    database.close()


@pytest.fixture
def images(tmp_path: Path) -> ChatImageStore:
    return ChatImageStore(tmp_path / "chat-images")


def prompt_tokens(session: ChatSession, text: str, attached: list[ImageAttachment]) -> int:
    snapshot = session.send(text, Sampling(seed=1), images=attached).wait(60)
    assert snapshot.state is ReplyState.COMPLETE, snapshot
    assert snapshot.text == SCRIPTED_REPLY and snapshot.stats is not None
    assert snapshot.stats.prompt_tokens is not None
    return snapshot.stats.prompt_tokens


def test_images_are_stored_with_the_message_and_sent_with_later_turns(
    database: Database, images: ChatImageStore, engine: LocalChatEngine, tmp_path: Path
) -> None:
    store = ConversationStore(database)
    session = ChatSession(store, store.create("Look").id, engine, images)
    first = prompt_tokens(session, "What is red?", [ImageAttachment(RED, "red.png")])
    second = prompt_tokens(session, "And now?", [])
    user = store.messages(session.conversation_id)[0]
    red = hashlib.sha256(RED).hexdigest()
    assert user.images == (StoredImage(red, "red.png", ".png"),)
    assert images.path(user.images[0]) == tmp_path / "chat-images" / red[:2] / f"{red}.png"
    assert images.read(user.images[0]) == RED
    # The second turn still carries the first image: its prompt holds the whole conversation.
    text_only = ChatSession(store, store.create("Text").id, engine, images)
    plain_first = prompt_tokens(text_only, "What is red?", [])
    assert first == plain_first + IMAGE_TOKENS + 1  # the image and its line break
    plain_second = prompt_tokens(text_only, "And now?", [])
    assert second == plain_second + IMAGE_TOKENS + 1


def test_the_same_image_twice_is_one_file(
    database: Database, images: ChatImageStore, engine: LocalChatEngine
) -> None:
    store = ConversationStore(database)
    session = ChatSession(store, store.create("Twice").id, engine, images)
    prompt_tokens(session, "Two?", [ImageAttachment(BLUE, "a.png"), ImageAttachment(BLUE, "b.png")])
    files = [path for path in images.folder.rglob("*") if path.is_file()]
    assert [path.name for path in files] == [f"{hashlib.sha256(BLUE).hexdigest()}.png"]
    (user, _) = store.messages(session.conversation_id)
    assert [image.name for image in user.images] == ["a.png", "b.png"]


def test_images_survive_a_restart_and_are_exported(
    tmp_path: Path, images: ChatImageStore, engine: LocalChatEngine
) -> None:
    database = Database(tmp_path / "app.sqlite3")
    store = ConversationStore(database)
    conversation = store.create("Kept")
    prompt_tokens(
        ChatSession(store, conversation.id, engine, images),
        "What is it?",
        [ImageAttachment(RED, "red.png")],
    )
    database.close()

    reopened = Database(tmp_path / "app.sqlite3")
    try:
        store = ConversationStore(reopened)
        messages = store.messages(conversation.id)
        (image,) = messages[0].images
        assert ChatImageStore(tmp_path / "chat-images").read(image) == RED
        markdown = export_markdown(store.get(conversation.id), messages)
        assert f"![red.png](chat-images/{image.sha256[:2]}/{image.file_name})" in markdown
        document = json.loads(export_json(store.get(conversation.id), messages))
        assert document["messages"][0]["images"] == [
            {
                "name": "red.png",
                "sha256": image.sha256,
                "file": f"chat-images/{image.sha256[:2]}/{image.file_name}",
            }
        ]
    finally:
        reopened.close()


def test_a_text_model_refuses_images_and_keeps_nothing(
    database: Database, images: ChatImageStore, ggufs: ScriptedGgufs
) -> None:
    engine = LocalChatEngine()
    try:
        engine.load(LoadSettings(path=ggufs.scripted_4k, context_length=1024))
        store = ConversationStore(database)
        session = ChatSession(store, store.create("Blind").id, engine, images)
        with pytest.raises(VisionError, match="can't see images"):
            session.send("What is it?", Sampling(), images=[ImageAttachment(RED, "red.png")])
        assert store.messages(session.conversation_id) == []
        assert not images.folder.exists()
    finally:
        engine.close()


def test_a_missing_image_file_is_said(
    database: Database, images: ChatImageStore, engine: LocalChatEngine
) -> None:
    store = ConversationStore(database)
    session = ChatSession(store, store.create("Gone").id, engine, images)
    prompt_tokens(session, "Red?", [ImageAttachment(RED, "red.png")])
    (user, _) = store.messages(session.conversation_id)
    images.path(user.images[0]).unlink()
    with pytest.raises(ChatImageMissingError, match=r"red\.png is no longer in"):
        session.send("Again?", Sampling())
    assert len(store.messages(session.conversation_id)) == 2  # nothing half-added
