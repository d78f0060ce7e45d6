"""The Documents page's embedding model: picked per collection from the library's embedding
GGUFs, embedded again only when it changes; with none in the library, Discover finds one."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.core import Core
from app.docs.embedders import DEFAULT_EMBEDDER_SEARCH
from tests.support.demo_hub import EMBEDDER_REPO, seed_embedder_repo
from tests.support.gguf_builder import ScriptedGgufs
from tests.support.hub_server import HubServer
from ui.documents_page import DocumentsPage
from ui.main_window import MainWindow


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "Notes"
    root.mkdir()
    for index in range(4):
        (root / f"n{index}.md").write_text(f"# Note {index}\n\nQuartz number {index}.\n")
    return root


def _open(window: MainWindow) -> DocumentsPage:
    window.show_page(window.documents)
    return window.documents


def _cells(page: DocumentsPage) -> list[str]:
    return [page.table.item(0, column).text() for column in range(page.table.columnCount())]


def test_without_an_embedding_model_discover_finds_one(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer, tmp_path: Path
) -> None:
    seed_embedder_repo(hub_server, tmp_path / "embedder")
    page = _open(window)
    qtbot.wait_until(page.get_embedder_button.isVisible)
    assert [page.embedder_picker.itemText(i) for i in range(page.embedder_picker.count())] == [
        "None: search by words only"
    ]
    page.get_embedder_button.click()
    discover = window.discover
    assert window.pages.currentWidget() is discover
    assert discover.search_field.text() == DEFAULT_EMBEDDER_SEARCH
    results = discover.results

    def found() -> list[str]:
        return [results.summary(row).repo_id for row in range(results.rowCount())]  # type: ignore[union-attr]

    qtbot.wait_until(lambda: found() == [EMBEDDER_REPO], timeout=15_000)


def test_the_embedding_model_is_chosen_per_collection_and_embeds_only_on_change(
    qtbot: QtBot, window: MainWindow, core: Core, ggufs: ScriptedGgufs, folder: Path
) -> None:
    imported = core.models.import_paths([ggufs.embedder, ggufs.scripted])
    assert not imported.rejected
    page = _open(window)
    with qtbot.wait_signal(page.indexFinished, timeout=30_000):
        page.add_folder(folder)
    qtbot.wait_until(lambda: page.table.rowCount() == 1)
    page.table.selectRow(0)
    picker = page.embedder_picker
    qtbot.wait_until(lambda: picker.count() == 2)  # words only, and the one embedding model
    assert picker.isEnabled() and not page.get_embedder_button.isVisible()
    assert picker.currentIndex() == 0 and _cells(page)[4] == "words"
    assert picker.itemData(1) == str(ggufs.embedder)  # the chat model is not offered

    picker.setCurrentIndex(1)
    with qtbot.wait_signal(page.indexFinished, timeout=60_000) as finished:
        picker.activated.emit(1)
    assert "0 chunks, 4 embedded" in finished.args[0]  # the chunks it had, embedded
    qtbot.wait_until(lambda: _cells(page)[4] == "words + meaning")
    collection = core.documents.store.get("Notes")
    assert collection.embedder == ggufs.embedder
    assert collection.vectors_of is not None
    assert picker.currentIndex() == 1

    # The same model again: nothing to embed, no run.
    with qtbot.assert_not_emitted(page.indexFinished, wait=500):
        picker.activated.emit(1)

    # Words only: recorded, and nothing is indexed.
    picker.setCurrentIndex(0)
    with qtbot.assert_not_emitted(page.indexFinished, wait=300):
        picker.activated.emit(0)
    qtbot.wait_until(lambda: _cells(page)[4] == "words")
    assert core.documents.store.get("Notes").embedder is None
    assert "words only" in page.status.text()
