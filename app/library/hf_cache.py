"""Models in the Hugging Face cache, read from `huggingface_hub.scan_cache_dir`'s report.

Each cached model revision gives one `Found` per GGUF model (split parts grouped), one for a
diffusers pipeline (`model_index.json` at the top), one per top-level single-file
`.safetensors` checkpoint, or, when it holds none of these (a transformers model, say), one
for the whole revision, so that everything taking space can be seen and freed. An LFS file's
blob is named by its sha256, so those files are never hashed here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from app.hub.card import load_front_matter
from app.library.catalog import Location, Source
from app.library.found import Found, group_gguf_files
from app.library.sniff import ModelKind

if TYPE_CHECKING:
    from huggingface_hub import CachedFileInfo, CachedRepoInfo, CachedRevisionInfo, HFCacheInfo

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHARD = re.compile(r"-\d{5}-of-\d{5}\.")
_FRONT_MATTER = re.compile(r"\A\s*---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_SIMPLE_LICENSE = re.compile(r"^license:[ \t]*['\"]?([A-Za-z0-9._+-]+)['\"]?[ \t]*$", re.MULTILINE)
_CARD_READ_LIMIT = 256 * 1024  # front matter sits at the top; a huge card is not read whole

LicenseCache = dict[tuple[Path, int, int], str | None]


def find_in_hf_cache(info: HFCacheInfo, *, licenses: LicenseCache | None = None) -> list[Found]:
    """Everything the cache report holds, as `Found` records (no header is read here).

    Args:
        info: what `scan_cache_dir` returned.
        licenses: a memo of README licenses by (path, size, mtime_ns), kept between scans.
    """
    memo: LicenseCache = {} if licenses is None else licenses
    found: list[Found] = []
    for repo in info.repos:
        if repo.repo_type != "model":
            continue
        for revision in repo.revisions:
            found.extend(_revision_models(repo, revision, memo))
    return found


def sha256_of_blob(file: CachedFileInfo) -> str | None:
    """The file's sha256 when its blob is an LFS blob (named by its sha256), else None."""
    name = file.blob_path.name
    return name if _SHA256.match(name) else None


def _revision_models(
    repo: CachedRepoInfo, revision: CachedRevisionInfo, licenses: LicenseCache
) -> Iterator[Found]:
    snapshot = revision.snapshot_path
    # Names relative to the snapshot, by string: `Path.relative_to` would cost more than the
    # rest of this function on a cache of thousands of files.
    start = len(str(snapshot)) + 1
    files = {_posix(str(file.file_path)[start:]): file for file in revision.files}
    if not files:
        return
    license_ = _license(files.get("README.md"), licenses)

    def location(path: Path) -> Location:
        return Location(
            path=path,
            source=Source.HF_CACHE,
            repo_id=repo.repo_id,
            revision=revision.commit_hash,
        )

    claimed: set[str] = set()
    ggufs = [(path, file.size_on_disk) for path, file in files.items() if _is_gguf(path)]
    for model in group_gguf_files(ggufs):
        first = files[model.parts[0]]
        claimed.update(model.parts)
        yield Found(
            location=location(first.file_path),
            parts=tuple(files[part].file_path for part in model.parts),
            size=model.size,
            first_size=first.size_on_disk,
            mtime_ns=int(first.blob_last_modified * 1e9),
            sha256=sha256_of_blob(first),
            name=model.name,
            kind=ModelKind.LLM_GGUF,
            quantization=model.quantization,
            license=license_,
            real_path=first.blob_path,
            cache_files=frozenset(files[part] for part in model.parts),
        )

    is_pipeline = "model_index.json" in files
    is_transformers = "config.json" in files and not is_pipeline
    if not is_transformers:
        for path, file in files.items():
            if "/" in path or not path.endswith(".safetensors") or _SHARD.search(path):
                continue
            claimed.add(path)
            yield Found(
                location=location(file.file_path),
                parts=(file.file_path,),
                size=file.size_on_disk,
                first_size=file.size_on_disk,
                mtime_ns=int(file.blob_last_modified * 1e9),
                sha256=sha256_of_blob(file),
                name=Path(path).stem,
                kind=None,  # a diffusion checkpoint or something else: its header tells
                license=license_,
                real_path=file.blob_path,
                cache_files=frozenset({file}),
            )

    if is_pipeline or not claimed:
        rest = frozenset(file for path, file in files.items() if path not in claimed)
        yield Found(
            location=location(snapshot),
            parts=(snapshot,),
            size=_blob_bytes(rest),
            first_size=0,
            mtime_ns=int(revision.last_modified * 1e9),
            sha256=None,
            name=repo.repo_id,
            kind=ModelKind.DIFFUSERS_PIPELINE if is_pipeline else ModelKind.OTHER,
            license=license_,
            is_folder=True,
            real_path=snapshot,
            cache_files=rest,
        )


def _posix(relative: str) -> str:
    return relative.replace(os.sep, "/") if os.sep != "/" else relative


def _is_gguf(path: str) -> bool:
    return path.lower().endswith(".gguf")


def _blob_bytes(files: frozenset[CachedFileInfo]) -> int:
    """Bytes on disk: a blob shared by two file names counts once."""
    return sum({file.blob_path: file.size_on_disk for file in files}.values())


def _license(readme: CachedFileInfo | None, licenses: LicenseCache) -> str | None:
    if readme is None:
        return None
    key = (readme.blob_path, readme.size_on_disk, int(readme.blob_last_modified * 1e9))
    if key not in licenses:
        licenses[key] = read_card_license(readme.file_path)
    return licenses[key]


def read_card_license(path: Path) -> str | None:
    """The `license:` of a model card's YAML front matter, or None (none, unreadable, broken).

    A plain `license: apache-2.0` line is read without a YAML parser (a thousand cards are
    read on every scan); anything else (a list, a quoted string with spaces) goes to YAML.
    """
    try:
        with path.open("rb") as handle:
            text = handle.read(_CARD_READ_LIMIT).decode("utf-8", errors="replace")
    except OSError:
        return None
    match = _FRONT_MATTER.match(text)
    if match is None:
        return None
    front = match.group(1)
    simple = _SIMPLE_LICENSE.search(front)
    if simple is not None:
        return simple.group(1)
    if "license" not in front:
        return None
    data, _error = load_front_matter(front)  # bounded: a README is a stranger's text
    value = data.get("license")
    if isinstance(value, list) and value:
        value = value[0]
    return str(value) if isinstance(value, str | int | float) and str(value).strip() else None
