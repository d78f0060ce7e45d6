"""`modeldeck chat MODEL --image FILE`: a vision model's projector found beside it (or given with
`--mmproj`), images sent with the prompt, and every way it can go wrong told in one line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image

from app.tiny_gguf import write_projector
from tests.core.conftest import Cli
from tests.support.gguf_builder import SCRIPTED_REPLY, write_scripted_gguf

IMAGE_TOKENS = 16  # the tiny projector's share of the prompt per image


@pytest.fixture
def vision_model(tmp_path: Path) -> Path:
    """LM Studio's layout: publisher/repo/ with the model and its projectors side by side."""
    folder = tmp_path / "models" / "tiny-org" / "Tiny-Vision-GGUF"
    write_projector(folder / "mmproj-Tiny-Vision-F16.gguf")
    write_projector(folder / "mmproj-Tiny-Vision-F32.gguf", text_embedding=96)  # not chosen
    return write_scripted_gguf(folder / "Tiny-Vision-Q8_0.gguf", context_length=4096)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.new("RGB", (50, 40), (20, 120, 220)).save(path)
    return path


def chat_json(cli: Cli, *args: str) -> dict[str, object]:
    result = cli.run("chat", *args, "--seed", "1", "--json")
    assert result.returncode == 0, result
    document: dict[str, object] = json.loads(result.stdout)
    return document


def prompt_tokens(document: dict[str, object]) -> int:
    stats = document["stats"]
    assert isinstance(stats, dict)
    return int(stats["prompt_tokens"])


def test_an_image_goes_to_the_projector_found_beside_the_model(
    cli: Cli, vision_model: Path, photo: Path
) -> None:
    text = chat_json(cli, str(vision_model), "--prompt", "What is this?")
    seen = chat_json(cli, str(vision_model), "--prompt", "What is this?", "--image", str(photo))
    two = chat_json(
        cli, str(vision_model), "--prompt", "What is this?",
        "--image", str(photo), "--image", str(photo),
    )  # fmt: skip
    assert seen["text"] == text["text"] == SCRIPTED_REPLY
    newline = 1  # the marker's line ends with "\n", one more token
    assert prompt_tokens(seen) == prompt_tokens(text) + IMAGE_TOKENS + newline
    assert prompt_tokens(two) == prompt_tokens(seen) + IMAGE_TOKENS
    load = seen["load"]
    assert isinstance(load, dict)
    # of the two projectors beside it, the F16 one (the other would not even fit the model)
    assert load["projector"] == str(vision_model.parent / "mmproj-Tiny-Vision-F16.gguf")
    assert "projector" not in text["load"]  # type: ignore[operator]  # text only: none loaded
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    assert seen["images"] == [{"name": "photo.png", "sha256": digest}]


def test_mmproj_names_the_projector(
    cli: Cli, tmp_path: Path, vision_model: Path, photo: Path
) -> None:
    wide = vision_model.parent / "mmproj-Tiny-Vision-F32.gguf"
    result = cli.run(
        "chat", str(vision_model), "--prompt", "Hi", "--image", str(photo), "--mmproj", str(wide)
    )
    assert result.returncode == 1
    assert "makes 96-wide embeddings, but the model takes 64-wide ones" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_text_model_cannot_see_and_the_message_names_one_that_can(
    cli: Cli, tmp_path: Path, vision_model: Path, photo: Path
) -> None:
    text_model = write_scripted_gguf(tmp_path / "text" / "Plain-Q8_0.gguf")
    assert cli.run("import", str(vision_model.parent)).returncode == 0
    result = cli.run("chat", str(text_model), "--prompt", "Hi", "--image", str(photo))
    assert result.returncode == 1
    assert "can't see images (no vision projector beside it); these can: " in result.stderr
    assert "Tiny-Vision-Q8_0" in result.stderr or "Tiny Llama" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "says"),
    [(b"just text", "photo.png is not an image"), (None, "No image file at")],
)
def test_a_bad_image_is_one_line_of_error(
    cli: Cli, tmp_path: Path, vision_model: Path, content: bytes | None, says: str
) -> None:
    path = tmp_path / "photo.png"
    if content is not None:
        path.write_bytes(content)
    result = cli.run("chat", str(vision_model), "--prompt", "Hi", "--image", str(path))
    assert result.returncode in (1, 2)
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_projector_is_not_a_model(cli: Cli, vision_model: Path) -> None:
    projector = vision_model.parent / "mmproj-Tiny-Vision-F16.gguf"
    result = cli.run("chat", str(projector), "--prompt", "Hi")
    assert result.returncode == 3
    assert "is a vision projector, not a language model" in result.stderr
