"""Model files and the folder layouts other tools write, made for real in tmp_path.

The builders are shared by the library tests; the tests here check that the layouts are
what the real tools see (the HF cache as `scan_cache_dir` reads it, for one).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

from huggingface_hub import scan_cache_dir

from app.library import AppFolders, CheckpointFormat, ModelKind, sniff

# -- files ------------------------------------------------------------------------------------

_GGUF_STRING, _GGUF_U32 = 8, 4


def _gguf_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def gguf_bytes(
    *,
    architecture: str = "llama",
    name: str = "Tiny",
    context_length: int = 2048,
    file_type: int = 15,  # Q4_K_M
    salt: int = 0,
    elements: int = 32,
) -> bytes:
    """A valid GGUF v3 file: a little metadata and one F32 tensor of `elements` values.

    `salt` changes the tensor data only, so two files can have the same size and differ.
    """
    metadata = [
        ("general.architecture", _GGUF_STRING, _gguf_string(architecture)),
        ("general.name", _GGUF_STRING, _gguf_string(name)),
        ("general.file_type", _GGUF_U32, struct.pack("<I", file_type)),
        (f"{architecture}.context_length", _GGUF_U32, struct.pack("<I", context_length)),
        ("tokenizer.chat_template", _GGUF_STRING, _gguf_string("{{ messages }}")),
    ]
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, 1, len(metadata)))
    for key, value_type, value in metadata:
        out += _gguf_string(key) + struct.pack("<I", value_type) + value
    out += _gguf_string("token_embd.weight") + struct.pack("<IQIQ", 1, elements, 0, 0)
    out += b"\0" * (-len(out) % 32)
    out += struct.pack(f"<{elements}f", *(float(salt + i) for i in range(elements)))
    return bytes(out)


def safetensors_bytes(*, diffusion: bool = True, salt: int = 0) -> bytes:
    """A valid safetensors file; with `diffusion`, tensor names of an SD 1.x checkpoint."""
    names = (
        [
            "model.diffusion_model.input_blocks.0.0.weight",
            "cond_stage_model.transformer.text_model.embeddings.weight",
        ]
        if diffusion
        else ["model.layers.0.self_attn.q_proj.weight", "lm_head.weight"]
    )
    header: dict[str, object] = {}
    for index, name in enumerate(names):
        header[name] = {"dtype": "F16", "shape": [2, 2], "data_offsets": [index * 8, index * 8 + 8]}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + bytes([salt % 256]) * (8 * len(names))


PICKLE_BYTES = b"\x80\x04\x95" + b"\0" * 32  # the start of a pickle: never loaded


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_diffusers(folder: Path, *, salt: int = 0) -> Path:
    """A small diffusers pipeline folder (model_index.json, a UNet and a VAE)."""
    index = {
        "_class_name": "StableDiffusionPipeline",
        "unet": ["diffusers", "UNet2DConditionModel"],
    }
    write(folder / "model_index.json", json.dumps(index).encode())
    write(folder / "unet" / "config.json", b"{}")
    write(folder / "unet" / "diffusion_pytorch_model.safetensors", safetensors_bytes(salt=salt))
    write(folder / "vae" / "diffusion_pytorch_model.safetensors", safetensors_bytes(salt=salt + 1))
    return folder


# -- the HF cache -----------------------------------------------------------------------------


def write_hf_repo(
    cache: Path,
    repo_id: str,
    files: dict[str, bytes],
    *,
    revision: str = "0123456789abcdef0123456789abcdef01234567",
    ref: str | None = "main",
) -> Path:
    """A cached repo revision laid out as huggingface_hub writes it; returns the snapshot.

    Weights (.gguf, .safetensors) are LFS files: their blob is named by their sha256; other
    files by their git blob id. Snapshot entries are relative links into blobs/.
    """
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    for relative, data in files.items():
        if relative.endswith((".gguf", ".safetensors")):
            blob_name = hashlib.sha256(data).hexdigest()
        else:
            blob_name = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        blob = write(repo / "blobs" / blob_name, data)
        link = snapshot / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    snapshot.mkdir(parents=True, exist_ok=True)
    if ref is not None:
        write(repo / "refs" / ref, revision.encode())
    return snapshot


# -- other apps -------------------------------------------------------------------------------


def write_ollama(
    root: Path, model: str, tag: str, data: bytes, *, namespace: str = "library"
) -> tuple[Path, Path]:
    """An Ollama model: its GGUF blob and a manifest; returns (blob, manifest)."""
    digest = hashlib.sha256(data).hexdigest()
    blob = write(root / "blobs" / f"sha256-{digest}", data)
    template = b"{{ .Prompt }}"
    template_digest = hashlib.sha256(template).hexdigest()
    write(root / "blobs" / f"sha256-{template_digest}", template)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 2,
            "digest": "sha256:" + "c" * 64,
        },
        "layers": [
            {
                "mediaType": "application/vnd.ollama.image.model",
                "digest": f"sha256:{digest}",
                "size": len(data),
            },
            {
                "mediaType": "application/vnd.ollama.image.template",
                "digest": f"sha256:{template_digest}",
                "size": len(template),
            },
        ],
    }
    path = write(
        root / "manifests" / "registry.ollama.ai" / namespace / model / tag,
        json.dumps(manifest).encode(),
    )
    return blob, path


def app_folders(base: Path) -> AppFolders:
    """Other apps' folders under `base` (created empty)."""
    folders = AppFolders(
        lm_studio=(base / "lmstudio" / "models",),
        ollama=(base / "ollama" / "models",),
        gpt4all=(base / "gpt4all",),
    )
    for root in (*folders.lm_studio, *folders.ollama, *folders.gpt4all):
        root.mkdir(parents=True, exist_ok=True)
    return folders


