"""`modeldeck image --lora …` and `<lora:name:weight>` in the prompt, through the real command
line and a real engine; the library lists LoRAs as their own kind; A1111's metadata."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from app.cli import build_parser
from app.commands import image as image_command
from app.core import Core
from app.images import read_metadata
from app.images.engine import ImageEngine
from app.images.png_metadata import A1111_KEY, png_text_chunks
from app.library.sniff import ModelKind
from tests.core.test_image_lora_words import civitai_sidecar
from tests.support.diffusers_builder import TinyModels
from tests.support.lora_builder import kohya_metadata, write_kohya_lora, write_peft_lora


def image(core: Core, engine: ImageEngine, *argv: str) -> tuple[int, str]:
    args = build_parser().parse_args(["image", *argv])
    out = io.StringIO()
    status = image_command.run(core, args, out, engine=engine)
    return status, out.getvalue()


@pytest.mark.slow
@pytest.mark.usefixtures("hf_home", "data_dir")
def test_loras_by_option_and_by_prompt_tag_are_stacked_and_recorded(
    image_models: TinyModels,
    image_engine: ImageEngine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "loras"
    folder.mkdir()
    write_kohya_lora(folder / "ink.safetensors", seed=1, metadata=kohya_metadata(tags={"ink": 5}))
    moss = write_peft_lora(tmp_path / "moss.safetensors", seed=2)
    civitai_sidecar(moss, ["mossy style", "green moss"])  # it came from Civitai
    target = tmp_path / "fox.png"
    core = Core.open()
    try:
        core.library.add_folder(folder)
        kinds = {entry.name: entry.kind for entry in core.library.scan()}
        assert kinds.get("ink") is ModelKind.LORA
        status, out = image(
            core,
            image_engine,
            str(image_models.folder),
            "--prompt",
            "a red fox, <lora:ink:0.7>",
            "--lora",
            f"{moss}:0.5",
            "--steps",
            "2",
            "--size",
            "64x64",
            "--seed",
            "3",
            "--out",
            str(target),
            "--json",
        )
    finally:
        core.close()
    err = capsys.readouterr().err
    assert status == 0, err
    assert "LoRA ink at 0.7, LoRA moss at 0.5" in err
    # The prompt has none of their trigger words: the metadata's, and the Civitai page's.
    assert "LoRA ink answers to: ink (not in the prompt)" in err
    assert "LoRA moss answers to: mossy style, green moss (not in the prompt)" in err
    document = json.loads(out)
    assert document["params"]["prompt"] == "a red fox"
    metadata = read_metadata(target)
    assert metadata is not None
    assert [(lora.name, lora.weight) for lora in metadata.params.loras] == [
        ("ink", 0.7),
        ("moss", 0.5),
    ]
    chunks = png_text_chunks(target, keys=frozenset({A1111_KEY}))
    assert chunks is not None
    text = chunks[A1111_KEY]
    assert text.startswith("a red fox <lora:ink:0.7> <lora:moss:0.5>\n")
    hashes = {lora.name: lora.short_hash for lora in metadata.params.loras}
    assert f'Lora hashes: "ink: {hashes["ink"]}, moss: {hashes["moss"]}"' in text


def test_an_unknown_lora_is_not_found_and_a_bad_weight_is_a_usage_error(
    image_models: TinyModels, hf_home: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    core = Core.open()
    try:
        args = ["image", str(image_models.folder), "--prompt", "x", "--lora"]
        for option, status, words in (
            ("nothing-here", 3, "No LoRA matches 'nothing-here'"),
            ("ink:heavy", 3, "No LoRA matches 'ink:heavy'"),
            ("ink:11", 2, "between -10 and 10"),
        ):
            parsed = build_parser().parse_args([*args, option])
            assert image_command.run(core, parsed, io.StringIO()) == status
            assert words in capsys.readouterr().err
    finally:
        core.close()
