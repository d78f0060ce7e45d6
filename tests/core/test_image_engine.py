"""The image engine with a real (tiny) diffusers pipeline in a real child process.

One engine serves every image test (starting a child imports torch and diffusers: seconds);
each test first says which model it wants (`use`), which costs nothing when it is loaded.
"""

from __future__ import annotations

import io
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from app.engines.protocol import Event, EventKind, Op, Values
from app.engines.supervisor import RequestHandle
from app.images import (
    GeneratedImage,
    ImageEngine,
    ImageParams,
    ImageParamsError,
    ModelLoading,
    ModelRef,
    StepProgress,
    generated_images,
    read_metadata,
    read_progress,
)
from tests.support.diffusers_builder import TinyModels, shared_engine, tiny_models

pytestmark = pytest.mark.slow

TIMEOUT = 60.0  # per event; a busy 2-core machine can be slow, a stuck engine fails the test


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return tiny_models(tmp_path_factory.mktemp("image-models"))


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> ImageEngine:
    return shared_engine(tmp_path_factory.mktemp("configs"))


def use(engine: ImageEngine, path: Path, *, config: Path | None = None) -> Mapping[str, Any]:
    outcome = engine.load(ModelRef(name="tiny", path=str(path)), config=config).wait(TIMEOUT)
    assert outcome.kind is EventKind.RESULT, outcome.payload
    return outcome.expect(Values).values


def params(**changes: Any) -> ImageParams:
    values: dict[str, Any] = {"prompt": "a red fox", "steps": 2, "width": 64, "height": 64}
    return ImageParams(**(values | changes))


def run(handle: RequestHandle) -> list[Event]:
    events = list(handle.events(timeout=TIMEOUT))
    assert events[-1].terminal
    return events


def pixels(path: Path) -> bytes:
    with Image.open(path) as image:
        return image.convert("RGB").tobytes()


def only_image(events: list[Event]) -> GeneratedImage:
    assert events[-1].kind is EventKind.RESULT, events[-1].payload
    (image,) = generated_images(events[-1])
    return image


def test_two_steps_make_a_png_with_its_parameters(
    engine: ImageEngine, models: TinyModels, tmp_path: Path
) -> None:
    info = use(engine, models.folder)
    assert (info["pipeline"], info["device"], info["dtype"]) == (
        "StableDiffusionPipeline",
        "cpu",
        "float32",
    )
    asked = params(seed=7, negative="blurry")
    events = run(
        engine.generate(asked, output_dir=tmp_path / "out", thumbnail_dir=tmp_path / "thumbs")
    )
    progress = [read_progress(event) for event in events[:-1]]
    steps = [item for item in progress if isinstance(item, StepProgress)]
    assert [(s.step, s.steps) for s in steps] == [(1, 2), (2, 2)]
    assert steps[-1].fraction == 1.0
    assert steps[-1].preview is not None
    with Image.open(io.BytesIO(steps[-1].preview)) as preview:
        assert preview.format == "PNG"
        assert preview.size == steps[-1].preview_size
        assert max(preview.size) <= 64
    assert isinstance(progress[-1], GeneratedImage)

    image = only_image(events)
    assert image.path.parent == tmp_path / "out"
    assert (image.width, image.height, image.seed) == (64, 64, 7)
    assert image.thumbnail is not None and image.thumbnail.is_file()
    with Image.open(image.path) as png:
        assert (png.format, png.size) == ("PNG", (64, 64))
    metadata = read_metadata(image.path)
    assert metadata is not None
    assert metadata.params == ImageParams(
        prompt="a red fox",
        negative="blurry",
        steps=2,
        width=64,
        height=64,
        seed=7,
        model=ModelRef(name="tiny"),
    )
    assert metadata.sampler == "DDIM"
    assert events[-1].expect(Values).values["device"] == "cpu"


