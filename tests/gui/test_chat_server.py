"""The Chat page's "Serve on the local API" section, for real: the scripted GGUF in the real
engine, uvicorn on a free port, and the real `openai` client on a worker thread."""

from __future__ import annotations

import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import httpx2
import openai
import pytest
from PySide6.QtGui import QGuiApplication
from pytestqt.qtbot import QtBot

from app.core import Core
from app.llm.engine import LoadedModel
from app.llm.messages import LoadSettings
from tests.gui.test_chat_page import REPLY_TIMEOUT_MS, load, send
from tests.support.gguf_builder import SCRIPTED_REPLY, ScriptedGgufs
from ui.chat.page import ChatPage
from ui.chat.server_panel import ServerPanel

pytestmark = pytest.mark.slow

T = TypeVar("T")
KEY = "sk-panel-test-key"
HELLO = [{"role": "user", "content": "Hello"}]
START_TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def scripted(ggufs: ScriptedGgufs) -> Path:
    return ggufs.scripted


def off_thread(qtbot: QtBot, function: Callable[..., T], *args: object) -> T:
    """`function(*args)` on a worker thread (an API client), the GUI turning meanwhile."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-client") as pool:
        future = pool.submit(function, *args)
        qtbot.waitUntil(future.done, timeout=REPLY_TIMEOUT_MS)
        return future.result()


def switch_on(qtbot: QtBot, panel: ServerPanel, *, host: str = "127.0.0.1", key: str = "") -> bool:
    """Fill in where to listen (any free port), flip the switch; whether it started."""
    panel.set_expanded(True)
    panel.host.setText(host)
    panel.port.setValue(0)
    panel.api_key.setText(key)
    with qtbot.waitSignal(panel.switched, timeout=START_TIMEOUT_MS) as switched:
        panel.switch.click()
    started: bool = switched.args[0]
    return started


def switch_off(qtbot: QtBot, panel: ServerPanel) -> None:
    with qtbot.waitSignal(panel.switched, timeout=START_TIMEOUT_MS) as switched:
        panel.switch.click()
    assert switched.args == [False]


def stream_chat(url: str, api_key: str = "unused") -> str:
    with openai.OpenAI(base_url=url, api_key=api_key, max_retries=0) as client:
        stream = client.chat.completions.create(
            model="Scripted-Q8_0.gguf", messages=HELLO, stream=True, seed=1
        )
        return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def refused(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_the_switch_waits_for_a_local_model(chat: ChatPage) -> None:
    panel = chat.panel.server_panel
    assert not panel.body.isVisible()  # folded away until asked for
    panel.header.click()
    assert panel.body.isVisible()
    assert not panel.switch.isEnabled()
    assert panel.status.text() == "Load a local model to serve it."
    assert (panel.host.text(), panel.port.value()) == ("127.0.0.1", 8080)
    assert panel.api_key.echoMode() == panel.api_key.EchoMode.Password
    assert not panel.url_row.isVisible() and not panel.queue.isVisible()


def test_serving_the_loaded_model_while_chatting(
    qtbot: QtBot,
    chat: ChatPage,
    core: Core,
    scripted: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    page, panel = chat, chat.panel.server_panel
    load(qtbot, page, scripted)
    assert panel.switch.isEnabled()
    assert panel.status.text() == ""

    assert switch_on(qtbot, panel), panel.status.text()
    server = core.server
    url = panel.url.text()
    assert url == server.url and server.port != 0
    assert panel.url.isReadOnly() and panel.url_row.isVisible()
    root = url.removesuffix("/v1")  # Ollama's and Anthropic's clients add their own paths
    assert panel.other_urls.isVisible()
    assert panel.other_urls.text() == f"Ollama: {root}\nAnthropic: {root}"
    assert not panel.host.isEnabled() and not panel.port.isEnabled()
    panel.copy_button.click()
    assert QGuiApplication.clipboard().text() == url
    assert panel.queue.isVisible() and panel.queue.text().startswith("Queue: 0 waiting")
    assert "· on" in panel.header.text()

    # An API client streams the model's answer; the log panel shows the request.
    assert off_thread(qtbot, stream_chat, url) == SCRIPTED_REPLY
    qtbot.waitUntil(lambda: "POST /v1/chat/completions 200" in panel.log.toPlainText())
    line = panel.log.toPlainText().splitlines()[-1]
    assert " tok " in line and "127.0.0.1:" in line
    assert panel.log.isReadOnly()

    # The page's own chat answers from the same engine while it serves.
    with qtbot.waitSignal(page.replyFinished, timeout=REPLY_TIMEOUT_MS) as finished:
        send(qtbot, page, "Hello there")
    assert finished.args == ["complete"]
    assert page.transcript.messages()[-1].content == SCRIPTED_REPLY

    # A Load while serving goes through the server, which tells its clients "loading".
    loads: list[LoadSettings] = []
    through_server: Callable[[LoadSettings], LoadedModel] = server.load

    def spy(settings: LoadSettings) -> LoadedModel:
        loads.append(settings)
        return through_server(settings)

    monkeypatch.setattr(server, "load", spy)
    with qtbot.waitSignal(page.panel.loadFinished, timeout=REPLY_TIMEOUT_MS) as loaded:
        page.panel.load_button.click()
    assert loaded.args == [True]
    assert [settings.path for settings in loads] == [scripted]
    assert off_thread(qtbot, stream_chat, url) == SCRIPTED_REPLY

    port = server.port
    switch_off(qtbot, panel)
    assert refused(port)
    assert not server.running and not panel.switch.isChecked()
    assert panel.switch.isEnabled() and panel.host.isEnabled()
    assert not panel.url_row.isVisible() and not panel.queue.isVisible()
    assert panel.status.text() == "Stopped."


def test_a_public_address_needs_a_key(
    qtbot: QtBot, chat: ChatPage, core: Core, scripted: Path
) -> None:
    page, panel = chat, chat.panel.server_panel
    load(qtbot, page, scripted)

    assert not switch_on(qtbot, panel, host="0.0.0.0")
    assert "without an API key" in panel.status.text()
    assert panel.status.property("error") is True
    assert not panel.switch.isChecked() and not core.server.running
    assert panel.switch.isEnabled()

    assert switch_on(qtbot, panel, host="0.0.0.0", key=KEY), panel.status.text()
    local = f"http://127.0.0.1:{core.server.port}/v1"
    assert off_thread(qtbot, stream_chat, local, KEY) == SCRIPTED_REPLY
    unkeyed = off_thread(qtbot, lambda: httpx2.get(f"{local}/models", timeout=10))
    assert unkeyed.status_code == 401
    qtbot.waitUntil(lambda: "GET /v1/models 401" in panel.log.toPlainText())
    switch_off(qtbot, panel)


def test_a_taken_port_is_shown_and_the_switch_goes_back_off(
    qtbot: QtBot, chat: ChatPage, core: Core, scripted: Path
) -> None:
    page, panel = chat, chat.panel.server_panel
    load(qtbot, page, scripted)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        panel.set_expanded(True)
        panel.port.setValue(taken.getsockname()[1])
        with qtbot.waitSignal(panel.switched, timeout=START_TIMEOUT_MS) as switched:
            panel.switch.click()
    assert switched.args == [False]
    assert "already in use" in panel.status.text()
    assert not panel.switch.isChecked() and panel.port.isEnabled()


def test_closing_the_window_stops_the_server(
    qtbot: QtBot, chat: ChatPage, core: Core, scripted: Path
) -> None:
    page, panel = chat, chat.panel.server_panel
    load(qtbot, page, scripted)
    assert switch_on(qtbot, panel)
    port = core.server.port
    page.window().close()
    assert not core.server.running and refused(port)
