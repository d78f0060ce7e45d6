"""Models in ModelScope's cache, in its current layout and its older ones (see
`app.hub.modelscope.layout`): `<root>/<owner>/<name>/` folders holding the repository's files.

In each model folder the library lists what ModelDeck can run, as it does for a Hugging Face
cache snapshot: a diffusers pipeline (the folder, when it has `model_index.json`), GGUF
models (split parts grouped; in subfolders too), and single-file `.safetensors` checkpoints
at the top. The SDK's temporary folder (`._____temp`, partial downloads) is never listed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from app.hub.modelscope.layout import TEMPORARY_FOLDER, model_id_of
from app.library.catalog import Location, Source
from app.library.found import Found, group_gguf_files, stat_or_none
from app.library.sniff import ModelKind

MAX_FILES_PER_MODEL = 20_000
"""Files looked at in one model folder; a folder with more is listed by its first ones."""


def find_in_modelscope(roots: Iterable[Path]) -> Iterator[Found]:
    """Every runnable model in ModelScope's model folders under `roots`.

    `roots` are the current layout's folder and the older ones (`ModelScopeRoots.all`); a
    root that is missing is skipped, and a root that lies inside another is not read twice.
    """
    roots = list(roots)
    skip = {os.path.realpath(root) for root in roots}
    seen: set[str] = set()
    for root in roots:
        real = os.path.realpath(root)
        if real in seen or not os.path.isdir(root):
            continue
        seen.add(real)
        for owner in _subfolders(root):
            # The temporary folder, and the current layout's `models` folder inside an
            # older root, are not owners.
            if owner.name.startswith(".") or os.path.realpath(owner) in skip:
                continue
            for folder in _subfolders(owner):
                if not folder.name.startswith("."):
                    yield from _models_in(folder)


def _models_in(folder: Path) -> Iterator[Found]:
    files = _files_below(folder)
    if not files:
        return
    model_id = model_id_of(folder)

    def location(path: Path) -> Location:
        return Location(
            path=path, source=Source.MODELSCOPE, owned_by_other_app=True, repo_id=model_id
        )

    if "model_index.json" in files:
        stat = stat_or_none(folder)
        yield Found(
            location=location(folder),
            parts=(folder,),
            size=sum(files.values()),
            first_size=0,
            mtime_ns=stat.st_mtime_ns if stat else 0,
            sha256=None,
            name=model_id,
            kind=ModelKind.DIFFUSERS_PIPELINE,
            is_folder=True,
        )
        return
    ggufs = [(path, size) for path, size in files.items() if path.lower().endswith(".gguf")]
    for model in group_gguf_files(ggufs):
        first = folder / model.parts[0]
        stat = stat_or_none(first)
        yield Found(
            location=location(first),
            parts=tuple(folder / part for part in model.parts),
            size=model.size,
            first_size=files[model.parts[0]],
            mtime_ns=stat.st_mtime_ns if stat else 0,
            sha256=None,
            name=model.name,
            kind=ModelKind.LLM_GGUF,
            quantization=model.quantization,
        )
    for path, size in files.items():
        if "/" in path or not path.endswith(".safetensors") or "-of-" in path:
            continue
        stat = stat_or_none(folder / path)
        yield Found(
            location=location(folder / path),
            parts=(folder / path,),
            size=size,
            first_size=size,
            mtime_ns=stat.st_mtime_ns if stat else 0,
            sha256=None,
            name=Path(path).stem,
            kind=None,  # a diffusion checkpoint or something else: its header tells
        )


def _files_below(folder: Path) -> dict[str, int]:
    """Relative path -> size of the regular files below `folder` (dot files left out)."""
    found: dict[str, int] = {}
    pending = [folder]
    while pending and len(found) < MAX_FILES_PER_MODEL:
        current = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(".") or entry.name == TEMPORARY_FOLDER:
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                elif entry.is_file():
                    relative = Path(entry.path).relative_to(folder).as_posix()
                    found[relative] = entry.stat().st_size
            except OSError:
                continue
    return found


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(
            Path(entry.path) for entry in os.scandir(folder) if entry.is_dir(follow_symlinks=False)
        )
    except OSError:
        return []
