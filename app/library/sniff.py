"""Identify a checkpoint on disk without loading its weights.

`sniff` reads only headers: the GGUF key/value metadata and tensor infos, the safetensors
JSON header, a diffusers `model_index.json`. Every read is bounded by the file's size and by
fixed caps, and every claim of a header is bounded by what the file can hold before anything
is built or multiplied from it (strings and items by the bytes left, layers by the tensors
present, tensor bytes by the file size, a shape's product by its tensor's bytes; JSON nesting
by `parse_untrusted_json`), so a corrupt or hostile file gives a `CheckpointError` quickly
instead of exhausting memory or time. Pickle checkpoints (`.ckpt`, `.bin`, `.pt`, `.pth`) are
reported, never unpickled: loading one can run arbitrary code.

`find_checkpoints` walks a folder for candidates to hand to `sniff`, within a budget of
entries and seconds.
"""

from __future__ import annotations

import logging
import math
import os
import re
import stat
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from app.errors import CheckpointError
from app.hub.repo_files import parse_quantization
from app.library.lora_keys import LoraHeader, lora_header
from app.untrusted_json import UntrustedJsonError, parse_untrusted_json

__all__ = [
    "Checkpoint",
    "CheckpointFormat",
    "GgufShape",
    "ModelKind",
    "ProjectorInfo",
    "find_checkpoints",
    "sniff",
    "sniff_projector",
]

_log = logging.getLogger(__name__)


class CheckpointFormat(StrEnum):
    """How a checkpoint's weights are stored."""

    GGUF = "gguf"
    SAFETENSORS = "safetensors"
    DIFFUSERS = "diffusers"  # a folder with model_index.json
    PICKLE = "pickle"  # torch.save / pickle: never loaded by ModelDeck


class ModelKind(StrEnum):
    """What a checkpoint is for, as far as its header tells."""

    LLM_GGUF = "LLM (GGUF)"
    DIFFUSERS_PIPELINE = "diffusers pipeline"
    DIFFUSION_SINGLE_FILE = "single-file diffusion checkpoint"
    VISION_PROJECTOR = "vision projector (GGUF)"  # an mmproj file: `Checkpoint.projector`
    LORA = "LoRA"  # a low-rank adapter for a diffusion model (`Checkpoint.lora` says more)
    OTHER = "other"


@dataclass(frozen=True, kw_only=True)
class GgufShape:
    """What a GGUF header says about the memory a model needs: its shape and tensor bytes.

    Sizes are in bytes, as stored (a Q4_K tensor counts its 144-byte blocks). Layers are
    llama.cpp's repeating blocks, the tensors named `blk.N.*`. The attention fields follow
    llama.cpp's defaults when the header leaves them out: `head_count_kv` = `head_count`,
    `key_length` = `value_length` = `embedding_length // head_count`.
    """

    architecture: str | None
    block_count: int  # "<arch>.block_count": the repeating layers
    embedding_length: int
    head_count: int  # of the first layer, when the header gives one per layer
    head_count_kv: int  # the most of any layer; `kv_heads_per_layer` has each one
    key_length: int  # per head: "<arch>.attention.key_length"
    value_length: int
    context_length: int | None  # the trained maximum, "<arch>.context_length"
    kv_heads_per_layer: tuple[int, ...]  # block_count entries (0: a layer without a KV cache)
    layer_bytes: tuple[int, ...]  # bytes of blk.0.*, blk.1.*, ... (block_count entries)
    embedding_bytes: int  # token_embd.weight: llama.cpp keeps the input layer on the CPU
    output_bytes: int  # output.weight and output_norm.*: llama.cpp's output layer
    other_bytes: int  # any other tensor outside the layers (position embeddings, ...)
    tied_embeddings: bool  # no output.weight: the output layer reuses token_embd.weight

    @property
    def repeating_bytes(self) -> int:
        """Bytes of all the repeating layers."""
        return sum(self.layer_bytes)

    @property
    def layer_bytes_average(self) -> float:
        """Bytes of one repeating layer, on average."""
        return self.repeating_bytes / len(self.layer_bytes) if self.layer_bytes else 0.0

    @property
    def non_layer_bytes(self) -> int:
        """Bytes of the tensors outside the repeating layers (embeddings, output, ...)."""
        return self.embedding_bytes + self.output_bytes + self.other_bytes

    @property
    def tensor_bytes(self) -> int:
        """Bytes of all the tensors: the weights, without the header."""
        return self.repeating_bytes + self.non_layer_bytes

    @property
    def output_layer_bytes_on_gpu(self) -> int:
        """What the output layer puts on a GPU when it is offloaded.

        With tied embeddings llama.cpp loads a second copy of token_embd.weight as the
        output matrix (on the CPU both copies share the memory-mapped file; on a GPU the
        copy is real).
        """
        return self.output_bytes + (self.embedding_bytes if self.tied_embeddings else 0)

    def kv_elements_per_token(self, layers: Iterable[int] | None = None) -> int:
        """K and V elements one token of context adds to the cache of `layers` (default: all).

        Per layer: `kv_heads * key_length` (K) + `kv_heads * value_length` (V).
        """
        chosen = range(self.block_count) if layers is None else layers
        width = self.key_length + self.value_length
        return sum(self.kv_heads_per_layer[layer] * width for layer in chosen)


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """What `sniff` found out about a file or folder, from its headers alone."""

    path: Path  # the file, or the folder of a diffusers pipeline / HF snapshot
    format: CheckpointFormat
    kind: ModelKind
    size: int  # bytes on disk; a folder or a split GGUF: all its files (links followed)
    name: str | None  # GGUF general.name; otherwise the file stem or folder name
    # What the format tells; None where it does not say (or the format has no such thing).
    architecture: str | None = None  # GGUF "llama", diffusers "StableDiffusionPipeline", family
    parameter_count: int | None = None  # sum of the tensor shapes' products
    quantization: str | None = None  # GGUF "Q4_K_M"...; safetensors: the main dtype ("F16")
    context_length: int | None = None  # GGUF "<arch>.context_length"
    has_chat_template: bool | None = None  # GGUF tokenizer.chat_template present
    tensor_count: int | None = None
    dtypes: tuple[str, ...] = ()  # safetensors dtypes present, sorted
    family: str | None = None  # "SD 1.x", "SD 2.x", "SDXL", "SD 3", "Flux", "LLM"
    split_parts: tuple[Path, ...] = ()  # a split GGUF's parts present, part 1 first
    warning: str | None = None  # e.g. pickle, a missing split part
    # A diffusers pipeline that cannot run as it is: which components are missing or present
    # only as pickle weights ("text_encoder: only pickle weights"); None when complete.
    incomplete: str | None = None
    # GGUF: shape and tensor bytes, for memory estimates; None when the header lacks them,
    # a tensor has a type we do not know, or a split part is missing (or this is not part 1).
    gguf_shape: GgufShape | None = None
    # A LoRA: its key layout, context width, rank and trigger words; None for anything else.
    lora: LoraHeader | None = None
    # A vision projector (GGUF "clip" architecture): what its header says; None otherwise.
    projector: ProjectorInfo | None = None


@dataclass(frozen=True, kw_only=True)
class ProjectorInfo:
    """A vision projector's header ("mmproj-*.gguf"): llama.cpp's clip.* keys."""

    projector_type: str | None  # "mlp" (LLaVA), "gemma3", "qwen2.5vl_merger", "idefics3"...
    has_vision: bool  # clip.has_vision_encoder (an audio-only projector has none)
    image_size: int | None  # the encoder's input side, in pixels
    patch_size: int | None
    projection_dim: int | None  # clip.vision.projection_dim: often the language model's width

    @property
    def image_tokens(self) -> int | None:
        """Tokens one image takes at the encoder's own size (before any merging or tiling)."""
        if not self.image_size or not self.patch_size:
            return None
        return (self.image_size // self.patch_size) ** 2


PICKLE_WARNING = "pickle — can run code when loaded; not supported"

_GGUF_SUFFIX = ".gguf"
_SAFETENSORS_SUFFIX = ".safetensors"
_PICKLE_SUFFIXES = frozenset({".ckpt", ".bin", ".pt", ".pth", ".pkl", ".pickle"})
# Pickle weights `find_checkpoints` reports (.pkl/.pickle are rarely weights).
_PICKLE_WEIGHT_SUFFIXES = frozenset({".ckpt", ".bin", ".pt", ".pth"})
_SPLIT_PATTERN = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<total>\d{5})$")

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's zip format (pickle inside)
_HEAD_BYTES = 32


