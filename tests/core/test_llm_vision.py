"""Images in the LLM engine for real: a tiny projector that libmtmd loads beside the tiny llama,
images evaluated into the context, and every bad input refused in plain words."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from app.chat.local import LocalChatEngine
from app.engines.errors import EngineError, EngineErrorKind
from app.engines.protocol import EventKind
from app.llm.engine import result_of
from app.llm.messages import Generated, LoadSettings
from app.llm.sampling import Sampling
from app.llm.vision import IMAGE_MARKER, MAX_IMAGE_PIXELS, PromptImage, image_offsets
from app.tiny_gguf import write_projector
from tests.support.gguf_builder import SCRIPTED_REPLY, ScriptedGgufs

TEXT_PROMPT = "<|im_start|>user\nWhat is this?<|im_end|>\n<|im_start|>assistant\n"
IMAGE_TOKENS = 16  # the tiny projector: 32x32 pixels in 8x8 patches


def png(width: int = 40, height: int = 30, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming `width` x `height`, with almost no data: a bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def with_images(count: int) -> tuple[str, list[int]]:
    markers = "".join(IMAGE_MARKER + "\n" for _ in range(count))
    prompt = f"<|im_start|>user\n{markers}What is this?<|im_end|>\n<|im_start|>assistant\n"
    return prompt, image_offsets(prompt)


@pytest.fixture(scope="module")
def projector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_projector(tmp_path_factory.mktemp("vision") / "mmproj-tiny-F16.gguf")


@pytest.fixture(scope="module")
def engine(ggufs: ScriptedGgufs, projector: Path) -> Iterator[LocalChatEngine]:
    engine = LocalChatEngine()
    engine.load(LoadSettings(path=ggufs.scripted, context_length=512, projector=projector))
    yield engine
    engine.close()


def reply(engine: LocalChatEngine, prompt: str, images: list[PromptImage]) -> tuple[str, int]:
    handle = engine.generate_from_prompt(
        prompt, Sampling(max_tokens=16, seed=1), images=tuple(images)
    )
    text = "".join(e.text for e in handle.events() if e.kind is EventKind.CHUNK)
    tokens = result_of(handle.wait(), Generated).stats.prompt_tokens
    assert tokens is not None
    return text, tokens


def test_an_image_adds_its_tokens_to_the_prompt(engine: LocalChatEngine) -> None:
    assert engine.loaded is not None and engine.loaded.vision
    text_only, plain_tokens = reply(engine, TEXT_PROMPT, [])
    prompt, offsets = with_images(1)
    text, tokens = reply(engine, prompt, [PromptImage(offsets[0], png())])
    marker_text = engine.count_tokens(IMAGE_MARKER + "\n") - engine.count_tokens("\n")
    assert tokens == plain_tokens + engine.count_tokens("\n") + IMAGE_TOKENS
    assert marker_text > 0  # the marker is not sent as text: the image takes its place
    assert text == text_only == SCRIPTED_REPLY  # and the model still answers


def test_two_images_two_shares_and_text_after_is_unaffected(engine: LocalChatEngine) -> None:
    prompt, offsets = with_images(2)
    images = [PromptImage(offsets[0], png()), PromptImage(offsets[1], png(64, 64, (0, 0, 255)))]
    _, two = reply(engine, prompt, images)
    prompt_one, offsets_one = with_images(1)
    _, one = reply(engine, prompt_one, [PromptImage(offsets_one[0], png())])
    assert two - one == IMAGE_TOKENS + engine.count_tokens("\n")
    # After images, a text-only prompt starts from a clean cache and answers the same.
    assert reply(engine, TEXT_PROMPT, []) == (SCRIPTED_REPLY, engine.count_tokens(TEXT_PROMPT))


def failure(engine: LocalChatEngine, prompt: str, images: list[PromptImage]) -> EngineError:
    with pytest.raises(EngineError) as caught:
        reply(engine, prompt, images)
    return caught.value


def test_bytes_that_are_not_an_image_are_refused(engine: LocalChatEngine) -> None:
    prompt, offsets = with_images(1)
    error = failure(engine, prompt, [PromptImage(offsets[0], b"not a picture", "notes.txt")])
    assert error.kind is EngineErrorKind.BAD_INPUT
    assert "notes.txt is not an image" in str(error)
    assert reply(engine, TEXT_PROMPT, [])[0] == SCRIPTED_REPLY  # the engine goes on


@pytest.mark.parametrize(
    ("side", "says"),
    [
        (9_000, "bomb.png claims 9,000 x 9,000 pixels, more than the 64 million"),  # our cap
        (100_000, "bomb.png is a decompression bomb"),  # far past it: Pillow's own check
    ],
)
def test_a_decompression_bomb_is_refused_before_decoding(
    engine: LocalChatEngine, side: int, says: str
) -> None:
    prompt, offsets = with_images(1)
    bomb = bomb_png(side, side)
    assert len(bomb) < 200 and side**2 > MAX_IMAGE_PIXELS
    pid = engine.pid
    error = failure(engine, prompt, [PromptImage(offsets[0], bomb, "bomb.png")])
    assert error.kind is EngineErrorKind.BAD_INPUT
    assert says in str(error)
    assert engine.pid == pid  # the child was not killed for memory


def test_a_truncated_image_is_refused(engine: LocalChatEngine) -> None:
    prompt, offsets = with_images(1)
    data = png(200, 200)[:-60]
    error = failure(engine, prompt, [PromptImage(offsets[0], data, "cut.png")])
    assert error.kind is EngineErrorKind.BAD_INPUT and "cut.png" in str(error)


def test_an_image_must_sit_at_its_marker(engine: LocalChatEngine) -> None:
    error = failure(engine, TEXT_PROMPT, [PromptImage(3, png(), "photo.jpg")])
    assert error.kind is EngineErrorKind.BAD_INPUT
    assert "photo.jpg has no image marker at offset 3" in str(error)


def test_a_model_without_projector_refuses_images(ggufs: ScriptedGgufs) -> None:
    engine = LocalChatEngine()
    try:
        loaded = engine.load(LoadSettings(path=ggufs.scripted, context_length=256))
        assert not loaded.vision
        prompt, offsets = with_images(1)
        error = failure(engine, prompt, [PromptImage(offsets[0], png())])
        assert error.kind is EngineErrorKind.NO_VISION
        assert "can't see images" in str(error)
    finally:
        engine.close()


def load_failure(ggufs: ScriptedGgufs, projector: Path) -> EngineError:
    engine = LocalChatEngine()
    try:
        with pytest.raises(EngineError) as caught:
            engine.load(LoadSettings(path=ggufs.scripted, context_length=256, projector=projector))
        # The engine stays usable: the same model loads without the projector.
        assert engine.load(LoadSettings(path=ggufs.scripted, context_length=256)).vision is False
    finally:
        engine.close()
    return caught.value


def test_a_projector_of_another_width_is_refused_with_both_numbers(
    ggufs: ScriptedGgufs, tmp_path: Path
) -> None:
    wide = write_projector(tmp_path / "mmproj-wide.gguf", text_embedding=96)
    error = load_failure(ggufs, wide)
    assert error.kind is EngineErrorKind.BAD_PROJECTOR
    assert "makes 96-wide embeddings, but the model takes 64-wide ones" in str(error)


def test_a_language_model_is_not_a_projector(ggufs: ScriptedGgufs) -> None:
    error = load_failure(ggufs, ggufs.scripted_4k)
    assert error.kind is EngineErrorKind.BAD_PROJECTOR
    assert "scripted-4k.gguf is a language model (llama), not a vision projector" in str(error)


def test_a_truncated_projector_is_refused(
    ggufs: ScriptedGgufs, projector: Path, tmp_path: Path
) -> None:
    cut = tmp_path / "mmproj-cut.gguf"
    cut.write_bytes(projector.read_bytes()[:-4096])
    error = load_failure(ggufs, cut)
    assert error.kind is EngineErrorKind.BAD_PROJECTOR
    assert "mmproj-cut.gguf is truncated" in str(error)


def test_random_bytes_are_not_a_projector(ggufs: ScriptedGgufs, tmp_path: Path) -> None:
    junk = tmp_path / "mmproj-junk.gguf"
    junk.write_bytes(bytes(range(256)) * 8)
    error = load_failure(ggufs, junk)
    assert error.kind is EngineErrorKind.BAD_PROJECTOR
    assert "mmproj-junk.gguf is not a GGUF file" in str(error)


def test_a_missing_projector_is_named(ggufs: ScriptedGgufs, tmp_path: Path) -> None:
    error = load_failure(ggufs, tmp_path / "mmproj-gone.gguf")
    assert error.kind is EngineErrorKind.NOT_FOUND
    assert f"No projector file at {tmp_path / 'mmproj-gone.gguf'}" in str(error)
