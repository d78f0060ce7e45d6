"""The image engine with a real (tiny) diffusers pipeline in a real child process.

One engine serves every image test (starting a child imports torch and diffusers: seconds);
each test first says which model it wants (`use`), which costs nothing when it is loaded.
"""

from __future__ import annotations

import io
import os
import pickle
import signal
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from app.engines.protocol import Event, EventKind, Op, Request
from app.engines.supervisor import RequestHandle
from app.images import (
    BatchDone,
    GeneratedImage,
    GenerateImages,
    ImageEngine,
    ImageParams,
    ImageParamsError,
    LoadPipeline,
    ModelLoading,
    ModelRef,
    PipelineLoaded,
    StepProgress,
    generated_images,
    load_info,
    read_metadata,
    read_progress,
)
from tests.support.diffusers_builder import TinyModels

pytestmark = pytest.mark.slow

TIMEOUT = 60.0  # per event; a busy 2-core machine can be slow, a stuck engine fails the test


def use(image_engine: ImageEngine, path: Path, *, config: Path | None = None) -> PipelineLoaded:
    outcome = image_engine.load(ModelRef(name="tiny", path=str(path)), config=config).wait(TIMEOUT)
    assert outcome.kind is EventKind.RESULT, outcome.payload
    return load_info(outcome)


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
    image_engine: ImageEngine, image_models: TinyModels, tmp_path: Path
) -> None:
    info = use(image_engine, image_models.folder)
    assert (info.pipeline, info.device, info.dtype) == (
        "StableDiffusionPipeline",
        "cpu",
        "float32",
    )
    asked = params(seed=7, negative="blurry")
    events = run(
        image_engine.generate(asked, output_dir=tmp_path / "out", thumbnail_dir=tmp_path / "thumbs")
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
    done = events[-1].expect(BatchDone)
    assert done.device == "cpu"
    assert done.images == (image,)
    assert done.model.default_size == (64, 64)


def test_metadata_read_back_regenerates_the_same_pixels(
    image_engine: ImageEngine, image_models: TinyModels, tmp_path: Path
) -> None:
    use(image_engine, image_models.folder)
    first = only_image(run(image_engine.generate(params(), output_dir=tmp_path / "a")))
    assert first.seed is not None  # a random seed was chosen, and recorded
    metadata = read_metadata(first.path)
    assert metadata is not None
    again = only_image(run(image_engine.generate(metadata.params, output_dir=tmp_path / "b")))
    assert again.seed == first.seed
    assert pixels(again.path) == pixels(first.path)
    other = only_image(
        run(image_engine.generate(params(seed=(first.seed + 1) % 2**32), output_dir=tmp_path / "c"))
    )
    assert pixels(other.path) != pixels(first.path)


def test_a_batch_counts_seeds_up_and_names_files(
    image_engine: ImageEngine, image_models: TinyModels, tmp_path: Path
) -> None:
    use(image_engine, image_models.folder)
    events = run(image_engine.generate(params(seed=100, batch=2), output_dir=tmp_path, name="fox"))
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
    image_engine: ImageEngine, image_models: TinyModels, tmp_path: Path, scheduler: str
) -> None:
    use(image_engine, image_models.folder)
    image = only_image(run(image_engine.generate(params(scheduler=scheduler), output_dir=tmp_path)))
    assert image.sampler == scheduler
    metadata = read_metadata(image.path)
    assert metadata is not None and metadata.sampler == scheduler


def test_image_to_image_starts_from_the_source(
    image_engine: ImageEngine, image_models: TinyModels, tmp_path: Path
) -> None:
    use(image_engine, image_models.folder)
    source = tmp_path / "source.png"
    Image.new("RGB", (80, 48), "orange").save(source)  # resized to the asked size
    asked = params(seed=1, steps=4, init_image=str(source), strength=0.5)
    events = run(image_engine.generate(asked, output_dir=tmp_path / "out"))
    steps = [p for p in map(read_progress, events) if isinstance(p, StepProgress)]
    assert [s.step for s in steps] == [1, 2]  # 4 steps x strength 0.5
    image = only_image(events)
    assert (image.width, image.height) == (64, 64)
    assert image.params.init_image == str(source)


def test_a_single_file_checkpoint_gives_the_folders_pixels(
    image_engine: ImageEngine, image_models: TinyModels, tmp_path: Path
) -> None:
    use(image_engine, image_models.folder)
    from_folder = only_image(run(image_engine.generate(params(seed=3), output_dir=tmp_path / "a")))
    info = use(image_engine, image_models.single_file, config=image_models.config)
    assert info.family == "SD 1.x"
    from_file = only_image(run(image_engine.generate(params(seed=3), output_dir=tmp_path / "b")))
    assert pixels(from_file.path) == pixels(from_folder.path)


def test_the_single_file_holds_the_same_tensors(image_models: TinyModels) -> None:
    """transformers may load a wrong CLIP key layout silently (strict=False): compare."""
    import torch
    from diffusers import StableDiffusionPipeline

    folder = StableDiffusionPipeline.from_pretrained(image_models.folder, local_files_only=True)
    single = StableDiffusionPipeline.from_single_file(
        str(image_models.single_file), config=str(image_models.config), local_files_only=True
    )
    for name in ("unet", "vae", "text_encoder"):
        expected = getattr(folder, name).state_dict()
        loaded = getattr(single, name).state_dict()
        assert expected.keys() == loaded.keys(), name
        different = [key for key in expected if not torch.equal(expected[key], loaded[key])]
        assert different == [], name