def test_metadata_read_back_regenerates_the_same_pixels(
    engine: ImageEngine, models: TinyModels, tmp_path: Path
) -> None:
    use(engine, models.folder)
    first = only_image(run(engine.generate(params(), output_dir=tmp_path / "a")))
    assert first.seed is not None  # a random seed was chosen, and recorded
    metadata = read_metadata(first.path)
    assert metadata is not None
    again = only_image(run(engine.generate(metadata.params, output_dir=tmp_path / "b")))
    assert again.seed == first.seed
    assert pixels(again.path) == pixels(first.path)
    other = only_image(
        run(engine.generate(params(seed=(first.seed + 1) % 2**32), output_dir=tmp_path / "c"))
    )
    assert pixels(other.path) != pixels(first.path)


def test_a_batch_counts_seeds_up_and_names_files(
    engine: ImageEngine, models: TinyModels, tmp_path: Path
) -> None:
    use(engine, models.folder)
    events = run(engine.generate(params(seed=100, batch=2), output_dir=tmp_path, name="fox"))
    images = generated_images(events[-1])
    assert [(image.path.name, image.seed) for image in images] == [
        ("fox-1.png", 100),
        ("fox-2.png", 101),
    ]
    steps = [p for p in map(read_progress, events) if isinstance(p, StepProgress)]
    assert [(s.image, s.step) for s in steps] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert pixels(images[0].path) != pixels(images[1].path)


@pytest.mark.parametrize("scheduler", ["Euler", "Euler a", "DPM++ 2M", "DDIM"])
def test_each_scheduler_runs_and_is_recorded(
    engine: ImageEngine, models: TinyModels, tmp_path: Path, scheduler: str
) -> None:
    use(engine, models.folder)
    image = only_image(run(engine.generate(params(scheduler=scheduler), output_dir=tmp_path)))
    assert image.sampler == scheduler
    metadata = read_metadata(image.path)
    assert metadata is not None and metadata.sampler == scheduler


def test_image_to_image_starts_from_the_source(
    engine: ImageEngine, models: TinyModels, tmp_path: Path
) -> None:
    use(engine, models.folder)
    source = tmp_path / "source.png"
    Image.new("RGB", (80, 48), "orange").save(source)  # resized to the asked size
    asked = params(seed=1, steps=4, init_image=str(source), strength=0.5)
    events = run(engine.generate(asked, output_dir=tmp_path / "out"))
    steps = [p for p in map(read_progress, events) if isinstance(p, StepProgress)]
    assert [s.step for s in steps] == [1, 2]  # 4 steps x strength 0.5
    image = only_image(events)
    assert (image.width, image.height) == (64, 64)
    assert image.params.init_image == str(source)


def test_a_single_file_checkpoint_gives_the_folders_pixels(
    engine: ImageEngine, models: TinyModels, tmp_path: Path
) -> None:
    use(engine, models.folder)
    from_folder = only_image(run(engine.generate(params(seed=3), output_dir=tmp_path / "a")))
    info = use(engine, models.single_file, config=models.config)
    assert info["family"] == "SD 1.x"
    from_file = only_image(run(engine.generate(params(seed=3), output_dir=tmp_path / "b")))
    assert pixels(from_file.path) == pixels(from_folder.path)


def test_the_single_file_holds_the_same_tensors(models: TinyModels) -> None:
    """transformers may load a wrong CLIP key layout silently (strict=False): compare."""
    import torch
    from diffusers import StableDiffusionPipeline

    folder = StableDiffusionPipeline.from_pretrained(models.folder, local_files_only=True)
    single = StableDiffusionPipeline.from_single_file(
        str(models.single_file), config=str(models.config), local_files_only=True
    )
    for name in ("unet", "vae", "text_encoder"):
        expected = getattr(folder, name).state_dict()
        loaded = getattr(single, name).state_dict()
        assert expected.keys() == loaded.keys(), name
        different = [key for key in expected if not torch.equal(expected[key], loaded[key])]
        assert different == [], name


