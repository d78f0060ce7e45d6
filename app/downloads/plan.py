"""What to fetch: files of one repository at one commit, chosen the way a person picks them.

A plan is made from `ModelDetails` (file sizes, LFS sha256 and git blob ids, all known before
anything is downloaded), so the queue knows every byte it will fetch and every hash to check.
"""

from __future__ import annotations

import fnmatch
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from app.downloads.sources import CivitaiSource, Hub, HubSource, ModelScopeSource
from app.errors import RepoFileNotFoundError
from app.hub.models import ModelDetails, RepoFile
from app.hub.projector_files import matching_projector
from app.hub.repo_files import GgufModel, group_gguf_models
from app.hub.security import FileScan, ScanLevel
from app.hub.untrusted import (
    UnsafeHubDataError,
    check_commit,
    check_file_path,
    check_git_oid,
    check_ref,
    check_repo_id,
    check_sha256,
    check_size,
    shown,
)

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True, kw_only=True)
class PlannedFile:
    """One file to fetch, with what the HF cache and the integrity check need."""

    path: str  # path in the repository
    size: int
    sha256: str | None  # the LFS sha256; None for a regular (git) file
    etag: str  # blob name in the HF cache: the sha256 of an LFS file, else its git blob id
    # The hub's security scan when the plan was made: kept with the download as provenance.
    scan: ScanLevel = ScanLevel.NOT_SCANNED


@dataclass(frozen=True, kw_only=True)
class DownloadPlan:
    """Files of `repo_id` at commit `revision`, and what the user asked for (`label`)."""

    repo_id: str
    revision: str  # the commit sha
    label: str  # e.g. "Q4_K_M", "fp16", "all files"
    files: tuple[PlannedFile, ...]
    ref: str | None = "main"  # branch or tag written to refs/; None when a sha was asked for
    # Another hub's files and where they go (app.downloads.sources); None: the HF cache.
    source: HubSource | None = None

    @property
    def hub(self) -> Hub:
        return Hub.HF if self.source is None else self.source.hub

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
        UnsafeHubDataError: when a chosen file's name, hash or size, or the commit, is one the
            cache cannot safely hold (see `check_plan`).
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
            # A vision model is nothing without its projector: it comes along, unasked.
            projector = matching_projector(model, models)
            if projector is not None:
                chosen.update(part.path for part in projector.parts)
    return _plan(
        details, [f for f in files if f.path in chosen], label=", ".join(patterns), ref=ref
    )


def plan_gguf(details: ModelDetails, model: GgufModel, *, ref: str | None = "main") -> DownloadPlan:
    """Plan one GGUF model: its file, or every part of a split model, and the vision
    projector that goes with it when the repository has one (`matching_projector`)."""
    label = model.quantization or model.name
    projector = matching_projector(model, group_gguf_models(details.files))
    parts = model.parts + (projector.parts if projector is not None else ())
    return _plan(details, parts, label=label, ref=ref)


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
    details: ModelDetails,
    variant: str | None = None,
    *,
    ref: str | None = "main",
    safetensors_fallback: bool = False,
) -> DownloadPlan:
    """Plan what a diffusers pipeline needs to load in one `variant` (e.g. "fp16"; None: default).

    That is model_index.json, each component folder's config, tokenizer and scheduler files,
    and per component the weights of that variant: .safetensors when it has them, else .bin,
    never both. A component without weights of that variant falls back to its default
    weights, as diffusers does when loading. Other formats (ONNX, Flax, OpenVINO) and
    single-file checkpoints at the top level are left out.

    `safetensors_fallback`: a component whose `variant` weights are pickles only (.bin) takes
    its default .safetensors weights instead, when it has them. diffusers then loads that
    component without the variant, since its folder holds no file of it (see
    `check_pipeline`, which finds the plans ModelDeck can run).

    Raises:
        RepoFileNotFoundError: no model_index.json (not a pipeline), no weights of `variant`
            anywhere, or a component with variant weights only when `variant` is None.
    """
    chosen: set[str] = {"model_index.json"}
    for component in _pipeline_components(details, variant, safetensors_fallback):
        chosen.update(component.files)
    files = [file for file in details.files if file.path in chosen]
    label = variant or "default"
    return _plan(
        details, files, label=label + (" (safetensors)" if safetensors_fallback else ""), ref=ref
    )


