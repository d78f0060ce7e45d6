"""Civitai in Discover: searched through the hub selector, its permissions in the license
view, its scans in the files' badges, and a file downloaded into the Civitai models folder,
verified, and listed in the Library with its provenance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.core import Core
from app.downloads import JobState
from app.downloads.sources import Hub
from app.hub.choice import HubKind
from tests.gui.test_discover import search
from tests.gui.test_library_page import select_named, shown_names
from tests.support.civitai_server import CivitaiServer, ServedFile
from tests.support.tiny_lora import tiny_kohya_lora
from ui.discover.result_row import HubRole
from ui.discover.results_model import SearchState
from ui.library_page import RowAction
from ui.main_window import MainWindow

LORA = tiny_kohya_lora()


@pytest.fixture
def civitai(monkeypatch: pytest.MonkeyPatch) -> Iterator[CivitaiServer]:
    with CivitaiServer() as server:
        server.add_model(
            2, "Anime LoRA", type="LORA", base_model="Pony", trained_words=("anime girl",),
            description="<p>A LoRA for <b>anime</b>.</p>", allow_commercial_use=["Image"],
            files=[ServedFile(id=21, name="animeLora.safetensors", data=LORA)], downloads=80,
        )  # fmt: skip
        server.add_model(3, "Anime NSFW", nsfw=True, downloads=100)
        monkeypatch.setenv("CIVITAI_ENDPOINT", server.url)
        monkeypatch.setenv("CIVITAI_TOKEN", "")
        yield server


def test_search_read_and_download_from_civitai(
    qtbot: QtBot, window: MainWindow, core: Core, civitai: CivitaiServer
) -> None:
    page = window.discover
    if HubKind.CIVITAI not in [
        page.hub_selector.itemData(i) for i in range(page.hub_selector.count())
    ]:
        pytest.fail("the hub selector offers no Civitai")
    page.hub_selector.select(HubKind.CIVITAI)
    search(qtbot, window, "anime")

    def searched() -> bool:  # the search of "anime" (switching hubs searched already)
        asked = civitai.requests_to("/api/v1/models")
        return (
            bool(asked)
            and asked[-1].query.get("query") == ["anime"]
            and (page.results.state == SearchState.RESULTS)
        )

    qtbot.waitUntil(searched, timeout=10_000)
    ids = [page.results.summary(r).repo_id for r in range(page.results.rowCount())]  # type: ignore[union-attr]
    assert ids == ["civitai:2/Anime LoRA"]  # the NSFW model is hidden
    assert page.results.index(0, 0).data(HubRole).startswith("Civitai")

    # Opened directly: the only result may have been opened already by the selection.
    with (
        qtbot.waitSignal(page.details.detailsShown, timeout=10_000),
        qtbot.waitSignal(page.details.cardShown, timeout=20_000),
    ):
        page.details.load("civitai:2/Anime LoRA")
    view = page.details.view
    assert "A LoRA for anime." in view.card.toPlainText()
    assert "anime girl" in view.card.toPlainText()
    license_text = view.license.toPlainText()
    assert "Civitai permissions" in license_text and "sell images" in license_text

    files = view.files.model
    assert files is not None
    row = next(
        r for r in range(files.rowCount()) if files.item(r, 0).text() == "animeLora.safetensors"
    )
    view.files.tree.setCurrentIndex(files.index(row, 0))
    assert view.files.download_button.isEnabled()
    view.files.download_button.click()
    # A job of the window's one queue: the Downloads page shows it finish.
    downloads = window.downloads
    qtbot.waitUntil(lambda: downloads.model.rowCount() == 1, timeout=20_000)
    qtbot.waitUntil(
        lambda: (job := downloads.model.job(0)) is not None and job.state is JobState.COMPLETED,
        timeout=20_000,
    )
    job = downloads.model.job(0)
    assert job is not None and job.hub is Hub.CIVITAI and job.repo_id.startswith("civitai:2@")
    path = core.database.path.parent / "models" / "loras" / "animeLora.safetensors"
    assert path.read_bytes() == LORA

    def listed() -> bool:
        return any(
            e.provenance is not None and e.provenance.civitai is not None
            for e in core.models.entries
        )

    qtbot.waitUntil(listed, timeout=10_000)


def test_nsfw_setting_reaches_discover(
    qtbot: QtBot, window: MainWindow, civitai: CivitaiServer
) -> None:
    page = window.discover
    page.hub_selector.select(HubKind.CIVITAI)
    search(qtbot, window, "anime")
    qtbot.waitUntil(lambda: page.results.rowCount() == 1, timeout=10_000)
    box = window.settings.civitai
    box.show_nsfw.setChecked(True)
    with qtbot.waitSignal(box.changed, timeout=5_000):
        box.apply_button.click()
    qtbot.waitUntil(lambda: page.results.rowCount() == 2, timeout=10_000)
    ids = {page.results.summary(r).repo_id for r in range(2)}  # type: ignore[union-attr]
    assert ids == {"civitai:2/Anime LoRA", "civitai:3/Anime NSFW"}


def test_identify_a_library_file_on_civitai(
    qtbot: QtBot, window: MainWindow, core: Core, civitai: CivitaiServer, tmp_path: Path
) -> None:
    local = tmp_path / "my-lora.safetensors"
    local.write_bytes(LORA)
    page = window.library
    window.show_page(page)
    with qtbot.waitSignal(page.imported, timeout=10_000):
        page.import_paths([local])
    select_named(page, "my-lora")
    menu = page.context_menu_for(shown_names(page).index("my-lora"))
    identify = page.row_actions[RowAction.IDENTIFY]
    assert identify in menu.actions() and identify.isEnabled()
    with qtbot.waitSignal(page.identified, timeout=10_000) as found:
        identify.trigger()
    text, is_error = found.args
    assert not is_error, text
    assert "Anime LoRA" in text and "anime girl" in text

    def recorded() -> bool:
        return any(
            e.provenance is not None and e.provenance.civitai is not None
            for e in core.models.entries
        )

    qtbot.waitUntil(recorded, timeout=10_000)
    select_named(page, "my-lora")  # the list was scanned again
    assert "Civitai: Anime LoRA — v1.0 (civitai:2@20)" in page.selection_details.text()
    assert "trigger words: anime girl" in page.selection_details.text()
