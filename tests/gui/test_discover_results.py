"""Discover's results and details header: names first and whole, badges, a pane that holds still."""

from __future__ import annotations

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.hub.models import Gating, ModelSummary
from tests.gui.conftest import select_repo
from tests.gui.test_discover import add_gguf_repo, search, wait_for_state
from tests.support.hub_server import HubServer
from ui.discover.result_row import (
    ResultRowDelegate,
    compact_counted,
    counted,
    result_badges,
    split_repo_id,
)
from ui.discover.results_model import SearchState
from ui.main_window import MainWindow
from ui.widgets import ElidedLabel


def test_counts_read_in_the_right_number() -> None:
    assert counted(1, "like") == "1 like"
    assert counted(2, "like") == "2 likes"
    assert counted(0, "model") == "0 models"
    assert counted(1234, "download") == "1,234 downloads"
    assert compact_counted(1, "like") == "1 like"
    assert compact_counted(48_213, "download") == "48K downloads"


def test_a_result_is_split_into_author_and_name_and_its_facts_are_badges() -> None:
    assert split_repo_id("acme/Tiny-Llama-GGUF") == ("acme/", "Tiny-Llama-GGUF")
    assert split_repo_id("gpt2") == ("", "gpt2")
    summary = ModelSummary(
        repo_id="acme/x",
        task="text-generation",
        downloads=1,
        likes=1,
        license_id="mit",
        gating=Gating.MANUAL,
    )
    texts = [badge.text for badge in result_badges(summary)]
    assert texts == ["text-generation", "mit", "gated", "1 download", "1 like"]


def test_results_show_one_column_of_whole_names_with_the_id_in_the_tooltip(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    long_id = "some-author/" + "A-Really-Long-Model-Name-" * 4 + "Q4_K_M-GGUF"
    hub_server.add_repo(long_id, card="---\nlicense: mit\n---\n", likes=1)
    search(qtbot, window, "Really-Long")
    page = window.discover
    view = page.results_view
    assert isinstance(view.itemDelegateForColumn(0), ResultRowDelegate)
    # Task, downloads, likes, license and date are badges in the row, not columns.
    assert [view.isColumnHidden(c) for c in range(page.results.columnCount())] == [
        False,
        True,
        True,
        True,
        True,
        True,
    ]
    assert view.horizontalHeader().isHidden()
    assert view.textElideMode() != Qt.TextElideMode.ElideMiddle
    tip = page.results.data(page.results.index(0, 0), Qt.ItemDataRole.ToolTipRole)
    assert long_id in tip
    assert "1 like" in tip and "1 likes" not in tip
    assert page.status.text() == "1 model"
    # Painting a row at any width draws without error (the name cut at its end).
    view.resize(260, 300)
    qtbot.wait(10)
    view.viewport().grab()


def test_the_details_title_cuts_the_name_at_its_end_not_its_middle(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    repo_id = add_gguf_repo(hub_server)
    search(qtbot, window, "tiny")
    select_repo(qtbot, window, repo_id)
    title = window.discover.details.view.title
    assert isinstance(title, ElidedLabel)
    title.resize(60, title.height())
    assert title._elided().endswith("…")
    assert title._elided().startswith(repo_id[:2])
    assert repo_id in title.toolTip()


def test_the_tabs_stay_at_one_height_whatever_the_chips(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    many_tags = [f"tag-number-{n}" for n in range(40)]
    hub_server.add_repo("acme/many-tags", card="# Many", tags=many_tags)
    hub_server.add_repo("acme/few-tags", card="# Few")
    search(qtbot, window, "tags")
    view = window.discover.details
    select_repo(qtbot, window, "acme/many-tags")
    tabs = view.view.tabs
    many = (tabs.y(), tabs.height())
    chips = view.view.chips
    assert len(chips.texts()) > len(chips.shown_texts())  # the rest are "+N more"
    assert chips.more.isVisible() and chips.more.text().endswith("more")
    select_repo(qtbot, window, "acme/few-tags")
    qtbot.wait(10)
    assert (tabs.y(), tabs.height()) == many


def test_a_new_search_clears_the_model_of_the_old_results(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    repo_id = add_gguf_repo(hub_server)
    hub_server.add_repo("acme/other", card="# Other")
    search(qtbot, window, "tiny")
    select_repo(qtbot, window, repo_id)
    details = window.discover.details
    assert details.stack.currentWidget() is details.view

    with qtbot.waitSignal(window.discover.results.stateChanged, timeout=5_000):
        qtbot.keyClicks(window.discover.search_field, " other")  # a new search starts
    assert details.stack.currentWidget() is details.message
    assert details.requested is None
    assert "Select a model" in details.message.title.text()


def test_tab_leaves_the_results_and_escape_clears_the_search(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    add_gguf_repo(hub_server)
    hub_server.add_repo("acme/tiny-two", card="# Two")
    page = window.discover
    assert not page.results_view.tabKeyNavigation()
    search(qtbot, window, "tiny")
    wait_for_state(qtbot, window, SearchState.RESULTS)
    page.results_view.setFocus()
    with qtbot.waitSignal(page.details.detailsShown, timeout=10_000):
        page.results_view.selectRow(0)
    qtbot.waitUntil(page.results_view.hasFocus, timeout=5_000)
    qtbot.keyClick(page.results_view, Qt.Key.Key_Tab)
    assert not page.results_view.hasFocus()
    assert page.results_view.currentIndex().row() == 0  # Tab did not move the selection

    page.search_field.setFocus()
    qtbot.waitUntil(page.search_field.hasFocus, timeout=5_000)
    assert page.search_field.text() == "tiny"
    with qtbot.waitSignal(page.results.stateChanged, timeout=5_000):  # the empty search
        qtbot.keyClick(page.search_field, Qt.Key.Key_Escape)
    assert page.search_field.text() == ""
    wait_for_state(qtbot, window, SearchState.RESULTS)


def test_discover_controls_have_accessible_names(window: MainWindow) -> None:
    page = window.discover
    for widget in (
        page.search_field,
        page.task_filter,
        page.library_filter,
        page.license_filter,
        page.author_filter,
        page.sort_order,
        page.results_view,
    ):
        assert widget.accessibleName(), widget
    files = page.details.view.files
    for button in (
        files.download_button,
        files.pipeline_button,
        files.chat_button,
        files.safetensors_button,
        files.gate.request_button,
        files.gate.save_button,
    ):
        assert button.accessibleName(), button.text()


def test_a_badge_keeps_its_text_and_paints_in_both_schemes(qtbot: QtBot) -> None:
    from ui import theme
    from ui.badges import Badge, Tone

    badge = Badge("<b>MIT</b>", Tone.GOOD)
    qtbot.addWidget(badge)
    assert badge.text() == "<b>MIT</b>"
    assert badge.accessibleName() == "<b>MIT</b>"
    assert badge.sizeHint().width() > badge.fontMetrics().horizontalAdvance("MIT")
    for scheme in (theme.Scheme.LIGHT, theme.Scheme.DARK):
        theme.set_scheme(scheme)
        badge.grab()
    theme.set_scheme(None)
