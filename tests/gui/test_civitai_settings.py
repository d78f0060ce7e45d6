"""Civitai's part of Settings: NSFW off by default, folder and layout saved, the key kept."""

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from app.core import Core
from app.hub.civitai.credentials import civitai_token_store
from app.hub.civitai.settings import FolderLayout, load_civitai_settings
from ui.main_window import MainWindow


def test_civitai_settings_are_saved(
    qtbot: QtBot, window: MainWindow, core: Core, tmp_path: Path
) -> None:
    page = window.settings
    window.show_page(page)
    box = page.civitai
    assert not box.show_nsfw.isChecked()  # hidden by default
    box.show_nsfw.setChecked(True)
    box.models_dir.setText(str(tmp_path / "webui" / "models"))
    box.layout_choice.setCurrentIndex(box.layout_choice.findData(FolderLayout.A1111.value))
    with qtbot.waitSignal(box.changed, timeout=5_000):
        box.apply_button.click()
    saved = load_civitai_settings(core.database)
    assert saved.show_nsfw and saved.layout is FolderLayout.A1111
    assert saved.models_dir == str(tmp_path / "webui" / "models")
    assert str(tmp_path / "webui" / "models" / "Lora") in box.folders.text()

    box.models_dir.setText("relative/path")
    box.apply_button.click()
    qtbot.waitUntil(lambda: box.feedback.property("error") is True, timeout=5_000)
    assert "full path" in box.feedback.text()


def test_civitai_key_is_kept_and_forgotten(qtbot: QtBot, window: MainWindow, core: Core) -> None:
    page = window.settings
    window.show_page(page)
    box = page.civitai
    store = civitai_token_store(core.database.path.parent)
    box.key.setText("civitai-secret-key")
    with qtbot.waitSignal(box.changed, timeout=5_000):
        box.save_key_button.click()
    assert store.load() == "civitai-secret-key"
    assert box.key.text() == ""
    qtbot.waitUntil(lambda: "A key is in use" in box.key_status.text(), timeout=5_000)
    with qtbot.waitSignal(box.changed, timeout=5_000):
        box.forget_key_button.click()
    assert store.load() is None
