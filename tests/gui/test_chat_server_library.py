"""The server panel's "Serve the whole library", for real: two scripted GGUFs imported into the
library, loaded just in time by naming them with the real `openai` client on a worker thread,
the panel's table of loaded models, and their processes ending with the switch."""

from __future__ import annotations

import psutil
import pytest
from pytestqt.qtbot import QtBot

from app.core import Core
from tests.gui.test_chat_server import off_thread, refused, switch_off, switch_on
from tests.support.gguf_builder import SCRIPTED_REPLY, ScriptedGgufs
from ui.chat.page import ChatPage
from ui.chat.server_panel import LOADED_TITLE, NO_MODEL, NONE_LOADED

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def imported(core: Core, ggufs: ScriptedGgufs) -> Core:
    """The core, its library holding the scripted and endless GGUFs (before the page lists)."""
    assert not core.library.import_paths([ggufs.scripted, ggufs.endless]).rejected
    return core


def ask(url: str, model: str) -> str:
    import openai

    with openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=60) as client:
        answer = client.chat.completions.create(model=model, messages=HELLO, max_tokens=5)
        content: str = answer.choices[0].message.content or ""
        return content


def test_serving_the_whole_library_without_loading_a_model(
    qtbot: QtBot, imported: Core, chat: ChatPage
) -> None:
    core, panel = imported, chat.panel.server_panel
    panel.set_expanded(True)
    assert not panel.switch.isEnabled() and panel.status.text() == NO_MODEL
    assert not panel.max_loaded.isEnabled() and not panel.idle_unload.isEnabled()

    panel.whole_library.setChecked(True)
    assert panel.switch.isEnabled() and panel.status.text() == ""
    assert panel.switch.text().startswith("Serve the library")
    assert panel.max_loaded.isEnabled() and panel.idle_unload.isEnabled()
    panel.max_loaded.setValue(1)
    assert switch_on(qtbot, panel), panel.status.text()
    assert "Serving 2 library models" in panel.status.text()
    assert panel.loaded_models.isVisible() and panel.loaded_models.text() == NONE_LOADED
    assert not panel.whole_library.isEnabled() and not panel.max_loaded.isEnabled()
    server = core.server
    pool = server.pool
    assert pool is not None and pool.limits.max_loaded == 1
    url = panel.url.text()

    assert off_thread(qtbot, ask, url, "Scripted-Q8_0") == SCRIPTED_REPLY[:5]
    qtbot.waitUntil(lambda: "Scripted-Q8_0 · idle" in panel.loaded_models.text())
    (scripted,) = pool.snapshot()
    title, name, figures = panel.loaded_models.text().splitlines()
    assert title == LOADED_TITLE and name.startswith("Scripted-Q8_0 · idle ")
    assert figures.endswith(f"pid {scripted.pid}") and "estimate" in figures
    assert core.llm.pid is None  # the Chat page's own engine was never started

    # max 1: naming the other model unloads the first (it is idle) and loads the second.
    assert off_thread(qtbot, ask, url, "endless") == SCRIPTED_REPLY[:5]
    qtbot.waitUntil(lambda: "endless · idle" in panel.loaded_models.text())
    assert "Scripted-Q8_0" not in panel.loaded_models.text()
    assert scripted.pid is not None and not psutil.pid_exists(scripted.pid)

    (endless,) = pool.snapshot()
    port = server.port
    switch_off(qtbot, panel)
    assert refused(port) and not panel.loaded_models.isVisible()
    assert endless.pid is not None and not psutil.pid_exists(endless.pid)
    assert panel.whole_library.isEnabled() and panel.whole_library.isChecked()

    # Unticked, the switch serves the loaded model once more: none is, so it waits for one.
    panel.whole_library.setChecked(False)
    assert not panel.switch.isEnabled()
    assert panel.switch.text().startswith("Serve this model")
