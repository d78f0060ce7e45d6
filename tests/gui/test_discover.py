"""The Discover page, driven like a person would: type, scroll, select, go offline."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from tests.gui.conftest import select_repo
from tests.hostile.test_rich_text import labels_guessing, magenta_pixels, write_marker
from tests.support.hub_server import Fault, HubServer, Status
from ui.discover.card_view import MORE_LINK
from ui.discover.files_view import FitLongRole, FitRole, FitShortRole
from ui.discover.results_model import PAGE_SIZE, SearchState
from ui.main_window import MainWindow

GGUF_CARD = """---
license: llama3.1
base_model: meta-llama/Llama-3.1-8B-Instruct
pipeline_tag: text-generation
tags: [gguf, chat]
---
# Tiny Llama GGUF

Quantizations of a **tiny** model.

| File | Quant |
|---|---|
| tiny-Q4_K_M.gguf | Q4_K_M |
"""


def add_gguf_repo(hub_server: HubServer, repo_id: str = "acme/Tiny-Llama-GGUF") -> str:
    hub_server.add_repo(
        repo_id,
        {
            "tiny-Q4_K_M.gguf": b"GGUF" + b"\0" * 2000,
            "tiny-Q8_0-00001-of-00002.gguf": b"GGUF" + b"\1" * 1500,
            "tiny-Q8_0-00002-of-00002.gguf": b"\2" * 1500,
        },
        card=GGUF_CARD,
        downloads=1234,
        likes=56,
        library_name="gguf",
    )
    return repo_id


def wait_for_state(qtbot: QtBot, window: MainWindow, state: SearchState) -> None:
    results = window.discover.results
    qtbot.waitUntil(lambda: results.state == state, timeout=10_000)


def search(qtbot: QtBot, window: MainWindow, text: str) -> None:
    page = window.discover
    page.search_field.clear()
    qtbot.keyClicks(page.search_field, text)
    qtbot.waitUntil(lambda: page.results.state != SearchState.IDLE, timeout=5_000)
    qtbot.waitUntil(lambda: page.results.state != SearchState.LOADING, timeout=10_000)


def test_typing_a_query_lists_matching_models_with_one_search(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    add_gguf_repo(hub_server)
    hub_server.add_repo("acme/other-model", card="# Other", downloads=5)
    hub_server.clear_requests()

    search(qtbot, window, "tiny")

    results = window.discover.results
    assert results.state == SearchState.RESULTS
    assert [results.summary(row).repo_id for row in range(results.rowCount())] == [  # type: ignore[union-attr]
        "acme/Tiny-Llama-GGUF"
    ]
    assert window.discover.status.text() == "1 model"
    # Typing four letters made one search, not four: the field is debounced.
    searches = [r for r in hub_server.requests_to(r"^/api/models$") if r.query.get("search")]
    assert [r.query["search"] for r in searches] == [["tiny"]] or [
        r.query["search"] for r in searches
    ] == ["tiny"]


def test_filters_and_sort_reach_the_hub(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    add_gguf_repo(hub_server)
    hub_server.add_repo("acme/bert", card="---\nlicense: mit\n---\n", pipeline_tag="fill-mask")
    page = window.discover
    page.library_filter.setCurrentIndex(page.library_filter.findData("gguf"))
    wait_for_state(qtbot, window, SearchState.RESULTS)

    assert page.results.rowCount() == 1
    assert page.results.summary(0).repo_id == "acme/Tiny-Llama-GGUF"  # type: ignore[union-attr]
    page.license_filter.setCurrentIndex(page.license_filter.findData("mit"))
    wait_for_state(qtbot, window, SearchState.EMPTY)
    assert "No models match" in page.status.text()
    assert not hub_server.errors


def test_scrolling_to_the_end_fetches_the_next_page(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    for number in range(PAGE_SIZE * 2 + 10):
        hub_server.add_repo(f"bulk/model-{number:04d}", downloads=number)
    page = window.discover
    page.search_now()
    wait_for_state(qtbot, window, SearchState.RESULTS)
    assert page.results.rowCount() == PAGE_SIZE
    assert len(hub_server.requests_to(r"^/api/models$")) == 1

    page.results_view.scrollToBottom()
    qtbot.waitUntil(lambda: page.results.rowCount() == PAGE_SIZE * 2, timeout=10_000)
    assert len(hub_server.requests_to(r"^/api/models$")) == 2
    assert page.status.text() == f"{PAGE_SIZE * 2}+ models"


def test_selecting_a_model_shows_card_license_and_files_with_fit(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    repo_id = add_gguf_repo(hub_server)
    search(qtbot, window, "tiny")
    select_repo(qtbot, window, repo_id)
    details = window.discover.details.view

    assert repo_id in details.title.text()
    assert "Tiny Llama GGUF" in details.card.toPlainText()
    assert "Quantizations of a tiny model." in details.card.toPlainText()
    assert "license: llama3.1" in details.chips.texts()
    assert "---" not in details.card.toPlainText()  # front matter is chips, not raw YAML
    license_text = details.license.toPlainText()
    assert "Llama 3.1" in license_text
    assert "700 million" in license_text
    assert "use-restricted" in license_text

    files = details.files.model
    assert files is not None
    rows = {
        files.item(row, 0).text(): (files.item(row, 2).text(), files.item(row, 3).data(FitRole))
        for row in range(files.rowCount())
    }
    assert rows["tiny-Q4_K_M.gguf"] == ("Q4_K_M", "fits")
    # The fit is a badge in the row that says what the model needs of what is free (on a
    # narrow pane, only what it needs).
    fit = files.item(0, 3)
    assert fit.data(FitLongRole).startswith("fits · ") and " of " in fit.data(FitLongRole)
    assert fit.text() in (fit.data(FitLongRole), fit.data(FitShortRole), "fits")
    split = next(name for name in rows if name.startswith("tiny-Q8_0"))
    assert "2 parts" in split
    assert rows[split][0] == "Q8_0"
    assert files.item(list(rows).index(split), 0).rowCount() == 2


def test_a_hostile_card_loads_and_runs_nothing(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    card = f"""# Friendly model
<script>document.title = "pwned"</script>
<img src="{hub_server.url}/evil/inline.png">
![tracking pixel]({hub_server.url}/evil/markdown.png)
<iframe src="{hub_server.url}/evil/frame"></iframe>
<style>body {{ background: url({hub_server.url}/evil/style.png) }}</style>
<link rel="stylesheet" href="{hub_server.url}/evil/sheet.css">
[click me](javascript:alert(1))

