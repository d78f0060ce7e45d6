"""ModelDeck's own check of a downloaded file, beside the hub's scan: one verdict from the
header sniff (`sniff`): its format, whether it is a pickle, whether its chat template (which
ModelDeck renders in a sandbox) is there. Only headers are read; nothing is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.errors import CheckpointError
from app.hub.security import ScanLevel
from app.library.sniff import CheckpointFormat, sniff

CHECKED_SUFFIXES = (".gguf", ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
"""Weight files; others (JSON, text) hold no code to check."""


@dataclass(frozen=True, kw_only=True)
class OwnCheck:
    """ModelDeck's verdict: SAFE (loads without running code), CAUTION (a pickle, which
    ModelDeck never loads, or a file that is not a readable checkpoint)."""

    level: ScanLevel
    word: str  # a word for the badge: "ok", "pickle", "unreadable"
    detail: str  # a sentence for the tooltip


def checks_file(path: str) -> bool:
    """Whether `own_check` has something to say about a file named `path`."""
    return path.lower().endswith(CHECKED_SUFFIXES)


def own_check(path: Path) -> OwnCheck:
    """Sniff `path`'s header and sum it up as one verdict (call it off the GUI thread)."""
    try:
        checkpoint = sniff(path)
    except CheckpointError as exc:
        return OwnCheck(
            level=ScanLevel.CAUTION, word="unreadable", detail=f"Not a readable checkpoint: {exc}"
        )
    if checkpoint.format is CheckpointFormat.PICKLE:
        return OwnCheck(
            level=ScanLevel.CAUTION,
            word="pickle",
            detail="A pickle: it can run code when loaded. ModelDeck never loads it.",
        )
    if checkpoint.format is CheckpointFormat.GGUF:
        template = (
            "its chat template is rendered in a sandbox"
            if checkpoint.has_chat_template
            else "no chat template"
        )
        return OwnCheck(
            level=ScanLevel.SAFE, word="ok", detail=f"GGUF header read: no code; {template}."
        )
    return OwnCheck(
        level=ScanLevel.SAFE,
        word="ok",
        detail=f"{checkpoint.format.value} header read: tensors only, no code.",
    )
