"""The diffusers-format configs a single-file SD checkpoint needs to load offline.

A single `.safetensors` SD checkpoint holds weights only. diffusers' `from_single_file`
builds the pipeline from a folder of configs (model_index.json, each component's
config.json, the tokenizer's vocabulary) that it normally fetches from a reference repository
on the hub. ModelDeck never asks the hub at load time: it uses that repository's snapshot when
it is in the HF cache, and otherwise the copies shipped in `app/images/configs/`, written out
once into a folder (`config_folder`).

The shipped tokenizers share one CLIP BPE vocabulary, kept once as its merges
(`clip-merges.txt.gz`); `vocab.json` is derived from them exactly as CLIP builds it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from app.errors import CheckpointError
from app.untrusted_json import parse_untrusted_json

__all__ = [
    "FAMILY_CONFIGS",
    "FamilyConfig",
    "clip_vocabulary",
    "config_folder",
    "family_config",
]


@dataclass(frozen=True)
class FamilyConfig:
    """A model family loadable from a single file, and where its configs come from."""

    family: str  # as `sniff` names it: "SD 1.x", "SD 2.x", "SDXL"
    folder: str  # the shipped copy, under app/images/configs/
    reference_repo: str  # the hub repository diffusers takes the configs from
    tokenizers: tuple[str, ...]  # subfolders that need vocab.json + merges.txt


FAMILY_CONFIGS: tuple[FamilyConfig, ...] = (
    FamilyConfig("SD 1.x", "sd1", "stable-diffusion-v1-5/stable-diffusion-v1-5", ("tokenizer",)),
    FamilyConfig("SD 2.x", "sd2", "stabilityai/stable-diffusion-2-1", ("tokenizer",)),
    FamilyConfig(
        "SDXL", "sdxl", "stabilityai/stable-diffusion-xl-base-1.0", ("tokenizer", "tokenizer_2")
    ),
)

_MERGES_FILE = "clip-merges.txt.gz"
_TOKENIZER_FILES = ("vocab.json", "merges.txt")


def family_config(family: str | None) -> FamilyConfig | None:
    """The single-file config of `family` ("SD 1.x", …), or None when it is not supported."""
    return next((config for config in FAMILY_CONFIGS if config.family == family), None)


def config_folder(family: str, *, cache_dir: Path, hf_cache_dir: Path | None = None) -> Path:
    """A local diffusers-format config folder for a single-file checkpoint of `family`.

    The reference repository's snapshot in the HF cache wins when it holds every needed file;
    otherwise the shipped configs are written once into `cache_dir` (a folder per family and
    content version, written atomically, so concurrent engines and upgrades never see a half
    copy).

    Raises:
        CheckpointError: the family has no single-file config here.
    """
    config = family_config(family)
    if config is None:
        raise CheckpointError(
            f"ModelDeck cannot load single-file {family or 'unknown'} checkpoints",
            path="",
            hint="Supported single files: SD 1.x, SD 2.x and SDXL. Use the diffusers "
            "version of this model instead.",
        )
    if hf_cache_dir is not None:
        cached = _cached_snapshot(config, hf_cache_dir)
        if cached is not None:
            return cached
    return _shipped_copy(config, cache_dir)


def clip_vocabulary(merges: list[str]) -> dict[str, int]:
    """CLIP's vocabulary from its BPE merges: 256 byte symbols, the same with `</w>`, one
    token per merge, then `<|startoftext|>` and `<|endoftext|>` (ids 49406/49407 in CLIP)."""
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [symbol + "</w>" for symbol in symbols]
    tokens += ["".join(merge.split(" ")) for merge in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable characters."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(code) for code in codes), strict=True))


def _cached_snapshot(config: FamilyConfig, hf_cache_dir: Path) -> Path | None:
    """The newest snapshot of the reference repo in the HF cache that has every config file."""
    repo_folder = hf_cache_dir / ("models--" + config.reference_repo.replace("/", "--"))
    snapshots = repo_folder / "snapshots"
    try:
        candidates = sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return None
    for snapshot in candidates:
        needed = _needed_files(snapshot)
        if needed and all((snapshot / name).is_file() for name in needed):
            return snapshot
    return None


_MAX_MODEL_INDEX = 1024 * 1024
# Components `from_single_file` never reads from the config folder.
_SKIPPED_COMPONENTS = frozenset({"safety_checker"})


def _needed_files(folder: Path) -> list[str]:
    """Paths (relative) that `from_single_file` reads from a config folder; [] if it has no
    readable model_index.json."""
    try:
        with open(folder / "model_index.json", "rb") as file:
            raw = file.read(_MAX_MODEL_INDEX + 1)
        # A cached snapshot is a stranger's file: size and nesting are bounded.
        index = parse_untrusted_json(raw, max_bytes=_MAX_MODEL_INDEX, what="model_index.json")
    except (OSError, ValueError):  # ValueError includes UntrustedJsonError
        return []
    if not isinstance(index, dict):
        return []
    needed = ["model_index.json"]
    for name, value in index.items():
        if name.startswith("_") or name in _SKIPPED_COMPONENTS:
            continue
        if not isinstance(value, list) or len(value) != 2 or value[0] is None:
            continue
        class_name = str(value[1])
        if "Tokenizer" in class_name:
            needed += [f"{name}/{file}" for file in _TOKENIZER_FILES]
        elif "Scheduler" in class_name:
            needed.append(f"{name}/scheduler_config.json")
        elif "Processor" in class_name or "FeatureExtractor" in class_name:
            needed.append(f"{name}/preprocessor_config.json")
        else:
            needed.append(f"{name}/config.json")
    return needed


def _shipped_copy(config: FamilyConfig, cache_dir: Path) -> Path:
    configs = resources.files("app.images").joinpath("configs")
    source = configs.joinpath(config.folder)
    digest = hashlib.sha256()
    files: list[tuple[str, bytes]] = []
    for relative, item in sorted(_walk(source)):
        data = item.read_bytes()
        files.append((relative, data))
        digest.update(relative.encode() + b"\0" + data)
    merges_gz = configs.joinpath(_MERGES_FILE).read_bytes()
    digest.update(merges_gz)
    target = cache_dir / f"{config.folder}-{digest.hexdigest()[:12]}"
    if (target / "model_index.json").is_file():
        return target

    merges_text = gzip.decompress(merges_gz).decode("utf-8")
    merges = [line for line in merges_text.split("\n")[1:] if line]
    vocabulary = json.dumps(clip_vocabulary(merges), ensure_ascii=False).encode("utf-8")
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{config.folder}-", dir=cache_dir))
    try:
        for relative, data in files:
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        for tokenizer in config.tokenizers:
            (staging / tokenizer / "vocab.json").write_bytes(vocabulary)
            (staging / tokenizer / "merges.txt").write_text(merges_text, encoding="utf-8")
        try:
            os.replace(staging, target)
        except OSError:  # another engine wrote it first
            if not (target / "model_index.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _walk(folder: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    found: list[tuple[str, Traversable]] = []
    for item in folder.iterdir():
        relative = f"{prefix}{item.name}"
        if item.is_dir():
            found += _walk(item, relative + "/")
        elif item.name.endswith(".json"):
            found.append((relative, item))
    return found
