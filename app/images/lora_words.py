"""The words a LoRA was trained to answer to, offered for the prompt.

Two places know them: the Civitai page it came from — its `trainedWords`, kept beside the
file in the `.civitai.info` sidecar that a download from Civitai (or A1111's Civitai Helper)
writes — and the file's own metadata (the model spec's trigger phrase, or the tags kohya's
training captions used most; `app.library.lora_keys`). The author's Civitai list comes first:
it names what the LoRA was made for, where caption tags are a guess from the training set.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from app.errors import CheckpointError
from app.hub.civitai.provenance import read_sidecar
from app.library.sniff import sniff

__all__ = [
    "MAX_WORDS",
    "MAX_WORD_CHARS",
    "civitai_trigger_words",
    "lora_trigger_words",
    "merge_trigger_words",
    "missing_trigger_words",
]

MAX_WORDS = 16  # offered for one LoRA (Civitai's lists are short; a sidecar is untrusted)
MAX_WORD_CHARS = 120  # one word or phrase ("ink wash style, monochrome" is one of Civitai's)


def civitai_trigger_words(lora_file: Path) -> tuple[str, ...]:
    """The trigger words the Civitai sidecar beside `lora_file` lists (none when there is no
    sidecar or it cannot be read: another tool's file is never a reason to fail). Blocking
    (reads a small file): call it off the GUI thread."""
    provenance = read_sidecar(lora_file)
    if provenance is None:
        return ()
    return merge_trigger_words(provenance.trained_words)


def lora_trigger_words(lora_file: Path) -> tuple[str, ...]:
    """Every trigger word known for the LoRA at `lora_file`: its Civitai page's, then its
    metadata's (none when the file cannot be read: the engine says why when it is used).
    Blocking (reads the file's header): call it off the GUI thread."""
    try:
        checkpoint = sniff(lora_file)
    except (CheckpointError, OSError):
        return civitai_trigger_words(lora_file)
    recorded = checkpoint.lora.trigger_words if checkpoint.lora is not None else ()
    return merge_trigger_words(civitai_trigger_words(lora_file), recorded)


def missing_trigger_words(prompt: str, words: Iterable[str]) -> tuple[str, ...]:
    """`words` when none of them is in `prompt` (case aside), else (): a LoRA answers to
    any one of its words, so only a prompt without any is worth a note."""
    words = tuple(words)
    folded = " ".join(prompt.split()).casefold()
    return () if any(word.casefold() in folded for word in words) else words


def merge_trigger_words(*sources: Iterable[str]) -> tuple[str, ...]:
    """The words of `sources` in order, each once (case and spacing aside), blank and
    over-long ones left out, at most `MAX_WORDS`."""
    words: dict[str, str] = {}
    for source in sources:
        for word in source:
            text = " ".join(str(word).split()).strip(" ,")
            if not text or len(text) > MAX_WORD_CHARS:
                continue
            words.setdefault(text.casefold(), text)
            if len(words) >= MAX_WORDS:
                return tuple(words.values())
    return tuple(words.values())
