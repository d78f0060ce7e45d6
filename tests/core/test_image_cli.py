"""`modeldeck image`: through the real command line (a real engine child) and its failures."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from app.cli import build_parser, run_command
from app.commands import image as image_command
from app.core import Core
from app.images import Gallery, read_metadata
from app.images.engine import ImageEngine
from tests.support.diffusers_builder import TinyModels


def modeldeck(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = run_command(build_parser().parse_args(list(argv)), out=out)
    return status, out.getvalue()


@pytest.mark.slow
def test_image_writes_the_png_and_prints_one_json_object(
    image_models: TinyModels, hf_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "fox.png"
    status, out = modeldeck(
        "image",
        str(image_models.folder),
        "--prompt",
        "a red fox",
        "--negative",
        "blurry",
        "--steps",
        "2",
        "--size",
        "64x64",
        "--seed",
        "5",
        "--scheduler",
        "Euler a",
        "--out",
        str(target),
        "--device",
        "cpu",
        "--threads",
        "1",
        "--json",
    )
    err = capsys.readouterr().err
    assert status == 0, err
    document = json.loads(out)
    assert document["path"] == str(target)
    assert document["seed"] == 5
    assert document["seconds"] > 0
    assert document["params"]["prompt"] == "a red fox"
    assert document["params"]["scheduler"] == "Euler a"
    assert document["model"]["pipeline"] == "StableDiffusionPipeline"
    assert "step 2/2" in err
    with Image.open(target) as image:
        assert image.size == (64, 64)
    metadata = read_metadata(target)
    assert metadata is not None
    assert (metadata.params.seed, metadata.params.negative, metadata.sampler) == (
        5,
        "blurry",
        "Euler a",
    )


@pytest.mark.slow
def test_without_out_the_image_joins_the_gallery(
    image_models: TinyModels,
    image_engine: ImageEngine,
    hf_home: Path,
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = build_parser().parse_args(
        [
            "image",
            str(image_models.folder),
            "--prompt",
            "a lighthouse",
            "--steps",
            "1",
            "--size",
            "64x64",
            "--batch",
            "2",
            "--device",
            "cpu",
        ]
    )
    out_buffer = io.StringIO()
    core = Core.open()
    try:
        status = image_command.run(core, args, out_buffer, engine=image_engine)
    finally:
        core.close()
    out = out_buffer.getvalue()
    err = capsys.readouterr().err
    assert status == 0, err
    assert "2 images in" in err
    paths = [Path(line) for line in out.splitlines()]
    assert len(paths) == 2
    core = Core.open()
    try:
        gallery = Gallery(core.database)
        assert gallery.count() == 2
        assert {image.path for image in gallery.page(0, 10)} == set(paths)
        assert all(path.is_relative_to(data_dir / "images") for path in paths)
        assert all(image.thumbnail and image.thumbnail.is_file() for image in gallery.page(0, 2))
    finally:
        core.close()


@pytest.mark.parametrize(
    ("argv", "status", "words"),
    [
        (["--size", "100x64"], 2, "multiple of 8"),
        (["--steps", "0"], 2, "steps must be between"),
        (["--out", "picture.jpg"], 2, ".png"),
    ],
)
def test_bad_arguments_fail_before_any_engine_starts(
    image_models: TinyModels,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    status: int,
    words: str,
) -> None:
    code, _out = modeldeck("image", str(image_models.folder), "--prompt", "x", *argv)
    assert code == status
    assert words in capsys.readouterr().err


def test_an_unknown_model_is_not_found(hf_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out = modeldeck("image", "nobody/nothing", "--prompt", "x")
    assert code == 3
    assert "No diffusion model matches 'nobody/nothing'" in capsys.readouterr().err


def test_a_size_that_is_not_wxh_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["image", "m", "--prompt", "x", "--size", "big"])
    assert caught.value.code == 2
    assert "not a size like 512x768" in capsys.readouterr().err
