"""The Images page's look and keyboard, without an engine: the license badge and its details,
the "Open…" button, the idle preview, the gallery's placeholder and selection frame, Tab out
of the gallery, accessible names, the size note, and a delete that defaults to No."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QAbstractButton, QApplication, QMessageBox, QStyle
from pytestqt.qtbot import QtBot

from app.core import Core
from app.images import ModelRef
from app.images.gallery import GalleryImage
from ui import theme
from ui.badges import Tone
from ui.images.gallery_model import ICON_SIDE
from ui.images.model_picker import ImageModel
from ui.images.page import ImagesPage
from ui.images.thumbnail_delegate import PAD
from ui.main_window import MainWindow

RAIL = ImageModel(
    ref=ModelRef(name="sd15", path="/models/sd15"), label="sd15", license="creativeml-openrail-m"
)


@pytest.fixture
def images(qtbot: QtBot, window: MainWindow) -> ImagesPage:
    page = window.images
    with qtbot.waitSignals([page.modelsListed, page.counted, page.gallery_model.fetched]):
        window.show_page(page)
    return page


@pytest.fixture
def light() -> object:
    theme.set_scheme(theme.Scheme.LIGHT)
    yield None
    theme.set_scheme(theme.Scheme.LIGHT)


def add_images(qtbot: QtBot, page: ImagesPage, core: Core, tmp_path: Path, count: int) -> None:
    for n in range(count):
        path = tmp_path / f"made-{n}.png"
        Image.new("RGB", (64, 64), "black").save(path)
        core.gallery.add_file(path)
    with qtbot.waitSignal(page.gallery_model.fetched, timeout=10_000):
        page.gallery_model.refresh()


def test_the_license_is_a_badge_with_the_restrictions_behind_details(images: ImagesPage) -> None:
    picker = images.picker
    picker.pick(RAIL)
    assert picker.badge.isVisibleTo(images)
    assert picker.badge.text() == "CreativeML OpenRAIL-M · use-restricted"
    assert picker.badge.tone() is Tone.CAUTION
    # The restrictions wait behind "Details": the prompt is not pushed down by them.
    assert not picker.details_shown and not picker.license.isVisibleTo(images)
    assert picker.details_button.accessibleName()
    picker.details_button.click()
    assert picker.license.isVisibleTo(images)
    text = picker.license.text()
    assert text.startswith("License: CreativeML OpenRAIL-M")
    assert "minors" in text and "medical advice" in text
    picker.details_button.click()
    assert not picker.license.isVisibleTo(images)

    picker.pick(ImageModel.from_path(Path("/models/unknown.safetensors")))
    assert picker.badge.text() == "License not known"
    assert picker.badge.width() >= picker.badge.sizeHint().width()


def test_a_model_listed_later_shows_its_license(images: ImagesPage) -> None:
    picker = images.picker
    picker.pick(ImageModel.from_path(Path("/models/sd15")))
    assert picker.badge.text() == "License not known"
    picker.set_models([RAIL])  # the library lists the same path, with its card's license
    assert picker.badge.text().startswith("CreativeML OpenRAIL-M")


@pytest.mark.parametrize("size", [(900, 600), (1280, 800), (1920, 1080)])
def test_nothing_is_clipped_from_900x600_to_1920x1080(
    qtbot: QtBot, window: MainWindow, images: ImagesPage, size: tuple[int, int]
) -> None:
    images.picker.pick(RAIL)
    window.resize(*size)
    qtbot.waitUntil(lambda: (window.width(), window.height()) == size)
    QApplication.processEvents()
    button = images.picker.open_button
    # The menu arrow has room of its own: "Open…" is not drawn under it.
    style = button.style()
    arrow = style.pixelMetric(QStyle.PixelMetric.PM_MenuButtonIndicator, None, button)
    text = button.fontMetrics().horizontalAdvance(button.text())
    assert button.width() >= text + arrow
    assert button.width() >= button.sizeHint().width()
    assert images.picker.badge.width() >= images.picker.badge.sizeHint().width()
    assert images.generate_button.width() >= images.generate_button.sizeHint().width()


def test_the_idle_preview_has_no_empty_bar(images: ImagesPage) -> None:
    preview = images.preview
    assert not preview.progress.isVisibleTo(images)
    preview.busy("Loading…")
    assert preview.progress.isVisibleTo(images)
    preview.done("Done")
    assert preview.progress.isVisibleTo(images)
    preview.done("")
    assert not preview.progress.isVisibleTo(images)


def test_the_placeholder_follows_the_colour_scheme(
    qtbot: QtBot, images: ImagesPage, core: Core, tmp_path: Path, light: object
) -> None:
    model = images.gallery_model
    light_colour = model.placeholder().toImage().pixelColor(0, 0)
    assert light_colour == QColor(theme.LIGHT.button)
    theme.set_scheme(theme.Scheme.DARK)
    assert model.placeholder().toImage().pixelColor(0, 0) == QColor(theme.DARK.button)


def test_the_selection_is_an_accent_frame_on_the_thumbnail(
    qtbot: QtBot, images: ImagesPage, core: Core, tmp_path: Path, light: object
) -> None:
    add_images(qtbot, images, core, tmp_path, 2)
    view = images.gallery.view
    view.setCurrentIndex(images.gallery_model.index(0))
    qtbot.waitUntil(lambda: view.visualRect(images.gallery_model.index(0)).isValid())
    rect = view.visualRect(images.gallery_model.index(0))
    picture = view.viewport().grab().toImage()
    accent = view.palette().color(QPalette.ColorRole.Highlight)
    # Just outside the thumbnail's left edge, at its middle: the frame.
    x = rect.left() + PAD - 2
    y = rect.top() + PAD + ICON_SIDE // 2
    assert picture.pixelColor(x, y) == accent
    other = view.visualRect(images.gallery_model.index(1))
    assert picture.pixelColor(other.left() + PAD - 2, y) != accent  # not selected: no frame
    # The thumbnail itself is not tinted by the selection.
    qtbot.waitUntil(lambda: images.gallery_model.data(
        images.gallery_model.index(0), Qt.ItemDataRole.DecorationRole).width() == 64)  # fmt: skip
    view.viewport().repaint()
    picture = view.viewport().grab().toImage()
    middle = rect.center()
    assert picture.pixelColor(middle.x(), middle.y()) == QColor("black")


def test_tab_leaves_the_gallery_and_enter_and_delete_act_on_the_image(
    qtbot: QtBot, images: ImagesPage, core: Core, tmp_path: Path
) -> None:
    add_images(qtbot, images, core, tmp_path, 3)
    view = images.gallery.view
    assert not view.tabKeyNavigation()
    view.setFocus()
    view.setCurrentIndex(images.gallery_model.index(0))
    qtbot.waitUntil(view.hasFocus)
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert view.currentIndex().row() == 1  # arrows move within the grid
    qtbot.keyClick(view, Qt.Key.Key_Tab)
    assert not view.hasFocus()
    assert view.currentIndex().row() == 1  # Tab did not move the selection

    opened: list[GalleryImage] = []
    deleted: list[GalleryImage] = []
    images.gallery.openRequested.connect(opened.append)
    images.gallery.deleteRequested.connect(deleted.append)
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Return)
    if images.viewer is not None:
        images.viewer.close()
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    expected = images.gallery_model.image(1)
    assert opened == [expected] and deleted == [expected]
    qtbot.keyClick(confirmation(qtbot, images), Qt.Key.Key_Escape)  # the page asked first
    qtbot.waitUntil(lambda: images.asking is None)


def confirmation(qtbot: QtBot, page: ImagesPage) -> QMessageBox:
    qtbot.waitUntil(lambda: page.asking is not None and page.asking.isVisible())
    assert page.asking is not None
    return page.asking


def test_delete_asks_and_enter_or_esc_keep_the_image(
    qtbot: QtBot, images: ImagesPage, core: Core, tmp_path: Path
) -> None:
    add_images(qtbot, images, core, tmp_path, 1)
    image = images.gallery_model.image(0)
    assert image is not None
    for key in (Qt.Key.Key_Return, Qt.Key.Key_Escape):
        images.gallery.menu_for(0)
        images.gallery.delete_action.trigger()
        box = confirmation(qtbot, images)
        assert image.path.name in box.text()
        assert box.textFormat() is Qt.TextFormat.PlainText  # a file name is never HTML
        assert box.defaultButton() is box.button(QMessageBox.StandardButton.No)
        assert box.button(QMessageBox.StandardButton.Yes).text() == "Delete"
        qtbot.keyClick(box, key)
        qtbot.waitUntil(lambda: images.asking is None)
    assert image.path.exists() and core.gallery.get(image.id) is not None
    assert images.gallery_model.rowCount() == 1


def test_buttons_have_accessible_names(images: ImagesPage) -> None:
    images.picker.pick(RAIL)
    buttons = [
        button for button in images.findChildren(QAbstractButton) if button.isVisibleTo(images)
    ]
    assert buttons
    unnamed = [button.text() for button in buttons if not button.accessibleName()]
    assert not unnamed, unnamed
    assert images.gallery.view.accessibleName() == "Gallery"


def test_a_size_the_model_sets_says_so(images: ImagesPage) -> None:
    form = images.form
    assert not form.size_note.isVisibleTo(images)
    form.set_family("SD 1.x", default=(64, 64), model="tiny-pipeline")
    assert (form.width_box.value(), form.height_box.value()) == (64, 64)
    assert form.size_note.isVisibleTo(images)
    assert form.size_note.text() == "Set to the model's own size, 64 x 64."
    assert "tiny-pipeline makes 64 x 64" in form.size_note.toolTip()
    # The person's own size: the note goes, and a model no longer changes it.
    form.width_box.setValue(128)
    assert not form.size_note.isVisibleTo(images)
    form.set_family("SD 1.x", default=(96, 96), model="another")
    assert form.width_box.value() == 128
    assert not form.size_note.isVisibleTo(images)
