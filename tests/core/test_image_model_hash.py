"""A1111's "Model hash" in the PNGs the image engine writes: the first 10 hex digits of the
checkpoint's sha256, read back by the A1111 parser (what other tools and sites link by)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from app.engines.protocol import EventKind
from app.images import ImageEngine, ImageParams, ModelRef, generated_images
from app.images.png_metadata import A1111_KEY, parse_a1111_parameters, png_text_chunks
from tests.support.diffusers_builder import TinyModels

pytestmark = pytest.mark.slow

TIMEOUT = 60.0


def test_a_single_file_models_png_carries_its_a1111_model_hash(
    image_engine: ImageEngine, image_models: TinyModels, tmp_path: Path
) -> None:
    checkpoint = image_models.single_file
    sha256 = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    # Loaded by path, as a dropped file is: nobody told the engine its sha256.
    model = ModelRef(name="tiny-sd1", path=str(checkpoint))
    loaded = image_engine.load(model, config=image_models.config).wait(TIMEOUT)
    assert loaded.kind is EventKind.RESULT, loaded.payload
    params = ImageParams(prompt="a red fox", steps=1, width=64, height=64, seed=5, model=model)
    events = list(image_engine.generate(params, output_dir=tmp_path).events(timeout=TIMEOUT))
    assert events[-1].kind is EventKind.RESULT, events[-1].payload
    (image,) = generated_images(events[-1])

    chunks = png_text_chunks(image.path, keys=frozenset({A1111_KEY}))
    assert chunks is not None
    text = chunks[A1111_KEY]
    assert f"Model hash: {sha256[:10]}, Model: tiny-sd1" in text
    read = parse_a1111_parameters(text)
    assert read.fields["Model hash"] == sha256[:10]
    assert read.params.model == ModelRef(name="tiny-sd1")
    assert image.params.model is not None and image.params.model.sha256 == sha256