@dataclass(frozen=True, kw_only=True)
class ComponentWeights:
    """The files one pipeline component brings, and which weights those are."""

    name: str  # the component's folder: "unet", "text_encoder", …
    variant: str | None  # the variant of its weights (None: default weights, or no weights)
    format: str | None  # "safetensors" or "bin" (a pickle); None when it has no weights
    files: tuple[str, ...]  # paths: its config, tokenizer files and weights


@dataclass(frozen=True, kw_only=True)
class PipelineCheck:
    """Whether a diffusers plan would run in ModelDeck, which loads safetensors only.

    A pickle (.bin) can run code hidden in it when loaded, so the image engine refuses one:
    a pipeline downloaded with a pickle-only component would never load.
    """

    variant: str | None
    pickle_components: tuple[str, ...]  # components whose planned weights are pickles
    # A plan with safetensors everywhere, when the repository has one: its variant and
    # whether it needs `safetensors_fallback` (None: there is none, or `variant` runs as is).
    alternative: tuple[str | None, bool] | None

    @property
    def runs(self) -> bool:
        return not self.pickle_components


def check_pipeline(details: ModelDetails, variant: str | None) -> PipelineCheck:
    """Check that the plan for `variant` has safetensors weights for every component, and if
    not, find the closest plan that has: the same variant with the pickle-only components
    on their default safetensors, then the default weights, then each other variant.

    Raises:
        RepoFileNotFoundError: as `plan_diffusers` does for `variant`.
    """
    pickles = _pickle_components(details, variant, fallback=False)
    alternative: tuple[str | None, bool] | None = None
    if pickles:
        candidates: list[tuple[str | None, bool]] = [(variant, True), (None, False), (None, True)]
        candidates += [
            (other, fallback) for other in diffusers_variants(details) for fallback in (False, True)
        ]
        for candidate, fallback in candidates:
            try:
                if not _pickle_components(details, candidate, fallback=fallback):
                    alternative = (candidate, fallback)
                    break
            except RepoFileNotFoundError:
                continue
    return PipelineCheck(variant=variant, pickle_components=pickles, alternative=alternative)


def diffusers_variants(details: ModelDetails) -> list[str]:
    """The weight variants ("fp16", "bf16", …) a pipeline's components offer, sorted."""
    return sorted(
        {
            v
            for files in _component_files(details).values()
            for v in _weight_variants(files)
            if v is not None
        }
    )


def _pickle_components(
    details: ModelDetails, variant: str | None, *, fallback: bool
) -> tuple[str, ...]:
    return tuple(
        component.name
        for component in _pipeline_components(details, variant, fallback)
        if component.format == "bin"
    )


def _component_files(details: ModelDetails) -> dict[str, list[RepoFile]]:
    by_component: dict[str, list[RepoFile]] = {}
    for file in details.files:
        if file.path.count("/") == 1:
            by_component.setdefault(file.path.split("/", 1)[0], []).append(file)
    return by_component


def _pipeline_components(
    details: ModelDetails, variant: str | None, fallback: bool
) -> list[ComponentWeights]:
    repo_id = details.repo_id
    if not any(file.path == "model_index.json" for file in details.files):
        raise RepoFileNotFoundError(
            f"{repo_id} is not a diffusers pipeline (it has no model_index.json).",
            repo_id=repo_id,
            path="model_index.json",
        )
    by_component = _component_files(details)
    all_variants = diffusers_variants(details)
    if variant is not None and variant not in all_variants:
        raise RepoFileNotFoundError(
            f"{repo_id} has no {variant} weights.",
            repo_id=repo_id,
            path=variant,
            hint=f"Variants offered: {', '.join(all_variants) or 'none'}.",
        )
    components = []
    for component, files in by_component.items():
        support = tuple(
            f.path
            for f in files
            if f.name.endswith(_COMPONENT_FILE_SUFFIXES) and _weight_key(f) is None
        )
        key, weights = _component_weights(repo_id, component, files, variant, fallback)
        components.append(
            ComponentWeights(
                name=component,
                variant=key[0] if key else None,
                format=key[1] if key else None,
                files=support + tuple(f.path for f in weights),
            )
        )
    return components


