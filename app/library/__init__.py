"""What is on disk: every model on this machine in one list, found in place, never copied.

Modules, each one idea:
- `sniff`: what a checkpoint is, from its headers alone (GGUF, safetensors, diffusers, pickle).
- `catalog`: what the library lists (`LibraryEntry`, `Location`, `Source`).
- `hf_cache`, `other_apps`: where models live (the HF cache; LM Studio, Ollama, GPT4All).
- `found`, `merging`: one record per copy, copies of one model joined by sha256 or real path.
- `records`: the library's rows in the app database (imports, folders, sha256 memos).
- `deletion`: deleting, planned first (`DeletePlan`).
- `provenance`: where each model came from (`Provenance`) and `verify_files`, the re-hash.
- `library`: `Library`, which ties them together.
"""

from app.library.catalog import ImportResult, LibraryEntry, Location, Source
from app.library.deletion import DeletePlan, DeleteStep
from app.library.errors import (
    DeleteFailedError,
    DeleteRefusedError,
    EntryNotFoundError,
    FolderNotFoundError,
    LibraryError,
)
from app.library.library import Library
from app.library.other_apps import AppFolders
from app.library.sniff import Checkpoint, CheckpointFormat, ModelKind, find_checkpoints, sniff

__all__ = [
    "AppFolders",
    "Checkpoint",
    "CheckpointFormat",
    "DeleteFailedError",
    "DeletePlan",
    "DeleteRefusedError",
    "DeleteStep",
    "EntryNotFoundError",
    "FolderNotFoundError",
    "ImportResult",
    "Library",
    "LibraryEntry",
    "LibraryError",
    "Location",
    "ModelKind",
    "Source",
    "find_checkpoints",
    "sniff",
]
