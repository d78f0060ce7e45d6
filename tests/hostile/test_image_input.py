"""Images a person attaches are untrusted bytes: decoding one (in the LLM engine's child) costs
bounded time and memory, and ends in pixels or one clear `ImageInputError`.

Inputs are real PNG, JPEG and GIF files with bytes overwritten, PNG headers claiming any size
(up to 2**32 - 1 a side, with a few bytes of data: a decompression bomb's shape), and noise;
and the data: URIs the local API takes images as.
"""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from app.chat.vision import VisionError, image_from_data_uri
from app.llm.vision import MAX_IMAGE_SIDE, ImageInputError, RgbPixels, decode_image
from tests.hostile.bounds import within_bounds
from tests.hostile.hostile_files import png


def _saved(kind: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 32), (10, 200, 90)).save(buffer, format=kind)
    return buffer.getvalue()


ORIGINALS = {kind: _saved(kind) for kind in ("PNG", "JPEG", "GIF", "BMP", "WEBP")}
sides = st.one_of(st.integers(0, 64), st.integers(0, 2**32 - 1), st.sampled_from([8000, 8001]))


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    """Pillow's plugins load on the first open: a one-off cost that is not an input's."""
    for data in ORIGINALS.values():
        decode_image(data)


def _decode(data: bytes) -> None:
    outcome = within_bounds(
        "image decode (hypothesis)",
        lambda: decode_image(data),
        errors=(ImageInputError,),
        seconds=2.0,
        megabytes=64.0,
    )
    if isinstance(outcome.value, RgbPixels):
        pixels = outcome.value
        assert max(pixels.width, pixels.height) <= MAX_IMAGE_SIDE
        assert len(pixels.data) == pixels.width * pixels.height * 3


@given(kind=st.sampled_from(sorted(ORIGINALS)), edits=st.data())
@settings(max_examples=150)
def test_any_damaged_image_decodes_or_is_refused(kind: str, edits: st.DataObject) -> None:
    data = bytearray(ORIGINALS[kind])
    for _ in range(edits.draw(st.integers(1, 4))):
        at = edits.draw(st.integers(0, len(data) - 1))
        data[at : at + 4] = struct.pack("<I", edits.draw(st.integers(0, 2**32 - 1)))[
            : len(data) - at
        ]
    cut = edits.draw(st.integers(1, len(data)))
    _decode(bytes(data[:cut]))


@given(width=sides, height=sides)
def test_any_claimed_size_is_refused_or_decoded_within_bounds(width: int, height: int) -> None:
    _decode(png(width=width, height=height))


@given(noise=st.binary(max_size=4096))
def test_noise_is_not_an_image(noise: bytes) -> None:
    _decode(noise)


uri_heads = st.sampled_from(
    ["data:image/png;base64,", "data:;base64,", "DATA:image/jpeg;BASE64,", "data:image/png,",
     "https://x/", "http:", "", "data:base64"]
)  # fmt: skip


@given(head=uri_heads, payload=st.text(max_size=2048))
def test_any_data_uri_is_read_or_refused_within_bounds(head: str, payload: str) -> None:
    within_bounds(
        "image data: URI (hypothesis)",
        lambda: image_from_data_uri(head + payload, "image 1"),
        errors=(VisionError,),
    )