def test_cancel_stops_between_steps(
    image_engine: ImageEngine, image_models: TinyModels, tmp_path: Path
) -> None:
    use(image_engine, image_models.folder)
    handle = image_engine.generate(params(steps=500), output_dir=tmp_path)
    steps = 0
    for event in handle.events(timeout=TIMEOUT):
        if isinstance(read_progress(event), StepProgress):
            steps += 1
            if steps == 1:
                image_engine.cancel(handle)
    assert handle.outcome is not None and handle.outcome.kind is EventKind.CANCELLED
    assert steps < 500
    assert list(tmp_path.glob("*.png")) == []
    only_image(run(image_engine.generate(params(), output_dir=tmp_path)))  # still serving


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
    image_engine: ImageEngine, image_models: TinyModels, tmp_path: Path, case: tuple[str, str, str]
) -> None:
    model, kind, words = case
    path = tmp_path / "nothing-here" if model == "missing" else getattr(image_models, model)
    outcome = image_engine.load(ModelRef(name=model, path=str(path))).wait(TIMEOUT)
    assert outcome.kind is EventKind.ERROR
    assert outcome.failure.kind == kind
    assert words in outcome.failure.message
    # The model asked for is the engine's model now: generating says the same.
    events = run(image_engine.generate(params(), output_dir=tmp_path))
    assert events[-1].failure.kind == kind


def test_sizes_that_are_not_multiples_of_8_are_refused_before_generating(
    image_engine: ImageEngine, image_models: TinyModels, tmp_path: Path
) -> None:
    use(image_engine, image_models.folder)
    with pytest.raises(ImageParamsError):
        params(width=60)
    # A sender that skips the checks (unpickling does: it never calls `__post_init__`).
    unchecked = params()
    object.__setattr__(unchecked, "width", 100)
    request = GenerateImages(params=unchecked, output_dir=tmp_path)
    events = run(image_engine.process.submit(Op.GENERATE, request))
    assert [event.kind for event in events] == [EventKind.ERROR]
    assert events[0].failure.kind == "bad-input"
    assert "multiple of 8" in events[0].failure.message
    assert list(tmp_path.iterdir()) == []


def test_requests_cross_the_pipe_unchanged(tmp_path: Path) -> None:
    load = LoadPipeline(
        path=tmp_path / "model.safetensors",
        name="tiny",
        config=tmp_path / "config",
        sha256="ab" * 32,
        device="cpu",
        threads=2,
        config_cache_dir=tmp_path / "configs",
    )
    request = GenerateImages(
        params=params(seed=7, model=ModelRef(name="tiny", path=str(load.path))),
        output_dir=tmp_path / "out",
        model=load,
        name="fox",
        thumbnail_dir=tmp_path / "thumbs",
        preview=False,
    )
    message = Request(3, Op.GENERATE, request)
    assert pickle.loads(pickle.dumps(message)) == message
    assert pickle.loads(pickle.dumps(message)).expect(GenerateImages).model == load


def test_a_request_with_the_wrong_body_is_refused_and_the_engine_goes_on(
    image_engine: ImageEngine, image_models: TinyModels, tmp_path: Path
) -> None:
    use(image_engine, image_models.folder)
    pid = image_engine.pid
    wrong = image_engine.process.submit(Op.GENERATE, LoadPipeline(path=image_models.folder)).wait(
        TIMEOUT
    )
    assert wrong.kind is EventKind.ERROR
    assert wrong.failure.kind == "internal"
    assert "not a GenerateImages" in wrong.failure.message
    empty = image_engine.process.submit(Op.LOAD).wait(TIMEOUT)
    assert empty.kind is EventKind.ERROR
    assert "not a LoadPipeline" in empty.failure.message
    assert image_engine.pid == pid
    only_image(run(image_engine.generate(params(), output_dir=tmp_path)))


def test_nan_images_are_reported_not_saved(
    image_engine: ImageEngine, image_models: TinyModels, tmp_path: Path
) -> None:
    use(image_engine, image_models.nan_folder)
    events = run(image_engine.generate(params(), output_dir=tmp_path))
    assert events[-1].kind is EventKind.ERROR
    assert events[-1].failure.kind == "nan"
    assert list(tmp_path.glob("*.png")) == []


def test_without_a_model_generate_says_so(
    image_engine: ImageEngine, image_models: TinyModels, tmp_path: Path
) -> None:
    use(image_engine, image_models.folder)
    assert image_engine.unload().wait(TIMEOUT).kind is EventKind.RESULT
    assert image_engine.model is None
    events = run(image_engine.generate(params(), output_dir=tmp_path))
    assert events[-1].failure.kind == "no-model"


def test_a_killed_engine_stops_the_request_and_the_next_one_reloads(
    image_engine: ImageEngine, image_models: TinyModels, tmp_path: Path
) -> None:
    use(image_engine, image_models.folder)
    handle = image_engine.generate(params(steps=500), output_dir=tmp_path)
    old_pid = image_engine.pid
    assert old_pid is not None
    for event in handle.events(timeout=TIMEOUT):
        if isinstance(read_progress(event), StepProgress):
            os.kill(old_pid, signal.SIGKILL)
            break
    outcome = handle.wait(TIMEOUT)
    assert outcome.kind is EventKind.STOPPED
    assert "signal 9" in outcome.failure.message
    assert "while generating" in outcome.failure.message

    events = run(image_engine.generate(params(seed=5), output_dir=tmp_path))
    assert isinstance(read_progress(events[0]), ModelLoading)
    image = only_image(events)
    assert image.seed == 5
    assert image_engine.pid not in (None, old_pid)