_LOOKS_GGUF = "a GGUF file"
_LOOKS_SAFETENSORS = "a safetensors file"
_LOOKS_PICKLE = "a Python pickle"
_LOOKS_OLD_GGML = "an old GGML/GGJT file from before GGUF"


def _describe(head: bytes, size: int) -> str | None:
    """What the first bytes of a file look like, for error messages; None if nothing obvious."""
    if head.startswith(b"GGUF"):
        return _LOOKS_GGUF
    if head.startswith(_ZIP_MAGIC):
        return "a zip archive (a PyTorch checkpoint, which holds a pickle)"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return _LOOKS_PICKLE
    if head[:4] in (b"lmgg", b"fmgg", b"tjgg"):  # 'ggml', 'ggmf', 'ggjt' little-endian
        return _LOOKS_OLD_GGML
    if head.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer, not the file itself"
    stripped = head.lstrip().lower()
    if stripped.startswith((b"<!doctype", b"<html", b"<?xml")):
        return "an HTML or XML page (an error page saved in place of the model?)"
    if len(head) >= 9 and head[8:9] == b"{":
        (length,) = struct.unpack_from("<Q", head)
        if length <= size - 8:
            return _LOOKS_SAFETENSORS
    if stripped.startswith((b"{", b"[")):
        return "a JSON file"
    return None


def _looks_like(head: bytes, size: int, *, unless: str) -> str:
    """The tail "; it looks like X" for a message; empty if X is unknown or is `unless`."""
    description = _describe(head, size)
    return "" if description is None or description == unless else f"; it looks like {description}"


def _redownload_hint() -> str:
    return "The download may be incomplete or damaged; download it again."


# --- entry point -----------------------------------------------------------------------------


def sniff(path: Path) -> Checkpoint:
    """Identify the checkpoint at `path` from its headers, without loading weights.

    `path` is a file (GGUF, safetensors, pickle) or a folder holding a diffusers pipeline
    (`model_index.json`), such as a Hugging Face cache snapshot. Links are followed, but the
    returned `path` is the one given. Reads are bounded by the file's size and fixed caps.

    Pickle files are never unpickled: they come back as `CheckpointFormat.PICKLE` with a
    warning. For part 1 of a split GGUF ("-00001-of-00003"), the other parts are read too:
    `size`, `tensor_count` and `parameter_count` then cover the whole model.

    Raises:
        CheckpointError: the path is missing or unreadable (permission denied), is a folder
            without `model_index.json`, or is a file that is not a valid checkpoint (wrong
            magic, truncated, a header that does not fit the file, malformed JSON, ...).
    """
    path = Path(path)
    try:
        info = path.stat()
    except PermissionError:
        raise CheckpointError(f"cannot read {path}: permission denied", path=str(path)) from None
    except FileNotFoundError:
        message = f"{path} is a broken link" if path.is_symlink() else f"{path} does not exist"
        raise CheckpointError(message, path=str(path)) from None
    except OSError as error:
        raise _os_error(path, error) from None
    if stat.S_ISDIR(info.st_mode):
        return _sniff_folder(path)
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"{path} is not a regular file or folder", path=str(path))
    return _sniff_file(path)


def _os_error(path: Path, error: OSError) -> CheckpointError:
    if isinstance(error, PermissionError):
        return CheckpointError(f"cannot read {path}: permission denied", path=str(path))
    reason = error.strerror or str(error)
    return CheckpointError(f"cannot read {path}: {reason}", path=str(path))


def _sniff_file(path: Path) -> Checkpoint:
    try:
        with open(path, "rb", buffering=1 << 16) as file:
            size = os.fstat(file.fileno()).st_size
            if size == 0:
                raise CheckpointError(f"{path.name} is empty", path=str(path))
            head = file.read(_HEAD_BYTES)
            file.seek(0)
            suffix = path.suffix.lower()
            if head.startswith(b"GGUF"):
                return _gguf_checkpoint(path, size, _read_gguf(file, size, path))
            if suffix == _SAFETENSORS_SUFFIX or (
                suffix not in _PICKLE_SUFFIXES
                and suffix != _GGUF_SUFFIX
                and _describe(head, size) == _LOOKS_SAFETENSORS
            ):
                return _read_safetensors(file, size, path, head)
    except OSError as error:
        raise _os_error(path, error) from None

    description = _describe(head, size)
    if description == _LOOKS_OLD_GGML:
        raise CheckpointError(
            f"{path.name} is {description}, which is no longer supported",
            path=str(path),
            hint="Convert it with a recent llama.cpp, or download a GGUF version.",
        )
    if suffix == _GGUF_SUFFIX:
        if b"GGUF".startswith(head[:4]):  # fewer than 4 bytes, all of the magic
            raise CheckpointError(
                f"{path.name} is truncated: {size} bytes, shorter than a GGUF header",
                path=str(path),
                hint=_redownload_hint(),
            )
        raise CheckpointError(
            f"{path.name} is not a GGUF file: it starts with {head[:4]!r}, not b'GGUF'"
            + _looks_like(head, size, unless=_LOOKS_GGUF),
            path=str(path),
        )
    if suffix in _PICKLE_SUFFIXES or head.startswith(_ZIP_MAGIC) or description == _LOOKS_PICKLE:
        return _pickle_checkpoint(path, size)
    raise CheckpointError(
        f"{path.name} is not a checkpoint ModelDeck can read" + _looks_like(head, size, unless=""),
        path=str(path),
        hint="ModelDeck reads .gguf, .safetensors and diffusers folders.",
    )


def _pickle_checkpoint(path: Path, size: int) -> Checkpoint:
    return Checkpoint(
        path=path,
        format=CheckpointFormat.PICKLE,
        kind=ModelKind.OTHER,
        size=size,
        name=path.stem,
        warning=PICKLE_WARNING,
    )


# --- GGUF ------------------------------------------------------------------------------------

# Caps that no real model reaches; beyond them a header is taken to be corrupt.
_MAX_STRING = 64 * 1024 * 1024  # any one string
_MAX_KEY = 65_535  # GGUF keys are at most 65535 bytes
_MAX_KEPT_STRING = 64 * 1024  # longer values of the keys we keep are ignored
_MAX_KV = 100_000  # real models have a few dozen
_MAX_TENSORS = 100_000  # real models have a few thousand at most
_MAX_VARIABLE_ITEMS = 8_000_000  # string/array items walked one by one, over the whole header
_MAX_ARRAY_DEPTH = 4
_MAX_NESTED_ARRAYS = 1_000_000  # arrays inside arrays: rare in real models, ~1 µs each here
_MAX_DIMS = 8  # ggml has 4; allow a little room
_MIN_KV_BYTES = 13  # key length (8) + 1 byte of key + type (4): at least 13 bytes with a value
_MIN_TENSOR_INFO_BYTES = 24  # name length (8) + n_dims (4) + type (4) + offset (8)
_GGUF_FIXED_HEADER = 24  # magic, version, tensor_count, kv_count
_DEFAULT_ALIGNMENT = 32
_SCAN_BLOCK = 1 << 20  # bytes read at once when walking an array of strings
_U64 = struct.Struct("<Q")

