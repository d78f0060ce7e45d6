"""A LoRA's trigger words: its Civitai page's (the `.civitai.info` sidecar, written here in
the shape of Civitai's model-version answer) first, then its metadata's; a broken sidecar
is no reason to fail."""

from __future__ import annotations

import json
from pathlib import Path

from app.images.lora_words import (
    MAX_WORD_CHARS,
    MAX_WORDS,
    civitai_trigger_words,
    merge_trigger_words,
    missing_trigger_words,
)
from app.library.sniff import sniff
from tests.support.lora_builder import kohya_metadata, write_kohya_lora


def civitai_sidecar(lora: Path, words: list[object]) -> Path:
    """What Civitai's `/api/v1/model-versions/{id}` answers, as a download leaves it."""
    path = lora.with_name(lora.stem + ".civitai.info")
    version = {
        "id": 1234,
        "modelId": 99,
        "name": "v1.0",
        "baseModel": "SD 1.5",
        "trainedWords": words,
        "model": {"name": "Ink Wash", "type": "LORA", "nsfw": False},
        "files": [{"name": lora.name, "hashes": {"SHA256": "AB" * 32}}],
    }
    path.write_text(json.dumps(version), encoding="utf-8")
    return path


def test_civitai_words_come_first_then_the_metadata_words_each_once(tmp_path: Path) -> None:
    lora = write_kohya_lora(
        tmp_path / "ink.safetensors", metadata=kohya_metadata(tags={"ink wash": 9, "moss": 3})
    )
    assert civitai_trigger_words(lora) == ()  # no sidecar: nothing, no error
    civitai_sidecar(lora, ["inkwash style", "  Ink   Wash ", "", 7])
    words = civitai_trigger_words(lora)
    assert words == ("inkwash style", "Ink Wash")  # trimmed; a blank and a number left out
    checkpoint = sniff(lora)
    assert checkpoint.lora is not None
    assert checkpoint.lora.trigger_words[:2] == ("ink wash", "moss")
    merged = merge_trigger_words(words, checkpoint.lora.trigger_words)
    assert merged[:3] == ("inkwash style", "Ink Wash", "moss")  # "ink wash" was there


def test_a_broken_or_hostile_sidecar_gives_no_words(tmp_path: Path) -> None:
    lora = write_kohya_lora(tmp_path / "ink.safetensors")
    sidecar = lora.with_name("ink.civitai.info")
    for text in ("{not json", "[]", json.dumps({"id": "x", "trainedWords": "ink"}), "\0" * 64):
        sidecar.write_text(text, encoding="utf-8")
        assert civitai_trigger_words(lora) == (), text
    civitai_sidecar(lora, ["w" * (MAX_WORD_CHARS + 1)] + [f"word {n}" for n in range(50)])
    words = civitai_trigger_words(lora)
    assert len(words) == MAX_WORDS and words[0] == "word 0"


def test_words_are_noted_only_when_the_prompt_has_none_of_them() -> None:
    words = ("mossy style", "green moss")
    assert missing_trigger_words("a stone", words) == words
    assert missing_trigger_words("a stone, Green  moss", words) == ()
    assert missing_trigger_words("a stone", ()) == ()
