"""The Library page: scanning, drag and drop onto the window, deleting with a plan."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot

from app.core import Core
from tests.support.gguf_builder import write_gguf
from ui.main_window import MainWindow


def drop_on(window: MainWindow, paths: list[Path]) -> None:
    """What the file manager does when files are dropped on the window."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    centre = window.rect().center()
    enter = QDragEnterEvent(
        centre,  # a QPoint: PySide6 before 6.12 takes no QPointF here
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(
        QPointF(centre),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, drop)
    assert drop.isAccepted()


def test_dropping_files_imports_them_in_place(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    gguf = write_gguf(tmp_path / "drop" / "tiny-Q8_0.gguf")
    pickle_file = tmp_path / "drop" / "model.ckpt"
    pickle_file.write_bytes(b"\x80\x04K\x01.")
    page = window.library
    with qtbot.waitSignal(page.imported, timeout=20_000) as imported:
        drop_on(window, [gguf, pickle_file])
    assert imported.args == [1, 1]
    assert window.pages.currentWidget() is page
    names = [page.model.item(row).name for row in range(page.model.rowCount())]  # type: ignore[union-attr]
    assert any("tiny" in name.lower() for name in names), names
    assert "pickle" in page.status.text()
    assert gguf.exists()  # used in place, never moved
    assert not (Path(window.library._core.database.path).parent / gguf.name).exists()


def test_a_drag_of_non_files_is_refused(window: MainWindow) -> None:
    mime = QMimeData()
    mime.setText("just text")
    enter = QDragEnterEvent(
        QPoint(5, 5),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, enter)
    assert not enter.isAccepted()


def test_delete_asks_with_the_plan_then_frees_the_space(
    qtbot: QtBot, window: MainWindow, core: Core, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gguf = write_gguf(tmp_path / "models" / "tiny-Q8_0.gguf")
    page = window.library
    with qtbot.waitSignal(page.imported, timeout=20_000):
        page.import_paths([gguf])
    asked: list[str] = []

    def answer_yes(
        parent: object, title: str, text: str, *args: object
    ) -> QMessageBox.StandardButton:
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer_yes)
    page.view.selectRow(0)
    with qtbot.waitSignal(page.scanned, timeout=20_000):
        page.delete_button.click()
    assert asked and "frees" in asked[0]
    assert page.model.rowCount() == 0
