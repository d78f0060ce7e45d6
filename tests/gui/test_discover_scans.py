"""Discover's Files tab: the Scan badge per file (the hub's scans, ModelDeck's own check on
disk), and the second "yes" a flagged file needs before it is downloaded."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from app.core import Core
from app.downloads import DownloadPlan
from app.downloads.cache import snapshot_folder
from tests.gui.test_discover_files import open_files
from tests.support.gguf_builder import write_gguf
from tests.support.hub_server import FileScanStatus, HubServer
from ui.badges import ToneRole
from ui.discover.files_view import NAME, SCAN, FilesView
from ui.main_window import MainWindow

REPO = "acme/scanned-files"
FILES = {
    "a-safe.safetensors": b"x" * 64,
    "b-unscanned.txt": b"b",
    "c-caution.json": b"{}",
    "d-suspicious.bin": b"\x80\x02}q\x00.",
    "e-unsafe.txt": b"eicar",
}


def add_scanned_repo(hub_server: HubServer) -> str:
    sha = hub_server.add_repo(REPO, FILES, card="# Scanned\n")
    hub_server.set_scans(
        REPO,
        {
            "b-unscanned.txt": "unscanned",
            "c-caution.json": "caution",
            "d-suspicious.bin": FileScanStatus(
                "suspicious", pickle_imports=(("builtins", "exec", "suspicious"),)
            ),
            "e-unsafe.txt": FileScanStatus("unsafe", virus_names=("Eicar-Test-Signature",)),
        },
    )
    return sha


def scan_cells(files: FilesView) -> dict[str, tuple[str, str, str]]:
    """Each top-level row's name -> (badge text, tone, tooltip) of its Scan cell."""
    model = files.model
    assert model is not None
    cells = {}
    for row in range(model.rowCount()):
        cell = model.item(row, SCAN)
        cells[model.item(row, NAME).text()] = (cell.text(), cell.data(ToneRole), cell.toolTip())
    return cells


def row_of(files: FilesView, name: str) -> int:
    model = files.model
    assert model is not None
    return next(r for r in range(model.rowCount()) if model.item(r, NAME).text() == name)


def test_each_level_has_its_badge_and_the_finding_behind_it(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    add_scanned_repo(hub_server)
    open_files(qtbot, window, "scanned", REPO)
    files = window.discover.details.view.files

    cells = scan_cells(files)
    expected = {
        "a-safe.safetensors": ("safe", "good"),
        "b-unscanned.txt": ("not scanned", "neutral"),
        "c-caution.json": ("caution", "caution"),
        "d-suspicious.bin": ("suspicious", "bad"),
        "e-unsafe.txt": ("unsafe", "bad"),
    }
    for name, (text, tone) in expected.items():
        shown, shown_tone, _tip = cells[name]
        assert shown in (text, "✓", "?", "!", "!!", "✗"), name  # the tiny form on a narrow pane
        assert shown_tone == tone, name
    assert "Eicar-Test-Signature" in cells["e-unsafe.txt"][2]
    assert "builtins.exec" in cells["d-suspicious.bin"][2]
    assert not files.tree.isColumnHidden(SCAN)


def test_a_hub_without_scan_data_shows_not_scanned_never_safe(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    hub_server.add_repo(REPO, FILES, card="# Plain\n")
    open_files(qtbot, window, "scanned", REPO)
    files = window.discover.details.view.files
    files.tree.resize(1600, 400)

    cells = scan_cells(files)
    assert {text for text, _tone, _tip in cells.values()} <= {"not scanned", "?"}
    assert {tone for _text, tone, _tip in cells.values()} == {"neutral"}


def test_a_flagged_file_needs_a_second_yes_before_download(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    add_scanned_repo(hub_server)
    open_files(qtbot, window, "scanned", REPO)
    files = window.discover.details.view.files
    model = files.model
    assert model is not None

    files.tree.setCurrentIndex(model.index(row_of(files, "e-unsafe.txt"), 0))
    with qtbot.assertNotEmitted(files.downloadRequested, wait=200):
        files.download_button.click()
        qtbot.waitUntil(lambda: files.asking is not None and files.asking.isVisible())
        box = files.asking
        assert box is not None
        assert "unsafe" in box.text() and "Eicar-Test-Signature" in box.text()
        qtbot.keyClick(box, Qt.Key.Key_Escape)  # Esc keeps things as they are
        qtbot.waitUntil(lambda: files.asking is None)

    files.download_button.click()
    qtbot.waitUntil(lambda: files.asking is not None and files.asking.isVisible())
    box = files.asking
    assert box is not None
    with qtbot.waitSignal(files.downloadRequested, timeout=5_000) as requested:
        box.button(QMessageBox.StandardButton.Yes).click()
    plan = requested.args[0]
    assert isinstance(plan, DownloadPlan)
    assert [file.path for file in plan.files] == ["e-unsafe.txt"]


def test_a_safe_or_caution_file_downloads_at_once(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    add_scanned_repo(hub_server)
    open_files(qtbot, window, "scanned", REPO)
    files = window.discover.details.view.files
    model = files.model
    assert model is not None
    files.tree.setCurrentIndex(model.index(row_of(files, "c-caution.json"), 0))
    with qtbot.waitSignal(files.downloadRequested, timeout=5_000):
        files.download_button.click()
    assert files.asking is None


def test_a_file_on_disk_adds_modeldecks_own_check(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer, core: Core, tmp_path: Path
) -> None:
    gguf = write_gguf(tmp_path / "tiny-Q4_K_M.gguf").read_bytes()
    sha = hub_server.add_repo(
        REPO, {"tiny-Q4_K_M.gguf": gguf, "old.bin": b"\x80\x02}q\x00."}, library_name="gguf"
    )
    hub_server.set_scans(REPO, {})
    folder = snapshot_folder(core.settings.resolved_cache_dir(), REPO, sha)
    folder.mkdir(parents=True)
    (folder / "tiny-Q4_K_M.gguf").write_bytes(gguf)
    (folder / "old.bin").write_bytes(b"\x80\x02}q\x00.")
    open_files(qtbot, window, "scanned", REPO)
    files = window.discover.details.view.files
    files.tree.resize(1600, 400)

    qtbot.waitUntil(lambda: "ModelDeck's check" in scan_cells(files)["old.bin"][2], timeout=5_000)
    cells = scan_cells(files)
    text, tone, tip = cells["old.bin"]
    assert text == "safe · pickle" and tone == "caution"
    assert "never loads it" in tip
    qtbot.waitUntil(
        lambda: "ModelDeck's check" in scan_cells(files)["tiny-Q4_K_M.gguf"][2], timeout=5_000
    )
    text, tone, tip = scan_cells(files)["tiny-Q4_K_M.gguf"]
    assert text == "safe · checked" and tone == "good"
    assert "GGUF header read" in tip and "sandbox" in tip
