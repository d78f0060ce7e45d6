"""The conversation list when refreshes overlap: the newest choice wins."""

from __future__ import annotations

import asyncio
import builtins
import threading
from pathlib import Path

from pytestqt.qtbot import QtBot

from app.chat.conversations import Conversation, ConversationStore
from app.store.database import Database
from ui.chat.conversation_list import ConversationList


class SlowFirstListing(ConversationStore):
    """A store whose first listing waits until the test lets it go (a slow disk, a busy worker)."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self.release = threading.Event()
        self._first = True

    def list(self, search: str = "") -> builtins.list[Conversation]:
        if self._first:
            self._first = False
            self.release.wait(10)
        return super().list(search)


def test_a_slow_stale_listing_does_not_undo_a_newer_choice(
    qtbot: QtBot, qt_loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    store = SlowFirstListing(Database(tmp_path / "app.db"))
    older = store.create("older")
    wanted = store.create("wanted")
    conversations = ConversationList(lambda: store)
    qtbot.addWidget(conversations)
    chosen: list[int] = []
    conversations.chosen.connect(chosen.append)

    conversations.refresh()  # the page's first listing: blocked in the store
    conversations.refresh(select=older.id)  # then the user (or a test) picks one
    conversations.refresh(select=wanted.id)
    qtbot.waitUntil(lambda: conversations.titles() != [], timeout=10_000)
    store.release.set()  # the stale listing comes back last
    qtbot.wait(200)
    qtbot.waitUntil(lambda: conversations.current_id == wanted.id, timeout=10_000)
    qtbot.wait(200)

    assert conversations.current_id == wanted.id
    assert chosen[-1] == wanted.id
    assert -1 not in chosen
    assert conversations.view.currentItem().text() == "wanted"
