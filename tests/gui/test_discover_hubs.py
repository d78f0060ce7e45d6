"""One Discover for every hub: the hub selector switches the provider, every result says which
hub it is from, and details, license and files behave the same for ModelScope."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.core import Core
from app.downloads import JobState
from app.downloads.sources import Hub
from app.hub.choice import HubKind
from tests.gui.conftest import select_repo
from tests.gui.test_discover import add_gguf_repo, search
from tests.support.hub_server import HubServer
from tests.support.modelscope_server import ModelScopeServer
from ui.discover.files_view import FitRole
from ui.discover.result_row import HubRole
from ui.discover.results_model import SearchState
from ui.main_window import MainWindow

MS_CARD = "---\nlicense: apache-2.0\n---\n# Qwen Tiny\nA tiny model from ModelScope.\n"


@pytest.fixture
def modelscope(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ModelScopeServer]:
    """A ModelScope test server as the ModelScope endpoint, and a ModelScope cache of the test."""
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms"))
    with ModelScopeServer() as server:
        server.add_model(
            "Qwen/Qwen-Tiny-GGUF",
            {"README.md": MS_CARD.encode(), "qwen-tiny-Q4_K_M.gguf": b"GGUF" + bytes(3000)},
            license="Apache License 2.0",
            downloads=77,
        )
        monkeypatch.setenv("MODELSCOPE_ENDPOINT", server.url)
        yield server


def test_the_hub_selector_switches_search_details_and_downloads(
    qtbot: QtBot,
    window: MainWindow,
    hub_server: HubServer,
    modelscope: ModelScopeServer,
    core: Core,
) -> None:
    page = window.discover
    hubs = [page.hub_selector.itemData(i) for i in range(page.hub_selector.count())]
    assert hubs[:1] == [HubKind.HUGGING_FACE] and HubKind.MODELSCOPE in hubs
    # The HF entry names the custom HF-compatible endpoint the core uses.
    assert page.hub_selector.itemText(0) == hub_server.url.removeprefix("http://")

    add_gguf_repo(hub_server)
    search(qtbot, window, "tiny")
    assert page.results.summary(0).repo_id == "acme/Tiny-Llama-GGUF"  # type: ignore[union-attr]
    assert page.results.index(0, 0).data(HubRole) == hub_server.url  # the hub's own name

    page.hub_selector.select(HubKind.MODELSCOPE)  # searches again, on ModelScope
    qtbot.waitUntil(lambda: page.results.state != SearchState.LOADING, timeout=30_000)
    assert page.results.state == SearchState.RESULTS, page.results.message
    qtbot.waitUntil(
        lambda: page.results.state == SearchState.RESULTS and page.results.hub_name == "ModelScope",
        timeout=30_000,
    )
    assert [page.results.summary(r).repo_id for r in range(page.results.rowCount())] == [  # type: ignore[union-attr]
        "Qwen/Qwen-Tiny-GGUF"
    ]
    assert page.results.index(0, 0).data(HubRole) == "ModelScope"
    assert modelscope.requests_to("/openapi/v1/models")[-1].query["search"] == "tiny"

    select_repo(qtbot, window, "Qwen/Qwen-Tiny-GGUF")
    view = page.details.view
    assert "Qwen/Qwen-Tiny-GGUF" in view.title.text()
    assert "A tiny model from ModelScope." in view.card.toPlainText()
    license_text = view.license.toPlainText()
    assert "Apache" in license_text and "permissive" in license_text
    files = view.files.model
    assert files is not None
    rows = {
        files.item(r, 0).text(): files.item(r, 3).data(FitRole) for r in range(files.rowCount())
    }
    assert rows["qwen-tiny-Q4_K_M.gguf"] == "fits"

    # Download it: into ModelScope's own cache, verified, and the Library lists it.
    row = next(r for r in range(files.rowCount()) if files.item(r, 0).text().endswith(".gguf"))
    view.files.tree.setCurrentIndex(files.index(row, 0))
    assert view.files.download_button.isEnabled()
    view.files.download_button.click()
    # A job of the window's one queue: the Downloads page shows it finish.
    downloads = window.downloads
    qtbot.waitUntil(lambda: downloads.model.rowCount() == 1, timeout=30_000)
    qtbot.waitUntil(
        lambda: (job := downloads.model.job(0)) is not None and job.state is JobState.COMPLETED,
        timeout=60_000,
    )
    job = downloads.model.job(0)
    assert job is not None and job.hub is Hub.MODELSCOPE and job.repo_id == "Qwen/Qwen-Tiny-GGUF"
    assert "Queued Qwen/Qwen-Tiny-GGUF" in window.statusBar().currentMessage()
    folder = Path(os.environ["MODELSCOPE_CACHE"]) / "models" / "Qwen" / "Qwen-Tiny-GGUF"
    assert (folder / "qwen-tiny-Q4_K_M.gguf").read_bytes() == b"GGUF" + bytes(3000)
    qtbot.waitUntil(  # the Library scans again when a download completes
        lambda: any("Qwen/Qwen-Tiny-GGUF" in e.repo_ids for e in core.models.entries),
        timeout=10_000,
    )

    # Back to Hugging Face: its results again, from its own hub.
    page.hub_selector.select(HubKind.HUGGING_FACE)
    qtbot.waitUntil(
        lambda: page.results.state == SearchState.RESULTS and page.results.hub_name != "ModelScope",
        timeout=30_000,
    )
    assert page.results.summary(0).repo_id == "acme/Tiny-Llama-GGUF"  # type: ignore[union-attr]


def test_offline_modelscope_shows_models_seen_before(
    qtbot: QtBot, window: MainWindow, modelscope: ModelScopeServer
) -> None:
    page = window.discover
    page.hub_selector.select(HubKind.MODELSCOPE)
    search(qtbot, window, "qwen")
    with qtbot.waitSignal(page.details.detailsShown, timeout=30_000):
        page.details.load("Qwen/Qwen-Tiny-GGUF")  # its details are kept as an offline copy

    modelscope.__exit__(None, None, None)  # the hub goes away
    page.search_field.setText("tiny")
    page.search_now()
    qtbot.waitUntil(lambda: page.results.state != SearchState.LOADING, timeout=30_000)
    assert page.results.state == SearchState.OFFLINE
    assert page.results.summary(0).repo_id == "Qwen/Qwen-Tiny-GGUF"  # type: ignore[union-attr]
    assert "Offline" in page.status.text()
