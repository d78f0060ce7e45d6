"""LoRAs on the tiny pipeline in the real engine: both key layouts change the pixels for the
same seed, weight 0 does not, two stack, a LoRA for another family is refused, and taking
LoRAs out leaves the model exactly as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from app.engines.errors import EngineErrorKind
from app.engines.protocol import EventKind
from app.images import ImageEngine, ImageParams, ModelRef, generated_images, read_metadata
from app.images.loras import LoraRef
from app.library.lora_keys import LoraLayout
from app.library.sniff import ModelKind, sniff
from tests.support.diffusers_builder import TinyModels
from tests.support.lora_builder import kohya_metadata, write_kohya_lora, write_peft_lora

pytestmark = pytest.mark.slow

TIMEOUT = 60.0


@pytest.fixture(scope="module")
def loras(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("loras")
    return {
        "peft": write_peft_lora(root / "ink-peft.safetensors", seed=1),
        "kohya": write_kohya_lora(
            root / "ink-kohya.safetensors",
            seed=1,
            metadata=kohya_metadata(tags={"ink style": 30, "sketch": 12, "1girl": 3}),
        ),
        "other": write_peft_lora(root / "moss.safetensors", seed=2),
        "sdxl": write_kohya_lora(
            root / "xl-style.safetensors", seed=1, text_encoders=("te1", "te2")
        ),
    }


def use(engine: ImageEngine, path: Path, *, config: Path | None = None) -> None:
    outcome = engine.load(ModelRef(name="tiny", path=str(path)), config=config).wait(TIMEOUT)
    assert outcome.kind is EventKind.RESULT, outcome.payload


def generate(engine: ImageEngine, out: Path, *loras: LoraRef, **changes: Any) -> Path:
    values: dict[str, Any] = {"prompt": "a red fox", "steps": 2, "width": 64, "height": 64}
    params = ImageParams(**(values | changes), seed=7, loras=loras)
    outcome = engine.generate(params, output_dir=out).wait(TIMEOUT)
    assert outcome.kind is EventKind.RESULT, outcome.payload
    (image,) = generated_images(outcome)
    return image.path


def pixels(path: Path) -> bytes:
    with Image.open(path) as image:
        return image.convert("RGB").tobytes()


def lora(path: Path, weight: float = 1.0) -> LoraRef:
    return LoraRef(name=path.stem, path=str(path), weight=weight)


def test_the_sniffer_tells_both_layouts_their_family_and_trigger_words(
    loras: dict[str, Path],
) -> None:
    peft, kohya, sdxl = sniff(loras["peft"]), sniff(loras["kohya"]), sniff(loras["sdxl"])
    assert (peft.kind, kohya.kind, sdxl.kind) == (ModelKind.LORA,) * 3
    assert peft.lora is not None and kohya.lora is not None and sdxl.lora is not None
    assert (peft.lora.layout, kohya.lora.layout) == (LoraLayout.PEFT, LoraLayout.KOHYA)
    assert peft.lora.context_width == kohya.lora.context_width == 32  # the tiny UNet's text
    assert peft.lora.rank == kohya.lora.rank == 4
    assert peft.family is None  # no known width, no metadata
    assert kohya.family == "SD 1.x"  # from kohya's ss_base_model_version
    assert kohya.lora.trigger_words == ("ink style", "sketch", "1girl")
    assert sdxl.family == "SDXL"  # its second text encoder


def test_a_lora_changes_the_pixels_in_either_layout_and_weight_zero_does_not(
    image_engine: ImageEngine, image_models: TinyModels, loras: dict[str, Path], tmp_path: Path
) -> None:
    use(image_engine, image_models.folder)
    plain = pixels(generate(image_engine, tmp_path))
    with_peft = pixels(generate(image_engine, tmp_path, lora(loras["peft"])))
    with_kohya = pixels(generate(image_engine, tmp_path, lora(loras["kohya"])))
    at_zero = pixels(generate(image_engine, tmp_path, lora(loras["peft"], 0.0)))
    assert with_peft != plain
    assert with_kohya == with_peft  # the same weights under kohya's keys (alpha = rank)
    assert at_zero == plain
    # Taken out again, the model is exactly what it was (fusing is undone bit for bit).
    assert pixels(generate(image_engine, tmp_path)) == plain


def test_two_loras_stack_and_their_hashes_go_into_the_metadata(
    image_engine: ImageEngine, image_models: TinyModels, loras: dict[str, Path], tmp_path: Path
) -> None:
    use(image_engine, image_models.folder)
    first = pixels(generate(image_engine, tmp_path, lora(loras["peft"], 0.8)))
    second = pixels(generate(image_engine, tmp_path, lora(loras["other"], 0.6)))
    both_path = generate(
        image_engine, tmp_path, lora(loras["peft"], 0.8), lora(loras["other"], 0.6)
    )
    assert len({first, second, pixels(both_path)}) == 3
    metadata = read_metadata(both_path)
    assert metadata is not None
    names = [(item.name, item.weight) for item in metadata.params.loras]
    assert names == [("ink-peft", 0.8), ("moss", 0.6)]
    assert all(item.short_hash and len(item.short_hash) == 12 for item in metadata.params.loras)


def test_a_lora_for_another_family_is_refused_naming_both(
    image_engine: ImageEngine, image_models: TinyModels, loras: dict[str, Path], tmp_path: Path
) -> None:
    # The tiny weights as an SD 1.x file.
    use(image_engine, image_models.single_file, config=image_models.config)
    params = ImageParams(
        prompt="x", steps=2, width=64, height=64, seed=1, loras=(lora(loras["sdxl"]),)
    )
    outcome = image_engine.generate(params, output_dir=tmp_path).wait(TIMEOUT)
    assert outcome.kind is EventKind.ERROR
    assert outcome.failure.kind is EngineErrorKind.BAD_INPUT
    assert "xl-style.safetensors is a LoRA for SDXL" in outcome.failure.message
    assert "SD 1.x" in outcome.failure.message
    assert not list(tmp_path.glob("*.png"))
    # The engine is still usable, with the model as it was.
    assert generate(image_engine, tmp_path).exists()


def test_a_model_that_is_not_a_lora_is_refused(
    image_engine: ImageEngine, image_models: TinyModels, tmp_path: Path
) -> None:
    use(image_engine, image_models.folder)
    not_lora = LoraRef(name="llm", path=str(image_models.llm))
    params = ImageParams(prompt="x", steps=2, width=64, height=64, seed=1, loras=(not_lora,))
    outcome = image_engine.generate(params, output_dir=tmp_path).wait(TIMEOUT)
    assert outcome.kind is EventKind.ERROR
    assert "not a LoRA" in outcome.failure.message