def test_cancel_stops_between_steps(
    engine: ImageEngine, models: TinyModels, tmp_path: Path
) -> None:
    use(engine, models.folder)
    handle = engine.generate(params(steps=500), output_dir=tmp_path)
    steps = 0
    for event in handle.events(timeout=TIMEOUT):
        if isinstance(read_progress(event), StepProgress):
            steps += 1
            if steps == 1:
                engine.cancel(handle)
    assert handle.outcome is not None and handle.outcome.kind is EventKind.CANCELLED
    assert steps < 500
    assert list(tmp_path.glob("*.png")) == []
    only_image(run(engine.generate(params(), output_dir=tmp_path)))  # still serving


@pytest.mark.parametrize(
    "case",
    [
        ("pickle", "pickle", "pickle"),
        ("llm", "not-diffusion", "this is a language model, not a diffusion model"),
        ("not_pipeline", "not-a-pipeline", "model_index.json"),
        ("flux", "unsupported-family", "Flux"),
        ("missing", "not-found", "does not exist"),
    ],
)
def test_models_it_cannot_run_are_refused_with_the_reason(
    engine: ImageEngine, models: TinyModels, tmp_path: Path, case: tuple[str, str, str]
) -> None:
    model, kind, words = case
    path = tmp_path / "nothing-here" if model == "missing" else getattr(models, model)
    outcome = engine.load(ModelRef(name=model, path=str(path))).wait(TIMEOUT)
    assert outcome.kind is EventKind.ERROR
    assert outcome.failure.kind == kind
    assert words in outcome.failure.message
    # The model asked for is the engine's model now: generating says the same.
    events = run(engine.generate(params(), output_dir=tmp_path))
    assert events[-1].failure.kind == kind


def test_sizes_that_are_not_multiples_of_8_are_refused_before_generating(
    engine: ImageEngine, models: TinyModels, tmp_path: Path
) -> None:
    use(engine, models.folder)
    with pytest.raises(ImageParamsError):
        params(width=60)
    raw = params().to_json() | {"width": 100}
    handle = engine.process.submit(Op.GENERATE, {"params": raw, "output_dir": str(tmp_path)})
    events = run(handle)
    assert [event.kind for event in events] == [EventKind.ERROR]
    assert events[0].failure.kind == "bad-input"
    assert "multiple of 8" in events[0].failure.message
    assert list(tmp_path.iterdir()) == []


def test_nan_images_are_reported_not_saved(
    engine: ImageEngine, models: TinyModels, tmp_path: Path
) -> None:
    use(engine, models.nan_folder)
    events = run(engine.generate(params(), output_dir=tmp_path))
    assert events[-1].kind is EventKind.ERROR
    assert events[-1].failure.kind == "nan"
    assert list(tmp_path.glob("*.png")) == []


def test_without_a_model_generate_says_so(
    engine: ImageEngine, models: TinyModels, tmp_path: Path
) -> None:
    use(engine, models.folder)
    assert engine.unload().wait(TIMEOUT).kind is EventKind.RESULT
    assert engine.model is None
    events = run(engine.generate(params(), output_dir=tmp_path))
    assert events[-1].failure.kind == "no-model"


def test_a_killed_engine_stops_the_request_and_the_next_one_reloads(
    engine: ImageEngine, models: TinyModels, tmp_path: Path
) -> None:
    use(engine, models.folder)
    handle = engine.generate(params(steps=500), output_dir=tmp_path)
    old_pid = engine.pid
    assert old_pid is not None
    for event in handle.events(timeout=TIMEOUT):
        if isinstance(read_progress(event), StepProgress):
            os.kill(old_pid, signal.SIGKILL)
            break
    outcome = handle.wait(TIMEOUT)
    assert outcome.kind is EventKind.STOPPED
    assert "signal 9" in outcome.failure.message
    assert "while generating" in outcome.failure.message

    events = run(engine.generate(params(seed=5), output_dir=tmp_path))
    assert isinstance(read_progress(events[0]), ModelLoading)
    image = only_image(events)
    assert image.seed == 5
    assert engine.pid not in (None, old_pid)
