"""Identifying checkpoints from their headers: real files written in tmp_path.

Valid GGUF files come from the `gguf` package's writer (the tiny 2-block llama layout of
TESTING.md); hostile and broken ones are written byte by byte with `struct`.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import pickle
import struct
import tracemalloc
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gguf import GGUFWriter

from app.errors import CheckpointError
from app.library.sniff import (
    Checkpoint,
    CheckpointFormat,
    GgufShape,
    ModelKind,
    find_checkpoints,
    sniff,
)
from tests.support.gguf_builder import tiny_llama_tensors, write_gguf

# `app.library` re-exports the function `sniff`, which hides the module of the same name.
sniff_module = importlib.import_module("app.library.sniff")

# --- writing test files ----------------------------------------------------------------------


def parameters(tensors: Mapping[str, np.ndarray[Any, Any]]) -> int:
    return sum(array.size for array in tensors.values())


def gguf_header(version: int = 3, tensor_count: int = 0, kv_count: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensor_count, kv_count)


def gguf_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


DTYPE_SIZES = {"F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "I64": 8, "U8": 1}


def write_safetensors(
    path: Path,
    tensors: Mapping[str, tuple[str, list[int]]],
    *,
    metadata: Mapping[str, str] | None = None,
    missing_bytes: int = 0,
) -> Path:
    """Write a safetensors file with zeroed data; `missing_bytes` cuts the data short."""
    header: dict[str, Any] = {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        nbytes = math.prod(shape) * DTYPE_SIZES[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    if metadata is not None:
        header["__metadata__"] = dict(metadata)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset - missing_bytes))
    return path


def write_raw(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def tiny_gguf(tmp_path: Path) -> Path:
    """A runnable 2-block llama GGUF, Q8_0 embeddings, file type Q4_K_M, ChatML template."""
    tensors = tiny_llama_tensors()
    embeddings = tensors.pop("token_embd.weight")
    return write_gguf(
        tmp_path / "models" / "Tiny-Llama-Q4_K_M.gguf",
        tensors=tensors,
        quantized={"token_embd.weight": embeddings},
    )


def error_of(path: Path, *, about: Path | None = None) -> CheckpointError:
    """The error sniffing `path` raises; its `path` must be `about` (default: `path`)."""
    with pytest.raises(CheckpointError) as caught:
        sniff(path)
    assert caught.value.path == str(about or path)
    return caught.value


# --- GGUF ------------------------------------------------------------------------------------

# The tiny llama's tensor bytes, by hand: vocabulary 259, embedding 64, feed-forward 128;
# weights F16 (2 bytes), norms F32 (4 bytes); Q8_0 stores 32 elements in 34 bytes.
VOCAB, EMBED, FF = 259, 64, 128
LAYER_BYTES = (
    EMBED * 4  # attn_norm
    + 4 * EMBED * EMBED * 2  # attn_q, attn_k, attn_v, attn_output
    + EMBED * 4  # ffn_norm
    + 3 * FF * EMBED * 2  # ffn_gate, ffn_up, ffn_down
)
EMBEDDING_F16_BYTES = VOCAB * EMBED * 2
EMBEDDING_Q8_0_BYTES = VOCAB * (EMBED // 32) * 34
OUTPUT_BYTES = EMBED * 4 + VOCAB * EMBED * 2  # output_norm + output


def test_gguf_reports_what_its_header_says(tiny_gguf: Path) -> None:
    checkpoint = sniff(tiny_gguf)

    assert checkpoint == Checkpoint(
        path=tiny_gguf,
        format=CheckpointFormat.GGUF,
        kind=ModelKind.LLM_GGUF,
        size=tiny_gguf.stat().st_size,
        name="Tiny Llama",
        architecture="llama",
        parameter_count=parameters(tiny_llama_tensors()),
        quantization="Q4_K_M",
        context_length=512,
        has_chat_template=True,
        tensor_count=21,
        dtypes=(),
        family=None,
        gguf_shape=GgufShape(
            architecture="llama",
            block_count=2,
            embedding_length=64,
            head_count=4,
            head_count_kv=4,
            key_length=16,  # 64 / 4 heads: the header gives no key_length
            value_length=16,
            context_length=512,
            kv_heads_per_layer=(4, 4),
            layer_bytes=(LAYER_BYTES, LAYER_BYTES),
            embedding_bytes=EMBEDDING_Q8_0_BYTES,
            output_bytes=OUTPUT_BYTES,
            other_bytes=0,
            tied_embeddings=False,
        ),
    )


def test_gguf_agrees_with_the_gguf_package_reader(tiny_gguf: Path) -> None:
    from gguf import GGUFReader

    reference = GGUFReader(tiny_gguf)
    checkpoint = sniff(tiny_gguf)

    assert checkpoint.tensor_count == len(reference.tensors)
    assert checkpoint.parameter_count == sum(int(t.n_elements) for t in reference.tensors)


def test_gguf_without_name_file_type_or_template(tmp_path: Path) -> None:
    path = write_gguf(
        tmp_path / "my-model.Q5_K_M.gguf", name=None, file_type=None, chat_template=None
    )

    checkpoint = sniff(path)

    assert checkpoint.name == "my-model.Q5_K_M"
    assert checkpoint.quantization == "Q5_K_M"  # from the file name
    assert checkpoint.has_chat_template is False


def test_gguf_quantization_falls_back_to_the_main_tensor_type(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "model.gguf", file_type=None)

    assert sniff(path).quantization == "F16"


@pytest.mark.parametrize(
    ("filename", "file_type", "expected"),
    [
        ("Model-UD-Q4_K_XL.gguf", 15, "UD-Q4_K_XL"),  # no file type says "UD-...XL"
        ("Model-Q6_K_L.gguf", 18, "Q6_K_L"),
        ("Model-Q8_0.gguf", 15, "Q4_K_M"),  # a wrong name does not beat the header
        ("model.gguf", 7, "Q8_0"),
        ("model.gguf", 32, "BF16"),
        ("model.gguf", 38, "MXFP4"),
    ],
)
def test_gguf_quantization_from_file_type_and_name(
    tmp_path: Path, filename: str, file_type: int, expected: str
) -> None:
    path = write_gguf(tmp_path / filename, file_type=file_type)

    assert sniff(path).quantization == expected


def write_split_model(folder: Path, total: int = 3) -> list[Path]:
    """The tiny llama split over `total` parts, with llama.cpp's split.* metadata."""
    every = tiny_llama_tensors()
    names = list(every)
    chunk = -(-len(names) // total)
    paths = []
    for index in range(total):
        part_tensors = {name: every[name] for name in names[index * chunk : (index + 1) * chunk]}

        def add_split(writer: GGUFWriter, index: int = index) -> None:
            writer.add_uint16("split.no", index)
            writer.add_uint16("split.count", total)
            writer.add_int32("split.tensors.count", len(names))

        paths.append(
            write_gguf(
                folder / f"Tiny-Q4_K_M-{index + 1:05d}-of-{total:05d}.gguf",
                tensors=part_tensors,
                extra=add_split,
            )
        )
    return paths


def test_split_gguf_part_one_covers_every_part(tmp_path: Path) -> None:
    parts = write_split_model(tmp_path / "split")

    checkpoint = sniff(parts[0])

    assert checkpoint.split_parts == tuple(parts)
    assert checkpoint.size == sum(part.stat().st_size for part in parts)
    assert checkpoint.tensor_count == 21
    assert checkpoint.parameter_count == parameters(tiny_llama_tensors())
    assert checkpoint.quantization == "Q4_K_M"
    assert checkpoint.warning is None


def test_split_gguf_shape_sums_every_part(tmp_path: Path) -> None:
    parts = write_split_model(tmp_path / "split")
    single = sniff(write_gguf(tmp_path / "single" / "Tiny-Q4_K_M.gguf")).gguf_shape

    shape = sniff(parts[0]).gguf_shape

    assert shape is not None
    assert shape == single
    assert shape.layer_bytes == (LAYER_BYTES, LAYER_BYTES)
    assert shape.embedding_bytes == EMBEDDING_F16_BYTES
    assert shape.output_bytes == OUTPUT_BYTES


def test_split_gguf_with_a_missing_part_says_which(tmp_path: Path) -> None:
    parts = write_split_model(tmp_path / "split")
    parts[1].unlink()

    checkpoint = sniff(parts[0])

    assert checkpoint.split_parts == (parts[0], parts[2])
    assert checkpoint.warning == "split model: part 00002 of 00003 missing"
    assert checkpoint.parameter_count is None
    assert checkpoint.gguf_shape is None  # the layers in the missing part are unknown


def test_split_gguf_later_part_points_to_part_one(tmp_path: Path) -> None:
    parts = write_split_model(tmp_path / "split")

    checkpoint = sniff(parts[1])

    assert checkpoint.split_parts == ()
    assert checkpoint.name == "Tiny Llama"
    assert checkpoint.warning is not None
    assert "part 00002 of 00003" in checkpoint.warning
    assert checkpoint.gguf_shape is None


def test_split_gguf_with_a_truncated_later_part_is_an_error(tmp_path: Path) -> None:
    parts = write_split_model(tmp_path / "split")
    with parts[2].open("r+b") as file:
        file.truncate(parts[2].stat().st_size - 1)

    error = error_of(parts[0], about=parts[2])

    assert "truncated" in error.message
    assert parts[2].name in error.message


# --- GGUF shape: what a memory estimate needs ------------------------------------------------


def test_gguf_shape_of_the_f16_model_by_hand(tmp_path: Path) -> None:
    shape = sniff(write_gguf(tmp_path / "tiny.gguf")).gguf_shape

    assert shape is not None
    assert (shape.block_count, shape.embedding_length) == (2, 64)
    assert (shape.head_count, shape.head_count_kv, shape.key_length) == (4, 4, 16)
    assert shape.layer_bytes == (82_432, 82_432) == (LAYER_BYTES, LAYER_BYTES)
    assert shape.layer_bytes_average == LAYER_BYTES
    assert shape.embedding_bytes == 33_152 == EMBEDDING_F16_BYTES
    assert shape.output_bytes == 33_408 == OUTPUT_BYTES
    assert shape.non_layer_bytes == EMBEDDING_F16_BYTES + OUTPUT_BYTES
    assert shape.tensor_bytes == 231_424
    assert shape.output_layer_bytes_on_gpu == OUTPUT_BYTES
    # K and V: 4 KV heads x 16 each, per layer, per token.
    assert shape.kv_elements_per_token() == 2 * 4 * (16 + 16)
    assert shape.kv_elements_per_token([1]) == 4 * (16 + 16)


def test_gguf_shape_counts_q8_0_blocks(tmp_path: Path) -> None:
    tensors = tiny_llama_tensors()
    quantized = {name: tensors.pop(name) for name in ("token_embd.weight", "blk.1.attn_q.weight")}

    shape = sniff(write_gguf(tmp_path / "q8.gguf", tensors=tensors, quantized=quantized)).gguf_shape

    assert shape is not None
    assert shape.embedding_bytes == 17_612 == VOCAB * 2 * 34  # 2 blocks of 32 per row
    q8_attn_q = EMBED * 2 * 34
    assert shape.layer_bytes == (LAYER_BYTES, LAYER_BYTES - EMBED * EMBED * 2 + q8_attn_q)


def test_gguf_shape_tensor_bytes_agree_with_the_gguf_package(tiny_gguf: Path) -> None:
    from gguf import GGUFReader

    reference = GGUFReader(tiny_gguf)
    shape = sniff(tiny_gguf).gguf_shape

    assert shape is not None
    assert shape.tensor_bytes == sum(int(t.n_bytes) for t in reference.tensors)


def test_ggml_type_table_matches_the_gguf_package() -> None:
    from gguf.constants import GGML_QUANT_SIZES

    for ggml_type, (block, block_bytes) in GGML_QUANT_SIZES.items():
        assert sniff_module._GGML_TYPES[int(ggml_type)] == (ggml_type.name, block, block_bytes)


def test_gguf_shape_with_tied_embeddings(tmp_path: Path) -> None:
    tensors = tiny_llama_tensors()
    del tensors["output.weight"]

    shape = sniff(write_gguf(tmp_path / "tied.gguf", tensors=tensors)).gguf_shape

    assert shape is not None
    assert shape.tied_embeddings
    assert shape.output_bytes == EMBED * 4  # output_norm only
    # llama.cpp loads a copy of token_embd as the output matrix where the output layer runs.
    assert shape.output_layer_bytes_on_gpu == EMBED * 4 + EMBEDDING_F16_BYTES


def write_shaped_gguf(path: Path, add_metadata: Any) -> Path:
    """A GGUF of the tiny llama's tensors with only the metadata `add_metadata` writes."""
    writer = GGUFWriter(path, "llama")
    add_metadata(writer)
    for name, array in tiny_llama_tensors().items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_shape_with_per_layer_kv_heads_and_key_length(tmp_path: Path) -> None:
    def metadata(writer: GGUFWriter) -> None:
        writer.add_block_count(2)
        writer.add_embedding_length(64)
        writer.add_head_count(4)
        writer.add_array("llama.attention.head_count_kv", [4, 1])
        writer.add_key_length(32)
        writer.add_value_length(24)

    shape = sniff(write_shaped_gguf(tmp_path / "varied.gguf", metadata)).gguf_shape

    assert shape is not None
    assert shape.kv_heads_per_layer == (4, 1)
    assert shape.head_count_kv == 4
    assert (shape.key_length, shape.value_length) == (32, 24)
    assert shape.context_length is None
    assert shape.kv_elements_per_token() == (4 + 1) * (32 + 24)


def test_gguf_shape_defaults_kv_heads_to_heads(tmp_path: Path) -> None:
    def metadata(writer: GGUFWriter) -> None:
        writer.add_block_count(2)
        writer.add_embedding_length(64)
        writer.add_head_count(8)

    shape = sniff(write_shaped_gguf(tmp_path / "mha.gguf", metadata)).gguf_shape

    assert shape is not None
    assert (shape.head_count_kv, shape.key_length, shape.value_length) == (8, 8, 8)


@pytest.mark.parametrize("missing", ["block_count", "embedding_length", "head_count"])
def test_gguf_shape_needs_the_essentials(tmp_path: Path, missing: str) -> None:
    def metadata(writer: GGUFWriter) -> None:
        if missing != "block_count":
            writer.add_block_count(2)
        if missing != "embedding_length":
            writer.add_embedding_length(64)
        if missing != "head_count":
            writer.add_head_count(4)

    checkpoint = sniff(write_shaped_gguf(tmp_path / "partial.gguf", metadata))

    assert checkpoint.parameter_count == parameters(tiny_llama_tensors())
    assert checkpoint.gguf_shape is None


def hand_made_gguf(tensor_type: int) -> bytes:
    """One 64-element tensor in layer 0; general.architecture after the keys it prefixes."""

    def u32(key: str, value: int) -> bytes:
        return gguf_string(key) + struct.pack("<II", 4, value)

    metadata = (
        u32("llama.block_count", 1)
        + u32("llama.embedding_length", 64)
        + u32("llama.attention.head_count", 4)
        + gguf_string("general.architecture")
        + struct.pack("<I", 8)
        + gguf_string("llama")
    )
    tensor = gguf_string("blk.0.attn_norm.weight") + struct.pack("<IQIQ", 1, 64, tensor_type, 0)
    data = gguf_header(tensor_count=1, kv_count=4) + metadata + tensor
    return data + bytes(-len(data) % 32) + bytes(64 * 4)


def test_gguf_shape_from_metadata_in_any_order(tmp_path: Path) -> None:
    shape = sniff(write_raw(tmp_path / "f32.gguf", hand_made_gguf(0))).gguf_shape

    assert shape is not None
    assert shape.layer_bytes == (64 * 4,)
    assert shape.tied_embeddings  # no output.weight


def test_gguf_shape_is_unknown_with_an_unknown_tensor_type(tmp_path: Path) -> None:
    checkpoint = sniff(write_raw(tmp_path / "future.gguf", hand_made_gguf(99)))

    assert checkpoint.architecture == "llama"
    assert checkpoint.gguf_shape is None


# Cuts in the magic, the counts, the metadata, the tensor infos and the tensor data (the last
# tensor ends with a few bytes of alignment padding, so the cut must be deeper than that).
@pytest.mark.parametrize("cut", [1, 3, 4, 6, 12, 20, 24, 40, 200, 1000, 2000, 3000, -1000, -40])
def test_truncated_gguf_is_reported(tiny_gguf: Path, cut: int) -> None:
    data = tiny_gguf.read_bytes()
    truncated = write_raw(tiny_gguf.with_name("cut.gguf"), data[:cut])

    error = error_of(truncated)

    assert "truncated" in error.message
    assert error.hint is not None


@pytest.mark.parametrize(
    ("content", "looks_like"),
    [
        (b"PK\x03\x04" + bytes(60), "zip archive"),
        (b"\x80\x04\x95" + bytes(60), "pickle"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 12\n", "Git LFS"),
        (b"<!DOCTYPE html><html><body>Not found</body></html>", "HTML"),
        (struct.pack("<Q", 2) + b"{}", "safetensors"),
        (b"\x00\x01\x02\x03" * 16, None),
    ],
)
def test_gguf_with_wrong_magic_says_what_it_looks_like(
    tmp_path: Path, content: bytes, looks_like: str | None
) -> None:
    error = error_of(write_raw(tmp_path / "model.gguf", content))

    assert "not a GGUF file" in error.message
    if looks_like is None:
        assert "looks like" not in error.message
    else:
        assert looks_like in error.message


def test_gguf_claiming_2_to_the_40_tensors(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "evil.gguf", gguf_header(tensor_count=2**40) + bytes(4096))

    error = error_of(path)

    assert f"header claims {2**40} tensors; the file is too small" in error.message


def test_gguf_claiming_a_billion_metadata_entries(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "evil.gguf", gguf_header(kv_count=10**9) + bytes(4096))

    assert f"header claims {10**9} metadata entries" in error_of(path).message


@pytest.mark.parametrize(
    ("tensors", "entries", "message"),
    [
        (10**6, 0, f"header claims {10**6} tensors; no real model has that many"),
        (0, 10**6, f"header claims {10**6} metadata entries; no real model has that many"),
    ],
)
def test_gguf_counts_beyond_any_real_model(
    tmp_path: Path, tensors: int, entries: int, message: str
) -> None:
    path = write_raw(tmp_path / "evil.gguf", gguf_header(tensor_count=tensors, kv_count=entries))
    os.truncate(path, 64 * 2**20)  # sparse, and big enough for the counts

    assert message in error_of(path).message


def test_gguf_claiming_a_4_gb_metadata_string(tmp_path: Path) -> None:
    data = gguf_header(kv_count=1) + gguf_string("general.name") + struct.pack("<IQ", 8, 2**32)
    path = write_raw(tmp_path / "evil.gguf", data + bytes(1024))

    error = error_of(path)

    assert "4294967296 bytes" in error.message
    assert "general.name" in error.message


def test_gguf_string_over_64_mib_is_refused_even_in_a_big_file(tmp_path: Path) -> None:
    data = gguf_header(kv_count=1) + gguf_string("general.name") + struct.pack("<IQ", 8, 2**32)
    path = write_raw(tmp_path / "evil.gguf", data)
    os.truncate(path, 5 * 2**30)  # sparse: takes no room on disk

    tracemalloc.start()
    try:
        error = error_of(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert "more than 64 MiB" in error.message
    assert peak < 4 * 2**20


def test_gguf_array_claiming_more_items_than_the_file_holds(tmp_path: Path) -> None:
    data = (
        gguf_header(kv_count=1)
        + gguf_string("tokenizer.ggml.tokens")
        + struct.pack("<IIQ", 9, 8, 2**40)  # ARRAY of STRING, 2^40 items
    )
    path = write_raw(tmp_path / "evil.gguf", data + bytes(1024))

    assert "claims 1099511627776 items" in error_of(path).message


def test_gguf_per_layer_array_claiming_more_than_the_file_holds(tmp_path: Path) -> None:
    data = (
        gguf_header(kv_count=1)
        + gguf_string("llama.attention.head_count_kv")
        + struct.pack("<IIQ", 9, 4, 60_000)  # ARRAY of UINT32, 60,000 items
    )
    path = write_raw(tmp_path / "evil.gguf", data + bytes(1024))

    assert "claims 60000 items" in error_of(path).message


def test_gguf_key_longer_than_gguf_allows(tmp_path: Path) -> None:
    data = gguf_header(kv_count=1) + struct.pack("<Q", 2**20) + bytes(2**20 + 64)
    path = write_raw(tmp_path / "evil.gguf", data)

    assert "metadata key claims 1048576 bytes" in error_of(path).message


def test_gguf_unknown_value_type(tmp_path: Path) -> None:
    data = gguf_header(kv_count=1) + gguf_string("general.thing") + struct.pack("<I", 99)
    path = write_raw(tmp_path / "evil.gguf", data + bytes(64))

    assert "unknown type 99" in error_of(path).message


def test_gguf_tensor_with_too_many_dimensions(tmp_path: Path) -> None:
    data = gguf_header(tensor_count=1) + gguf_string("t") + struct.pack("<I", 1000)
    path = write_raw(tmp_path / "evil.gguf", data + bytes(64))

    assert "claims 1000 dimensions" in error_of(path).message


def test_gguf_large_metadata_is_skipped_not_kept(tmp_path: Path) -> None:
    """A 32 MiB string and a 200,000-item array are read past without being materialised."""

    def add_bulk(writer: GGUFWriter) -> None:
        writer.add_string("tokenizer.huge", "x" * (32 * 2**20))
        writer.add_array("tokenizer.ggml.scores", [0.0] * 200_000)

    path = write_gguf(tmp_path / "bulky.gguf", extra=add_bulk)

    tracemalloc.start()
    try:
        checkpoint = sniff(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert checkpoint.architecture == "llama"
    assert peak < 2 * 2**20


@pytest.mark.parametrize(
    ("version_bytes", "message"),
    [
        (struct.pack("<I", 1), "GGUF v1 is too old"),
        (struct.pack("<I", 4), "GGUF version 4 is not supported"),
        (struct.pack(">I", 3), "big-endian"),
    ],
)
def test_gguf_versions_we_cannot_read(tmp_path: Path, version_bytes: bytes, message: str) -> None:
    path = write_raw(tmp_path / "old.gguf", b"GGUF" + version_bytes + bytes(64))

    assert message in error_of(path).message


def test_gguf_magic_wins_over_the_file_name(tiny_gguf: Path) -> None:
    renamed = tiny_gguf.rename(tiny_gguf.with_name("model.bin"))

    checkpoint = sniff(renamed)

    assert checkpoint.format is CheckpointFormat.GGUF
    assert checkpoint.warning is None


def test_old_ggml_file_is_named(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "ggml-model-q4_0.bin", b"tjgg" + bytes(64))

    assert "old GGML/GGJT" in error_of(path).message


# --- safetensors -----------------------------------------------------------------------------


def test_safetensors_dtypes_parameters_and_main_dtype(tmp_path: Path) -> None:
    path = write_safetensors(
        tmp_path / "weights.safetensors",
        {
            "a.weight": ("F16", [16, 8]),
            "b.weight": ("F16", [8, 8]),
            "a.norm": ("F32", [8]),
            "steps": ("I64", []),
        },
        metadata={"format": "pt"},
    )

    checkpoint = sniff(path)

    assert checkpoint == Checkpoint(
        path=path,
        format=CheckpointFormat.SAFETENSORS,
        kind=ModelKind.OTHER,
        size=path.stat().st_size,
        name="weights",
        architecture=None,
        parameter_count=16 * 8 + 8 * 8 + 8 + 1,
        quantization="F16",
        context_length=None,
        has_chat_template=None,
        tensor_count=4,
        dtypes=("F16", "F32", "I64"),
        family=None,
    )


SD15_KEYS = [
    "model.diffusion_model.input_blocks.0.0.weight",
    "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
    "model.diffusion_model.out.2.weight",
    "first_stage_model.decoder.conv_in.weight",
    "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
    "cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight",
]
SD2_KEYS = [
    "model.diffusion_model.input_blocks.0.0.weight",
    "first_stage_model.encoder.conv_in.weight",
    "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight",
    "cond_stage_model.model.token_embedding.weight",
]
SDXL_KEYS = [
    "model.diffusion_model.input_blocks.0.0.weight",
    "model.diffusion_model.label_emb.0.0.weight",
    "conditioner.embedders.0.transformer.text_model.encoder.layers.0.self_attn.k_proj.weight",
    "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight",
    "first_stage_model.decoder.conv_out.weight",
]
SD3_KEYS = [
    "model.diffusion_model.joint_blocks.0.context_block.attn.qkv.weight",
    "model.diffusion_model.joint_blocks.0.x_block.mlp.fc1.weight",
    "model.diffusion_model.x_embedder.proj.weight",
    "text_encoders.clip_l.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight",
]
FLUX_KEYS = [
    "double_blocks.0.img_attn.qkv.weight",
    "double_blocks.0.txt_mlp.0.weight",
    "single_blocks.0.linear1.weight",
    "img_in.weight",
]
FLUX_COMFY_KEYS = [f"model.diffusion_model.{key}" for key in FLUX_KEYS]
LLM_KEYS = [
    "model.embed_tokens.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.mlp.gate_proj.weight",
    "model.norm.weight",
    "lm_head.weight",
]


@pytest.mark.parametrize(
    ("keys", "family", "kind"),
    [
        (SD15_KEYS, "SD 1.x", ModelKind.DIFFUSION_SINGLE_FILE),
        (SD2_KEYS, "SD 2.x", ModelKind.DIFFUSION_SINGLE_FILE),
        (SDXL_KEYS, "SDXL", ModelKind.DIFFUSION_SINGLE_FILE),
        (SD3_KEYS, "SD 3", ModelKind.DIFFUSION_SINGLE_FILE),
        (FLUX_KEYS, "Flux", ModelKind.DIFFUSION_SINGLE_FILE),
        (FLUX_COMFY_KEYS, "Flux", ModelKind.DIFFUSION_SINGLE_FILE),
        (LLM_KEYS, "LLM", ModelKind.OTHER),
        (["encoder.weight", "decoder.weight"], None, ModelKind.OTHER),
    ],
    ids=["sd15", "sd2", "sdxl", "sd3", "flux", "flux-comfy", "llm", "unknown"],
)
def test_safetensors_family_from_key_names(
    tmp_path: Path, keys: list[str], family: str | None, kind: ModelKind
) -> None:
    path = write_safetensors(tmp_path / "model.safetensors", {k: ("F16", [4, 4]) for k in keys})

    checkpoint = sniff(path)

    assert (checkpoint.family, checkpoint.kind) == (family, kind)
    expected_architecture = family if kind is ModelKind.DIFFUSION_SINGLE_FILE else None
    assert checkpoint.architecture == expected_architecture


@pytest.mark.parametrize(("width", "family"), [(768, "SD 1.x"), (1024, "SD 2.x"), (2048, "SDXL")])
def test_unet_alone_family_from_its_cross_attention_width(
    tmp_path: Path, width: int, family: str
) -> None:
    key = "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight"
    path = write_safetensors(
        tmp_path / "unet.safetensors",
        {"model.diffusion_model.input_blocks.0.0.weight": ("F16", [4]), key: ("F16", [2, width])},
    )

    checkpoint = sniff(path)

    assert (checkpoint.family, checkpoint.kind) == (family, ModelKind.DIFFUSION_SINGLE_FILE)


def test_safetensors_shard_says_counts_cover_one_file(tmp_path: Path) -> None:
    path = write_safetensors(
        tmp_path / "model-00001-of-00004.safetensors", {k: ("BF16", [2, 2]) for k in LLM_KEYS}
    )

    checkpoint = sniff(path)

    assert checkpoint.quantization == "BF16"
    assert checkpoint.warning is not None
    assert "shard 1 of 4" in checkpoint.warning


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (struct.pack("<Q", 10_000) + b"{}", "header length larger than the file"),
        (struct.pack("<Q", 8) + b"not json", "not JSON"),
        (struct.pack("<Q", 8) + b"\xc3\x28{}    ", "not JSON"),  # not UTF-8
        (struct.pack("<Q", 8) + b"[1, 2]  ", "not a JSON object"),
        (struct.pack("<Q", 8) + b'{"a": 1}', "not described by an object"),
        (b"PK\x03\x04" + bytes(60), "zip archive"),
        (b"abc", "truncated"),
    ],
)
def test_invalid_safetensors(tmp_path: Path, content: bytes, message: str) -> None:
    error = error_of(write_raw(tmp_path / "model.safetensors", content))

    assert message in error.message


@pytest.mark.parametrize(
    "entry",
    [
        {"shape": [2], "data_offsets": [0, 4]},
        {"dtype": "F16", "shape": [-1], "data_offsets": [0, 4]},
        {"dtype": "F16", "shape": "2", "data_offsets": [0, 4]},
        {"dtype": "F16", "shape": [2], "data_offsets": [4, 0]},
        {"dtype": "F16", "shape": [2], "data_offsets": [0]},
    ],
)
def test_safetensors_with_a_bad_tensor_entry(tmp_path: Path, entry: dict[str, Any]) -> None:
    raw = json.dumps({"x": entry}).encode()
    path = write_raw(tmp_path / "m.safetensors", struct.pack("<Q", len(raw)) + raw + bytes(4))

    assert "tensor 'x'" in error_of(path).message


def test_safetensors_header_over_100_mb_is_refused(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "huge.safetensors", struct.pack("<Q", 200_000_000) + b"{")
    os.truncate(path, 300_000_000)  # sparse

    tracemalloc.start()
    try:
        error = error_of(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert "more than 100000000" in error.message
    assert peak < 2**20


def test_safetensors_with_data_cut_short_is_truncated(tmp_path: Path) -> None:
    path = write_safetensors(
        tmp_path / "partial.safetensors", {"w": ("F32", [64, 64])}, missing_bytes=100
    )

    assert "truncated" in error_of(path).message


def test_safetensors_without_the_suffix_is_recognised(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "weights.data", {"w": ("F32", [2])})

    assert sniff(path).format is CheckpointFormat.SAFETENSORS


# --- diffusers folders -----------------------------------------------------------------------

MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "_diffusers_version": "0.42.0",
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
    "scheduler": ["diffusers", "DDIMScheduler"],
}


def write_pipeline(folder: Path) -> Path:
    write_raw(folder / "model_index.json", json.dumps(MODEL_INDEX).encode())
    write_safetensors(folder / "unet" / "diffusion_pytorch_model.safetensors", {"w": ("F16", [64])})
    write_safetensors(folder / "vae" / "diffusion_pytorch_model.safetensors", {"w": ("F32", [8])})
    write_raw(folder / "scheduler" / "scheduler_config.json", b'{"_class_name": "DDIMScheduler"}')
    return folder


def test_diffusers_pipeline_folder(tmp_path: Path) -> None:
    folder = write_pipeline(tmp_path / "tiny-sd")

    checkpoint = sniff(folder)

    assert checkpoint.format is CheckpointFormat.DIFFUSERS
    assert checkpoint.kind is ModelKind.DIFFUSERS_PIPELINE
    assert checkpoint.architecture == "StableDiffusionPipeline"
    assert checkpoint.name == "tiny-sd"
    assert checkpoint.size == sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert checkpoint.warning is None


def test_diffusers_pipeline_with_pickle_weights_only_warns(tmp_path: Path) -> None:
    folder = tmp_path / "old-sd"
    write_raw(folder / "model_index.json", json.dumps(MODEL_INDEX).encode())
    write_raw(folder / "unet" / "diffusion_pytorch_model.bin", b"PK\x03\x04" + bytes(16))

    checkpoint = sniff(folder)

    assert checkpoint.warning is not None
    assert "pickle" in checkpoint.warning


def make_hf_snapshot(
    cache: Path, repo: str, files: Mapping[str, bytes], *, sha: str = "a" * 40
) -> Path:
    """A huggingface_hub cache entry: blobs under their hash, snapshot files as links."""
    repo_folder = cache / f"models--{repo.replace('/', '--')}"
    snapshot = repo_folder / "snapshots" / sha
    for index, (name, content) in enumerate(files.items()):
        blob = write_raw(repo_folder / "blobs" / f"{index:064x}", content)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    write_raw(repo_folder / "refs" / "main", sha.encode())
    return snapshot


def test_hf_snapshot_pipeline_follows_links_and_names_the_repo(tmp_path: Path) -> None:
    unet = b"x" * 1000
    snapshot = make_hf_snapshot(
        tmp_path / "hub",
        "org/tiny-sd",
        {
            "model_index.json": json.dumps(MODEL_INDEX).encode(),
            "unet/diffusion_pytorch_model.safetensors": unet,
        },
    )

    checkpoint = sniff(snapshot)

    assert checkpoint.name == "org/tiny-sd"
    assert checkpoint.size == len(json.dumps(MODEL_INDEX)) + len(unet)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not JSON"),
        (b'["StableDiffusionPipeline"]', "not a JSON object"),
        (b'{"unet": ["diffusers", "UNet2DConditionModel"]}', "no _class_name"),
        (b"{" + b" " * (2 * 2**20) + b"}", "larger than"),
    ],
)
def test_malformed_model_index(tmp_path: Path, content: bytes, message: str) -> None:
    folder = tmp_path / "broken"
    write_raw(folder / "model_index.json", content)

    error = error_of(folder)

    assert "malformed model_index.json" in error.message
    assert message in error.message


