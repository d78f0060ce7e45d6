"""The conversations, most recent first: new, rename (double-click or F2), delete, search.

Every store call runs on a worker thread; searching waits for a pause in typing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.chat.conversations import NEW_CONVERSATION_TITLE
from app.errors import AppError
from ui.tasks import run_blocking, spawn
from ui.widgets import plain_html

if TYPE_CHECKING:
    from app.chat.conversations import Conversation, ConversationStore

IdRole = Qt.ItemDataRole.UserRole
SEARCH_PAUSE_MS = 250


class ConversationList(QWidget):
    """Lists, creates, renames and deletes conversations; says which one is chosen."""

    chosen = Signal(int)  # a conversation id, or -1 when none is left
    listed = Signal(int)  # how many are listed, after each refresh
    renamed = Signal(int, str)  # a conversation id and its new title, once stored
    failed = Signal(str)  # a store error, for the status line

    def __init__(
        self, store: Callable[[], ConversationStore], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._store = store  # may block on first use: call it on a worker
        self._current: int | None = None
        # Refreshes overlap (the page's first listing, a search, a new conversation): only
        # the latest one started shows its result, and a selection asked of an earlier one
        # waits for it, so a slow stale listing never undoes a newer choice.
        self._listing = 0
        self._pending_select: int | None = None
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search conversations")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search conversations")
        self.new_button = QPushButton("New")
        self.new_button.setToolTip("Start a new conversation")
        self.new_button.setAccessibleName("New conversation")
        self.delete_button = QPushButton("Delete…")
        self.delete_button.setAccessibleName("Delete conversation")
        self.delete_button.setEnabled(False)
        self.view = QListWidget()
        self.view.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.view.setUniformItemSizes(True)
        self.view.setAccessibleName("Conversations")
        self.view.setTabKeyNavigation(False)  # Tab leaves the list; arrows move within it
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.new_button)
        buttons.addStretch(1)
        buttons.addWidget(self.delete_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.search)
        layout.addLayout(buttons)
        layout.addWidget(self.view, 1)

        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_PAUSE_MS)
        self._search_timer.timeout.connect(self.refresh)
        self.search.textChanged.connect(self._search_timer.start)
        self.new_button.clicked.connect(self.new_conversation)
        self.delete_button.clicked.connect(self.delete_current)
        delete_key = QShortcut(QKeySequence(QKeySequence.StandardKey.Delete), self.view)
        delete_key.setContext(Qt.ShortcutContext.WidgetShortcut)
        delete_key.activated.connect(self.delete_current)
        self.search.installEventFilter(self)  # Esc empties it
        self.view.currentItemChanged.connect(self._current_changed)
        self.view.itemChanged.connect(self._renamed)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Esc in the search field empties it: the list shows every conversation again."""
        if (
            watched is self.search
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() == Qt.Key.Key_Escape
            and self.search.text()
        ):
            self.search.clear()
            return True
        return super().eventFilter(watched, event)

    @property
    def current_id(self) -> int | None:
        return self._current

    def titles(self) -> list[str]:
        return [self.view.item(row).text() for row in range(self.view.count())]

    def refresh(self, *, select: int | None = None) -> None:
        """List again (with the search applied); `select` picks a conversation."""
        spawn(self._refresh(select))

    def new_conversation(self) -> None:
        """Start a new, empty conversation and choose it."""
        spawn(self._create(NEW_CONVERSATION_TITLE))

    async def create_now(self, title: str) -> int:
        """Create a conversation, list it and choose it; returns its id."""
        return await self._create(title)

    def delete_current(self) -> None:
        """Delete the chosen conversation after asking."""
        item = self.view.currentItem()
        if item is None:
            return
        answer = QMessageBox.question(
            self,
            "Delete conversation",
            # Message boxes guess rich text; a title can be anything (a model may write it).
            plain_html(f"Delete “{item.text()}” and all its messages? This cannot be undone."),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,  # the default button: Enter must not delete
        )
        if answer == QMessageBox.StandardButton.Yes:
            spawn(self._delete(int(item.data(IdRole))))

    def set_title(self, conversation_id: int, title: str) -> None:
        """Show a new title (already stored) without storing it again."""
        item = self._item(conversation_id)
        if item is not None:
            self.view.blockSignals(True)
            item.setText(title)
            self.view.blockSignals(False)

    # -- internals -----------------------------------------------------------------------

    async def _refresh(self, select: int | None) -> None:
        if select is not None:
            self._pending_select = select
        self._listing += 1
        listing = self._listing
        try:
            conversations = await run_blocking(self._list, self.search.text())
        except AppError as exc:
            self.failed.emit(str(exc))
            return
        if listing != self._listing:
            return  # a later refresh is listing and will show its result
        select, self._pending_select = self._pending_select, None
        wanted = select if select is not None else self._current
        self.view.blockSignals(True)
        self.view.clear()
        for conversation in conversations:
            row = QListWidgetItem(conversation.title or NEW_CONVERSATION_TITLE)
            row.setData(IdRole, conversation.id)
            row.setToolTip(f"Last changed {conversation.updated_at[:16].replace('T', ' ')} UTC")
            row.setFlags(row.flags() | Qt.ItemFlag.ItemIsEditable)
            self.view.addItem(row)
        self.view.blockSignals(False)
        item = self._item(wanted) if wanted is not None else None
        if item is None and select is None and self._current is None and self.view.count():
            item = self.view.item(0)  # nothing chosen yet: the most recent one
        if item is not None:
            self.view.blockSignals(True)
            self.view.setCurrentItem(item)
            self.view.blockSignals(False)
        self.delete_button.setEnabled(item is not None)
        chosen = int(item.data(IdRole)) if item is not None else None
        if chosen != self._current and (item is not None or not self.search.text().strip()):
            # A search that hides the open conversation does not close it.
            self._current = chosen
            self.chosen.emit(chosen if chosen is not None else -1)
        self.listed.emit(self.view.count())

    def _list(self, search: str) -> list[Conversation]:
        return self._store().list(search)

    async def _create(self, title: str) -> int:
        conversation = await run_blocking(lambda: self._store().create(title))
        if self.search.text():
            self.search.blockSignals(True)
            self.search.clear()
            self.search.blockSignals(False)
        await self._refresh(conversation.id)
        return conversation.id

    async def _delete(self, conversation_id: int) -> None:
        await run_blocking(lambda: self._store().delete(conversation_id))
        if self._current == conversation_id:
            self._current = None
        await self._refresh(None)
        if self._current is None:
            self.chosen.emit(-1)

    def _current_changed(self, item: QListWidgetItem | None) -> None:
        self.delete_button.setEnabled(item is not None)
        if item is None:
            return
        conversation_id = int(item.data(IdRole))
        if conversation_id != self._current:
            self._current = conversation_id
            self.chosen.emit(conversation_id)

    def _renamed(self, item: QListWidgetItem) -> None:
        title = " ".join(item.text().split())
        conversation_id = int(item.data(IdRole))
        if not title:
            self.refresh()  # an empty title is not stored: show the old one again
            return
        spawn(self._rename(conversation_id, title))

    async def _rename(self, conversation_id: int, title: str) -> None:
        try:
            await run_blocking(lambda: self._store().rename(conversation_id, title))
        except AppError as exc:
            self.failed.emit(str(exc))
            return
        self.set_title(conversation_id, title)
        self.renamed.emit(conversation_id, title)

    def _item(self, conversation_id: int) -> QListWidgetItem | None:
        for row in range(self.view.count()):
            item = self.view.item(row)
            if int(item.data(IdRole)) == conversation_id:
                return item
        return None
