"""What to fetch: files of one repository at one commit, chosen the way a person picks them.

A plan is made from `ModelDetails` (file sizes, LFS sha256 and git blob ids, all known before
anything is downloaded), so the queue knows every byte it will fetch and every hash to check.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from app.errors import RepoFileNotFoundError
from app.hub.models import ModelDetails, RepoFile
from app.hub.repo_files import GgufModel, group_gguf_models

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True, kw_only=True)
class PlannedFile:
    """One file to fetch, with what the HF cache and the integrity check need."""

    path: str  # path in the repository
    size: int
    sha256: str | None  # the LFS sha256; None for a regular (git) file
    etag: str  # blob name in the HF cache: the sha256 of an LFS file, else its git blob id


@dataclass(frozen=True, kw_only=True)
class DownloadPlan:
    """Files of `repo_id` at commit `revision`, and what the user asked for (`label`)."""

    repo_id: str
    revision: str  # the commit sha
    label: str  # e.g. "Q4_K_M", "fp16", "all files"
    files: tuple[PlannedFile, ...]
    ref: str | None = "main"  # branch or tag written to refs/; None when a sha was asked for

    @property
    def total_size(self) -> int:
        """Bytes of all files together."""
        return sum(file.size for file in self.files)


def plan_files(
    details: ModelDetails, patterns: Sequence[str] = (), *, ref: str | None = "main"
) -> DownloadPlan:
    """Plan the files that `patterns` name; no pattern means the whole repository.

    A pattern is an exact path, an `fnmatch` glob over paths ("*.json", "unet/*"), or a GGUF
    model's name or quantization ("Q4_K_M", "tiny-Q4_K_M"). A part of a split GGUF brings all
    parts of its model, since llama.cpp needs every one.

    Raises:
        RepoFileNotFoundError: when a pattern matches nothing (the whole plan is refused).
        ValueError: when `details` lack file sizes or hashes (fetched without file metadata).
    """
    files = details.files
    if not patterns:
        return _plan(details, files, label="all files", ref=ref)
    models = group_gguf_models(files)
    model_of_part = {part.path: model for model in models for part in model.parts}
    chosen: set[str] = set()
    for pattern in patterns:
        matched = _match(pattern, files, models)
        if not matched:
            raise RepoFileNotFoundError(
                f"{details.repo_id} has no file matching {pattern!r}.",
                repo_id=details.repo_id,
                path=pattern,
                hint="`modeldeck info` lists its files.",
            )
        chosen.update(matched)
    for path in list(chosen):
        model = model_of_part.get(path)
        if model is not None:
            chosen.update(part.path for part in model.parts)
    return _plan(
        details, [f for f in files if f.path in chosen], label=", ".join(patterns), ref=ref
    )


def plan_gguf(details: ModelDetails, model: GgufModel, *, ref: str | None = "main") -> DownloadPlan:
    """Plan one GGUF model: its file, or every part of a split model."""
    label = model.quantization or model.name
    return _plan(details, model.parts, label=label, ref=ref)


# A diffusers / transformers weight file: standard name, optional shard counter and variant
# (on either side of the counter), format; or the index of sharded weights, whose variant
# sits before ".json" ("model.safetensors.index.fp16.json").
_WEIGHT_PATTERN = re.compile(
    r"^(?:diffusion_pytorch_model|pytorch_model|model)"
    r"(?:-\d{5}-of-\d{5})?(?:\.(?P<variant>[A-Za-z0-9_]+))?(?:-\d{5}-of-\d{5})?"
    r"\.(?P<format>safetensors|bin)"
    r"(?:\.index(?:\.(?P<index_variant>[A-Za-z0-9_]+))?\.json)?$"
)
_COMPONENT_FILE_SUFFIXES = (".json", ".txt", ".model", ".tiktoken")
_FORMAT_PREFERENCE = ("safetensors", "bin")


def plan_diffusers(
    details: ModelDetails, variant: str | None = None, *, ref: str | None = "main"
) -> DownloadPlan:
    """Plan what a diffusers pipeline needs to load in one `variant` (e.g. "fp16"; None: default).

    That is model_index.json, each component folder's config, tokenizer and scheduler files,
    and per component the weights of that variant: .safetensors when it has them, else .bin,
    never both. A component without weights of that variant falls back to its default
    weights, as diffusers does when loading. Other formats (ONNX, Flax, OpenVINO) and
    single-file checkpoints at the top level are left out.

    Raises:
        RepoFileNotFoundError: no model_index.json (not a pipeline), no weights of `variant`
            anywhere, or a component with variant weights only when `variant` is None.
    """
    repo_id = details.repo_id
    if not any(file.path == "model_index.json" for file in details.files):
        raise RepoFileNotFoundError(
            f"{repo_id} is not a diffusers pipeline (it has no model_index.json).",
            repo_id=repo_id,
            path="model_index.json",
        )
    by_component: dict[str, list[RepoFile]] = {}
    for file in details.files:
        if file.path.count("/") == 1:
            by_component.setdefault(file.path.split("/", 1)[0], []).append(file)
    all_variants = sorted(
        {v for files in by_component.values() for v in _weight_variants(files) if v is not None}
    )
    if variant is not None and variant not in all_variants:
        raise RepoFileNotFoundError(
            f"{repo_id} has no {variant} weights.",
            repo_id=repo_id,
            path=variant,
            hint=f"Variants offered: {', '.join(all_variants) or 'none'}.",
        )
    chosen: set[str] = {"model_index.json"}
    for component, files in by_component.items():
        chosen.update(
            f.path
            for f in files
            if f.name.endswith(_COMPONENT_FILE_SUFFIXES) and _weight_key(f) is None
        )
        chosen.update(f.path for f in _component_weights(repo_id, component, files, variant))
    files = [file for file in details.files if file.path in chosen]
    return _plan(details, files, label=variant or "default", ref=ref)


def _weight_key(file: RepoFile) -> tuple[str | None, str] | None:
    """(variant, format) of a weight file or weight index; None for any other file."""
    match = _WEIGHT_PATTERN.match(file.name)
    if match is None:
        return None
    return match.group("variant") or match.group("index_variant"), match.group("format")


def _component_weights(
    repo_id: str, component: str, files: list[RepoFile], variant: str | None
) -> list[RepoFile]:
    weights = [(f, key) for f in files if (key := _weight_key(f)) is not None]
    if not weights:
        return []  # a scheduler, tokenizer or feature extractor
    variants = {file_variant for _, (file_variant, _) in weights}
    wanted = variant if variant in variants else None
    if wanted not in variants:
        offered = ", ".join(sorted(v for v in variants if v is not None))
        raise RepoFileNotFoundError(
            f"{repo_id}: {component} has no default weights, only variants ({offered}).",
            repo_id=repo_id,
            path=component,
            hint=f"Choose a variant: {offered}.",
        )
    formats = {file_format for _, (file_variant, file_format) in weights if file_variant == wanted}
    chosen = (wanted, next(fmt for fmt in _FORMAT_PREFERENCE if fmt in formats))
    return [f for f, key in weights if key == chosen]


def _weight_variants(files: Iterable[RepoFile]) -> set[str | None]:
    return {key[0] for f in files if (key := _weight_key(f)) is not None}


def _match(pattern: str, files: Sequence[RepoFile], models: Sequence[GgufModel]) -> list[str]:
    exact = [file.path for file in files if file.path == pattern]
    if exact:
        return exact
    if _GLOB_CHARS & set(pattern):
        return [file.path for file in files if fnmatch.fnmatchcase(file.path, pattern)]
    wanted = pattern.lower().removesuffix(".gguf")
    return [
        part.path
        for model in models
        if not model.is_projector
        and wanted in (model.name.lower(), (model.quantization or "").lower())
        for part in model.parts
    ]


def _plan(
    details: ModelDetails, files: Iterable[RepoFile], *, label: str, ref: str | None
) -> DownloadPlan:
    if not details.sha:
        raise ValueError(f"the details of {details.repo_id} name no commit")
    return DownloadPlan(
        repo_id=details.repo_id,
        revision=details.sha,
        label=label,
        files=tuple(_planned(details.repo_id, file) for file in files),
        ref=None if ref == details.sha else ref,
    )


def _planned(repo_id: str, file: RepoFile) -> PlannedFile:
    etag = file.sha256 or file.blob_id
    if file.size is None or etag is None:
        raise ValueError(
            f"{repo_id}: {file.path} has no size or hash; fetch the details with file metadata"
        )
    return PlannedFile(path=file.path, size=file.size, sha256=file.sha256, etag=etag)