def _weight_key(file: RepoFile) -> tuple[str | None, str] | None:
    """(variant, format) of a weight file or weight index; None for any other file."""
    match = _WEIGHT_PATTERN.match(file.name)
    if match is None:
        return None
    return match.group("variant") or match.group("index_variant"), match.group("format")


def _component_weights(
    repo_id: str, component: str, files: list[RepoFile], variant: str | None, fallback: bool
) -> tuple[tuple[str | None, str] | None, list[RepoFile]]:
    weights = [(f, key) for f in files if (key := _weight_key(f)) is not None]
    if not weights:
        return None, []  # a scheduler, tokenizer or feature extractor
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
    keys = {key for _, key in weights}
    formats = {file_format for file_variant, file_format in keys if file_variant == wanted}
    chosen = (wanted, next(fmt for fmt in _FORMAT_PREFERENCE if fmt in formats))
    if fallback and chosen[1] != "safetensors" and (None, "safetensors") in keys:
        chosen = (None, "safetensors")  # the default weights, in a format that cannot run code
    return chosen, [f for f, key in weights if key == chosen]


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
    repo_id = check_repo_id(details.repo_id)
    revision = check_commit(details.sha, repo_id=repo_id)
    if ref is not None and _looks_like_commit(ref) and ref.lower() != revision:
        # A commit was asked for and the hub described another one.
        raise UnsafeHubDataError(
            f"{repo_id}: commit {ref[:12]} was asked for, and the hub answered with commit "
            f"{revision[:12]}.",
            repo_id=repo_id,
            field="commit id",
            value=revision,
        )
    plan = DownloadPlan(
        repo_id=repo_id,
        revision=revision,
        label=label,
        files=tuple(_planned(repo_id, file, details.scan_of(file.path)) for file in files),
        ref=None if ref is None or ref.lower() == revision else ref,
    )
    check_plan(plan)
    return plan


def check_plan(plan: DownloadPlan) -> None:
    """Check every name and hash in `plan` before the queue saves it or writes a byte.

    The repository id, commit, branch, each file's path, size, sha256 and blob name must pass
    `app.hub.untrusted` (hashes in lower case), an LFS file's blob name must be its sha256,
    and no path may be listed twice or be both a file and a folder (also when they differ
    only in letter case or Unicode form, as they would collide on macOS and Windows).

    Raises:
        UnsafeHubDataError: naming the first thing that is refused.
    """
    repo_id = _check_job_id(plan)
    if plan.source is None:
        _canonical(plan.revision, check_commit(plan.revision, repo_id=repo_id), repo_id)
    else:
        _check_source(plan, repo_id)
    if plan.ref is not None:
        check_ref(plan.ref, repo_id=repo_id)
    if not isinstance(plan.label, str) or not _is_utf8(plan.label):
        raise UnsafeHubDataError(
            f"{repo_id}: the download's label {shown(plan.label)} is not text.",
            repo_id=repo_id,
            field="label",
            value=plan.label,
        )
    seen: set[str] = set()
    folders: set[str] = set()
    for file in plan.files:
        path = check_file_path(file.path, repo_id=repo_id)
        check_size(file.size, repo_id=repo_id, path=path)
        if file.sha256 is None and plan.source is not None:
            raise UnsafeHubDataError(
                f"{repo_id}: no sha256 for {shown(path)}, so it could not be verified.",
                repo_id=repo_id,
                field="sha256",
                value=None,
            )
        if file.sha256 is not None:
            _canonical(file.sha256, check_sha256(file.sha256, repo_id=repo_id), repo_id)
            if file.etag != file.sha256:
                raise UnsafeHubDataError(
                    f"{repo_id}: {shown(path)} is stored by its sha256, but its blob name "
                    f"is {shown(file.etag)}.",
                    repo_id=repo_id,
                    field="blob name",
                    value=file.etag,
                )
        else:
            _canonical(file.etag, check_git_oid(file.etag, repo_id=repo_id), repo_id)
        key = _collision_key(path)
        if key in seen or key in folders:
            raise UnsafeHubDataError(
                f"{repo_id}: the hub lists {shown(path)} twice (or as a file and a folder).",
                repo_id=repo_id,
                field="file name",
                value=path,
            )
        seen.add(key)
        parts = key.split("/")
        folders.update("/".join(parts[:end]) for end in range(1, len(parts)))
    if seen & folders:
        clash = sorted(seen & folders)[0]
        raise UnsafeHubDataError(
            f"{repo_id}: the hub lists {shown(clash)} both as a file and as a folder.",
            repo_id=repo_id,
            field="file name",
            value=clash,
        )