_STRING, _ARRAY = 8, 9
# GGUF metadata value types with a fixed size: type id -> struct format.
_SCALAR_FORMATS: dict[int, str] = {
    0: "<B",  # UINT8
    1: "<b",  # INT8
    2: "<H",  # UINT16
    3: "<h",  # INT16
    4: "<I",  # UINT32
    5: "<i",  # INT32
    6: "<f",  # FLOAT32
    7: "<?",  # BOOL
    10: "<Q",  # UINT64
    11: "<q",  # INT64
    12: "<d",  # FLOAT64
}
_SCALAR_SIZES = {kind: struct.calcsize(fmt) for kind, fmt in _SCALAR_FORMATS.items()}

# llama.cpp's LLAMA_FTYPE (general.file_type) -> the quantization name its tools use.
_FILE_TYPES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    4: "Q4_1_SOME_F16",  # deprecated
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    33: "Q4_0_4_4",  # removed from llama.cpp, still found in older files
    34: "Q4_0_4_8",
    35: "Q4_0_8_8",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4",  # LLAMA_FTYPE_MOSTLY_MXFP4_MOE; "MXFP4" as parse_quantization spells it
    39: "NVFP4",
    40: "Q1_0",
}

# ggml tensor types: id -> (name, elements per block, bytes per block). Copied from the
# `gguf` package's GGMLQuantizationType and GGML_QUANT_SIZES (gguf-py/gguf/constants.py in
# llama.cpp, itself from ggml's type_traits), which the base app must not depend on; ids 31-33
# and 36-38 are types ggml has since removed. tests/core/test_sniff.py checks the table
# against the package. A tensor's bytes: ceil(ne0 / block) * block bytes * the other dims.
_GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    31: ("Q4_0_4_4", 32, 18),  # removed from ggml, still found in older files
    32: ("Q4_0_4_8", 32, 18),
    33: ("Q4_0_8_8", 32, 18),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    36: ("IQ4_NL_4_4", 32, 18),
    37: ("IQ4_NL_4_8", 32, 18),
    38: ("IQ4_NL_8_8", 32, 18),
    39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36),
    41: ("Q1_0", 128, 18),
}

# Metadata we keep; everything else is skipped without being materialised.
_KEPT_KEYS = frozenset(
    {
        "general.architecture",
        "general.name",
        "general.file_type",
        "general.alignment",
        "split.no",
        "split.count",
        "split.tensors.count",
        "clip.projector_type",
        "clip.vision.projector_type",
        "clip.has_vision_encoder",
        "clip.vision.image_size",
        "clip.vision.patch_size",
        "clip.vision.projection_dim",
    }
)
_CHAT_TEMPLATE_KEY = "tokenizer.chat_template"
_CONTEXT_SUFFIX = ".context_length"
# "<arch>.<suffix>" keys the memory estimate needs; the architecture is not known while the
# metadata is read (general.architecture may come later), so any one-word prefix is kept.
_SHAPE_SUFFIXES = frozenset(
    {
        "context_length",
        "block_count",
        "embedding_length",
        "attention.head_count",
        "attention.head_count_kv",
        "attention.key_length",
        "attention.value_length",
    }
)
_MAX_SHAPE_KEYS = 256
# head counts may be one per layer (OpenELM, some Nemotron and hybrid models)
_PER_LAYER_SUFFIXES = frozenset({"attention.head_count", "attention.head_count_kv"})
_MAX_LAYER_ARRAY = 65_536
_INTEGER_TYPES = frozenset({0, 1, 2, 3, 4, 5, 10, 11})

_MetaValue = int | float | bool | str | tuple[int, ...]


@dataclass(kw_only=True)
class _TensorBytes:
    """The bytes of one file's tensors, grouped by where llama.cpp places them."""

    layers: Counter[int] = field(default_factory=Counter)  # N of blk.N.* -> bytes
    embedding: int = 0  # token_embd.weight
    output: int = 0  # output.weight, output_norm.*
    other: int = 0
    has_output_weight: bool = False

    def add(self, other: _TensorBytes) -> None:
        """Add another part's tensors (split GGUFs)."""
        self.layers.update(other.layers)
        self.embedding += other.embedding
        self.output += other.output
        self.other += other.other
        self.has_output_weight |= other.has_output_weight


@dataclass(kw_only=True)
class _GgufHeader:
    """What `_read_gguf` took from one GGUF file."""

    version: int
    tensor_count: int
    metadata: dict[str, _MetaValue]
    has_chat_template: bool
    parameter_count: int
    elements_by_type: Counter[str] = field(default_factory=Counter)
    tensor_bytes: _TensorBytes | None = None  # None when a tensor's type is unknown


class _GgufReader:
    """Little-endian reads from a buffered file, each one checked against the file's size."""

    def __init__(self, file: BinaryIO, size: int, path: Path) -> None:
        self._file = file
        self._size = size
        self._path = path
        self.position = 0
        self.variable_items = 0  # strings and arrays walked one by one
        self.nested_arrays = 0  # arrays inside arrays, over the whole header

    @property
    def remaining(self) -> int:
        return self._size - self.position

    @property
    def size(self) -> int:
        return self._size

    @property
    def file_name(self) -> str:
        return self._path.name

    @property
    def file_path(self) -> str:
        return str(self._path)

    def truncated(self, needed: int) -> CheckpointError:
        return CheckpointError(
            f"{self._path.name} is truncated: {needed} more bytes needed at byte "
            f"{self.position}, but the file ends at byte {self._size}",
            path=str(self._path),
            hint=_redownload_hint(),
        )

    def corrupt(self, message: str) -> CheckpointError:
        return CheckpointError(
            f"{self._path.name}: {message}", path=str(self._path), hint=_redownload_hint()
        )

    def read(self, count: int) -> bytes:
        if count > self.remaining:
            raise self.truncated(count)
        data = self._file.read(count)
        if len(data) != count:  # the file shrank while we read it
            raise self.truncated(count)
        self.position += count
        return data

    def skip(self, count: int) -> None:
        if count > self.remaining:
            raise self.truncated(count)
        self._file.seek(count, os.SEEK_CUR)
        self.position += count

    def u32(self) -> int:
        value: int = struct.unpack("<I", self.read(4))[0]
        return value

    def u64(self) -> int:
        value: int = struct.unpack("<Q", self.read(8))[0]
        return value

    def string_length(self, what: str, *, limit: int = _MAX_STRING) -> int:
        length = self.u64()
        if length > limit:
            shown = f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"
            raise self.corrupt(
                f"{what} claims {length} bytes at byte {self.position - 8}, more than {shown}"
            )
        if length > self.remaining:
            raise self.corrupt(
                f"{what} claims {length} bytes at byte {self.position - 8}, but only "
                f"{self.remaining} remain in the file (corrupt or truncated)"
            )
        return length

    def skip_strings(self, count: int, what: str) -> None:
        """Move past `count` strings (each a u64 length, then its bytes), a block at a time.

        Vocabularies hold hundreds of thousands of strings; reading each length with its own
        read and seek costs ~1 µs a string, stepping through one buffer a fraction of that.
        A string this cannot step over within the block (longer than what is left of it, or
        with a bad length) goes through `skip` and `string_length`, with their checks.
        """
        left = count
        while left:
            block = self._file.read(min(_SCAN_BLOCK, self.remaining))
            offset = 0
            while left and offset + 8 <= len(block):
                (length,) = _U64.unpack_from(block, offset)
                end = offset + 8 + length
                if length > _MAX_STRING or end > len(block):
                    break
                offset = end
                left -= 1
            self._file.seek(offset - len(block), os.SEEK_CUR)  # back to the first unread byte
            self.position += offset
            if left and offset == 0:
                self.skip(self.string_length(what))
                left -= 1

    def count_items(self, count: int) -> None:
        self.variable_items += count
        if self.variable_items > _MAX_VARIABLE_ITEMS:
            raise self.corrupt(
                f"the metadata holds more than {_MAX_VARIABLE_ITEMS} strings or arrays; "
                "no real model has that many"
            )


