"""Text from a hub or a file is shown as text: never as HTML, and no resource is ever loaded.

Qt guesses rich text wherever a widget's format is "auto" (QLabel, tooltips, message boxes),
and a QTextDocument loads `file:` and `data:` images itself unless `loadResource` answers
with an empty value. Each test serves a hostile value (an `<img>` of a magenta PNG that
exists on disk, a link, markup, a 100 kB name) through the real path — the test hub, a GGUF
file, the conversation store, a gallery image — and checks that the characters are shown
literally, that no label guesses, and that not one magenta pixel reaches the screen.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PilImage
from PIL.PngImagePlugin import PngInfo
from PySide6 import QtGui
from PySide6.QtCore import QBuffer, Qt, QUrl
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QLabel, QMessageBox, QTextBrowser, QWidget
from pytestqt.qtbot import QtBot

from app.core import Core
from tests.gui import conftest as gui_fixtures
from tests.support.gguf_builder import write_gguf
from tests.support.hub_server import HubServer
from ui.chat.message_body import MessageBody
from ui.discover.card_view import CardView
from ui.discover.license_panel import LicensePanel
from ui.discover.results_model import LICENSE_COLUMN, SearchState
from ui.images.gallery_model import GalleryModel
from ui.images.viewer import ImageViewer
from ui.inert_text import InertDocument, InertTextBrowser
from ui.main_window import MainWindow
from ui.widgets import LONG_CHARS, SHORT_CHARS, plain_html, plain_label, tooltip_html

pytestmark = pytest.mark.gui

# The GUI tests' fixtures (an offscreen window on the test hub, asyncio on the Qt loop), shared.
qt_loop = gui_fixtures.qt_loop
core = gui_fixtures.core
window = gui_fixtures.window

MAGENTA = QColor(255, 0, 255)
BIG = 100_000  # characters in a "100 kB name"


# -- helpers -------------------------------------------------------------------------------


def write_marker(path: Path) -> Path:
    """A 40x40 magenta PNG at `path`: if any of it is drawn, the file was loaded."""
    image = QImage(40, 40, QImage.Format.Format_RGB32)
    image.fill(MAGENTA)
    assert image.save(str(path))
    return path


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return write_marker(tmp_path / "marker.png")


def data_url() -> str:
    """The same magenta square as a `data:` URL."""
    image = QImage(40, 40, QImage.Format.Format_RGB32)
    image.fill(MAGENTA)
    buffer = QBuffer()
    buffer.open(QBuffer.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(bytes(buffer.data().data())).decode()


def img(marker: Path) -> str:
    return f'<img src="{QUrl.fromLocalFile(str(marker)).toString()}">'


def magenta_pixels(widget: QWidget) -> int:
    """How many pixels of `widget`, as painted now, are the marker's magenta."""
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    rows = np.frombuffer(image.constBits(), dtype=np.uint8).reshape(
        image.height(), image.bytesPerLine()
    )
    pixels = rows[:, : image.width() * 4].reshape(image.height(), image.width(), 4)
    blue, green, red = pixels[..., 0], pixels[..., 1], pixels[..., 2]  # 0xAARRGGBB, little end
    return int(np.count_nonzero((red > 240) & (green < 16) & (blue > 240)))


def shown_text(rich: str) -> str:
    """What a rich-text widget shows for `rich` (its plain text)."""
    document = InertDocument()
    document.setHtml(rich)
    return document.toPlainText()


def assert_literal(rich: str, expected: str) -> None:
    """`rich` is rich text (so Qt does not guess) that shows `expected` character for character."""
    assert QtGui.Qt.mightBeRichText(rich)
    assert "<img" not in rich and "<b>" not in rich and "<style>" not in rich
    assert shown_text(rich) == expected


def labels_guessing(root: QWidget) -> list[str]:
    """Texts of labels under `root` that leave the format to Qt's guess (should be none)."""
    return [
        label.text()[:80]
        for label in root.findChildren(QLabel)
        if label.textFormat() == Qt.TextFormat.AutoText and label.text()
    ]


def search(qtbot: QtBot, window: MainWindow, text: str) -> None:
    page = window.discover
    page.search_field.setText(text)
    page.search_now()
    qtbot.waitUntil(lambda: page.results.state != SearchState.LOADING, timeout=10_000)


# -- the inert rich-text views -------------------------------------------------------------


