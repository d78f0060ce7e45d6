"""Upscaling in the real engine: tiny random ESRGAN-family upscalers (both layouts), tiled
like untiled, pickles and strangers refused; the hires fix (Lanczos or a model) makes the
larger image and records its settings; `modeldeck image --hires` and `modeldeck upscale`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy
import pytest
from PIL import Image

from app.cli import build_parser
from app.commands import image as image_command
from app.commands import upscale as upscale_command
from app.core import Core
from app.engines.errors import EngineErrorKind
from app.engines.protocol import EventKind
from app.images import ImageEngine, ImageParams, ModelRef, generated_images, read_metadata
from app.images.messages import ImageUpscaled
from app.images.png_metadata import A1111_KEY, png_text_chunks
from tests.support.diffusers_builder import TinyModels
from tests.support.upscaler_builder import write_compact_upscaler, write_rrdb_upscaler

pytestmark = pytest.mark.slow

TIMEOUT = 60.0


@pytest.fixture(scope="module")
def upscalers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("upscalers")
    return {
        "compact": write_compact_upscaler(root / "compact-x2.safetensors", scale=2),
        "rrdb4": write_rrdb_upscaler(root / "rrdb-x4.safetensors", scale=4),
        "rrdb2": write_rrdb_upscaler(root / "rrdb-x2.safetensors", scale=2),
        "esrgan": write_rrdb_upscaler(
            root / "esrgan-x4.safetensors", scale=4, blocks=2, esrgan_names=True
        ),
        "esrgan-basicsr": write_rrdb_upscaler(root / "same-x4.safetensors", scale=4, blocks=2),
    }


def picture(path: Path, size: tuple[int, int] = (40, 28)) -> Path:
    rng = numpy.random.default_rng(3)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=numpy.uint8)
    Image.fromarray(pixels).save(path)
    return path


def upscale(
    engine: ImageEngine, source: Path, model: Path, out: Path, **options: object
) -> ImageUpscaled:
    outcome = engine.upscale(source, model=model, output=out, **options).wait(TIMEOUT)  # type: ignore[arg-type]
    assert outcome.kind is EventKind.RESULT, outcome.payload
    return outcome.expect(ImageUpscaled)


def test_both_layouts_upscale_and_tiles_match_one_pass(
    image_engine: ImageEngine, upscalers: dict[str, Path], tmp_path: Path
) -> None:
    source = picture(tmp_path / "small.png")
    whole = upscale(image_engine, source, upscalers["compact"], tmp_path / "whole.png", tile=4096)
    tiled = upscale(image_engine, source, upscalers["compact"], tmp_path / "tiled.png", tile=16)
    assert (whole.width, whole.height, whole.model_scale) == (80, 56, 2)
    assert (whole.architecture, whole.tiles, tiled.tiles) == ("SRVGGNetCompact", 1, 6)
    with Image.open(whole.path) as a, Image.open(tiled.path) as b:
        difference = numpy.abs(
            numpy.asarray(a, dtype=numpy.int16) - numpy.asarray(b, dtype=numpy.int16)
        )
    assert int(difference.max()) <= 1  # the seams borrow enough of their neighbours
    four = upscale(image_engine, source, upscalers["rrdb4"], tmp_path / "x4.png", tile=16)
    assert (four.width, four.height, four.architecture) == (160, 112, "RRDBNet")
    # The original ESRGAN code's names load as the same net as BasicSR's (same weights).
    old = upscale(image_engine, source, upscalers["esrgan"], tmp_path / "old.png", tile=4096)
    new = upscale(
        image_engine, source, upscalers["esrgan-basicsr"], tmp_path / "new.png", tile=4096
    )
    assert (old.width, old.architecture) == (160, "RRDBNet")
    with Image.open(old.path) as a, Image.open(new.path) as b:
        assert a.tobytes() == b.tobytes()
    two = upscale(image_engine, source, upscalers["rrdb2"], tmp_path / "x2.png", tile=20)
    assert (two.width, two.height, two.model_scale) == (80, 56, 2)
    # A scale other than the model's: the model's output resized to it.
    three = upscale(image_engine, source, upscalers["rrdb4"], tmp_path / "x3.png", scale=3)
    assert (three.width, three.height) == (120, 84)


def test_pickles_and_other_models_are_refused(
    image_engine: ImageEngine, image_models: TinyModels, tmp_path: Path
) -> None:
    source = picture(tmp_path / "small.png")
    for model, kind, words in (
        (image_models.pickle, EngineErrorKind.PICKLE, "pickle"),
        (image_models.llm, EngineErrorKind.BAD_INPUT, "not an upscaler ModelDeck can load"),
        (tmp_path / "missing.safetensors", EngineErrorKind.NOT_FOUND, "does not exist"),
    ):
        outcome = image_engine.upscale(source, model=model, output=tmp_path / "o.png").wait(TIMEOUT)
        assert outcome.kind is EventKind.ERROR
        assert outcome.failure.kind is kind, outcome.failure
        assert words in outcome.failure.message
    assert not (tmp_path / "o.png").exists()


def test_the_hires_fix_makes_the_larger_image_and_records_how(
    image_engine: ImageEngine, image_models: TinyModels, upscalers: dict[str, Path], tmp_path: Path
) -> None:
    outcome = image_engine.load(ModelRef(name="tiny", path=str(image_models.folder))).wait(TIMEOUT)
    assert outcome.kind is EventKind.RESULT
    for upscaler in (None, str(upscalers["compact"])):
        params = ImageParams(
            prompt="a red fox",
            steps=2,
            width=64,
            height=80,
            seed=4,
            hires_scale=1.5,
            hires_strength=0.6,
            upscaler=upscaler,
        )
        outcome = image_engine.generate(params, output_dir=tmp_path).wait(TIMEOUT)
        assert outcome.kind is EventKind.RESULT, outcome.payload
        (made,) = generated_images(outcome)
        assert (made.width, made.height) == (96, 120)
        metadata = read_metadata(made.path)
        assert metadata is not None
        assert (metadata.params.hires_scale, metadata.params.hires_strength) == (1.5, 0.6)
        chunks = png_text_chunks(made.path, keys=frozenset({A1111_KEY}))
        assert chunks is not None
        text = chunks[A1111_KEY]
        assert "Denoising strength: 0.6, Hires upscale: 1.5, Hires resize: 96x120" in text
        assert f"Hires upscaler: {'compact-x2' if upscaler else 'Lanczos'}" in text


@pytest.mark.usefixtures("hf_home", "data_dir")
def test_the_command_line_hires_fix_and_upscale(
    image_models: TinyModels,
    image_engine: ImageEngine,
    upscalers: dict[str, Path],
    tmp_path: Path,
) -> None:
    target = tmp_path / "fox.png"
    argv = ["image", str(image_models.folder), "--prompt", "a fox", "--steps", "2"]
    argv += ["--size", "64x64", "--hires", "2", "--hires-strength", "0.4", "--out", str(target)]
    err = io.StringIO()
    core = Core.open()
    try:
        status = image_command.run(
            core, build_parser().parse_args(argv), io.StringIO(), err=err, engine=image_engine
        )
        assert status == 0, err.getvalue()
        assert "hires fix to 128x128" in err.getvalue()
        with Image.open(target) as made:
            assert made.size == (128, 128)
        out = io.StringIO()
        args = build_parser().parse_args(
            ["upscale", str(target), "--model", str(upscalers["rrdb2"]), "--json"]
        )
        assert upscale_command.run(core, args, out, err=err, engine=image_engine) == 0
        document = json.loads(out.getvalue())
        assert (document["width"], document["height"]) == (256, 256)
        # The copy keeps the source's settings, with the upscale noted as A1111's extras do.
        chunks = png_text_chunks(Path(document["path"]), keys=frozenset({A1111_KEY}))
        assert chunks is not None and "Postprocess upscaler: rrdb-x2" in chunks[A1111_KEY]
        bad = build_parser().parse_args(
            ["upscale", str(target), "--model", str(image_models.pickle)]
        )
        assert upscale_command.run(core, bad, io.StringIO(), err=err, engine=image_engine) == 2
        assert "pickle" in err.getvalue()
    finally:
        core.close()
