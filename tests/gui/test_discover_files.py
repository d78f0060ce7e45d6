"""Discover's Files tab: names over empty columns, fit badges, files you have, gated repos and
pipelines that could not run, all said before Download is pressed."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from pytestqt.qtbot import QtBot

from app.core import Core
from app.downloads import DownloadPlan
from app.downloads.cache import snapshot_folder
from tests.gui.conftest import select_repo
from tests.gui.test_discover import add_gguf_repo, search
from tests.support.hub_server import HubServer
from ui.badges import ToneRole
from ui.discover.files_view import DOWNLOADED, FIT, LOCAL, NAME, QUANTIZATION, SHA
from ui.main_window import MainWindow


def open_files(qtbot: QtBot, window: MainWindow, query: str, repo_id: str) -> None:
    search(qtbot, window, query)
    select_repo(qtbot, window, repo_id)
    view = window.discover.details.view
    view.tabs.setCurrentWidget(view.files)


def test_empty_columns_are_hidden_and_the_name_takes_the_room(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    hub_server.add_repo(
        "acme/plain-files",
        {"config.json": b"{}", "weights/a-very-long-file-name-for-the-weights.safetensors": b"x"},
        card="# Plain",
    )
    open_files(qtbot, window, "plain-files", "acme/plain-files")
    files = window.discover.details.view.files
    tree = files.tree
    # No GGUF, nothing downloaded: Quantization, Fit and On disk have nothing to say.
    for column in (QUANTIZATION, FIT, LOCAL):
        assert tree.isColumnHidden(column), column
    assert not tree.isColumnHidden(NAME)
    assert tree.header().sectionResizeMode(NAME).name == "Stretch"
    assert not tree.tabKeyNavigation()


def test_a_narrow_pane_drops_columns_before_the_names_and_keeps_the_fit_badge(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    repo_id = add_gguf_repo(hub_server)
    open_files(qtbot, window, "tiny", repo_id)
    files = window.discover.details.view.files
    model = files.model
    assert model is not None
    fit = model.item(0, FIT)
    assert fit.data(ToneRole) == "good"  # drawn as a badge by the tree's delegate

    files.tree.resize(2000, 400)
    qtbot.waitUntil(lambda: not files.tree.isColumnHidden(SHA), timeout=5_000)
    assert " of " in fit.text()
    files.tree.resize(330, 400)
    qtbot.waitUntil(lambda: files.tree.isColumnHidden(SHA), timeout=5_000)
    assert not files.tree.isColumnHidden(FIT)
    assert fit.text().startswith("fits")
    assert files.tree.columnWidth(NAME) >= 120


def test_files_you_have_say_downloaded_and_cannot_be_downloaded_again(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer, core: Core
) -> None:
    repo_id = add_gguf_repo(hub_server)
    sha = hub_server.add_repo(
        repo_id,
        {
            "tiny-Q4_K_M.gguf": b"GGUF" + b"\0" * 2000,
            "tiny-Q8_0-00001-of-00002.gguf": b"GGUF" + b"\1" * 1500,
            "tiny-Q8_0-00002-of-00002.gguf": b"\2" * 1500,
        },
        library_name="gguf",
    )
    folder = snapshot_folder(core.settings.resolved_cache_dir(), repo_id, sha)
    folder.mkdir(parents=True)
    (folder / "tiny-Q4_K_M.gguf").write_bytes(b"GGUF" + b"\0" * 2000)
    open_files(qtbot, window, "tiny", repo_id)
    files = window.discover.details.view.files
    model = files.model
    assert model is not None
    row = next(
        r for r in range(model.rowCount()) if model.item(r, NAME).text() == "tiny-Q4_K_M.gguf"
    )
    other = next(r for r in range(model.rowCount()) if r != row)
    qtbot.waitUntil(lambda: model.item(row, LOCAL).data(ToneRole) == "good", timeout=5_000)
    assert model.item(other, LOCAL).text() == ""
    assert model.item(row, LOCAL).text() in (DOWNLOADED, "✓")  # "✓" on a narrow pane
    assert not files.tree.isColumnHidden(LOCAL)

    files.tree.setCurrentIndex(model.index(row, 0))
    qtbot.waitUntil(lambda: files.chat_button.isVisibleTo(files), timeout=5_000)
    assert not files.download_button.isEnabled()
    files.tree.setCurrentIndex(model.index(other, 0))
    assert files.download_button.isEnabled()


def test_a_gated_repo_says_so_before_download_and_takes_a_token_there(
    qtbot: QtBot,
    window: MainWindow,
    hub_server: HubServer,
    core: Core,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub_server.add_repo(
        "meta/gated", {"model.safetensors": b"\0" * 64}, card="# Gated", gated="manual"
    )
    hub_server.grant("meta/gated", "hf_granted_token")
    open_files(qtbot, window, "gated", "meta/gated")
    gate = window.discover.details.view.files.gate
    assert gate.isVisible()
    qtbot.waitUntil(lambda: "No token is set" in gate.text.text(), timeout=10_000)
    assert "gated" in gate.text.text()

    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", opened.append)
    gate.request_button.click()
    assert [url.toString() for url in opened] == [f"{hub_server.url}/meta/gated"]

    assert not gate.save_button.isEnabled()
    qtbot.keyClicks(gate.token, "hf_granted_token")
    with qtbot.waitSignal(window.discover.details.tokenSaved, timeout=10_000):
        gate.save_button.click()
    qtbot.waitUntil(lambda: "Your token has access" in gate.text.text(), timeout=10_000)
    assert core.token.value == "hf_granted_token"
    assert gate.token.isHidden()
    assert "No token is set" not in window.discover.details.view.license.toPlainText()


def test_an_open_repo_shows_no_gate(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    repo_id = add_gguf_repo(hub_server)
    open_files(qtbot, window, "tiny", repo_id)
    assert window.discover.details.view.files.gate.isHidden()


PIPELINE = {
    "model_index.json": b"{}",
    "scheduler/scheduler_config.json": b"{}",
    "unet/config.json": b"{}",
    "unet/diffusion_pytorch_model.safetensors": b"unet",
    "unet/diffusion_pytorch_model.fp16.safetensors": b"unet16",
    "text_encoder/config.json": b"{}",
    "text_encoder/model.safetensors": b"encoder",
    "text_encoder/pytorch_model.fp16.bin": b"pickle",  # fp16 only as a pickle
}


def test_a_pipeline_variant_with_a_pickle_only_component_says_so_and_offers_safetensors(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    hub_server.add_repo("acme/tiny-sd", PIPELINE, card="# SD", library_name="diffusers")
    open_files(qtbot, window, "tiny-sd", "acme/tiny-sd")
    files = window.discover.details.view.files
    assert files.pipeline_notice.isHidden()  # the default weights are safetensors throughout

    files.variant.setCurrentIndex(files.variant.findData("fp16"))
    assert files.pipeline_notice.isVisible()
    assert "text_encoder" in files.pipeline_note.text()
    assert "pickle" in files.pipeline_note.text()
    assert files.safetensors_button.isVisible()

    files.safetensors_button.click()
    assert "Using safetensors" in files.pipeline_note.text()
    assert files.safetensors_button.isHidden()
    with qtbot.waitSignal(files.downloadRequested, timeout=5_000) as requested:
        files.pipeline_button.click()
    plan = requested.args[0]
    assert isinstance(plan, DownloadPlan)
    paths = {file.path for file in plan.files}
    assert "text_encoder/model.safetensors" in paths
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in paths
    assert not any(path.endswith(".bin") for path in paths)


def test_tab_leaves_the_files_tree(qtbot: QtBot, window: MainWindow, hub_server: HubServer) -> None:
    repo_id = add_gguf_repo(hub_server)
    open_files(qtbot, window, "tiny", repo_id)
    tree = window.discover.details.view.files.tree
    tree.setFocus()
    tree.setCurrentIndex(tree.model().index(0, 0))
    qtbot.waitUntil(tree.hasFocus, timeout=5_000)
    qtbot.keyClick(tree, Qt.Key.Key_Tab)
    assert not tree.hasFocus()
    assert tree.currentIndex().row() == 0


def test_a_split_part_shows_what_tells_it_apart() -> None:
    from ui.discover.files_view import part_label

    name = "Pocket-Llama-3B-Instruct-Q8_0"
    assert part_label(name, f"q8/{name}-00001-of-00002.gguf", 1, 2) == (
        "part 1 of 2 · 00001-of-00002.gguf"
    )
    assert part_label(name, "other-name.gguf", 2, 2) == "part 2 of 2 · other-name.gguf"