def test_a_plain_text_browser_loads_file_and_data_images_but_an_inert_one_does_not(
    qtbot: QtBot, marker: Path
) -> None:
    # Relative names resolve against the document's base URL: point it at the marker's folder.
    html = f'<p>{img(marker)} <img src="{data_url()}"> <img src="marker.png"></p>'
    base = QUrl.fromLocalFile(f"{marker.parent}/")

    plain = QTextBrowser()  # the control: what Qt does when nobody refuses
    inert = InertTextBrowser()
    for view in (plain, inert):
        qtbot.addWidget(view)
        view.resize(400, 200)
        view.document().setBaseUrl(base)
        view.setHtml(html)
        view.show()
    qtbot.waitExposed(inert)

    assert magenta_pixels(plain) == 3 * 40 * 40  # all three were loaded, from disk and data:
    assert magenta_pixels(inert) == 0
    requested = inert.resource_requests  # the relative name arrives resolved: file:///…
    assert any(name.startswith("file://") and name.endswith("marker.png") for name in requested)
    assert any(name.startswith("data:") for name in requested)
    assert inert.document().size().height() < 40  # no image took any room


def test_an_inert_document_reads_no_style_sheet(tmp_path: Path) -> None:
    sheet = tmp_path / "evil.css"
    sheet.write_text("p { color: #ff00ff; font-size: 60pt }")
    document = InertDocument()
    url = QUrl.fromLocalFile(str(sheet)).toString()
    for how in (
        f'<head><link rel="stylesheet" type="text/css" href="{url}"></head>',
        f"<style>@import url({url});</style>",
    ):
        document.setHtml(f"{how}<p>styled?</p>")
        block = document.findBlock(0)
        assert block.text() == "styled?"
        assert block.charFormat().foreground().color() != MAGENTA
        assert block.charFormat().fontPointSize() < 60
    assert document.resource_requests == [url]  # asked for (once recorded), never read


@pytest.mark.parametrize(
    "make_view",
    [CardView, LicensePanel, MessageBody, InertTextBrowser],
    ids=["card", "license", "chat-message", "image-details"],
)
def test_every_html_view_of_the_app_loads_nothing(
    qtbot: QtBot, marker: Path, make_view: Callable[[], QTextBrowser]
) -> None:
    view = make_view()
    qtbot.addWidget(view)
    view.resize(400, 300)
    view.setHtml(f"<p>before {img(marker)} <img src='{data_url()}'> after</p>")
    view.show()
    qtbot.waitExposed(view)
    assert magenta_pixels(view) == 0
    assert "before" in view.toPlainText() and "after" in view.toPlainText()
    assert len(getattr(view, "resource_requests", [])) == 2


def test_a_chat_message_built_in_pieces_loads_nothing(qtbot: QtBot, marker: Path) -> None:
    # Replies are appended as fragments parsed in a document of their own: that one is inert
    # too (the HTML parser fetches style sheets while it reads).
    sheet = marker.with_name("evil.css")
    sheet.write_text("p { color: #ff00ff }")
    body = MessageBody()
    qtbot.addWidget(body)
    body.show_text("First paragraph.")
    url = QUrl.fromLocalFile(str(sheet)).toString()
    body._append_html(  # the seam every streamed block goes through
        f'<head><link rel="stylesheet" type="text/css" href="{url}"></head>'
        f"<p>second {img(marker)}</p>"
    )
    body.show()
    qtbot.waitExposed(body)
    assert magenta_pixels(body) == 0
    assert any(name.endswith("evil.css") for name in body.resource_requests)
    assert any(name.endswith("marker.png") for name in body.resource_requests)


def test_a_model_reply_with_raw_html_is_shown_as_text(qtbot: QtBot, marker: Path) -> None:
    body = MessageBody()
    qtbot.addWidget(body)
    body.show_text(f"Look: {img(marker)} and <b>bold</b>\n\n```\n{img(marker)}\n```\n")
    body.show()
    qtbot.waitExposed(body)
    assert magenta_pixels(body) == 0
    assert body.resource_requests == []  # the Markdown renderer kept the markup as text


# -- labels, tooltips, message boxes -------------------------------------------------------


def test_a_plain_label_shows_markup_as_its_characters(qtbot: QtBot, marker: Path) -> None:
    hostile = f'{img(marker)} <a href="https://evil.example">click</a> <b>bold</b>'
    guessing = QLabel(hostile)  # the control: Qt's default guesses and loads the file
    label = plain_label(hostile)
    for widget in (guessing, label):
        qtbot.addWidget(widget)
        widget.show()
    qtbot.waitExposed(label)
    assert magenta_pixels(guessing) == 40 * 40
    assert label.textFormat() == Qt.TextFormat.PlainText
    assert label.text() == hostile
    assert magenta_pixels(label) == 0


def test_tooltips_and_message_texts_show_their_characters(marker: Path) -> None:
    hostile = f"{img(marker)}\n  <style>p {{ color: red }}</style> & <b>bold</b>"
    assert_literal(plain_html(hostile), hostile)
    assert_literal(tooltip_html(hostile), hostile)
    assert tooltip_html("") == ""  # no tooltip, not an empty box
    huge = tooltip_html("<" * BIG)
    assert len(shown_text(huge)) == LONG_CHARS
    assert shown_text(huge).endswith("…")


