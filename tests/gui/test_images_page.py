"""The Images page with the real image engine (a tiny diffusers pipeline, one torch thread)."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from app.core import Core
from app.engines.errors import EngineErrorKind
from app.engines.protocol import EventKind
from app.images import (
    ImageEngine,
    ImageMetadata,
    ImageParams,
    ModelRef,
    error_meaning,
    save_png,
)
from tests.support.diffusers_builder import TinyModels
from ui.images.gallery_model import PAGE_SIZE, ImageRole
from ui.images.model_picker import ImageModel, license_text
from ui.images.page import ImagesPage
from ui.main_window import MainWindow

pytestmark = pytest.mark.slow

TIMEOUT_MS = 120_000  # a first load on a busy 2-core machine; a stuck engine fails the test


@pytest.fixture
def images(
    qtbot: QtBot, window: MainWindow, core: Core, image_engine: ImageEngine
) -> Iterator[ImagesPage]:
    """The Images page, shown, with its model list and first gallery page in."""
    # One started engine serves every test (a fresh child imports torch: seconds). The core
    # owns it for the test, and lets go before it closes.
    core._images = image_engine
    page = window.images  # built now; its scan, count and first page run once the loop spins
    with qtbot.waitSignals(
        [page.modelsListed, page.counted, page.gallery_model.fetched], timeout=20_000
    ):
        window.show_page(page)
    assert window.pages.currentWidget() is page
    yield page
    core._images = None


def set_form(page: ImagesPage, *, prompt: str = "a red fox", steps: int = 2) -> None:
    page.form.prompt.setPlainText(prompt)
    page.form.steps.setValue(steps)
    page.form.width_box.setValue(64)
    page.form.height_box.setValue(64)


def generate(qtbot: QtBot, page: ImagesPage, **form: object) -> str:
    """Fill the form, press Generate, wait for the end; returns how it ended."""
    set_form(page, **form)  # type: ignore[arg-type]
    with qtbot.waitSignal(page.generationFinished, timeout=TIMEOUT_MS) as finished:
        page.generate_button.click()
    return str(finished.args[0])


def pixels(path: Path) -> bytes:
    with Image.open(path) as image:
        return image.convert("RGB").tobytes()


def drop(page: ImagesPage, path: Path) -> bool:
    """Drag `path` onto the page and drop it; returns whether the page took the drag."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    centre = QPointF(page.rect().center())
    how = (
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    try:
        enter = QDragEnterEvent(centre, *how)
    except TypeError:  # PySide6 before 6.12 takes a QPoint
        enter = QDragEnterEvent(centre.toPoint(), *how)
    QApplication.sendEvent(page, enter)
    if not enter.isAccepted():
        return False
    event = QDropEvent(centre, *how)
    QApplication.sendEvent(page, event)
    return True


def png(path: Path, colour: str = "teal", *, parameters: str | None = None) -> Path:
    info = PngInfo()
    if parameters is not None:
        info.add_text("parameters", parameters)
    Image.new("RGB", (64, 64), colour).save(path, pnginfo=info)
    return path


def test_generate_show_progress_keep_it_and_make_it_again(
    qtbot: QtBot, window: MainWindow, images: ImagesPage, image_models: TinyModels
) -> None:
    window.images_with(image_models.folder)
    assert images.picker.model() is not None
    assert images.picker.model().path == image_models.folder  # type: ignore[union-attr]
    shown: list[tuple[int, int]] = []
    images.stepShown.connect(lambda step, steps: shown.append((step, steps)))
    added: list[int] = []
    images.imagesAdded.connect(added.append)

    assert generate(qtbot, images) == "done", images.status.text()
    assert shown and shown[-1] == (2, 2)
    assert images.preview.progress.value() == 1000
    assert images.preview.shown_pixmap() is not None
    assert added == [1]
    model = images.gallery_model
    assert model.rowCount() == 1
    first = model.image(0)
    assert first is not None and first.params is not None and first.seed is not None
    assert first.path.is_file() and first.thumbnail is not None and first.thumbnail.is_file()
    # The seed that was used is shown, and kept in the seed field.
    assert f"seed {first.seed}" in images.preview.caption.text()
    assert images.form.seed.text() == str(first.seed)
    assert images.gallery.count.text().strip() == "1 image"

    # The thumbnail is decoded on a worker when the view asks for it (a grey square till then).
    def thumbnail_size() -> tuple[int, int]:
        pixmap = model.data(model.index(0), Qt.ItemDataRole.DecorationRole)
        return pixmap.width(), pixmap.height()

    qtbot.waitUntil(lambda: thumbnail_size() == (64, 64), timeout=10_000)

    # Reuse these settings (the image's menu) fills the form with them.
    set_form(images, prompt="something else", steps=7)
    images.form.random_seed.setChecked(True)
    with qtbot.waitSignal(images.settingsRestored):
        images.gallery.menu_for(0)
        images.gallery.reuse_action.trigger()
    assert images.form.prompt.toPlainText() == "a red fox"
    assert images.form.steps.value() == 2
    assert images.form.seed.text() == str(first.seed)
    assert not images.form.random_seed.isChecked()

    # The same seed and settings give the same pixels.
    with qtbot.waitSignal(images.generationFinished, timeout=TIMEOUT_MS) as again:
        images.generate_button.click()
    assert again.args == ["done"], images.status.text()
    assert model.rowCount() == 2
    second = model.image(0)
    assert second is not None and second.id != first.id and second.seed == first.seed
    assert pixels(second.path) == pixels(first.path)


def test_a_size_the_model_forces_is_noted_beside_the_size_fields(
    qtbot: QtBot, window: MainWindow, images: ImagesPage, image_models: TinyModels, tmp_path: Path
) -> None:
    # A copy: the shared engine has not loaded it, so this press of Generate loads it (the
    # model's own size applies to the job that loads it).
    folder = shutil.copytree(image_models.folder, tmp_path / "tiny-copy")
    window.images_with(folder)
    form = images.form
    form.prompt.setPlainText("a red fox")
    form.steps.setValue(2)
    assert (form.width_box.value(), form.height_box.value()) == (512, 512)  # SD 1.x's square
    assert not form.size_chosen and not form.size_note.isVisibleTo(images)
    with qtbot.waitSignal(images.generationFinished, timeout=TIMEOUT_MS) as finished:
        images.generate_button.click()
    assert finished.args == ["done"], images.status.text()
    made = images.gallery_model.image(0)
    assert made is not None and (made.width, made.height) == (64, 64)  # the model's own size
    assert (form.width_box.value(), form.height_box.value()) == (64, 64)
    assert form.size_note.isVisibleTo(images)
    assert form.size_note.text() == "Set to the model's own size, 64 x 64."


def test_cancel_ends_quietly_and_adds_nothing(
    qtbot: QtBot, window: MainWindow, images: ImagesPage, image_models: TinyModels, core: Core
) -> None:
    window.images_with(image_models.folder)
    set_form(images, steps=500)
    with qtbot.waitSignal(images.stepShown, timeout=TIMEOUT_MS):
        images.generate_button.click()
    assert images.generating and images.cancel_button.isEnabled()
    with qtbot.waitSignal(images.generationFinished, timeout=TIMEOUT_MS) as finished:
        images.cancel_button.click()
    assert finished.args == ["cancelled"]
    assert images.status.text() == "Cancelled."
    assert images.status.property("error") is False
    assert images.gallery_model.rowCount() == 0
    assert core.gallery.count() == 0
    assert list(core.gallery.folder.rglob("*.png")) == []
    assert images.generate_button.isEnabled()


def test_closing_the_window_cancels_a_running_generation(
    qtbot: QtBot, window: MainWindow, images: ImagesPage, image_models: TinyModels, core: Core
) -> None:
    window.images_with(image_models.folder)
    set_form(images, steps=500)
    with qtbot.waitSignal(images.stepShown, timeout=TIMEOUT_MS):
        images.generate_button.click()
    request = images.request
    assert request is not None and not request.done
    window.close()
    assert request.outcome is not None
    assert request.outcome.kind is EventKind.CANCELLED
    assert not images.generating
    assert core.gallery.count() == 0


def test_a_killed_engine_is_a_message_and_the_next_generate_works(
    qtbot: QtBot, window: MainWindow, images: ImagesPage, image_models: TinyModels, core: Core
) -> None:
    window.images_with(image_models.folder)
    set_form(images, steps=500)
    with qtbot.waitSignal(images.stepShown, timeout=TIMEOUT_MS):
        images.generate_button.click()
    pid = core.images.pid
    assert pid is not None
    with qtbot.waitSignal(images.generationFinished, timeout=TIMEOUT_MS) as finished:
        os.kill(pid, signal.SIGKILL)
    assert finished.args == ["error"]
    text = images.status.text()
    assert "signal 9" in text and "while generating" in text, text
    assert text.startswith("The engine stopped.")
    assert images.status.property("error") is True
    assert window.isVisible()

    assert generate(qtbot, images) == "done", images.status.text()
    assert images.gallery_model.rowCount() == 1
    assert core.images.pid not in (None, pid)


def test_a_pickle_checkpoint_is_refused_with_the_reason(
    qtbot: QtBot, window: MainWindow, images: ImagesPage, image_models: TinyModels
) -> None:
    window.images_with(image_models.pickle)
    assert generate(qtbot, images) == "error"
    text = images.status.text()
    sentence = error_meaning(EngineErrorKind.PICKLE)
    assert sentence is not None
    assert text.startswith(sentence[0].upper() + sentence[1:]), text
    assert "model.ckpt is a pickle checkpoint" in text
    assert images.gallery_model.rowCount() == 0


def test_a_size_that_is_not_a_multiple_of_8_is_refused_before_the_engine(
    qtbot: QtBot, window: MainWindow, images: ImagesPage, image_models: TinyModels
) -> None:
    window.images_with(image_models.folder)
    set_form(images)
    assert images.form.width_box.singleStep() == 8
    images.form.width_box.setValue(100)
    with qtbot.waitSignal(images.said) as said:
        images.generate_button.click()
    assert "width 100 is not a multiple of 8" in said.args[0]
    assert "Use 96 or 104" in said.args[0]
    assert not images.generating


def test_dropping_pngs_restores_settings_or_says_there_are_none(
    qtbot: QtBot, images: ImagesPage, image_models: TinyModels, tmp_path: Path
) -> None:
    ours = tmp_path / "ours.png"
    params = ImageParams(
        prompt="a lighthouse at dusk",
        negative="fog",
        steps=12,
        guidance=5.5,
        seed=4242,
        width=96,
        height=128,
        scheduler="Euler a",
        model=ModelRef(name="somewhere-else"),
    )
    save_png(Image.new("RGB", (96, 128)), ours, ImageMetadata(params=params, sampler="Euler a"))
    with qtbot.waitSignal(images.settingsRestored, timeout=10_000):
        assert drop(images, ours)
    form = images.form
    assert form.params() == ImageParams(
        prompt="a lighthouse at dusk",
        negative="fog",
        steps=12,
        guidance=5.5,
        seed=4242,
        width=96,
        height=128,
        scheduler="Euler a",
    )
    assert "Restored the settings of ours.png" in images.status.text()
    assert "somewhere-else, which is not listed here" in images.status.text()

    a1111 = png(
        tmp_path / "a1111.png",
        parameters="a castle on a hill\nNegative prompt: blurry\n"
        "Steps: 9, Sampler: DDIM, CFG scale: 4, Seed: 77, Size: 64x72",
    )
    with qtbot.waitSignal(images.settingsRestored, timeout=10_000):
        drop(images, a1111)
    assert form.prompt.toPlainText() == "a castle on a hill"
    assert (form.steps.value(), form.seed.text(), form.width_box.value()) == (9, "77", 64)
    assert form.height_box.value() == 72
    assert "AUTOMATIC1111" in images.status.text()

    bare = png(tmp_path / "bare.png")
    with qtbot.waitSignal(images.said, timeout=10_000) as said:
        drop(images, bare)
    assert said.args == ["This PNG has no generation settings."]
    assert images.offer_button.isVisibleTo(images)
    images.offer_button.click()
    assert form.init_image == bare
    assert form.params().init_image == str(bare)

    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with qtbot.waitSignal(images.said, timeout=10_000) as said:
        drop(images, text)
    assert said.args[0].startswith("notes.txt is not an image.")
    assert images.status.property("error") is True

    # A model dropped here is picked.
    assert drop(images, image_models.single_file)
    picked = images.picker.model()
    assert picked is not None and picked.path == image_models.single_file


def test_gallery_pages_survive_a_restart_open_and_delete(
    qtbot: QtBot,
    qtmodeltester: ModelTester,
    images: ImagesPage,
    *,
    core: Core,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gallery = core.gallery
    made = [gallery.add_file(png(tmp_path / f"made-{n}.png", "orange")) for n in range(3)]
    thumbnail = made[0].thumbnail
    params = ImageParams(prompt="filler", width=64, height=64, seed=1)
    for n in range(PAGE_SIZE + 50):  # more than a page: the rest comes as the view scrolls
        gallery.add(tmp_path / f"filler-{n}.png", params, width=64, height=64, thumbnail=thumbnail)
    total = len(made) + PAGE_SIZE + 50

    # A new core and page on the same data dir: what a restart sees.
    again = Core.open(data_dir=core.database.path.parent, endpoint_override=core.endpoint)
    try:
        page = ImagesPage(again)
        qtbot.addWidget(page)
        with qtbot.waitSignals(
            [page.modelsListed, page.counted, page.gallery_model.fetched], timeout=20_000
        ):
            pass  # the page's first queries run on workers
        assert page.gallery.count.text().strip() == f"{total:,} images"
        model = page.gallery_model
        assert model.rowCount() == PAGE_SIZE
        assert model.canFetchMore()
        with qtbot.waitSignal(model.fetched, timeout=10_000):
            model.fetchMore()
        assert model.rowCount() == total and model.complete
        qtmodeltester.check(model)
    finally:
        again.close()

    model = images.gallery_model
    with qtbot.waitSignal(model.fetched, timeout=10_000):
        model.refresh()
    assert model.rowCount() == PAGE_SIZE
    # Scrolling to the end of the grid fetches the next page.
    images.gallery.view.scrollToBottom()
    qtbot.waitUntil(lambda: model.rowCount() == total, timeout=10_000)
    target = made[-1]
    row = model.row_of(target.id)
    assert row >= 0

    # Double-click: the image large, with its parameters.
    index = model.index(row)
    images.gallery.view.scrollTo(index)
    rect = images.gallery.view.visualRect(index)
    viewport = images.gallery.view.viewport()
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(viewport, Qt.MouseButton.LeftButton, pos=rect.center())
    viewer = images.viewer
    assert viewer is not None and viewer.image.id == target.id
    with qtbot.waitSignal(viewer.shown, timeout=10_000):
        pass
    assert viewer.picture.pixmap() is not None
    assert str(target.path) in viewer.details.toPlainText()

    # Delete asks first, then removes the file, the thumbnail and the row.
    with qtbot.waitSignal(model.rowsRemoved, timeout=10_000):
        viewer.delete_button.click()
        qtbot.waitUntil(lambda: images.asking is not None and images.asking.isVisible())
        assert images.asking is not None and target.path.name in images.asking.text()
        images.asking.button(QMessageBox.StandardButton.Yes).click()
    assert not target.path.exists()
    assert target.thumbnail is not None and not target.thumbnail.exists()
    assert gallery.get(target.id) is None
    assert model.rowCount() == total - 1
    assert model.row_of(target.id) == -1
    qtbot.waitUntil(lambda: images.viewer is None)

    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    images.gallery.folder_button.click()
    qtbot.waitUntil(lambda: bool(opened))
    assert Path(opened[0].toLocalFile()) == gallery.folder


def test_image_to_image_from_a_gallery_image(
    qtbot: QtBot,
    window: MainWindow,
    images: ImagesPage,
    *,
    image_models: TinyModels,
    core: Core,
    tmp_path: Path,
) -> None:
    made = core.gallery.add_file(png(tmp_path / "start.png"))
    with qtbot.waitSignal(images.gallery_model.fetched, timeout=10_000):
        images.gallery_model.refresh()
    images.gallery.menu_for(images.gallery_model.row_of(made.id))
    images.gallery.init_action.trigger()
    assert images.form.init_image == made.path
    assert images.form.strength.isEnabled()
    assert images.gallery.view.currentIndex().data(ImageRole) == made

    window.images_with(image_models.folder)
    images.form.strength.setValue(0.5)
    shown: list[tuple[int, int]] = []
    images.stepShown.connect(lambda step, steps: shown.append((step, steps)))
    assert generate(qtbot, images, steps=4) == "done", images.status.text()
    assert shown[-1] == (2, 2)  # 4 steps x strength 0.5
    result = images.gallery_model.image(0)
    assert result is not None and result.params is not None
    assert (result.params.init_image, result.params.strength) == (str(made.path), 0.5)


def test_the_license_is_in_view_with_rail_use_restrictions(images: ImagesPage) -> None:
    model = ImageModel(
        ref=ModelRef(name="sd15", path="/models/sd15"),
        label="sd15",
        license="creativeml-openrail-m",
    )
    images.picker.pick(model)
    assert images.picker.badge.text().startswith("CreativeML OpenRAIL-M")
    images.picker.details_button.click()  # the use restrictions, behind "Details"
    text = images.picker.license.text()
    assert text.startswith("License: CreativeML OpenRAIL-M")
    assert "minors" in text and "medical advice" in text
    assert "Not to be used for" not in license_text("mit")


def test_the_core_owns_the_image_engine_and_the_gallery(tmp_path: Path) -> None:
    core = Core.open(data_dir=tmp_path / "data")
    try:
        assert core.images is core.images
        assert core.images.config_cache_dir == tmp_path / "data" / "diffusers-configs"
        assert core.gallery.folder == tmp_path / "data" / "images"
        assert core.images.pid is None  # nothing starts until it is asked for
    finally:
        core.close()