def _read_gguf(file: BinaryIO, size: int, path: Path) -> _GgufHeader:
    """Read a GGUF header: metadata we keep, tensor infos summed; checks the data fits."""
    reader = _GgufReader(file, size, path)
    if reader.read(4) != b"GGUF":
        raise CheckpointError(f"{path.name} is not a GGUF file", path=str(path))
    version = reader.u32()
    if version == 1:
        raise CheckpointError(
            f"{path.name}: GGUF v1 is too old",
            path=str(path),
            hint="Convert it again with a recent llama.cpp, or download a newer version.",
        )
    if version not in (2, 3):
        swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
        message = (
            f"{path.name} is a big-endian GGUF file, which is not supported"
            if swapped in (1, 2, 3)
            else f"{path.name}: GGUF version {version} is not supported (only 2 and 3)"
        )
        raise CheckpointError(message, path=str(path))
    tensor_count = reader.u64()
    kv_count = reader.u64()
    room = size - _GGUF_FIXED_HEADER
    if kv_count * _MIN_KV_BYTES > room:
        raise reader.corrupt(
            f"header claims {kv_count} metadata entries; the file is too small "
            f"({size} bytes) to hold them — corrupt or truncated"
        )
    if tensor_count * _MIN_TENSOR_INFO_BYTES > room - kv_count * _MIN_KV_BYTES:
        raise reader.corrupt(
            f"header claims {tensor_count} tensors; the file is too small "
            f"({size} bytes) to hold them — corrupt or truncated"
        )
    if kv_count > _MAX_KV:
        raise reader.corrupt(
            f"header claims {kv_count} metadata entries; no real model has that many"
        )
    if tensor_count > _MAX_TENSORS:
        raise reader.corrupt(f"header claims {tensor_count} tensors; no real model has that many")

    metadata, has_chat_template = _read_metadata(reader, kv_count)
    parameter_count, elements_by_type, data_end, tensor_bytes = _read_tensor_infos(
        reader, tensor_count
    )
    alignment = metadata.get("general.alignment", _DEFAULT_ALIGNMENT)
    if not (isinstance(alignment, int) and alignment > 0 and alignment & (alignment - 1) == 0):
        alignment = _DEFAULT_ALIGNMENT
    data_start = -(-reader.position // alignment) * alignment
    if data_end is not None and data_start + data_end > size:
        raise CheckpointError(
            f"{path.name} is truncated: its tensors need {data_start + data_end} bytes, "
            f"the file has {size}",
            path=str(path),
            hint=_redownload_hint(),
        )
    return _GgufHeader(
        version=version,
        tensor_count=tensor_count,
        metadata=metadata,
        has_chat_template=has_chat_template,
        parameter_count=parameter_count,
        elements_by_type=elements_by_type,
        tensor_bytes=tensor_bytes,
    )


def _read_metadata(reader: _GgufReader, kv_count: int) -> tuple[dict[str, _MetaValue], bool]:
    """The metadata values we keep, and whether there is a chat template; skips the rest."""
    metadata: dict[str, _MetaValue] = {}
    shape_keys = 0
    has_chat_template = False
    for _ in range(kv_count):
        key_bytes = reader.read(reader.string_length("a metadata key", limit=_MAX_KEY))
        try:
            key = key_bytes.decode("utf-8")
        except UnicodeDecodeError:
            raise reader.corrupt(
                f"metadata key at byte {reader.position - len(key_bytes)} is not UTF-8"
            ) from None
        value_type = reader.u32()
        prefix, _, suffix = key.partition(".")
        is_shape = suffix in _SHAPE_SUFFIXES and prefix != "general"
        keep = key in _KEPT_KEYS or (is_shape and shape_keys < _MAX_SHAPE_KEYS)
        if key == _CHAT_TEMPLATE_KEY and value_type == _STRING:
            has_chat_template = True
        if keep and value_type in _SCALAR_FORMATS:
            (metadata[key],) = struct.unpack(
                _SCALAR_FORMATS[value_type], reader.read(_SCALAR_SIZES[value_type])
            )
            shape_keys += is_shape
        elif keep and suffix in _PER_LAYER_SUFFIXES and value_type == _ARRAY:
            per_layer = _read_int_array(reader, key)
            if per_layer is not None:
                metadata[key] = per_layer
                shape_keys += 1
        elif keep and value_type == _STRING:
            length = reader.string_length(f"metadata value {key!r}")
            if length <= _MAX_KEPT_STRING:
                metadata[key] = reader.read(length).decode("utf-8", errors="replace")
            else:
                reader.skip(length)
        else:
            _skip_value(reader, key, value_type, depth=0)
    return metadata, has_chat_template


def _read_int_array(reader: _GgufReader, key: str) -> tuple[int, ...] | None:
    """An array of integers (one per layer), or None after skipping any other array."""
    item_type = reader.u32()
    count = reader.u64()
    if item_type not in _INTEGER_TYPES or count > _MAX_LAYER_ARRAY:
        _skip_array(reader, key, item_type, count, depth=0)
        return None
    size = _SCALAR_SIZES[item_type]
    if count * size > reader.remaining:
        raise reader.corrupt(
            f"metadata array {key!r} claims {count} items, more than the rest of the file "
            "holds (corrupt or truncated)"
        )
    fmt = _SCALAR_FORMATS[item_type][1]
    return tuple(struct.unpack(f"<{count}{fmt}", reader.read(count * size)))


def _read_tensor_infos(
    reader: _GgufReader, tensor_count: int
) -> tuple[int, Counter[str], int | None, _TensorBytes | None]:
    """Parameter count, elements per ggml type, the end of the tensor data (relative to its
    start) and the tensors' bytes by place; the last two are None when a tensor has a type we
    do not know the size of."""
    parameter_count = 0
    elements_by_type: Counter[str] = Counter()
    data_end: int | None = 0
    tensor_bytes: _TensorBytes | None = _TensorBytes()
    for index in range(tensor_count):
        name = reader.read(reader.string_length(f"the name of tensor {index}", limit=_MAX_KEY))
        n_dims = reader.u32()
        if n_dims > _MAX_DIMS:
            raise reader.corrupt(f"tensor {index} claims {n_dims} dimensions")
        dims = struct.unpack(f"<{n_dims}Q", reader.read(8 * n_dims))
        tensor_type = reader.u32()
        offset = reader.u64()
        elements = math.prod(dims)
        if elements >= 1 << 63:
            raise reader.corrupt(f"tensor {index} claims {elements} elements")
        parameter_count += elements
        ggml_type = _GGML_TYPES.get(tensor_type)
        if ggml_type is None:
            data_end = tensor_bytes = None
            continue
        type_name, block, block_bytes = ggml_type
        elements_by_type[type_name] += elements
        # ggml quantizes along the first dimension, in blocks that never span two rows.
        rows = math.prod(dims[1:])
        nbytes = -(-(dims[0] if dims else 1) // block) * block_bytes * rows
        if offset + nbytes > reader.size:  # fail on the first tensor that cannot fit
            raise CheckpointError(
                f"{reader.file_name} is truncated: tensor {index} needs bytes up to "
                f"{offset + nbytes}, the file has {reader.size}",
                path=reader.file_path,
                hint=_redownload_hint(),
            )
        if data_end is not None:
            data_end = max(data_end, offset + nbytes)
        if tensor_bytes is not None:
            _place_tensor(tensor_bytes, name, nbytes)
    if not tensor_count:
        return parameter_count, elements_by_type, None, tensor_bytes
    return parameter_count, elements_by_type, data_end, tensor_bytes


_LAYER_TENSOR = re.compile(rb"blk\.(\d{1,9})\.")


def _place_tensor(totals: _TensorBytes, name: bytes, nbytes: int) -> None:
    """Count a tensor's bytes where llama.cpp puts it: a layer, the input, or the output."""
    layer = _LAYER_TENSOR.match(name)
    if layer is not None:
        totals.layers[int(layer.group(1))] += nbytes
    elif name == b"token_embd.weight":
        totals.embedding += nbytes
    elif name.startswith((b"output.", b"output_norm.")):
        totals.output += nbytes
        totals.has_output_weight |= name == b"output.weight"
    else:
        totals.other += nbytes


def _skip_value(reader: _GgufReader, key: str, value_type: int, *, depth: int) -> None:
    """Move past one metadata value without keeping it; arrays of fixed-size items by seeking."""
    if value_type in _SCALAR_SIZES:
        reader.skip(_SCALAR_SIZES[value_type])
    elif value_type == _STRING:
        reader.skip(reader.string_length(f"metadata value {key!r}"))
    elif value_type == _ARRAY:
        if depth >= _MAX_ARRAY_DEPTH:
            raise reader.corrupt(f"metadata value {key!r} nests arrays too deep")
        item_type = reader.u32()
        count = reader.u64()
        _skip_array(reader, key, item_type, count, depth=depth)
    else:
        raise reader.corrupt(f"metadata value {key!r} has unknown type {value_type}")


def _skip_array(reader: _GgufReader, key: str, item_type: int, count: int, *, depth: int) -> None:
    """Move past the items of an array whose item type and count have been read."""
    if item_type in _SCALAR_SIZES:
        total = count * _SCALAR_SIZES[item_type]
        if total > reader.remaining:
            raise reader.corrupt(
                f"metadata array {key!r} claims {count} items, more than the rest of "
                "the file holds (corrupt or truncated)"
            )
        reader.skip(total)
        return
    # Strings (tokenizer tokens, merges) and nested arrays: each needs at least 8 bytes.
    if count * 8 > reader.remaining:
        raise reader.corrupt(
            f"metadata array {key!r} claims {count} items, more than the rest of the "
            "file holds (corrupt or truncated)"
        )
    reader.count_items(count)
    if item_type == _STRING:
        reader.skip_strings(count, f"an item of {key!r}")
    elif item_type == _ARRAY:
        # Each nested array is walked in Python (~1 µs); no converter writes them in bulk.
        reader.nested_arrays += count
        if reader.nested_arrays > _MAX_NESTED_ARRAYS:
            raise reader.corrupt(
                f"the metadata holds more than {_MAX_NESTED_ARRAYS} nested arrays; "
                "no real model has that many"
            )
        for _ in range(count):
            _skip_value(reader, key, _ARRAY, depth=depth + 1)
    else:
        raise reader.corrupt(f"metadata array {key!r} has unknown item type {item_type}")


_PLAIN_TYPES = frozenset({"F32", "F64", "I8", "I16", "I32", "I64"})


def _gguf_quantization(stem: str, header: _GgufHeader) -> str | None:
    """general.file_type, unless the file name is more specific; then the dominant type.

    Quantizations such as bartowski's "Q4_K_L" or Unsloth's "UD-Q4_K_XL" have no file type
    of their own (they record e.g. Q4_K_M), so a name that states one of those wins.
    """
    from_name = parse_quantization(stem)
    file_type = header.metadata.get("general.file_type")
    from_type = _FILE_TYPES.get(file_type) if isinstance(file_type, int) else None
    name_is_finer = (
        from_name is not None
        and from_name not in _FILE_TYPES.values()
        and (from_name.startswith("UD-") or from_name.endswith(("_L", "_XL")))
    )
    if from_type is not None and not name_is_finer:
        return from_type
    if from_name is not None:
        return from_name
    # No file type, nothing in the name: the tensor type holding most weights, preferring
    # a quantized or half type over the F32 norms.
    by_type = header.elements_by_type
    for names in ([n for n in by_type if n not in _PLAIN_TYPES], list(by_type)):
        if names:
            return max(sorted(names), key=lambda n: by_type[n])
    return None


def _gguf_checkpoint(path: Path, size: int, header: _GgufHeader) -> Checkpoint:
    stem = path.stem
    split = _SPLIT_PATTERN.match(stem)
    base_stem = split.group("stem") if split else stem
    tensor_count: int | None = header.tensor_count
    parameter_count: int | None = header.parameter_count
    tensor_bytes = header.tensor_bytes
    parts: tuple[Path, ...] = ()
    warning: str | None = None
    if split is not None:
        part, total = int(split.group("part")), int(split.group("total"))
        if part == 1 and total > 1:
            parts, missing = _split_parts(path, base_stem, total)
            size += sum(_file_size(p) for p in parts[1:])
            if missing:
                shown = ", ".join(f"{number:05d}" for number in missing[:5])
                if len(missing) > 5:
                    shown += f" and {len(missing) - 5} more"
                plural = "s" if len(missing) > 1 else ""
                warning = f"split model: part{plural} {shown} of {total:05d} missing"
                tensor_count = parameter_count = tensor_bytes = None
            else:
                others = [_read_gguf_path(other) for other in parts[1:]]
                tensor_count = header.tensor_count + sum(h.tensor_count for h in others)
                parameter_count = header.parameter_count + sum(h.parameter_count for h in others)
                tensor_bytes = _sum_tensor_bytes([header, *others])
        elif part > 1:
            warning = f"part {part:05d} of {total:05d} of a split model; open part 00001 to load it"
            tensor_bytes = None

    metadata = header.metadata
    architecture = _str_or_none(metadata.get("general.architecture"))
    context = metadata.get(f"{architecture}{_CONTEXT_SUFFIX}") if architecture else None
    projector = _projector_info(metadata) if architecture == _PROJECTOR_ARCHITECTURE else None
    return Checkpoint(
        path=path,
        format=CheckpointFormat.GGUF,
        kind=ModelKind.LLM_GGUF if projector is None else ModelKind.VISION_PROJECTOR,
        projector=projector,
        size=size,
        name=_str_or_none(metadata.get("general.name")) or base_stem,
        architecture=architecture,
        parameter_count=parameter_count,
        quantization=_gguf_quantization(base_stem, header),
        context_length=context if isinstance(context, int) and context > 0 else None,
        has_chat_template=header.has_chat_template,
        tensor_count=tensor_count,
        split_parts=parts,
        warning=warning,
        gguf_shape=(
            _gguf_shape(metadata, architecture, tensor_bytes, tensor_count or 0)
            if tensor_bytes is not None
            else None
        ),
    )


_PROJECTOR_ARCHITECTURE = "clip"  # llama.cpp's mmproj files, whatever the vision model


def _projector_info(metadata: dict[str, _MetaValue]) -> ProjectorInfo:
    kind = metadata.get("clip.projector_type", metadata.get("clip.vision.projector_type"))
    return ProjectorInfo(
        projector_type=_str_or_none(kind),
        has_vision=metadata.get("clip.has_vision_encoder") is True,
        image_size=_positive_int(metadata.get("clip.vision.image_size")),
        patch_size=_positive_int(metadata.get("clip.vision.patch_size")),
        projection_dim=_positive_int(metadata.get("clip.vision.projection_dim")),
    )


def sniff_projector(path: Path) -> Checkpoint:
    """`sniff` a file that must be a vision projector (an mmproj GGUF).

    Raises:
        CheckpointError: as `sniff`, or the file is a GGUF of something else (a language
            model given as a projector), or a projector without a vision encoder.
    """
    checkpoint = sniff(path)
    if checkpoint.projector is None:
        what = (
            f"a language model ({checkpoint.architecture})"
            if checkpoint.kind is ModelKind.LLM_GGUF
            else f"a {checkpoint.kind.value}"
        )
        raise CheckpointError(
            f"{Path(path).name} is {what}, not a vision projector",
            path=str(path),
            hint="A projector is the model's mmproj-*.gguf file.",
        )
    if not checkpoint.projector.has_vision:
        raise CheckpointError(
            f"{Path(path).name} is a projector without a vision encoder (audio only?)",
            path=str(path),
        )
    return checkpoint


def _sum_tensor_bytes(headers: list[_GgufHeader]) -> _TensorBytes | None:
    """The tensor bytes of all parts of a split model; None if one part's are unknown."""
    total = _TensorBytes()
    for header in headers:
        if header.tensor_bytes is None:
            return None
        total.add(header.tensor_bytes)
    return total


def _gguf_shape(
    metadata: dict[str, _MetaValue],
    architecture: str | None,
    tensors: _TensorBytes,
    tensor_count: int,
) -> GgufShape | None:
    """The model's shape from "<arch>.*" metadata and its tensors; None if essentials lack.

    Defaults are llama.cpp's (llama-model.cpp, load_hparams): head_count_kv = head_count,
    key_length = value_length = embedding_length / head_count.

    `block_count` is a claim of the header that sizes the lists built here: a layer has at
    least one tensor, so a count above `tensor_count` (all parts of a split model) is not
    believed, and the shape is unknown. A 258-byte file claiming 2**40 layers would
    otherwise cost gigabytes.
    """
    if architecture is None:
        return None

    def count(suffix: str) -> int | None:
        return _positive_int(metadata.get(f"{architecture}.{suffix}"))

    def per_layer(suffix: str, layers: int) -> tuple[int, ...] | None:
        value = metadata.get(f"{architecture}.{suffix}")
        if isinstance(value, tuple):
            return value if len(value) == layers and all(v >= 0 for v in value) else None
        single = _positive_int(value)
        return None if single is None else (single,) * layers

    block_count = count("block_count")
    embedding_length = count("embedding_length")
    if block_count is None or embedding_length is None:
        return None
    if block_count > min(tensor_count, _MAX_LAYER_ARRAY):
        return None
    heads = per_layer("attention.head_count", block_count)
    head_count = next((h for h in heads or () if h > 0), None)
    if heads is None or head_count is None:
        return None
    kv_heads = per_layer("attention.head_count_kv", block_count) or heads
    head_dim = embedding_length // head_count
    key_length = count("attention.key_length") or head_dim
    value_length = count("attention.value_length") or head_dim
    layer_bytes = [tensors.layers.get(layer, 0) for layer in range(block_count)]
    # Tensors of layers past block_count (none in the models we know) still take memory.
    extra_layers = sum(n for layer, n in tensors.layers.items() if layer >= block_count)
    return GgufShape(
        architecture=architecture,
        block_count=block_count,
        embedding_length=embedding_length,
        head_count=head_count,
        head_count_kv=max(kv_heads),
        key_length=key_length,
        value_length=value_length,
        context_length=count("context_length"),
        kv_heads_per_layer=kv_heads,
        layer_bytes=tuple(layer_bytes),
        embedding_bytes=tensors.embedding,
        output_bytes=tensors.output,
        other_bytes=tensors.other + extra_layers,
        tied_embeddings=not tensors.has_output_weight,
    )


def _split_parts(first: Path, stem: str, total: int) -> tuple[tuple[Path, ...], list[int]]:
    """The parts of a split GGUF present beside `first`, and the numbers of those missing."""
    suffix = first.suffix
    present: list[Path] = [first]
    missing: list[int] = []
    for number in range(2, total + 1):
        candidate = first.with_name(f"{stem}-{number:05d}-of-{total:05d}{suffix}")
        if candidate.is_file():
            present.append(candidate)
        else:
            missing.append(number)
    return tuple(present), missing


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as error:
        raise _os_error(path, error) from None


def _read_gguf_path(path: Path) -> _GgufHeader:
    try:
        with open(path, "rb", buffering=1 << 16) as file:
            return _read_gguf(file, os.fstat(file.fileno()).st_size, path)
    except OSError as error:
        raise _os_error(path, error) from None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _positive_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


# --- safetensors -----------------------------------------------------------------------------

_MAX_SAFETENSORS_HEADER = 100_000_000
# The header nests three deep: {name: {"shape": [...]}}; "__metadata__" is {str: str}.
_MAX_SAFETENSORS_DEPTH = 4
# No dtype stores an element in less than a bit: a tensor's bytes bound its element count.
_MAX_BITS_PER_BYTE = 8
_METADATA_KEY = "__metadata__"

# One pass over the tensor names; each alternative is a group named after what it shows.
# SD checkpoints hold a CLIP text model whose keys look like an LLM's ("layers.0.self_attn"),
# so the families are ranked (`_FAMILY_RANKS`) rather than taken from the first match.
_FAMILY_KEY = re.compile(
    r"(?P<flux>(?:^|\.)(?:double_blocks|single_blocks)\.\d+\.)"
    r"|(?P<sd3>(?:^|\.)joint_blocks\.\d+\.)"
    r"|(?P<sdxl>^conditioner\.embedders\.)"
    r"|(?P<sd2>^cond_stage_model\.model\.)"
    r"|(?P<sd1>^cond_stage_model\.transformer\.)"
    r"|(?P<cross_attention>^model\.diffusion_model\..*\.attn2\.to_k\.weight$)"
    r"|(?P<unet>^model\.diffusion_model\.(?:input|output)_blocks\.)"
    r"|(?P<llm>(?:^|\.)layers\.\d+\.self_attn\.|^lm_head\.weight$)"
)
_FAMILY_RANKS = (
    ("flux", "Flux"),
    ("sd3", "SD 3"),
    ("sdxl", "SDXL"),
    ("sd2", "SD 2.x"),
    ("sd1", "SD 1.x"),
)
# A UNet alone: the text-context width of its cross-attention tells the family.
_CONTEXT_WIDTH_FAMILIES = {768: "SD 1.x", 1024: "SD 2.x", 2048: "SDXL", 1280: "SDXL"}


def _read_safetensors(file: BinaryIO, size: int, path: Path, head: bytes) -> Checkpoint:
    """Read a safetensors JSON header: dtypes, parameter count, family; checks the data fits."""
    looks_like = _looks_like(head, size, unless=_LOOKS_SAFETENSORS)

    def invalid(message: str) -> CheckpointError:
        return CheckpointError(
            f"{path.name} is not a valid safetensors file: {message}{looks_like}",
            path=str(path),
            hint=_redownload_hint(),
        )

    if size < 8:
        raise CheckpointError(
            f"{path.name} is truncated: {size} bytes, shorter than a safetensors header",
            path=str(path),
            hint=_redownload_hint(),
        )
    (length,) = struct.unpack("<Q", file.read(8))
    if length > size - 8:
        raise invalid(f"header length larger than the file ({length} > {size - 8} bytes)")
    if length > _MAX_SAFETENSORS_HEADER:
        raise invalid(f"header of {length} bytes, more than {_MAX_SAFETENSORS_HEADER}")
    raw = file.read(length)
    if len(raw) != length:
        raise CheckpointError(f"{path.name} is truncated", path=str(path))
    try:
        header = parse_untrusted_json(
            raw, max_bytes=_MAX_SAFETENSORS_HEADER, max_depth=_MAX_SAFETENSORS_DEPTH, what="header"
        )
    except UntrustedJsonError as error:
        raise invalid(f"the {error.message}") from None
    if not isinstance(header, dict):
        raise invalid("the header is not a JSON object")

    elements_by_dtype: Counter[str] = Counter()
    parameter_count = 0
    names: list[str] = []
    for name, entry in header.items():
        if name == _METADATA_KEY:
            continue
        dtype, elements = _safetensors_tensor(name, entry, size - 8 - length, path, invalid)
        parameter_count += elements
        elements_by_dtype[dtype] += elements
        names.append(name)

    lora = lora_header(names, header)
    family, is_diffusion = (
        _safetensors_family(names, header) if lora is None else (lora.family, False)
    )
    main_dtype = (
        max(sorted(elements_by_dtype), key=lambda d: elements_by_dtype[d])
        if elements_by_dtype
        else None
    )
    warning = None
    split = _SPLIT_PATTERN.match(path.stem)
    if split is not None:
        warning = (
            f"shard {int(split.group('part'))} of {int(split.group('total'))} of a sharded "
            "model; the counts cover this file only"
        )
    return Checkpoint(
        path=path,
        format=CheckpointFormat.SAFETENSORS,
        kind=(
            ModelKind.LORA
            if lora is not None
            else ModelKind.DIFFUSION_SINGLE_FILE
            if is_diffusion
            else ModelKind.OTHER
        ),
        size=size,
        name=path.stem,
        architecture=family if is_diffusion or lora is not None else None,
        parameter_count=parameter_count,
        quantization=main_dtype,
        tensor_count=len(names),
        dtypes=tuple(sorted(elements_by_dtype)),
        family=family,
        warning=warning,
        lora=lora,
    )


def _safetensors_tensor(
    name: str,
    entry: object,
    data_size: int,
    path: Path,
    invalid: Callable[[str], CheckpointError],
) -> tuple[str, int]:
    """The dtype and element count of one header entry, each claim checked against the file.

    Raises:
        CheckpointError: the entry is malformed, its data lies past the end of the file
            (`data_size`: the bytes after the header), or its shape claims more elements
            than its bytes can hold.
    """
    if not isinstance(entry, dict):
        raise invalid(f"tensor {_shown(name)} is not described by an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or not dtype:
        raise invalid(f"tensor {_shown(name)} has no dtype")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise invalid(f"tensor {_shown(name)} has no valid shape")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_count(o) for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise invalid(f"tensor {_shown(name)} has no valid data_offsets")
    if offsets[1] > data_size:
        raise CheckpointError(
            f"{path.name} is truncated: tensor {_shown(name)} needs {offsets[1]} bytes of "
            f"data, the file holds {data_size}",
            path=str(path),
            hint=_redownload_hint(),
        )
    nbytes = offsets[1] - offsets[0]
    elements = _elements_within(shape, _MAX_BITS_PER_BYTE * nbytes)
    if elements is None:
        raise invalid(f"tensor {_shown(name)} claims more elements than its {nbytes} bytes hold")
    return dtype, elements


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _elements_within(shape: list[int], limit: int) -> int | None:
    """The product of `shape`, or None once it passes `limit`.

    The dimensions come from a stranger's header: multiplied blindly, a thousand of them
    with thousands of digits each make a number of millions of digits (a minute of CPU).
    Stopping at `limit` keeps every intermediate product below `limit` times one dimension.
    """
    if 0 in shape:
        return 0
    product = 1
    for dimension in shape:
        product *= dimension
        if product > limit:
            return None
    return product


def _shown(name: str) -> str:
    """A tensor name for a message: quoted, and cut short if a header made it huge."""
    return repr(name) if len(name) <= 200 else repr(name[:200]) + "…"


def _safetensors_family(names: list[str], header: dict[str, object]) -> tuple[str | None, bool]:
    """The model family the tensor names point to (None if unknown), and whether they are
    those of a diffusion model."""
    found: set[str] = set()
    cross_attention: list[str] = []
    for name in names:
        match = _FAMILY_KEY.search(name)
        if match is None or match.lastgroup is None:
            continue
        found.add(match.lastgroup)
        if match.lastgroup == "cross_attention":
            cross_attention.append(name)
    for group, family in _FAMILY_RANKS:
        if group in found:
            return family, True
    for name in cross_attention:
        entry = header[name]
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if isinstance(shape, list) and len(shape) == 2 and shape[1] in _CONTEXT_WIDTH_FAMILIES:
            return _CONTEXT_WIDTH_FAMILIES[shape[1]], True
    if found & {"cross_attention", "unet"}:
        return None, True
    return ("LLM", False) if "llm" in found else (None, False)


# --- diffusers folders -----------------------------------------------------------------------

_MODEL_INDEX = "model_index.json"
_MAX_MODEL_INDEX = 1024 * 1024
_MAX_MODEL_INDEX_DEPTH = 8  # {"unet": ["diffusers", "UNet2DConditionModel"]}: two deep
_MAX_FOLDER_ENTRIES = 100_000  # sizing a pipeline folder stops here (the size is then a floor)


def _sniff_folder(path: Path) -> Checkpoint:
    index_path = path / _MODEL_INDEX
    try:
        with open(index_path, "rb") as file:
            raw = file.read(_MAX_MODEL_INDEX + 1)
    except FileNotFoundError:
        raise CheckpointError(
            f"not a model folder: no {_MODEL_INDEX} in {path}",
            path=str(path),
            hint="Choose a .gguf or .safetensors file inside it, or a diffusers pipeline folder.",
        ) from None
    except OSError as error:
        raise _os_error(index_path, error) from None

    def malformed(reason: str) -> CheckpointError:
        return CheckpointError(f"malformed {_MODEL_INDEX} in {path}: {reason}", path=str(path))

    try:
        index = parse_untrusted_json(
            raw, max_bytes=_MAX_MODEL_INDEX, max_depth=_MAX_MODEL_INDEX_DEPTH, what="the file"
        )
    except UntrustedJsonError as error:
        raise malformed(error.message) from None
    if not isinstance(index, dict):
        raise malformed("not a JSON object")
    class_name = index.get("_class_name")
    if not isinstance(class_name, str) or not class_name:
        raise malformed("no _class_name")

    size, has_safetensors, has_pickle = _folder_contents(path)
    warning = None
    if has_pickle and not has_safetensors:
        warning = "pipeline weights are pickle files — can run code when loaded; not supported"
    gaps = _pipeline_gaps(path, index)
    incomplete = "; ".join(gap.text for gap in gaps) or None
    if warning is None and incomplete is not None:
        # Said as a warning too: the image engine refuses a pipeline whose warning names a
        # pickle, so a text encoder kept only as .bin is never unpickled on the way.
        warning = f"incomplete pipeline: {incomplete}"
    return Checkpoint(
        path=path,
        format=CheckpointFormat.DIFFUSERS,
        kind=ModelKind.DIFFUSERS_PIPELINE,
        size=size,
        name=_folder_name(path),
        architecture=class_name,
        warning=warning,
        incomplete=incomplete,
    )


@dataclass(frozen=True, slots=True)
class PipelineGap:
    """One component of a diffusers pipeline that keeps it from running."""

    component: str
    reason: str  # "missing", "only pickle weights", "no weights"

    @property
    def text(self) -> str:
        return f"{self.component}: {self.reason}"


# A hostile model_index.json may name thousands of components; a real one names under 20.
_MAX_COMPONENTS = 64


def _pipeline_gaps(path: Path, index: dict[str, object]) -> list[PipelineGap]:
    """The components `model_index.json` names that are missing or unusable in `path`.

    A component is `"name": [library, class]`; `[null, null]` (an optional part left out, such
    as a safety checker) needs nothing. A component whose folder holds a `config.json` is a
    model and needs weights; schedulers and tokenizers keep other files and need none.
    """
    gaps: list[PipelineGap] = []
    names = [name for name in index if not name.startswith("_")][:_MAX_COMPONENTS]
    for name in names:
        spec = index[name]
        if not isinstance(spec, list) or not any(isinstance(part, str) for part in spec):
            continue
        if "/" in name or "\\" in name or name in (".", ".."):
            continue  # not a folder name: never look outside the pipeline
        folder = path / name
        if not folder.is_dir():
            gaps.append(PipelineGap(name, "missing"))
            continue
        if not (folder / "config.json").is_file():
            continue
        suffixes = _weight_suffixes(folder)
        if _SAFETENSORS_SUFFIX in suffixes:
            continue
        if suffixes & _PICKLE_WEIGHT_SUFFIXES:
            gaps.append(PipelineGap(name, "only pickle weights (can run code; not loaded)"))
        else:
            gaps.append(PipelineGap(name, "no weights"))
    return gaps


def _weight_suffixes(folder: Path) -> set[str]:
    """The file suffixes directly in a component folder (weights are never nested deeper)."""
    try:
        with os.scandir(folder) as listing:
            return {os.path.splitext(entry.name)[1].lower() for entry in listing}
    except OSError:
        return set()


def _folder_name(path: Path) -> str:
    """The folder's name; for a Hugging Face cache snapshot, the repository id."""
    parent = path.parent
    if parent.name == "snapshots" and parent.parent.name.startswith("models--"):
        return parent.parent.name.removeprefix("models--").replace("--", "/")
    return path.name


def _folder_contents(root: Path) -> tuple[int, bool, bool]:
    """Bytes of the files under `root` (links followed, each file once), and its weight kinds."""
    total = 0
    has_safetensors = has_pickle = False
    seen_files: set[tuple[int, int]] = set()
    root_info = root.stat()
    seen_folders = {(root_info.st_dev, root_info.st_ino)}
    stack = [root]
    entries = 0
    while stack and entries < _MAX_FOLDER_ENTRIES:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                for entry in listing:
                    entries += 1
                    try:
                        info = entry.stat()
                    except OSError:
                        continue  # a broken link, or gone
                    key = (info.st_dev, info.st_ino)
                    if stat.S_ISDIR(info.st_mode):
                        if key not in seen_folders:
                            seen_folders.add(key)
                            stack.append(Path(entry.path))
                    elif stat.S_ISREG(info.st_mode) and key not in seen_files:
                        seen_files.add(key)
                        total += info.st_size
                        suffix = os.path.splitext(entry.name)[1].lower()
                        has_safetensors |= suffix == _SAFETENSORS_SUFFIX
                        has_pickle |= suffix in _PICKLE_WEIGHT_SUFFIXES
        except OSError:
            continue
    return total, has_safetensors, has_pickle


# --- finding candidates ----------------------------------------------------------------------

# Folders that never hold checkpoints to show.
_SKIPPED_FOLDERS = frozenset({".git", ".hg", ".svn", "__pycache__", "node_modules"})
# Hugging Face cache: only snapshots/ holds files under their real names (blobs/ holds the
# same files under hashes, .no_exist/ holds empty markers named like missing files).
_HF_CACHE_PREFIXES = ("models--", "datasets--", "spaces--")

_clock = time.monotonic  # a module attribute so tests can drive the walk's budget


class _WalkBudget:
    """Entries and seconds `find_checkpoints` may spend; time spent by its caller is free."""

    def __init__(self, max_files: int, max_seconds: float) -> None:
        self._max_files = max_files
        self._max_seconds = max_seconds
        self._entries = 0
        self._elapsed = 0.0
        self._resumed = _clock()

    def spend_entry(self) -> bool:
        """Count one folder entry; False when the budget is spent."""
        self._entries += 1
        return self._entries <= self._max_files and not self.out_of_time()

    def out_of_time(self) -> bool:
        return self._elapsed + (_clock() - self._resumed) > self._max_seconds

    def pause(self) -> None:
        self._elapsed += _clock() - self._resumed

    def resume(self) -> None:
        self._resumed = _clock()


def find_checkpoints(
    root: Path, *, max_files: int = 200_000, max_seconds: float = 10.0
) -> Iterator[Path]:
    """Walk `root` and yield the paths worth handing to `sniff`, folder by folder.

    Yields, in name order within each folder:
    - a folder holding `model_index.json` (a diffusers pipeline, e.g. a Hugging Face cache
      snapshot), without descending into it;
    - `*.gguf` files: single files, and of each split set only the lowest part present
      (part 1 when it is there);
    - `*.safetensors` files, and of sharded ones ("-00001-of-00004") only the lowest shard;
    - pickle weights (`*.ckpt`, `*.bin`, `*.pt`, `*.pth`; shards likewise), so the caller
      can show them as unsupported; an OpenVINO `.bin` beside its `.xml` is left out.
    In a Hugging Face cache only `snapshots/` is walked (not `blobs/` or `.no_exist/`), so
    files come back under their real names; dataset and space caches are skipped.

    Links are followed, but no folder is entered twice (tracked by device and inode), so
    link loops end. Folders that cannot be read are skipped silently. `root` may also be a
    single file, yielded if it is a candidate; a missing `root` yields nothing.

    The walk stops for good, without an error, once it has looked at `max_files` folder
    entries or spent `max_seconds` of its own time (time the caller spends between items
    does not count); what it found before that has been yielded. A folder is listed whole
    before anything in it is yielded, so the folder being listed when the budget runs out
    yields nothing. A stop is logged (INFO).
    """
    budget = _WalkBudget(max_files, max_seconds)
    root = Path(root)
    try:
        root_info = root.stat()
    except OSError:
        return
    if stat.S_ISREG(root_info.st_mode):
        if _candidate_kind(root.name) is not None:
            yield root
        return
    if not stat.S_ISDIR(root_info.st_mode):
        return

    visited = {(root_info.st_dev, root_info.st_ino)}
    stack = [root]
    while stack:
        folder = stack.pop()
        listing = _list_folder(folder, budget)
        if listing is None:
            _log.info("find_checkpoints stopped early under %s: budget spent", root)
            return
        files, folders = listing
        if _MODEL_INDEX in files:
            found = [folder]
        else:
            found = [folder / name for name in _candidates(files)]
            subfolders: list[Path] = []
            for name in sorted(folders, reverse=True):
                if not _should_enter(folder, name):
                    continue
                subfolder = folder / name
                try:
                    info = subfolder.stat()
                except OSError:
                    continue
                key = (info.st_dev, info.st_ino)
                if key not in visited:
                    visited.add(key)
                    subfolders.append(subfolder)
            stack.extend(subfolders)
        for path in found:
            budget.pause()
            yield path
            budget.resume()
        if budget.out_of_time():
            _log.info("find_checkpoints stopped early under %s: out of time", root)
            return


def _list_folder(folder: Path, budget: _WalkBudget) -> tuple[set[str], list[str]] | None:
    """The file and folder names in `folder` (links followed); None when the budget ran out.

    An unreadable folder lists as empty.
    """
    files: set[str] = set()
    folders: list[str] = []
    try:
        with os.scandir(folder) as listing:
            for entry in listing:
                if not budget.spend_entry():
                    return None
                try:
                    if entry.is_dir():
                        folders.append(entry.name)
                    elif entry.is_file():
                        files.add(entry.name)
                except OSError:
                    continue
    except OSError:  # PermissionError, gone meanwhile, not a folder any more
        return set(), []
    return files, folders


def _should_enter(parent: Path, name: str) -> bool:
    """Whether to walk into `parent / name` (skips VCS folders, HF cache internals)."""
    if name in _SKIPPED_FOLDERS or name.startswith(("datasets--", "spaces--")):
        return False
    return not parent.name.startswith(_HF_CACHE_PREFIXES) or name == "snapshots"


def _candidate_kind(name: str) -> str | None:
    """The suffix that makes `name` a candidate ('.gguf', '.safetensors', '.bin'...), or None."""
    suffix = os.path.splitext(name)[1].lower()
    if suffix in (_GGUF_SUFFIX, _SAFETENSORS_SUFFIX) or suffix in _PICKLE_WEIGHT_SUFFIXES:
        return suffix
    return None


def _candidates(files: set[str]) -> list[str]:
    """The candidate file names of one folder, sorted; one per split or sharded set."""
    singles: list[str] = []
    lowest_part: dict[tuple[str, str, int], tuple[int, str]] = {}
    for name in files:
        suffix = _candidate_kind(name)
        if suffix is None:
            continue
        stem = name[: -len(suffix)]
        if suffix == ".bin" and f"{stem}.xml" in files:
            continue  # OpenVINO weights: not a pickle
        split = _SPLIT_PATTERN.match(stem)
        if split is None:
            singles.append(name)
            continue
        key = (split.group("stem"), suffix, int(split.group("total")))
        part = int(split.group("part"))
        if key not in lowest_part or part < lowest_part[key][0]:
            lowest_part[key] = (part, name)
    return sorted(singles + [name for _, name in lowest_part.values()])
