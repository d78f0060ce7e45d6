"""Where ModelScope's own tools keep models, so that ModelDeck writes and finds them there.

The `modelscope` SDK (1.2x) keeps a model in

    <cache>/models/<owner>/<name>/<files as in the repository>
        .mdl   a pickle of {"id": "<owner>/<name>"}
        .msc   a pickle of [{"Path": <file>, "Revision": <commit>}, ...]: the files it has
        .mv    "Revision:<rev>,CreatedAt:<time>" (optional)
    <cache>/models/._____temp/<owner>/<name>/...   downloads in progress

where `<cache>` is `$MODELSCOPE_CACHE`, else `~/.cache/modelscope/hub`, and a "." in the name
is written "___" (so `Qwen2.5-7B` is the folder `Qwen2___5-7B`). Older SDKs kept models one
level up, in `<cache>/<owner>/<name>`, and before `MODELSCOPE_CACHE` meant the hub folder
itself, in `$MODELSCOPE_CACHE/hub/<owner>/<name>`; today's SDK moves those on first use, and
the library finds them where they are.

ModelDeck writes `.mdl` and `.msc` exactly as the SDK does, so `snapshot_download` sees the
files as its own and does not fetch them again. It reads `.msc` and `.mdl` only through an
unpickler that refuses every class and function: they hold plain lists, dicts and strings,
and anything else in them is refused rather than run.
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.hub.untrusted import check_repo_id

TEMPORARY_FOLDER = "._____temp"
META_FILE = ".mdl"
INDEX_FILE = ".msc"
VERSION_FILE = ".mv"
MAX_METADATA_BYTES = 16 << 20
"""The largest `.msc` / `.mdl` read (an index of 100,000 files is a few MB)."""


@dataclass(frozen=True, kw_only=True)
class ModelScopeRoots:
    """Where ModelScope keeps models: `current` (written) and `older` layouts (only read)."""

    current: Path
    older: tuple[Path, ...] = ()

    @classmethod
    def for_this_user(
        cls, *, environ: Mapping[str, str] | None = None, home: Path | None = None
    ) -> ModelScopeRoots:
        """The SDK's folders for this user (`MODELSCOPE_CACHE` honoured)."""
        env = os.environ if environ is None else environ
        home = Path.home() if home is None else home
        configured = env.get("MODELSCOPE_CACHE", "").strip()
        cache = (
            Path(configured).expanduser() if configured else home / ".cache" / "modelscope" / "hub"
        )
        older = [cache]
        if configured:
            older.append(cache / "hub")
        return cls(current=cache / "models", older=tuple(older))

    @property
    def all(self) -> tuple[Path, ...]:
        return (self.current, *self.older)


def folder_name(name: str) -> str:
    """The SDK's folder for a model name: each "." written "___"."""
    return name.replace(".", "___")


def model_folder(root: Path, model_id: str) -> Path:
    """`<root>/<owner>/<name>` for a checked `model_id`."""
    owner, _, name = check_repo_id(model_id).partition("/")
    return root / owner / folder_name(name)


def temporary_folder(root: Path, model_id: str) -> Path:
    """Where downloads of `model_id` in progress are kept (the SDK's own temp folder)."""
    owner, _, name = check_repo_id(model_id).partition("/")
    return root / TEMPORARY_FOLDER / owner / name


def model_id_of(folder: Path) -> str:
    """The model id a folder holds: its `.mdl` if readable, else from the folder names."""
    meta = read_pickled(folder / META_FILE)
    if isinstance(meta, dict):
        value = meta.get("id")
        if isinstance(value, str) and value.count("/") == 1:
            return value
    return f"{folder.parent.name}/{folder.name.replace('___', '.')}"


def cached_paths(folder: Path) -> dict[str, str]:
    """The files `.msc` says the folder holds: path -> revision ({} when there is no index)."""
    entries = read_pickled(folder / INDEX_FILE)
    found: dict[str, str] = {}
    if isinstance(entries, list):
        for entry in entries:
            if isinstance(entry, dict):
                path, revision = entry.get("Path"), entry.get("Revision")
                if isinstance(path, str) and isinstance(revision, str):
                    found[path] = revision
    return found


def record_file(folder: Path, model_id: str, path: str, revision: str) -> None:
    """Record in `.mdl` and `.msc` that `path` at `revision` is in `folder` (as the SDK does).

    The index is replaced atomically (a new file moved over it), like the SDK's own writes.
    """
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / META_FILE
    if model_id_of(folder) != model_id or not meta.is_file():
        _write_pickle(meta, {"id": model_id})
    entries = [
        {"Path": cached, "Revision": rev}
        for cached, rev in cached_paths(folder).items()
        if cached != path
    ]
    entries.append({"Path": path, "Revision": revision})
    _write_pickle(folder / INDEX_FILE, entries)


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickles lists, dicts, strings and numbers only; any class or function is refused."""

    def find_class(self, module: str, name: str) -> object:
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


def read_pickled(path: Path) -> object:
    """A small metadata pickle of plain data, or None (absent, too large, or not plain data)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_METADATA_BYTES + 1)
    except OSError:
        return None
    if len(raw) > MAX_METADATA_BYTES:
        return None
    try:
        return _PlainDataUnpickler(io.BytesIO(raw)).load()
    except Exception:  # any malformed pickle: the metadata is simply not there
        return None


def _write_pickle(path: Path, value: object) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            pickle.dump(value, handle)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