def _planned(repo_id: str, file: RepoFile, scan: FileScan) -> PlannedFile:
    if file.size is None or (file.sha256 or file.blob_id) is None:
        raise ValueError(
            f"{repo_id}: {file.path} has no size or hash; fetch the details with file metadata"
        )
    # Hubs send lower-case hex; an upper-case one is the same hash, and the cache (like
    # huggingface_hub) names blobs in lower case.
    sha256 = check_sha256(file.sha256, repo_id=repo_id) if file.sha256 else None
    etag = sha256 or check_git_oid(file.blob_id, repo_id=repo_id)
    return PlannedFile(path=file.path, size=file.size, sha256=sha256, etag=etag, scan=scan.level)


def _looks_like_commit(ref: str) -> bool:
    return len(ref) == 40 and all(c in "0123456789abcdefABCDEF" for c in ref)


def _canonical(value: str, checked: str, repo_id: str) -> None:
    if value != checked:
        raise UnsafeHubDataError(
            f"{repo_id}: the hash {shown(value)} is in upper case; a saved plan uses lower case.",
            repo_id=repo_id,
            field="hash",
            value=value,
        )


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: the database cannot hold it
        return False
    return True


def _collision_key(path: str) -> str:
    """Paths that name the same file on a case-insensitive, normalizing file system match."""
    return unicodedata.normalize("NFC", path).casefold()


_CIVITAI_JOB_ID = re.compile(r"civitai:\d{1,18}@\d{1,18}")


def _check_job_id(plan: DownloadPlan) -> str:
    """The plan's repository id, checked as its hub names them (`civitai:ID@VERSION`)."""
    if not isinstance(plan.source, CivitaiSource):
        return check_repo_id(plan.repo_id)
    if isinstance(plan.repo_id, str) and _CIVITAI_JOB_ID.fullmatch(plan.repo_id):
        return plan.repo_id
    raise UnsafeHubDataError(
        f"{shown(plan.repo_id)} is not a Civitai model version.",
        repo_id=str(plan.repo_id)[:80],
        field="repo_id",
        value=plan.repo_id,
    )


def _check_source(plan: DownloadPlan, repo_id: str) -> None:
    """What a plan from another hub must hold: a revision, one file (Civitai) without a
    folder in its name, or one listed commit per file (ModelScope)."""
    check_ref(plan.revision, repo_id=repo_id)
    source = plan.source
    if isinstance(source, CivitaiSource):
        if not source.url.startswith(source.endpoint.rstrip("/") + "/"):
            raise UnsafeHubDataError(  # the API key goes with it: never to another site
                f"{repo_id}: the download address {shown(source.url)} is not on "
                f"{shown(source.endpoint)}.",
                repo_id=repo_id,
                field="url",
                value=source.url,
            )
        if len(plan.files) != 1 or "/" in plan.files[0].path:
            raise UnsafeHubDataError(
                f"{repo_id}: a Civitai download is one file without a folder in its name.",
                repo_id=repo_id,
                field="files",
                value=None,
            )
    elif isinstance(source, ModelScopeSource):
        if len(source.file_revisions) != len(plan.files):
            raise UnsafeHubDataError(
                f"{repo_id}: the ModelScope download lists no commit for some files.",
                repo_id=repo_id,
                field="file_revisions",
                value=None,
            )
        for revision in source.file_revisions:
            check_ref(revision, repo_id=repo_id)
