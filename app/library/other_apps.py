"""Models that other apps downloaded — LM Studio, Ollama, GPT4All — found where they keep them.

They are used in place and belong to those apps: the library lists them, a runtime may load
them, and deleting one needs a second confirmation (the other app would lose it).

Default folders (`AppFolders.for_this_platform`):

- LM Studio: `~/.lmstudio/models/<publisher>/<repo>/*.gguf`, and before LM Studio 0.3
  `~/.cache/lm-studio/models/<publisher>/<repo>/*.gguf` (the same on every OS).
- Ollama: `$OLLAMA_MODELS` if set, else `~/.ollama/models`, and on Linux also
  `/usr/share/ollama/.ollama/models` (the home of the system service). JSON manifests
  `manifests/<host>/<namespace>/<model>/<tag>` name a model layer, a GGUF blob stored as
  `blobs/sha256-<hex>`.
- GPT4All: `*.gguf` in `$XDG_DATA_HOME/nomic.ai/GPT4All` (default `~/.local/share/...`) on
  Linux, `~/Library/Application Support/nomic.ai/GPT4All` on macOS,
  `%LOCALAPPDATA%\\nomic.ai\\GPT4All` on Windows.

A custom models folder set inside one of these apps is not read from its settings; add it
as an extra folder instead.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from app.hub.modelscope.layout import ModelScopeRoots
from app.library.catalog import Location, Source
from app.library.found import Found, group_gguf_files, stat_or_none
from app.library.sniff import ModelKind
from app.untrusted_json import parse_untrusted_json

OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"
_OLLAMA_LIBRARY = ("registry.ollama.ai", "library")
_MANIFEST_LIMIT = 1024 * 1024  # a manifest is a few hundred bytes; anything huge is not one
_DIGEST = re.compile(r"^sha256[:-]([0-9a-f]{64})$")


@dataclass(frozen=True, kw_only=True)
class AppFolders:
    """The folders where other apps keep their models; each may be missing (app not installed)."""

    lm_studio: tuple[Path, ...] = ()
    ollama: tuple[Path, ...] = ()
    gpt4all: tuple[Path, ...] = ()
    modelscope: tuple[Path, ...] = ()  # `ModelScopeRoots.all`: its current and older layouts

    @classmethod
    def for_this_platform(
        cls,
        *,
        home: Path | None = None,
        environ: Mapping[str, str] | None = None,
        platform: str | None = None,
    ) -> AppFolders:
        """The default folders of each app on this OS (see the module's table).

        Args:
            home: the user's home (default: `Path.home()`).
            environ: the environment to read `OLLAMA_MODELS`, `XDG_DATA_HOME`, `LOCALAPPDATA`
                from (default: `os.environ`).
            platform: a `sys.platform` value (default: this one).
        """
        home = Path.home() if home is None else home
        env = os.environ if environ is None else environ
        system = sys.platform if platform is None else platform
        lm_studio = (home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models")
        if env.get("OLLAMA_MODELS"):
            ollama: tuple[Path, ...] = (Path(env["OLLAMA_MODELS"]).expanduser(),)
        else:
            ollama = (home / ".ollama" / "models",)
            if system.startswith("linux"):
                ollama += (Path("/usr/share/ollama/.ollama/models"),)
        if system == "darwin":
            gpt4all_base = home / "Library" / "Application Support"
        elif system == "win32":
            gpt4all_base = Path(env.get("LOCALAPPDATA") or home / "AppData" / "Local")
        else:
            gpt4all_base = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")
        return cls(
            lm_studio=lm_studio,
            ollama=ollama,
            gpt4all=(gpt4all_base / "nomic.ai" / "GPT4All",),
            modelscope=ModelScopeRoots.for_this_user(environ=env, home=home).all,
        )


def find_in_lm_studio(roots: Iterable[Path]) -> Iterator[Found]:
    """GGUF models in LM Studio's `<root>/<publisher>/<repo>/` folders."""
    for root in _existing_folders(roots):
        for publisher in _subfolders(root):
            for repo in _subfolders(publisher):
                repo_id = f"{publisher.name}/{repo.name}"
                yield from _gguf_models_in(repo, Source.LM_STUDIO, repo_id=repo_id)


def find_in_gpt4all(roots: Iterable[Path]) -> Iterator[Found]:
    """GGUF models directly in GPT4All's models folder (its partial downloads left out)."""
    for root in _existing_folders(roots):
        yield from _gguf_models_in(root, Source.GPT4ALL, repo_id=None)


def find_in_ollama(roots: Iterable[Path]) -> Iterator[Found]:
    """The model layer of each Ollama manifest: one `Found` per blob, however many tags share it.

    Deleting one removes every manifest (tag) that uses the blob, and the tags' other layers
    (template, parameters, license) that no remaining manifest uses.
    """
    for root in _existing_folders(roots):
        manifests = _read_manifests(root / "manifests")
        users: dict[str, list[Path]] = {}  # layer digest -> manifests that use it
        for manifest, (_name, _model, layers) in manifests.items():
            for digest in layers:
                users.setdefault(digest, []).append(manifest)
        by_model: dict[str, list[Path]] = {}
        for manifest, (_name, model, _layers) in manifests.items():
            by_model.setdefault(model, []).append(manifest)
        for digest, tagged in sorted(by_model.items()):
            blob = _blob_path(root, digest)
            stat = stat_or_none(blob) if blob is not None else None
            if blob is None or stat is None:
                continue  # a manifest whose model blob is gone: Ollama would not run it either
            names = sorted(manifests[manifest][0] for manifest in tagged)
            gone = set(tagged)
            exclusive = sorted(
                path
                for manifest in tagged
                for layer in manifests[manifest][2]
                if layer != digest
                and set(users[layer]) <= gone
                and (path := _blob_path(root, layer)) is not None
            )
            yield Found(
                location=Location(path=blob, source=Source.OLLAMA, owned_by_other_app=True),
                parts=(blob,),
                size=stat.st_size,
                first_size=stat.st_size,
                mtime_ns=stat.st_mtime_ns,
                sha256=digest,
                name=names[0],
                kind=ModelKind.LLM_GGUF,
                managed_paths=(*sorted(tagged), *dict.fromkeys(exclusive)),
            )


def ollama_model_name(manifest: Path, manifests_root: Path) -> str | None:
    """Ollama's name for a manifest: `llama3:8b`, `user/model:tag`, `hf.co/org/repo:tag`."""
    parts = manifest.relative_to(manifests_root).parts
    if len(parts) != 4:
        return None
    host, namespace, model, tag = parts
    if (host, namespace) == _OLLAMA_LIBRARY:
        return f"{model}:{tag}"
    if host == _OLLAMA_LIBRARY[0]:
        return f"{namespace}/{model}:{tag}"
    return f"{host}/{namespace}/{model}:{tag}"


def _read_manifests(folder: Path) -> dict[Path, tuple[str, str, tuple[str, ...]]]:
    """manifest -> (model name, model layer digest, all layer digests); unreadable ones skipped."""
    result: dict[Path, tuple[str, str, tuple[str, ...]]] = {}
    if not folder.is_dir():
        return result
    for directory, subfolders, files in os.walk(folder):
        if len(Path(directory).relative_to(folder).parts) >= 3:
            subfolders.clear()  # host/namespace/model/tag: nothing deeper is a manifest
        for file_name in files:
            manifest = Path(directory) / file_name
            name = ollama_model_name(manifest, folder)
            parsed = _parse_manifest(manifest) if name is not None else None
            if name is not None and parsed is not None:
                result[manifest] = (name, *parsed)
    return result


def _parse_manifest(path: Path) -> tuple[str, tuple[str, ...]] | None:
    try:
        with path.open("rb") as handle:
            # ValueError covers UntrustedJsonError: malformed, too large or nested too deep.
            data = parse_untrusted_json(
                handle.read(_MANIFEST_LIMIT + 1), max_bytes=_MANIFEST_LIMIT, what="manifest"
            )
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    layers = data.get("layers")
    if not isinstance(layers, list):
        return None
    model: str | None = None
    digests: list[str] = []
    for layer in layers:
        if not isinstance(layer, dict):
            continue
        match = _DIGEST.match(str(layer.get("digest", "")))
        if match is None:
            continue
        digests.append(match.group(1))
        if layer.get("mediaType") == OLLAMA_MODEL_LAYER and model is None:
            model = match.group(1)
    config = data.get("config")
    if isinstance(config, dict) and (match := _DIGEST.match(str(config.get("digest", "")))):
        digests.append(match.group(1))
    return (model, tuple(digests)) if model is not None else None


def _blob_path(root: Path, digest: str) -> Path | None:
    """The blob file of a digest: `sha256-<hex>`, or `sha256:<hex>` as older versions wrote."""
    for name in (f"sha256-{digest}", f"sha256:{digest}"):
        path = root / "blobs" / name
        if path.exists():
            return path
    return None


def _gguf_models_in(folder: Path, source: Source, *, repo_id: str | None) -> Iterator[Found]:
    stats: dict[str, os.stat_result] = {}
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if not entry.name.lower().endswith(".gguf") or entry.name.startswith("incomplete-"):
            continue
        try:
            if entry.is_file():
                stats[entry.name] = entry.stat()
        except OSError:
            continue
    pairs = [(name, stat.st_size) for name, stat in stats.items()]
    for model in group_gguf_files(pairs):
        first = stats[model.parts[0]]
        yield Found(
            location=Location(
                path=folder / model.parts[0],
                source=source,
                owned_by_other_app=source.is_other_app,
                repo_id=repo_id,
            ),
            parts=tuple(folder / part for part in model.parts),
            size=model.size,
            first_size=first.st_size,
            mtime_ns=first.st_mtime_ns,
            sha256=None,
            name=model.name,
            kind=ModelKind.LLM_GGUF,
            quantization=model.quantization,
        )


def _existing_folders(roots: Iterable[Path]) -> Iterator[Path]:
    """Each root that is a folder, once (two defaults may be one folder through a link)."""
    seen: set[str] = set()
    for root in roots:
        if not root.is_dir():
            continue
        real = os.path.realpath(root)
        if real not in seen:
            seen.add(real)
            yield root


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(Path(entry.path) for entry in os.scandir(folder) if entry.is_dir())
    except OSError:
        return []