# -- Discover ------------------------------------------------------------------------------


def test_a_hostile_repo_id_is_text_in_the_results_and_in_the_error_that_quotes_it(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    repo_id = "mallory/<img src=marker.png><b>bold"  # a hub may send any id in a listing
    hub_server.add_repo(repo_id, card="# hi")
    search(qtbot, window, "mallory")
    page = window.discover
    assert page.results.data(page.results.index(0, 0)) == repo_id  # drawn plainly by the view
    with qtbot.waitSignal(page.details.failed, timeout=10_000):
        page.results_view.selectRow(0)
    message = page.details.message
    assert message.title.textFormat() == Qt.TextFormat.PlainText
    assert message.text.textFormat() == Qt.TextFormat.PlainText
    assert labels_guessing(page) == []


def test_a_hostile_license_is_text_in_the_results_tooltip_and_the_license_panel(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer, marker: Path
) -> None:
    hostile = img(marker).replace('"', "'")
    hub_server.add_repo(
        "mallory/licensed", card=f'---\nlicense: "{hostile}"\n---\n# Licensed', tags=["x"]
    )
    search(qtbot, window, "licensed")
    page = window.discover
    tip = page.results.data(page.results.index(0, LICENSE_COLUMN), Qt.ItemDataRole.ToolTipRole)
    assert hostile in shown_text(tip)
    assert "<img" not in tip
    gui_fixtures.select_repo(qtbot, window, "mallory/licensed")
    panel = page.details.view.license
    assert hostile in panel.toPlainText()
    assert panel.resource_requests == []
    assert magenta_pixels(window) == 0


def test_a_100_kb_name_is_cut_short_and_the_window_keeps_its_size(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    long_name = "<b>" + "n" * BIG  # no space to wrap at: it would widen the window
    hub_server.add_repo(
        "mallory/long", card="# Long", library_name=long_name, pipeline_tag=long_name
    )
    width = window.width()
    search(qtbot, window, "long")
    started = time.perf_counter()
    gui_fixtures.select_repo(qtbot, window, "mallory/long")
    assert time.perf_counter() - started < 10  # bounded, not a freeze
    view = window.discover.details.view
    assert len(view.facts.text()) < 4 * SHORT_CHARS
    assert view.facts.text().startswith("<b>nnn")
    assert window.width() == width
    assert window.discover.details.minimumSizeHint().width() < 2_000


def test_hostile_file_names_are_text_in_the_files_tab_and_the_download_queue(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    name = "<img src=marker.png><b>weights.gguf"
    hub_server.add_repo("mallory/files", {name: b"GGUF" + b"\0" * 64}, card="# Files")
    search(qtbot, window, "files")
    gui_fixtures.select_repo(qtbot, window, "mallory/files")
    files = window.discover.details.view.files
    model = files.model
    assert model is not None
    row = next(row for row in range(model.rowCount()) if model.item(row, 0).text() == name)
    sha_tip = model.item(row, 4).toolTip()
    assert QtGui.Qt.mightBeRichText(sha_tip) and "<img" not in sha_tip
    assert files.summary.textFormat() == Qt.TextFormat.PlainText
    files.tree.setCurrentIndex(model.index(row, 0))
    files.download_button.click()

    downloads = window.downloads
    qtbot.waitUntil(lambda: downloads.model.rowCount() == 1, timeout=10_000)
    qtbot.waitUntil(
        lambda: (job := downloads.model.job(0)) is not None and job.state.value == "completed",
        timeout=30_000,
    )
    assert "<img src=marker.png><b>weights" in downloads.model.item(0, 0).text()  # plain cell
    tip = downloads.model.item(0, 0).toolTip()
    assert name in shown_text(tip)
    assert "<img" not in tip
    assert labels_guessing(downloads) == []


def test_a_hostile_card_renders_within_bounds_and_loads_nothing(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer, marker: Path
) -> None:
    # Raw HTML of every kind a card could use to fetch something, unclosed tags that nest
    # deeper on every line, and Markdown images: about 600 kB.
    hostile = (
        f"{img(marker)}<img src='{data_url()}'><style>p {{ color: #ff00ff }}</style>"
        '<link rel="stylesheet" href="file:///etc/passwd"><a href="file:///etc/passwd">x</a>'
        f"![pixel]({QUrl.fromLocalFile(str(marker)).toString()})" + "<b><i><u><s>" * 5
    )
    card = "# Hostile\n\n" + "\n\n".join(f"{hostile} paragraph {n}" for n in range(400))
    hub_server.add_repo("mallory/card", card=card)
    search(qtbot, window, "card")
    started = time.perf_counter()
    gui_fixtures.select_repo(
        qtbot, window, "mallory/card"
    )  # waits for the whole card to be in the viewer
    assert time.perf_counter() - started < 15  # a bound for a slow shared machine, not a freeze
    card_view = window.discover.details.view.card
    assert "paragraph 0" in card_view.toPlainText()
    assert "paragraph 399" in card_view.toPlainText() or card_view.has_more
    assert card_view.resource_requests == []  # the sanitizer left nothing to ask for
    assert magenta_pixels(window) == 0


# -- Library, Chat, Images -----------------------------------------------------------------


def test_gguf_metadata_is_text_in_the_library_rows_tooltips_and_delete_question(
    qtbot: QtBot, window: MainWindow, tmp_path: Path, marker: Path
) -> None:
    # An imported file is listed under its file name; its path is in the tooltip.
    hostile = "<img src=marker.png><b>tiny-Q8_0"
    gguf = write_gguf(tmp_path / "models" / f"{hostile}.gguf", name=f"{img(marker)} <b>Tiny")
    page = window.library
    with qtbot.waitSignal(page.imported, timeout=20_000):
        page.import_paths([gguf])
    row = next(
        row
        for row in range(page.model.rowCount())
        if (entry := page.model.item(row)) is not None and entry.name == hostile
    )
    index = page.model.index(row, 0)
    assert page.model.data(index) == hostile  # a cell: drawn as plain text
    tip = page.model.data(index, Qt.ItemDataRole.ToolTipRole)
    assert str(gguf) in shown_text(tip) and "<b>" not in tip
    assert labels_guessing(page) == []

    # The delete question states its text format: plain text, shown as written.
    page.view.selectRow(page.proxy.mapFromSource(index).row())
    page.delete_button.click()
    qtbot.waitUntil(lambda: page.asking is not None and page.asking.isVisible(), timeout=10_000)
    box = page.asking
    assert box is not None
    assert box.textFormat() == Qt.TextFormat.PlainText
    assert hostile in box.text()
    box.button(QMessageBox.StandardButton.No).click()
    assert magenta_pixels(window) == 0


def test_a_conversation_title_is_text_in_the_header_and_the_delete_question(
    qtbot: QtBot, window: MainWindow, core: Core, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    title = f"{img(marker)} <a href='https://evil.example'>plans</a>"
    conversation = core.conversations.create(title)
    page = window.chat
    window.show_page(page)
    page.conversations.refresh(select=conversation.id)
    qtbot.waitUntil(lambda: page.conversation_id == conversation.id, timeout=10_000)
    qtbot.waitUntil(lambda: page.title.text() == title, timeout=10_000)
    assert page.title.textFormat() == Qt.TextFormat.PlainText
    assert page.conversations.titles() == [title]

    asked: list[str] = []

    def answer(_parent: object, _title: str, text: str, *_args: object) -> object:
        asked.append(text)
        return QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", answer)
    page.conversations.delete_current()
    assert asked and title in shown_text(asked[0]) and "<img" not in asked[0]
    assert magenta_pixels(window) == 0


def test_a_png_prompt_is_text_in_the_image_viewer_and_the_gallery_tooltip(
    qtbot: QtBot, core: Core, qt_loop: object, tmp_path: Path
) -> None:
    # A PNG made elsewhere, whose A1111 "parameters" text is the hostile part.
    prompt = "<img src=marker.png> <b>a cat</b> <style>body { background: #ff00ff }</style>"
    write_marker(tmp_path / "marker.png")  # what a loaded relative image would show
    path = tmp_path / "made.png"
    info = PngInfo()
    info.add_text(
        "parameters",
        f"{prompt}\nNegative prompt: <i>blurry</i>\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 7, Size: 64x64, "
        "Model: <a href='https://evil.example'>model</a>",
    )
    PilImage.new("RGB", (64, 64), "teal").save(path, pnginfo=info)
    image = core.gallery.add_file(path)
    assert image.params is not None and image.params.prompt == prompt

    viewer = ImageViewer(image)
    qtbot.addWidget(viewer)
    with qtbot.waitSignal(viewer.shown, timeout=10_000):
        viewer.show()
    shown = viewer.details.toPlainText()
    assert prompt in shown and "<i>blurry</i>" in shown
    assert viewer.details.resource_requests == []
    assert magenta_pixels(viewer) == 0

    gallery = GalleryModel(lambda: core.gallery)
    with qtbot.waitSignal(gallery.fetched, timeout=10_000):
        gallery.refresh()
    tip = gallery.data(gallery.index(0), Qt.ItemDataRole.ToolTipRole)
    assert prompt in shown_text(tip) and "<img" not in tip and "<style>" not in tip
