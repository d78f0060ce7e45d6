"""The Library page: scanning, drag and drop onto the window, deleting with a plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot

from tests.core.test_library_layouts import PICKLE_BYTES, gguf_bytes, write, write_diffusers
from tests.support.gguf_builder import write_gguf
from tests.support.hub_server import HubServer
from ui.library_model import BadgesRole
from ui.library_page import DISCOVER_BUTTON, LibraryPage, RowAction
from ui.main_window import MainWindow

TIMEOUT_MS = 20_000


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


def import_and_wait(qtbot: QtBot, page: LibraryPage, paths: list[Path]) -> None:
    with qtbot.waitSignal(page.imported, timeout=TIMEOUT_MS):
        page.import_paths(paths)


def shown_names(page: LibraryPage) -> list[str]:
    return [page.proxy.index(row, 0).data() for row in range(page.proxy.rowCount())]


def select_named(page: LibraryPage, name: str) -> None:
    row = shown_names(page).index(name)
    page.view.setCurrentIndex(page.proxy.index(row, 0))


def confirmation(qtbot: QtBot, page: LibraryPage) -> QMessageBox:
    qtbot.waitUntil(lambda: page.asking is not None and page.asking.isVisible(), timeout=TIMEOUT_MS)
    assert page.asking is not None
    return page.asking


def test_delete_asks_with_the_plan_and_enter_keeps_the_model(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    gguf = write_gguf(tmp_path / "models" / "tiny-Q8_0.gguf")
    page = window.library
    import_and_wait(qtbot, page, [gguf])
    page.view.selectRow(0)
    with qtbot.waitSignal(page.deleteFinished, timeout=TIMEOUT_MS) as finished:
        page.delete_button.click()
        box = confirmation(qtbot, page)
        assert "frees" in box.text() and str(gguf) in box.text()
        assert box.textFormat() is Qt.TextFormat.PlainText  # file names are never HTML
        assert box.defaultButton() is box.button(QMessageBox.StandardButton.No)
        qtbot.keyClick(box, Qt.Key.Key_Return)  # Enter: the default, which keeps it
    assert finished.args == [False]
    assert page.model.rowCount() == 1 and gguf.exists()
    assert "Nothing was deleted" in page.status.text()

    # Esc keeps it too; only the Delete button deletes (the import is forgotten; the file,
    # which was used in place, stays on disk unless asked).
    with qtbot.waitSignal(page.deleteFinished, timeout=TIMEOUT_MS) as finished:
        page.delete_button.click()
        qtbot.keyClick(confirmation(qtbot, page), Qt.Key.Key_Escape)
    assert finished.args == [False] and page.model.rowCount() == 1
    with qtbot.waitSignal(page.deleteFinished, timeout=TIMEOUT_MS) as finished:
        page.delete_button.click()
        box = confirmation(qtbot, page)
        delete = box.button(QMessageBox.StandardButton.Yes)
        assert delete.text() == "Delete"
        delete.click()
    assert finished.args == [True]
    assert page.model.rowCount() == 0


def test_models_are_sorted_by_name_a_to_z_whatever_the_case(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    folder = tmp_path / "models"
    paths = [
        write(folder / f"{name}.gguf", gguf_bytes(salt=salt))
        for salt, name in enumerate(["beta", "Alpha", "gamma", "alpha-2"])
    ]
    page = window.library
    import_and_wait(qtbot, page, paths)
    assert shown_names(page) == ["Alpha", "alpha-2", "beta", "gamma"]
    # Nothing was used yet: "Last used" is empty, never a file's access date.
    last_used = next(
        column
        for column in range(page.proxy.columnCount())
        if page.proxy.headerData(column, Qt.Orientation.Horizontal) == "Last used"
    )
    assert all(page.proxy.index(row, last_used).data() == "" for row in range(4))


def test_tab_leaves_the_table_and_esc_clears_the_filter(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    folder = tmp_path / "models"
    paths = [write(folder / f"m{salt}.gguf", gguf_bytes(salt=salt)) for salt in range(3)]
    page = window.library
    import_and_wait(qtbot, page, paths)
    assert not page.view.tabKeyNavigation()
    page.view.setFocus()
    page.view.setCurrentIndex(page.proxy.index(0, 0))
    qtbot.waitUntil(page.view.hasFocus)
    qtbot.keyClick(page.view, Qt.Key.Key_Down)  # arrows move within the table
    assert page.view.currentIndex().row() == 1
    qtbot.keyClick(page.view, Qt.Key.Key_Tab)
    qtbot.waitUntil(lambda: not page.view.hasFocus())
    assert page.view.currentIndex().row() == 1  # Tab did not move the selection

    page.filter.setFocus()
    qtbot.keyClicks(page.filter, "m1")
    assert page.proxy.rowCount() == 1
    qtbot.keyClick(page.filter, Qt.Key.Key_Escape)
    assert page.filter.text() == "" and page.proxy.rowCount() == 3
    for widget in (page.filter, page.view, *page.row_buttons.values(), page.import_button):
        assert widget.accessibleName()


def test_row_actions_as_buttons_and_a_context_menu(
    qtbot: QtBot, window: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gguf = write_gguf(tmp_path / "models" / "chatty-Q8_0.gguf")
    pipeline = write_diffusers(tmp_path / "models" / "painter")
    page = window.library
    import_and_wait(qtbot, page, [gguf, pipeline])
    select_named(page, "chatty-Q8_0")
    assert page.chat_button.isEnabled() and not page.images_button.isEnabled()
    menu = page.context_menu_for(shown_names(page).index("painter"))
    labels = [action.text() for action in menu.actions() if not action.isSeparator()]
    assert labels == [action.label for action in RowAction]
    enabled = {action.text(): action.isEnabled() for action in menu.actions()}
    assert enabled["Open in Images"] and not enabled["Chat with this"]
    with qtbot.waitSignal(page.imagesRequested, timeout=TIMEOUT_MS) as requested:
        page.row_actions[RowAction.IMAGES].trigger()
    assert requested.args == [pipeline]
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.images, timeout=TIMEOUT_MS)

    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    window.show_page(page)
    select_named(page, "chatty-Q8_0")
    page.show_button.click()
    qtbot.waitUntil(lambda: bool(opened), timeout=TIMEOUT_MS)
    assert opened == [QUrl.fromLocalFile(str(gguf.parent))]
    with qtbot.waitSignal(page.chatRequested, timeout=TIMEOUT_MS) as chat:
        page.chat_button.click()
    assert chat.args == [gguf]


def test_an_incomplete_pipeline_wears_a_badge_and_says_why(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    pipeline = write_diffusers(tmp_path / "models" / "half-sd")
    index = {
        "_class_name": "StableDiffusionPipeline",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "text_encoder": ["transformers", "CLIPTextModel"],
    }
    write(pipeline / "model_index.json", json.dumps(index).encode())
    write(pipeline / "text_encoder" / "config.json", b"{}")
    write(pipeline / "text_encoder" / "pytorch_model.bin", PICKLE_BYTES)
    page = window.library
    import_and_wait(qtbot, page, [pipeline])
    select_named(page, "half-sd")
    badges = page.proxy.index(0, 0).data(BadgesRole)
    assert [badge.text for badge in badges] == ["incomplete"]
    assert "text_encoder: only pickle weights" in page.selection_details.text()
    assert not page.images_button.isEnabled()  # it cannot run: not offered to Images


def test_an_empty_library_welcomes_with_one_way_forward(qtbot: QtBot, window: MainWindow) -> None:
    page = window.library
    with qtbot.waitSignal(page.scanned, timeout=TIMEOUT_MS):
        window.show_page(page)
        page.refresh()
    assert page.stack.currentWidget() is page.welcome
    assert page.discover_button.text() == DISCOVER_BUTTON
    page.discover_button.click()
    assert window.pages.currentWidget() is window.discover


def test_last_used_appears_once_chat_has_loaded_the_model(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    gguf = write_gguf(tmp_path / "models" / "used-Q8_0.gguf")
    page = window.library
    import_and_wait(qtbot, page, [gguf])
    assert page.model.entries()[0].last_used is None
    window.chat_with(gguf)
    # What the Chat panel says after a successful load (the engine itself is tested there).
    with qtbot.waitSignal(page.scanned, timeout=TIMEOUT_MS):
        window.chat.panel.loadFinished.emit(True)
    qtbot.waitUntil(lambda: page.model.entries()[0].last_used is not None, timeout=TIMEOUT_MS)


def test_verify_shows_provenance_and_reports_a_flipped_byte(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    import hashlib

    from tests.core.test_library_layouts import write_hf_repo

    data = gguf_bytes()
    core = window.library._core
    commit = "fedcba9876543210fedcba9876543210fedcba98"
    snapshot = write_hf_repo(
        core.settings.resolved_cache_dir(),
        "org/tiny-GGUF",
        {"tiny-Q4_K_M.gguf": data, "README.md": b"---\nlicense: mit\n---\n"},
        revision=commit,
    )
    page = window.library
    window.show_page(page)
    with qtbot.waitSignal(page.scanned, timeout=TIMEOUT_MS):
        page.refresh()
    select_named(page, "tiny-Q4_K_M")
    details = page.selection_details.text()
    assert "From org/tiny-GGUF" in details and f"commit {commit}" in details
    assert f"sha256: {hashlib.sha256(data).hexdigest()}" in details
    assert "License: mit (as at download" in details and "Verified: never" in details
    assert page.verify_button.isEnabled()
    menu = page.context_menu_for(shown_names(page).index("tiny-Q4_K_M"))
    assert "Verify" in [action.text() for action in menu.actions()]

    progress: list[tuple[str, int]] = []
    page._verifyProgress.connect(lambda name, percent: progress.append((name, percent)))
    with qtbot.waitSignal(page.verifyFinished, timeout=TIMEOUT_MS) as finished:
        page.verify_button.click()
        assert page.status.text().startswith("Verifying tiny-Q4_K_M…")
        assert not page.verify_button.isEnabled()  # one check at a time
    assert finished.args[0].intact
    qtbot.waitUntil(lambda: ("tiny-Q4_K_M", 100) in progress, timeout=TIMEOUT_MS)
    assert "intact" in page.status.text() and "Verified: " in page.selection_details.text()
    assert page.verify_button.isEnabled()

    blob = (snapshot / "tiny-Q4_K_M.gguf").resolve()
    with blob.open("r+b") as handle:
        handle.seek(len(data) // 2)
        byte = handle.read(1)
        handle.seek(len(data) // 2)
        handle.write(bytes([byte[0] ^ 0x80]))
    with qtbot.waitSignal(page.verifyFinished, timeout=TIMEOUT_MS) as finished:
        page.row_actions[RowAction.VERIFY].trigger()
    assert not finished.args[0].intact
    status = page.status.text()
    assert "tiny-Q4_K_M.gguf is damaged" in status and "Download it again" in status
    assert page.status.property("error") is True
    assert "DAMAGED" in page.selection_details.text()
