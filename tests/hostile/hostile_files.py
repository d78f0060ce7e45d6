"""Byte builders for hostile checkpoints and PNGs: every field is the test's to choose.

Valid-looking files come from the same builders, so a test changes one claim at a time (a
count, a length, a depth) and the rest of the file stays well formed.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# GGUF metadata value types.
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
_ALIGNMENT = 32


def gguf_string(text: str | bytes, *, claimed: int | None = None) -> bytes:
    """A GGUF string; `claimed` overrides the length written before it."""
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(data) if claimed is None else claimed) + data


def kv_u64(key: str, value: int) -> bytes:
    return gguf_string(key) + struct.pack("<IQ", U64, value)


def kv_u32(key: str, value: int) -> bytes:
    return gguf_string(key) + struct.pack("<II", U32, value)


def kv_string(key: str, value: str) -> bytes:
    return gguf_string(key) + struct.pack("<I", STRING) + gguf_string(value)


def kv_array(key: str, item_type: int, count: int, items: bytes = b"") -> bytes:
    return gguf_string(key) + struct.pack("<IIQ", ARRAY, item_type, count) + items


@dataclass(frozen=True)
class Tensor:
    """One tensor info: name, dims, ggml type (0: F32), offset in the data section."""

    name: str = "blk.0.attn_norm.weight"
    dims: Sequence[int] = (64,)
    ggml_type: int = 0
    offset: int = 0
    n_dims: int | None = None  # overrides len(dims) as written


def tensor_info(tensor: Tensor) -> bytes:
    n_dims = len(tensor.dims) if tensor.n_dims is None else tensor.n_dims
    return (
        gguf_string(tensor.name)
        + struct.pack("<I", n_dims)
        + b"".join(struct.pack("<Q", d) for d in tensor.dims)
        + struct.pack("<IQ", tensor.ggml_type, tensor.offset)
    )


LLAMA_SHAPE = (
    kv_string("general.architecture", "llama"),
    kv_u32("llama.embedding_length", 64),
    kv_u32("llama.attention.head_count", 4),
)


def gguf(
    metadata: Iterable[bytes] = LLAMA_SHAPE,
    tensors: Sequence[Tensor] = (Tensor(),),
    *,
    tensor_count: int | None = None,
    kv_count: int | None = None,
    version: int = 3,
    data_bytes: int | None = None,
) -> bytes:
    """A GGUF file; counts default to what is written, the data to what the tensors need."""
    entries = list(metadata)
    head = b"GGUF" + struct.pack(
        "<IQQ",
        version,
        len(tensors) if tensor_count is None else tensor_count,
        len(entries) if kv_count is None else kv_count,
    )
    body = head + b"".join(entries) + b"".join(tensor_info(t) for t in tensors)
    body += bytes(-len(body) % _ALIGNMENT)
    needed = 4 * 64 * len(tensors) if data_bytes is None else data_bytes
    return body + bytes(needed)


def safetensors(
    header: bytes | dict[str, object], data: bytes = b"", *, claimed: int | None = None
) -> bytes:
    """A safetensors file: an 8-byte length (or `claimed`), the header, then `data`."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if claimed is None else claimed) + raw + data


def png_chunk(kind: bytes, data: bytes, *, claimed: int | None = None) -> bytes:
    length = len(data) if claimed is None else claimed
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", length) + kind + data + struct.pack(">I", crc)


def png(
    chunks: Iterable[bytes] = (),
    *,
    width: int = 8,
    height: int = 8,
    pixels: bool = True,
    end: bool = True,
) -> bytes:
    """A PNG (8-bit greyscale) with extra `chunks` after IHDR; IDAT holds real pixels when the
    image is small, else a few compressed bytes that claim the declared size."""
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    out = b"\x89PNG\r\n\x1a\n" + ihdr + b"".join(chunks)
    if pixels:
        if width * height <= 1 << 16:
            raw = b"".join(b"\0" + bytes(width) for _ in range(height))
        else:
            raw = b"\0" * 1024  # far short of what the header claims: a bomb's opening
        out += png_chunk(b"IDAT", zlib.compress(raw))
    if end:
        out += png_chunk(b"IEND", b"")
    return out


def text_chunk(key: str, text: str) -> bytes:
    return png_chunk(b"tEXt", key.encode("latin-1") + b"\0" + text.encode("latin-1"))


def ztxt_chunk(key: str, payload: bytes) -> bytes:
    return png_chunk(b"zTXt", key.encode("latin-1") + b"\0\0" + zlib.compress(payload, 9))


def itxt_chunk(key: str, text: bytes, *, compressed: bool = False) -> bytes:
    body = zlib.compress(text, 9) if compressed else text
    flag = b"\1\0" if compressed else b"\0\0"
    return png_chunk(b"iTXt", key.encode("latin-1") + b"\0" + flag + b"\0\0" + body)