def test_folder_that_is_not_a_model(tmp_path: Path) -> None:
    folder = tmp_path / "llm"
    write_raw(folder / "config.json", b"{}")

    error = error_of(folder)

    assert error.message.startswith("not a model folder: no model_index.json")


# --- pickle ----------------------------------------------------------------------------------


class _CreatesAFile:
    """Unpickling this calls open(path, "w"): proof that a pickle ran code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("suffix", [".ckpt", ".bin", ".pt", ".pth"])
def test_pickle_is_reported_and_never_unpickled(tmp_path: Path, suffix: str) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_CreatesAFile(marker), protocol=4)
    path = write_raw(tmp_path / f"model{suffix}", payload)

    checkpoint = sniff(path)

    assert checkpoint.format is CheckpointFormat.PICKLE
    assert checkpoint.kind is ModelKind.OTHER
    assert checkpoint.warning == "pickle — can run code when loaded; not supported"
    assert checkpoint.size == len(payload)
    assert not marker.exists()
    # The file really was dangerous: loading it runs the code.
    pickle.loads(payload).close()
    assert marker.exists()


@pytest.mark.parametrize(
    "content", [b"PK\x03\x04" + bytes(60), pickle.dumps({"state_dict": {}}, protocol=2)]
)
def test_pickle_recognised_by_magic_under_any_name(tmp_path: Path, content: bytes) -> None:
    checkpoint = sniff(write_raw(tmp_path / "weights.model", content))

    assert checkpoint.format is CheckpointFormat.PICKLE


# --- paths that cannot be read ---------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    assert "does not exist" in error_of(tmp_path / "nope.gguf").message


def test_broken_link(tmp_path: Path) -> None:
    link = tmp_path / "model.gguf"
    link.symlink_to(tmp_path / "gone.gguf")

    assert "broken link" in error_of(link).message


def test_empty_file(tmp_path: Path) -> None:
    assert "empty" in error_of(write_raw(tmp_path / "model.gguf", b"")).message


def test_fifo_is_not_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)  # opening it for reading would block forever

    assert "not a regular file" in error_of(fifo).message


def test_unknown_format(tmp_path: Path) -> None:
    error = error_of(write_raw(tmp_path / "notes.txt", b'{"hello": "world"}'))

    assert "not a checkpoint ModelDeck can read" in error.message
    assert "JSON" in error.message


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0,
    reason="root reads files whatever their mode, so chmod 000 cannot make one unreadable",
)
def test_unreadable_file(tiny_gguf: Path) -> None:
    tiny_gguf.chmod(0)
    try:
        error = error_of(tiny_gguf)
    finally:
        tiny_gguf.chmod(0o644)

    assert error.message == f"cannot read {tiny_gguf}: permission denied"


def test_permission_denied_is_a_checkpoint_error(
    tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same as above, simulated, so it also runs as root."""

    def denied(*args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(sniff_module, "open", denied, raising=False)

    assert error_of(tiny_gguf).message == f"cannot read {tiny_gguf}: permission denied"


def test_checkpoint_error_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        sniff(tmp_path / "missing")


# --- find_checkpoints ------------------------------------------------------------------------


def touch(path: Path, content: bytes = b"") -> Path:
    return write_raw(path, content)


def found(root: Path, **limits: Any) -> list[str]:
    return [p.relative_to(root).as_posix() for p in find_checkpoints(root, **limits)]


def test_find_checkpoints_yields_one_entry_per_model(tmp_path: Path) -> None:
    root = tmp_path / "models"
    touch(root / "a" / "Llama-Q4_K_M.gguf")
    for part in (1, 2, 3):
        touch(root / "a" / f"Big-Q8_0-{part:05d}-of-00003.gguf")
    touch(root / "a" / "notes.txt")
    touch(root / "b" / "sd15.safetensors")
    touch(root / "b" / "old.ckpt")
    for part in (1, 2):
        touch(root / "c" / f"model-{part:05d}-of-00002.safetensors")
        touch(root / "c" / f"pytorch_model-{part:05d}-of-00002.bin")
    touch(root / "c" / "config.json")
    touch(root / "c" / "training_args.bin")
    touch(root / "d" / "openvino_model.bin")
    touch(root / "d" / "openvino_model.xml")
    touch(root / "d" / "lora.pt")
    touch(root / "d" / "lora.pth")
    write_pipeline(root / "pipe")
    touch(root / ".git" / "objects" / "stray.safetensors")

    assert found(root) == [
        "a/Big-Q8_0-00001-of-00003.gguf",
        "a/Llama-Q4_K_M.gguf",
        "b/old.ckpt",
        "b/sd15.safetensors",
        "c/model-00001-of-00002.safetensors",
        "c/pytorch_model-00001-of-00002.bin",
        "c/training_args.bin",
        "d/lora.pt",
        "d/lora.pth",
        "pipe",
    ]


def test_find_checkpoints_shows_a_split_set_without_part_one(tmp_path: Path) -> None:
    touch(tmp_path / "M-00003-of-00003.gguf")
    touch(tmp_path / "M-00002-of-00003.gguf")

    assert found(tmp_path) == ["M-00002-of-00003.gguf"]


def test_find_checkpoints_in_a_hugging_face_cache(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    pipe = make_hf_snapshot(
        hub,
        "org/tiny-sd",
        {
            "model_index.json": json.dumps(MODEL_INDEX).encode(),
            "unet/diffusion_pytorch_model.safetensors": b"u",
        },
    )
    llm = make_hf_snapshot(
        hub, "org/tiny-llm-GGUF", {"tiny-Q4_K_M.gguf": b"g", "README.md": b"# hi"}
    )
    touch(hub / "models--org--tiny-llm-GGUF" / ".no_exist" / ("a" * 40) / "model.safetensors")
    make_hf_snapshot(hub, "org/data", {"train.safetensors": b"d"})
    (hub / "models--org--data").rename(hub / "datasets--org--data")

    assert list(find_checkpoints(hub)) == [llm / "tiny-Q4_K_M.gguf", pipe]


def test_find_checkpoints_survives_symlink_loops(tmp_path: Path) -> None:
    root = tmp_path / "root"
    touch(root / "a" / "model.gguf")
    (root / "a" / "up").symlink_to(root)
    (root / "a" / "self").symlink_to(".")
    (root / "b").symlink_to(root / "a")
    (root / "c").symlink_to(root / "a")

    results = found(root)

    assert len(results) == 1
    assert results[0].endswith("model.gguf")


def test_find_checkpoints_skips_unreadable_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    touch(tmp_path / "locked" / "secret.gguf")
    touch(tmp_path / "open" / "model.gguf")
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)

    assert found(tmp_path) == ["open/model.gguf"]


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0,
    reason="root lists folders whatever their mode, so chmod 000 cannot lock one",
)
def test_find_checkpoints_skips_a_chmod_000_folder(tmp_path: Path) -> None:
    touch(tmp_path / "locked" / "secret.gguf")
    touch(tmp_path / "open" / "model.gguf")
    (tmp_path / "locked").chmod(0)
    try:
        assert found(tmp_path) == ["open/model.gguf"]
    finally:
        (tmp_path / "locked").chmod(0o755)


