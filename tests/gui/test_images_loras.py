"""The Images page's LoRA list: library LoRAs offered, stacked with weights, trigger words
offered for the prompt, a generation that uses them, and a ComfyUI image restored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from pytestqt.qtbot import QtBot

from app.core import Core
from app.images import ImageEngine, read_metadata
from app.images.loras import LoraRef
from tests.core.test_image_lora_words import civitai_sidecar
from tests.gui.test_images_page import drop, generate, set_form
from tests.support.diffusers_builder import TinyModels
from tests.support.lora_builder import kohya_metadata, write_kohya_lora
from ui.images.lora_list import AvailableLora
from ui.images.page import ImagesPage
from ui.main_window import MainWindow

pytestmark = pytest.mark.slow

TIMEOUT_MS = 120_000


@pytest.fixture
def images(
    qtbot: QtBot, window: MainWindow, core: Core, image_engine: ImageEngine, tmp_path: Path
) -> Iterator[ImagesPage]:
    """The Images page with a library folder holding one LoRA (trigger words in its metadata)."""
    folder = tmp_path / "loras"
    folder.mkdir()
    write_kohya_lora(
        folder / "ink.safetensors", seed=1, metadata=kohya_metadata(tags={"ink wash": 9})
    )
    core.library.add_folder(folder)
    core._images = image_engine
    page = window.images
    with qtbot.waitSignals([page.modelsListed, page.counted], timeout=20_000):
        window.show_page(page)
    qtbot.waitUntil(lambda: page.form.loras.add_box.count() == 3, timeout=20_000)
    yield page
    core._images = None


def test_a_library_lora_is_stacked_weighed_and_its_trigger_word_offered(
    qtbot: QtBot, window: MainWindow, images: ImagesPage, image_models: TinyModels
) -> None:
    loras = images.form.loras
    assert loras.add_box.itemText(1) == "ink (SD 1.x)"
    loras.add_box.activated.emit(1)
    assert [lora.name for lora in loras.loras()] == ["ink"]
    qtbot.waitUntil(lambda: loras.words.count() > 1, timeout=10_000)
    word = loras.words.itemAt(0).widget()
    assert word is not None and word.text() == "ink wash"  # type: ignore[attr-defined]
    images.form.prompt.setPlainText("a red fox")
    word.click()  # type: ignore[attr-defined]
    assert images.form.prompt.toPlainText() == "a red fox, ink wash"
    row = loras._rows[0]
    row.weight.setValue(0.6)

    window.images_with(image_models.folder)
    assert generate(qtbot, images, prompt="a red fox, ink wash") == "done", images.status.text()
    made = images.gallery_model.image(0)
    assert made is not None
    metadata = read_metadata(made.path)
    assert metadata is not None
    assert [(lora.name, lora.weight) for lora in metadata.params.loras] == [("ink", 0.6)]

    row.remove.click()
    assert loras.loras() == ()


def test_trigger_words_from_a_civitai_sidecar_are_offered_first(
    qtbot: QtBot, images: ImagesPage, tmp_path: Path
) -> None:
    # A LoRA downloaded from Civitai: its page's trained words are in the sidecar beside it.
    lora = write_kohya_lora(
        tmp_path / "moss.safetensors", seed=2, metadata=kohya_metadata(tags={"moss": 4})
    )
    civitai_sidecar(lora, ["mossy style", "green moss"])
    loras = images.form.loras
    loras.add(LoraRef(name="moss", path=str(lora)))

    def offered() -> list[str]:
        buttons = (loras.words.itemAt(index).widget() for index in range(loras.words.count()))
        return [button.text() for button in buttons if button is not None]  # type: ignore[attr-defined]

    qtbot.waitUntil(lambda: offered() == ["mossy style", "green moss", "moss"], timeout=10_000)
    images.form.prompt.setPlainText("a stone")
    loras.words.itemAt(0).widget().click()  # type: ignore[union-attr]
    assert images.form.prompt.toPlainText() == "a stone, mossy style"


def test_restoring_an_image_finds_its_loras_by_name_and_says_what_did_not_come(
    qtbot: QtBot, images: ImagesPage, tmp_path: Path
) -> None:
    graph = {
        "1": {
            "class_type": "KSampler",
            "inputs": {
                "seed": 5,
                "steps": 3,
                "cfg": 6,
                "sampler_name": "dpmpp_sde",
                "model": ["2", 0],
                "positive": ["4", 0],
                "negative": ["5", 0],
                "latent_image": ["6", 0],
            },
        },
        "2": {
            "class_type": "LoraLoader",
            "inputs": {"lora_name": "ink.safetensors", "strength_model": 0.7, "model": ["3", 0]},
        },
        "7": {
            "class_type": "LoraLoader",
            "inputs": {
                "lora_name": "elsewhere.safetensors",
                "strength_model": 1,
                "model": ["2", 0],
            },
        },
        "3": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "a heron"}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"text": "blur"}},
        "6": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64}},
    }
    graph["1"]["inputs"]["model"] = ["7", 0]
    info = PngInfo()
    info.add_text("prompt", json.dumps(graph))
    path = tmp_path / "ComfyUI_00007_.png"
    Image.new("RGB", (64, 64)).save(path, pnginfo=info)
    with qtbot.waitSignal(images.settingsRestored, timeout=10_000):
        assert drop(images, path)
    assert images.form.prompt.toPlainText() == "a heron"
    assert [(lora.name, lora.weight) for lora in images.form.loras.loras()] == [("ink", 0.7)]
    status = images.status.text()
    assert "(ComfyUI graph)" in status
    assert "its LoRA elsewhere is not on this machine" in status
    assert "Sampler: dpmpp_sde" in status


def test_the_list_takes_loras_and_gives_them_back_in_order(images: ImagesPage) -> None:
    loras = images.form.loras
    loras.set_available([AvailableLora(name="a", path=Path("/nowhere/a.safetensors"), family=None)])
    loras.add(LoraRef(name="x", path="/nowhere/x.safetensors", weight=0.5))
    loras.add(LoraRef(name="y", path="/nowhere/y.safetensors", weight=-1.0))
    loras.add(LoraRef(name="x", path="/nowhere/x.safetensors", weight=0.25))  # same file
    assert [(lora.name, lora.weight) for lora in loras.loras()] == [("x", 0.25), ("y", -1.0)]
    images.form.reset()
    assert loras.loras() == ()


def test_ten_variations_are_queued_and_run_with_the_queue_shown(
    qtbot: QtBot, window: MainWindow, images: ImagesPage, image_models: TinyModels
) -> None:
    window.images_with(image_models.folder)
    set_form(images)
    qtbot.waitUntil(lambda: images.queue is not None, timeout=10_000)
    images.variations_button.click()
    panel = images.queue_panel
    qtbot.waitUntil(lambda: panel.jobs.count() == 10, timeout=20_000)
    # Generate while the queue runs: its job waits its turn in the queue, and the page
    # follows it from there.
    with qtbot.waitSignal(images.generationFinished, timeout=TIMEOUT_MS) as finished:
        images.generate_button.click()
        qtbot.waitUntil(lambda: panel.jobs.count() == 11, timeout=20_000)
        assert images.generating and not images.generate_button.isEnabled()
        qtbot.waitUntil(
            lambda: images.preview.progress.format() == "Waiting in the queue…", timeout=5_000
        )
    assert finished.args == ["done"], images.status.text()
    qtbot.waitUntil(lambda: panel.progress.value() == 11, timeout=TIMEOUT_MS)
    assert panel.summary.text() == "0 jobs waiting, 11 finished"
    queue = images.queue
    assert queue is not None
    jobs = queue.jobs()
    assert all(job.state.value == "done" for job in jobs)
    assert len({job.params.seed for job in jobs}) == 11
    qtbot.waitUntil(lambda: images.gallery_model.rowCount() == 11, timeout=20_000)
    # Repeat the first with a new seed; it is listed last.
    panel.jobs.setCurrentRow(0)
    panel.repeat_button.click()
    qtbot.waitUntil(lambda: panel.jobs.count() == 12, timeout=20_000)


def test_the_hires_fix_settings_round_trip_through_the_form(
    images: ImagesPage, tmp_path: Path
) -> None:
    form = images.form
    assert form.params().hires_scale == 0.0  # "Off" by default
    form.prompt.setPlainText("a heron")
    form.hires_scale.setValue(2.0)
    form.hires_strength.setValue(0.35)
    upscaler = tmp_path / "x4.safetensors"
    upscaler.write_bytes(b"")
    form.set_upscaler(upscaler)
    params = form.params()
    assert (params.hires_scale, params.hires_strength, params.upscaler) == (
        2.0,
        0.35,
        str(upscaler),
    )
    form.reset()
    assert form.params().hires_scale == 0.0 and form.upscaler_label.text() == "Lanczos"
    upscaler.unlink()
    notes = form.apply(params)
    assert form.params().hires_scale == 2.0
    assert notes == ["its upscaler x4.safetensors is not there: Lanczos instead"]


def test_a_gallery_image_is_upscaled_into_the_gallery(
    qtbot: QtBot, window: MainWindow, images: ImagesPage, image_models: TinyModels, tmp_path: Path
) -> None:
    from tests.support.upscaler_builder import write_compact_upscaler

    window.images_with(image_models.folder)
    assert generate(qtbot, images) == "done", images.status.text()
    made = images.gallery_model.image(0)
    assert made is not None
    model = write_compact_upscaler(tmp_path / "compact-x2.safetensors", scale=2)
    images.form.set_upscaler(model)  # the hires fix's upscaler is the one used
    menu = images.gallery.menu_for(0)
    assert images.gallery.upscale_action in menu.actions()
    with qtbot.waitSignal(images.upscaled, timeout=TIMEOUT_MS) as upscaled:
        images.gallery.upscale_action.trigger()
    path = upscaled.args[0]
    assert path.name == f"{made.path.stem}-upscaled.png"
    first = images.gallery_model.image(0)
    assert first is not None and first.path == path
    assert (first.width, first.height) == (made.width * 2, made.height * 2)
    assert "Upscaled" in images.status.text()
