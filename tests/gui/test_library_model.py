"""One library list under every page: a model that arrives later shows up in Chat and Images
without a restart, whether imported, downloaded, or found after the cache folder moved."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from app.core import Core
from tests.core.test_library_layouts import gguf_bytes, safetensors_bytes, write_diffusers
from tests.core.test_library_layouts import write_hf_repo as write_cached_repo
from tests.support.gguf_builder import write_gguf
from ui.chat.page import ChatPage
from ui.images.page import ImagesPage
from ui.library_model import GgufChatModels, ImagePipelines, LibraryModel
from ui.main_window import MainWindow

TIMEOUT_MS = 20_000


def chat_listed(page: ChatPage) -> list[str]:
    combo = page.panel.load_form.model
    return [combo.itemText(index) for index in range(combo.count())]


def images_listed(page: ImagesPage) -> list[str]:
    return [model.label for model in page.picker.models()]


def open_both_pickers(qtbot: QtBot, window: MainWindow) -> tuple[ChatPage, ImagesPage]:
    """Build and show Chat and Images, and wait until each listed the library once."""
    with qtbot.waitSignal(window.chat.panel.modelsListed, timeout=TIMEOUT_MS):
        window.show_page(window.chat)
    with qtbot.waitSignal(window.images.modelsListed, timeout=TIMEOUT_MS):
        window.show_page(window.images)
    return window.chat, window.images


def diffusers_repo_files() -> dict[str, bytes]:
    index = {
        "_class_name": "StableDiffusionPipeline",
        "unet": ["diffusers", "UNet2DConditionModel"],
    }
    return {
        "model_index.json": json.dumps(index).encode(),
        "unet/config.json": b"{}",
        "unet/diffusion_pytorch_model.safetensors": safetensors_bytes(salt=3),
        "vae/diffusion_pytorch_model.safetensors": safetensors_bytes(salt=4),
    }


def test_a_model_imported_after_the_pickers_were_built_shows_up_in_both(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    chat, images = open_both_pickers(qtbot, window)
    assert chat_listed(chat) == [] and images_listed(images) == []

    gguf = write_gguf(tmp_path / "later" / "later-Q8_0.gguf")
    pipeline = write_diffusers(tmp_path / "later" / "later-pipeline")
    with qtbot.waitSignal(window.library.imported, timeout=TIMEOUT_MS):
        window.library.import_paths([gguf, pipeline])

    qtbot.wait_until(lambda: any("later" in text for text in chat_listed(chat)))
    qtbot.wait_until(lambda: any("later-pipeline" in text for text in images_listed(images)))
    assert len(chat_listed(chat)) == 1 and len(images_listed(images)) == 1  # each its own kind


def test_a_model_downloaded_after_the_pickers_were_built_shows_up_in_both(
    qtbot: QtBot, window: MainWindow, core: Core, tmp_path: Path
) -> None:
    cache = tmp_path / "hub"
    core.update_settings(hf_cache_dir=str(cache))
    chat, images = open_both_pickers(qtbot, window)
    assert chat_listed(chat) == [] and images_listed(images) == []

    # What a finished download leaves: the repo's files in the HF cache.
    write_cached_repo(cache, "org/Fresh-GGUF", {"fresh-Q4_K_M.gguf": gguf_bytes(name="Fresh")})
    write_cached_repo(cache, "org/fresh-pipeline", diffusers_repo_files())
    window.downloads.completed.emit()

    qtbot.wait_until(lambda: len(chat_listed(chat)) == 1)
    qtbot.wait_until(lambda: len(images_listed(images)) == 1)


def test_moving_the_cache_folder_relists_every_page(
    qtbot: QtBot, window: MainWindow, core: Core, tmp_path: Path
) -> None:
    core.update_settings(hf_cache_dir=str(tmp_path / "empty-hub"))
    chat, images = open_both_pickers(qtbot, window)
    with qtbot.waitSignal(window.library.scanned, timeout=TIMEOUT_MS):
        window.show_page(window.library)
    assert window.library.model.rowCount() == 0

    moved = tmp_path / "moved-hub"
    write_cached_repo(moved, "org/Moved-GGUF", {"moved-Q4_K_M.gguf": gguf_bytes(name="Moved")})
    core.update_settings(hf_cache_dir=str(moved))  # the Settings page does this on a worker

    qtbot.wait_until(lambda: len(chat_listed(chat)) == 1)
    qtbot.wait_until(lambda: window.library.model.rowCount() == 1)
    assert images_listed(images) == []


def test_the_library_model_and_its_filters_are_sound_models(
    qtbot: QtBot, qtmodeltester: ModelTester, window: MainWindow, core: Core, tmp_path: Path
) -> None:
    model = window.library_models
    chat_models = GgufChatModels(model)
    pipelines = ImagePipelines(model)
    qtmodeltester.check(model)
    qtmodeltester.check(chat_models)
    qtmodeltester.check(pipelines)

    gguf = write_gguf(tmp_path / "models" / "tiny-Q8_0.gguf")
    pipeline = write_diffusers(tmp_path / "models" / "pipeline")
    core.models.import_paths([gguf, pipeline])  # blocking here; a page runs it on a worker
    with qtbot.waitSignal(model.refreshed, timeout=TIMEOUT_MS) as refreshed:
        pass  # the list reports through a queued signal
    assert refreshed.args == [2] and model.rowCount() == 2
    assert [entry.locations[0].path for entry in chat_models.entries()] == [gguf]
    assert [entry.locations[0].path for entry in pipelines.entries()] == [pipeline]
    qtmodeltester.check(model)
    qtmodeltester.check(chat_models)
    qtmodeltester.check(pipelines)

    # A second model over the same list agrees at once, and the same list is not shown twice.
    other = LibraryModel(core.models)
    assert other.entries() == model.entries()
    with qtbot.assert_not_emitted(model.refreshed):
        model.catch_up()


def test_an_unreadable_model_is_listed_with_its_reason_but_offered_to_no_runtime(
    qtbot: QtBot, window: MainWindow, core: Core, tmp_path: Path
) -> None:
    cache = tmp_path / "hub"
    core.update_settings(hf_cache_dir=str(cache))
    # A 224-byte GGUF that claims 2^63 tensors, beside a good one.
    claims = b"GGUF" + (3).to_bytes(4, "little") + (2**63).to_bytes(8, "little")
    write_cached_repo(cache, "evil/Claims", {"claims.gguf": claims + (1).to_bytes(8, "little")})
    write_cached_repo(cache, "org/Good-GGUF", {"good-Q4_K_M.gguf": gguf_bytes(name="Good")})
    chat, _images = open_both_pickers(qtbot, window)

    model = window.library.model
    qtbot.wait_until(lambda: len(model.entries()) == 2)
    (bad,) = [entry for entry in model.entries() if entry.unreadable]
    row = model.entries().index(bad)
    assert model.index(row, 1).data().endswith("(unreadable)")
    assert "too small" in model.index(row, 0).data(Qt.ItemDataRole.ToolTipRole)
    assert [text for text in chat_listed(chat) if "laims" in text] == []
    assert any("Good" in text or "good" in text for text in chat_listed(chat))