def test_find_checkpoints_root_may_be_a_file_or_missing(tiny_gguf: Path, tmp_path: Path) -> None:
    assert list(find_checkpoints(tiny_gguf)) == [tiny_gguf]
    assert list(find_checkpoints(tmp_path / "missing")) == []
    assert list(find_checkpoints(touch(tmp_path / "readme.md"))) == []


def test_find_checkpoints_stops_after_max_files(tmp_path: Path) -> None:
    for folder in range(30):
        for index in range(100):
            touch(tmp_path / f"f{folder:02d}" / f"m{index:03d}.gguf")

    results = found(tmp_path, max_files=1_000)

    assert 0 < len(results) < 1_000
    assert results == sorted(results)  # whole folders, in order, then a clean stop


def test_find_checkpoints_in_a_folder_of_20000_files_completes(tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for index in range(20_000):
        (folder / f"{index:05d}.bin").touch()

    results = list(find_checkpoints(tmp_path))

    assert len(results) == 20_000


class FakeClock:
    def __init__(self, step: float = 0.0) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_find_checkpoints_stops_after_max_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path
    for depth in range(50):  # a chain of folders, each with one model and the next folder
        folder = folder / f"d{depth:02d}"
        touch(folder / "m.gguf")
    monkeypatch.setattr(sniff_module, "_clock", FakeClock(step=1.0))  # each look: one second

    results = found(tmp_path, max_seconds=20)

    assert 0 < len(results) < 50


def test_time_the_caller_spends_does_not_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(5):
        touch(tmp_path / f"f{index}" / "m.gguf")
    clock = FakeClock()
    monkeypatch.setattr(sniff_module, "_clock", clock)

    results: list[Path] = []
    walk: Iterator[Path] = find_checkpoints(tmp_path, max_seconds=1.0)
    for path in walk:
        results.append(path)
        clock.now += 60.0  # the caller sniffs each one, slowly

    assert len(results) == 5


def test_found_candidates_sniff_cleanly(tmp_path: Path) -> None:
    """find_checkpoints and sniff agree: each candidate sniffs, pickles included."""
    root = tmp_path / "library"
    write_gguf(root / "llm" / "Tiny-Q4_K_M.gguf")
    write_split_model(root / "split")
    write_safetensors(root / "sd" / "sd15.safetensors", {k: ("F16", [2]) for k in SD15_KEYS})
    write_pipeline(root / "pipe")
    write_raw(root / "old" / "model.ckpt", b"PK\x03\x04" + bytes(60))

    kinds = {path.name: sniff(path).kind for path in find_checkpoints(root)}

    assert kinds == {
        "Tiny-Q4_K_M.gguf": ModelKind.LLM_GGUF,
        "Tiny-Q4_K_M-00001-of-00003.gguf": ModelKind.LLM_GGUF,
        "sd15.safetensors": ModelKind.DIFFUSION_SINGLE_FILE,
        "pipe": ModelKind.DIFFUSERS_PIPELINE,
        "model.ckpt": ModelKind.OTHER,
    }