The end.
"""
    hub_server.add_repo("mallory/friendly", card=card)
    search(qtbot, window, "friendly")
    select_repo(qtbot, window, "mallory/friendly")
    qtbot.wait(200)  # give any stray resource load a chance to happen

    card_view = window.discover.details.view.card
    text = card_view.toPlainText()
    assert "Friendly model" in text
    assert "The end." in text
    assert "pwned" not in text
    assert 'href="javascript' not in card_view.toHtml().lower()  # shown as text, not a link
    assert card_view.resource_requests == []
    assert hub_server.requests_to(r"/evil") == []


def test_a_one_megabyte_card_shows_its_start_then_all_of_it_on_request(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    section = "## Section\n\nSome **bold** text and `code`.\n\n- one\n- two\n\n"
    body = section * (1_000_000 // len(section))
    hub_server.add_repo("big/card", card="# Big\n\n" + body + "\nLAST LINE\n")
    search(qtbot, window, "big")
    select_repo(qtbot, window, "big/card")

    card_view = window.discover.details.view.card
    assert card_view.has_more
    assert "LAST LINE" not in card_view.toPlainText()
    assert "show the rest" in card_view.toPlainText()
    with qtbot.waitSignal(card_view.restShown, timeout=60_000):
        card_view.anchorClicked.emit(QUrl(MORE_LINK))
    text = card_view.toPlainText()
    assert text.count("Section") == body.count("## Section")
    assert "LAST LINE" in text
    assert "show the rest" not in text


def test_hub_down_shows_offline_state_and_models_seen_before(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    repo_id = add_gguf_repo(hub_server)
    search(qtbot, window, "tiny")
    select_repo(qtbot, window, repo_id)
    hub_server.stop()

    page = window.discover
    page.details.show_placeholder()
    page.search_now()
    wait_for_state(qtbot, window, SearchState.OFFLINE)
    assert page.status.text().startswith("Offline")
    assert "looked at before" in page.status.text()
    assert page.results.summary(0).repo_id == repo_id  # type: ignore[union-attr]

    select_repo(qtbot, window, repo_id)
    details = window.discover.details.view
    assert details.notice.isVisible()
    assert "Offline" in details.notice.text()
    assert "Tiny Llama GGUF" in details.card.toPlainText()


def test_a_failing_hub_gets_a_message_not_a_freeze(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    add_gguf_repo(hub_server)
    hub_server.inject(Fault(Status(404), path=r"^/api/models/", times=None))
    search(qtbot, window, "tiny")
    page = window.discover
    with qtbot.waitSignal(page.details.failed, timeout=10_000) as failed:
        page.results_view.selectRow(0)
    assert "acme/Tiny-Llama-GGUF" in failed.args[0]
    assert page.details.message.text.text() == failed.args[0]


def test_gated_model_explains_how_to_get_access(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    hub_server.add_repo(
        "meta/gated",
        {"model.safetensors": b"\0" * 64},
        card="---\nlicense: llama3.1\n---\n# G",
        gated="manual",
    )
    search(qtbot, window, "gated")
    select_repo(qtbot, window, "meta/gated")
    panel = window.discover.details.view.license
    qtbot.waitUntil(lambda: "No token is set" in panel.toPlainText(), timeout=10_000)
    assert f"{hub_server.url}/meta/gated" in panel.toPlainText()
    assert "reviewed by the authors" in panel.toPlainText()


def test_keyboard_search_focus_arrows_and_enter(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    add_gguf_repo(hub_server)
    window.show_page(window.settings)
    qtbot.keyClick(window, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    page = window.discover
    assert window.pages.currentWidget() is page
    assert page.search_field.hasFocus()

    qtbot.keyClicks(page.search_field, "tiny")
    qtbot.keyClick(page.search_field, Qt.Key.Key_Return)
    wait_for_state(qtbot, window, SearchState.RESULTS)
    qtbot.keyClick(page.search_field, Qt.Key.Key_Down)
    assert page.results_view.hasFocus()
    with qtbot.waitSignal(page.details.detailsShown, timeout=10_000) as shown:
        qtbot.keyClick(page.results_view, Qt.Key.Key_Return)
    assert shown.args == ["acme/Tiny-Llama-GGUF"]


def test_results_model_is_a_well_behaved_qt_model(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer, qtmodeltester: ModelTester
) -> None:
    for number in range(5):
        hub_server.add_repo(f"m/model-{number}", card="---\nlicense: apache-2.0\n---\n")
    window.discover.search_now()
    wait_for_state(qtbot, window, SearchState.RESULTS)
    qtmodeltester.check(window.discover.results)


def test_hostile_metadata_is_shown_as_text_and_loads_no_file(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer, tmp_path: Path
) -> None:
    # The reported case: a library_name that is an <img> of a local file rendered the image.
    marker = write_marker(tmp_path / "marker.png")
    image = f'<img src="{QUrl.fromLocalFile(str(marker)).toString()}">'
    hub_server.add_repo(
        "mallory/metadata",
        card="---\nbase_model: '<a href=\"https://evil.example\">base</a>'\n---\n# Card",
        library_name=image,
        pipeline_tag="<b>bold</b>",
        tags=["<i>italic</i>", "<img src=marker.png>"],  # tags with a ":" are not chips
    )
    search(qtbot, window, "metadata")
    select_repo(qtbot, window, "mallory/metadata")
    qtbot.wait(100)  # a stray resource load would paint by now

    view = window.discover.details.view
    assert view.facts.textFormat() == Qt.TextFormat.PlainText
    assert image in view.facts.text()
    assert "<b>bold</b>" in view.facts.text()
    assert view.title.textFormat() == Qt.TextFormat.PlainText
    # Chips are painted badges: the hub's text shows as written, never parsed.
    chips = view.chips.texts()
    assert "<img src=marker.png>" in chips and "<i>italic</i>" in chips
    assert labels_guessing(window.discover) == []
    assert view.card.resource_requests == []
    assert magenta_pixels(window) == 0