# -- the builders are what the real tools see ------------------------------------------------


def test_the_hand_made_cache_is_what_scan_cache_dir_sees(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    gguf = gguf_bytes()
    snapshot = write_hf_repo(
        cache,
        "org/tiny-GGUF",
        {"tiny-Q4_K_M.gguf": gguf, "README.md": b"# tiny", "sub/a.json": b"{}"},
    )
    info = scan_cache_dir(cache)
    assert not info.warnings
    (repo,) = info.repos
    assert repo.repo_id == "org/tiny-GGUF"
    (revision,) = repo.revisions
    assert revision.refs == frozenset({"main"})
    assert revision.snapshot_path == snapshot.resolve()
    files = {file.file_name: file for file in revision.files}
    assert set(files) == {"tiny-Q4_K_M.gguf", "README.md", "a.json"}
    assert files["tiny-Q4_K_M.gguf"].blob_path.name == hashlib.sha256(gguf).hexdigest()
    assert files["tiny-Q4_K_M.gguf"].size_on_disk == len(gguf)


def test_the_model_files_are_what_sniff_reads(tmp_path: Path) -> None:
    checkpoint = sniff(write(tmp_path / "m-Q4_K_M.gguf", gguf_bytes(architecture="qwen2")))
    assert (checkpoint.format, checkpoint.kind) == (CheckpointFormat.GGUF, ModelKind.LLM_GGUF)
    assert (checkpoint.architecture, checkpoint.context_length) == ("qwen2", 2048)
    assert checkpoint.parameter_count == 32
    single = sniff(write(tmp_path / "sd.safetensors", safetensors_bytes()))
    assert single.kind is ModelKind.DIFFUSION_SINGLE_FILE
    assert sniff(write(tmp_path / "llm.safetensors", safetensors_bytes(diffusion=False))).kind is (
        ModelKind.OTHER
    )
    pipeline = sniff(write_diffusers(tmp_path / "pipe"))
    assert pipeline.kind is ModelKind.DIFFUSERS_PIPELINE
    assert sniff(write(tmp_path / "old.ckpt", PICKLE_BYTES)).format is CheckpointFormat.PICKLE
    assert len(gguf_bytes(salt=1)) == len(gguf_bytes()) != len(gguf_bytes(elements=64))
