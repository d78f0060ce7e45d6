"""Read a repository's file list: which GGUF models it offers, how a diffusers repo is laid out.

Everything here works on names and sizes only (`RepoFile`), so it can run on a search result
before anything is downloaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from app.hub.models import RepoFile

# Approximate effective bits per weight of each llama.cpp file type, for a 7-8B model.
# A file type mixes tensor types (Q4_K_M keeps some tensors in Q6_K, and the embeddings and
# output are often bigger), so these sit a little above the nominal size of the base ggml
# type. Used to turn a file size back into a parameter count for memory estimates; they are
# ballpark figures, not a promise. The order of this table is also the quality order used
# when two quantizations have the same size.
_BITS_PER_WEIGHT: dict[str, float] = {
    "F32": 32.0,
    "BF16": 16.0,
    "F16": 16.0,
    "Q8_1": 10.0,
    "Q8_K_XL": 9.0,  # Unsloth: Q8_0 with some tensors kept in BF16
    "Q8_K": 9.125,
    "Q8_0": 8.5,
    "Q6_K_XL": 6.9,
    "Q6_K_L": 6.7,  # bartowski: Q6_K with Q8_0 embeddings and output
    "Q6_K": 6.56,
    "Q5_1": 6.0,
    "Q5_K_L": 5.9,
    "Q5_K_XL": 5.7,
    "Q5_K_M": 5.69,
    "Q5_K_S": 5.54,
    "Q5_K": 5.5,
    "Q5_0": 5.5,
    "Q4_K_L": 5.0,
    "Q4_1": 5.0,
    "Q4_K_XL": 4.8,
    "Q4_K_M": 4.85,
    "Q4_K_S": 4.58,
    "Q4_K": 4.5,
    "Q4_0": 4.5,
    "Q4_0_4_4": 4.5,  # Q4_0 repacked for ARM (NEON / i8mm / SVE); same size
    "Q4_0_4_8": 4.5,
    "Q4_0_8_8": 4.5,
    "IQ4_NL": 4.5,
    "NVFP4": 4.5,
    "MXFP4": 4.25,
    "IQ4_XS": 4.25,
    "Q3_K_XL": 4.4,
    "Q3_K_L": 4.27,
    "Q3_K_M": 3.91,
    "IQ3_M": 3.66,
    "Q3_K_S": 3.5,
    "Q3_K": 3.44,
    "IQ3_S": 3.44,
    "IQ3_XS": 3.3,
    "Q2_K_L": 3.3,
    "Q2_K_XL": 3.1,
    "IQ3_XXS": 3.06,
    "Q2_K": 3.0,
    "Q2_K_S": 2.8,
    "IQ2_M": 2.7,
    "IQ2_S": 2.5,
    "IQ2_XS": 2.31,
    "IQ2_XXS": 2.06,
    "TQ2_0": 2.06,
    "IQ1_M": 1.75,
    "TQ1_0": 1.69,
    "IQ1_S": 1.56,
    "Q1_0": 1.125,
}

# Other spellings seen in file names, mapped to the canonical name.
_ALIASES: dict[str, str] = {
    "FP32": "F32",
    "FP16": "F16",
    "MXFP4_MOE": "MXFP4",
}

_UNSLOTH_PREFIX = "UD-"  # Unsloth "dynamic" quantizations: UD-Q4_K_XL, UD-IQ1_S, ...

# Longest first, so "Q4_K_M" wins over "Q4_K" and "Q4_0_4_4" over "Q4_0".
_QUANT_ALTERNATIVES = "|".join(
    re.escape(name) for name in sorted([*_BITS_PER_WEIGHT, *_ALIASES], key=len, reverse=True)
)
# A quantization is a token of its own: bounded by the start or end of the name or by a
# separator ('.', '-', '_'), never by a letter or digit ("xf16" does not count). Because '_'
# is also used inside the names, a match may not be followed by '_' and what reads like one
# more quantization suffix: in "Q4_K_M2" neither "Q4_K_M" nor "Q4_K" is the quantization.
_QUANT_PATTERN = re.compile(
    rf"(?<![A-Za-z0-9])(?P<unsloth>UD[-_])?(?P<quant>{_QUANT_ALTERNATIVES})"
    r"(?![A-Za-z0-9])(?!_(?:XXS|XS|XL|NL|[SMLK]|\d+)(?![A-Za-z]))",
    re.IGNORECASE,
)
_SPLIT_PATTERN = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<total>\d{5})$")
_PROJECTOR_PATTERN = re.compile(r"(?<![A-Za-z0-9])mmproj(?![A-Za-z0-9])", re.IGNORECASE)
_GGUF_SUFFIX = ".gguf"


@dataclass(frozen=True, kw_only=True)
class GgufModel:
    """One runnable GGUF model: a single file, or all parts of a split model."""

    name: str  # the file name without ".gguf" and without "-0000N-of-0000M"
    quantization: str | None  # canonical, e.g. "Q4_K_M", "UD-Q4_K_XL"; None if the name is silent
    parts: tuple[RepoFile, ...]  # ordered by part number; one element for a single file
    size: int | None  # bytes of the parts present; None if any part's size is unknown
    is_complete: bool  # False when a split model misses parts
    is_projector: bool  # an mmproj file (vision projector), loaded beside a model, not alone

    @property
    def path(self) -> str:
        """The path of the first part: the one to hand to llama.cpp."""
        return self.parts[0].path


def parse_quantization(filename: str) -> str | None:
    """The quantization a GGUF file name states, in canonical upper-case form.

    Recognises llama.cpp's ggml types and file types (F32, F16, BF16, Q8_0, Q6_K, Q5_K_M,
    Q4_K_M, Q4_0_4_4, IQ2_XXS, IQ4_NL, TQ1_0, MXFP4, ...), the _L / _XL variants that
    bartowski and Unsloth publish, and Unsloth's "UD-" prefix, in any case, as a token of
    its own separated by '.', '-' or '_'. When a name holds several, the last one wins
    ("model-f16-q8_0" was quantized from F16 to Q8_0). Folders in `filename` are ignored.

    Examples: "Llama-3.2-1B-Instruct-Q4_K_M.gguf" -> "Q4_K_M";
    "ggml-model-f16.gguf" -> "F16"; "Qwen3-30B-A3B-UD-Q4_K_XL.gguf" -> "UD-Q4_K_XL";
    "model.gguf" -> None.
    """
    name = filename.rsplit("/", 1)[-1]
    if name.lower().endswith(_GGUF_SUFFIX):
        name = name[: -len(_GGUF_SUFFIX)]
    matches = list(_QUANT_PATTERN.finditer(name))
    if not matches:
        return None
    last = matches[-1]
    quant = last.group("quant").upper()
    quant = _ALIASES.get(quant, quant)
    return _UNSLOTH_PREFIX + quant if last.group("unsloth") else quant


def bits_per_weight(quantization: str | None) -> float | None:
    """Approximate effective bits per weight of a quantization, or None if it is unknown.

    The figures are ballpark values for a 7-8B model (a file type mixes tensor types, so
    Q4_K_M is about 4.85 rather than 4.5); Unsloth's "UD-" quantizations count as their
    base type. Accepts any case and the aliases `parse_quantization` accepts.
    """
    if quantization is None:
        return None
    key = quantization.strip().upper().replace("UD_", _UNSLOTH_PREFIX, 1)
    key = key.removeprefix(_UNSLOTH_PREFIX)
    key = _ALIASES.get(key, key)
    return _BITS_PER_WEIGHT.get(key)


def group_gguf_models(files: Iterable[RepoFile]) -> tuple[GgufModel, ...]:
    """Group a repository's .gguf files into runnable models.

    Parts of a split model ("name-00001-of-00003.gguf") become one `GgufModel`, keyed by
    folder, name and part count, so same-named models in different folders stay apart. A
    split model missing parts is kept, with `is_complete` False. Non-GGUF files are ignored.
    When a file name states no quantization, the folder names are tried (deepest first).

    Models come best quality first (more bits per weight first, unknown quantizations
    after known ones, vision projectors last), then by name and path, so the order does not
    depend on the order of `files`.
    """
    singles: list[RepoFile] = []
    splits: dict[tuple[str, str, int], dict[int, RepoFile]] = {}
    for file in files:
        if not file.name.lower().endswith(_GGUF_SUFFIX):
            continue
        folder = file.path[: -len(file.name)]
        stem = file.name[: -len(_GGUF_SUFFIX)]
        split = _SPLIT_PATTERN.match(stem)
        if split is None:
            singles.append(file)
            continue
        part, total = int(split.group("part")), int(split.group("total"))
        if not 1 <= part <= total:  # "-00000-of-00002" or "-00004-of-00003": not a real split
            singles.append(file)
            continue
        splits.setdefault((folder, split.group("stem"), total), {}).setdefault(part, file)

    models = [
        _model(file.name[: -len(_GGUF_SUFFIX)], (file,), is_complete=True) for file in singles
    ]
    for (_folder, stem, total), parts in splits.items():
        ordered = tuple(parts[number] for number in sorted(parts))
        models.append(_model(stem, ordered, is_complete=len(parts) == total))
    models.sort(key=_quality_order)
    return tuple(models)


def _model(name: str, parts: tuple[RepoFile, ...], *, is_complete: bool) -> GgufModel:
    sizes = [part.size for part in parts]
    size = None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)
    quantization = parse_quantization(name)
    if quantization is None:
        for folder in reversed(parts[0].path.split("/")[:-1]):
            quantization = parse_quantization(folder)
            if quantization is not None:
                break
    return GgufModel(
        name=name,
        quantization=quantization,
        parts=parts,
        size=size,
        is_complete=is_complete,
        is_projector=_PROJECTOR_PATTERN.search(name) is not None,
    )


_QUALITY_RANK = {name: rank for rank, name in enumerate(_BITS_PER_WEIGHT)}


def _quality_order(model: GgufModel) -> tuple[bool, bool, float, int, str, str]:
    bits = bits_per_weight(model.quantization)
    base = (model.quantization or "").removeprefix(_UNSLOTH_PREFIX)
    return (
        model.is_projector,
        bits is None,
        -(bits or 0.0),
        _QUALITY_RANK.get(_ALIASES.get(base, base), len(_QUALITY_RANK)),
        model.name.lower(),
        model.path,
    )


# --- diffusers -------------------------------------------------------------------------------

_SAFETENSORS_SUFFIXES = (".safetensors",)
# torch.save / pickle formats: loading one can run arbitrary code.
_PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle")
_SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")
_SHARD_PATTERN = re.compile(r"-\d{5}-of-\d{5}(?=\.)")
# Variants follow diffusers' and transformers' naming: the variant sits between the standard
# weight name and the extension ("diffusion_pytorch_model.fp16.safetensors"), and for shards
# either before or after the shard counter ("model.fp16-00001-of-00002.safetensors").
_VARIANT_PATTERN = re.compile(
    r"^(?:diffusion_pytorch_model|pytorch_model|model)"
    r"(?:-\d{5}-of-\d{5})?\.(?P<variant>[A-Za-z0-9_]+)(?:-\d{5}-of-\d{5})?"
    r"\.(?:safetensors|bin|ckpt|pt|pth)$"
)


@dataclass(frozen=True, kw_only=True)
class DiffusersLayout:
    """How a diffusers repository is laid out, read from its file names alone."""

    is_pipeline: bool  # model_index.json at the top level
    components: tuple[str, ...]  # top-level folders holding weights, e.g. ("unet", "vae")
    variants: tuple[str, ...]  # e.g. ("fp16",); () when there are only default weights
    has_safetensors: bool
    has_pickle: bool  # .bin/.ckpt/.pt/.pth weights: loading them can run code
    single_file_checkpoints: tuple[RepoFile, ...]  # top-level *.safetensors / *.ckpt files


def diffusers_layout(files: Iterable[RepoFile]) -> DiffusersLayout:
    """Describe a repository's diffusers layout from its file list.

    Components are the top-level folders with a weight file directly inside (the
    `model_index.json` contents, which name them exactly, need a download). An OpenVINO
    "openvino_model.bin" beside its ".xml" is not counted as pickle. Single-file checkpoints
    are the unsharded *.safetensors and *.ckpt files at the top level, in path order.
    """
    is_pipeline = False
    components: set[str] = set()
    variants: set[str] = set()
    has_safetensors = False
    has_pickle = False
    single_files: list[RepoFile] = []
    files_list = list(files)
    xml_stems = {f.path[: -len(".xml")] for f in files_list if f.path.lower().endswith(".xml")}

    for file in files_list:
        lower = file.name.lower()
        is_safetensors = lower.endswith(_SAFETENSORS_SUFFIXES)
        is_pickle = lower.endswith(_PICKLE_SUFFIXES) and not (
            lower.endswith(".bin") and file.path[: -len(".bin")] in xml_stems
        )
        if file.path == "model_index.json":
            is_pipeline = True
        if not (is_safetensors or is_pickle):
            continue
        has_safetensors = has_safetensors or is_safetensors
        has_pickle = has_pickle or is_pickle
        depth = file.path.count("/")
        if depth == 0:
            if lower.endswith(_SINGLE_FILE_SUFFIXES) and not _SHARD_PATTERN.search(file.name):
                single_files.append(file)
        elif depth == 1:
            components.add(file.path.split("/", 1)[0])
        variant = _VARIANT_PATTERN.match(file.name)
        if variant is not None:
            variants.add(variant.group("variant"))

    return DiffusersLayout(
        is_pipeline=is_pipeline,
        components=tuple(sorted(components)),
        variants=tuple(sorted(variants)),
        has_safetensors=has_safetensors,
        has_pickle=has_pickle,
        single_file_checkpoints=tuple(sorted(single_files, key=lambda file: file.path)),
    )
