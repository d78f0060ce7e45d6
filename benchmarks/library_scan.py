"""Library.scan() on a generated HF cache of 1,000 repos / 5,000 files, against
huggingface_hub's scan_cache_dir() alone on the same cache.

The cache is laid out as huggingface_hub writes it (blobs named by sha256, relative links in
snapshots/, refs/main): 800 GGUF repos (a small but valid GGUF, a README with a license, three
small files), 100 diffusers pipelines and 100 single-file safetensors checkpoints. Other apps'
folders are left out (`AppFolders()`), so only the cache is measured. Runs are interleaved so
that machine noise hits both alike; prints the medians and their ratios:

- cold: a new `Library` each run (every GGUF header and README read again);
- warm: the same `Library` scanning again (headers and licenses remembered in memory).

    .venv/bin/python -m benchmarks.library_scan [--runs 7] [--repos 1000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

from huggingface_hub import scan_cache_dir

from app.library import AppFolders, Library
from app.store import Database

REVISION = "0123456789abcdef0123456789abcdef01234567"


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def _gguf(index: int) -> bytes:
    """A valid GGUF v3 file: architecture, name, file type, context length; one F32 tensor."""
    metadata = [
        ("general.architecture", 8, _string("llama")),
        ("general.name", 8, _string(f"Model {index}")),
        ("general.file_type", 4, struct.pack("<I", 15)),
        ("llama.context_length", 4, struct.pack("<I", 4096)),
    ]
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, 1, len(metadata)))
    for key, kind, value in metadata:
        out += _string(key) + struct.pack("<I", kind) + value
    out += _string("token_embd.weight") + struct.pack("<IQIQ", 1, 64, 0, 0)
    out += b"\0" * (-len(out) % 32)
    return bytes(out + struct.pack("<64f", *(float(index + i) for i in range(64))))


def _safetensors(index: int) -> bytes:
    names = ["model.diffusion_model.input_blocks.0.0.weight", "cond_stage_model.transformer.x"]
    header = {
        name: {"dtype": "F16", "shape": [2, 2], "data_offsets": [i * 8, i * 8 + 8]}
        for i, name in enumerate(names)
    }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + bytes([index % 256]) * 16


def _write_repo(cache: Path, repo_id: str, files: dict[str, bytes]) -> None:
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / REVISION
    (repo / "blobs").mkdir(parents=True)
    for relative, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)


def build_cache(cache: Path, repos: int) -> int:
    """Write the cache; returns the number of files."""
    card = b"---\nlicense: apache-2.0\ntags:\n- text-generation\n---\n# A model\n"
    files_written = 0
    for index in range(repos):
        if index % 10 == 0:
            files = {
                "model_index.json": b'{"_class_name": "StableDiffusionPipeline"}',
                "unet/config.json": b"{}",
                "unet/diffusion_pytorch_model.safetensors": _safetensors(index),
                "vae/diffusion_pytorch_model.safetensors": _safetensors(index + 1),
                "README.md": card,
            }
        elif index % 10 == 5:
            files = {
                f"checkpoint-{index}.safetensors": _safetensors(index),
                "README.md": card,
                "a.json": b"{}",
                "b.json": b"[]",
                ".gitattributes": b"*.safetensors lfs",
            }
        else:
            files = {
                f"model-{index}-Q4_K_M.gguf": _gguf(index),
                "README.md": card,
                "config.json": b"{}",
                "tokenizer.json": b'{"v": 1}',
                ".gitattributes": b"*.gguf lfs",
            }
        _write_repo(cache, f"org/model-{index}", files)
        files_written += len(files)
    return files_written


def _timed(call: object) -> float:
    assert callable(call)
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--repos", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        cache = root / "hub"
        file_count = build_cache(cache, args.repos)
        database = Database(root / "app.sqlite3")

        def new_library() -> Library:
            return Library(database, hf_cache_dir=cache, app_folders=AppFolders())

        warm_library = new_library()
        entries = len(warm_library.scan())  # also warms the OS file cache
        scan_cache_dir(cache)
        alone, cold, warm = [], [], []
        for _ in range(args.runs):
            alone.append(_timed(lambda: scan_cache_dir(cache)))
            cold.append(_timed(lambda: new_library().scan()))
            warm.append(_timed(warm_library.scan))
        database.close()
    base = statistics.median(alone)
    print(f"cache: {args.repos} repos, {file_count} files, {entries} library entries")
    print(f"runs: {args.runs}, python {sys.version.split()[0]}")
    print(f"scan_cache_dir alone, median:     {base * 1000:7.0f} ms")
    for label, times in (("cold (new Library)", cold), ("warm (same Library)", warm)):
        median = statistics.median(times)
        print(
            f"Library.scan {label}, median: {median * 1000:7.0f} ms  "
            f"ratio {median / base:.2f}  (target <= 1.5)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
