"""Tiny GGUF files written with the `gguf` package, for tests: the 2-block llama of TESTING.md.

`write_gguf` writes a real, loadable file (ChatML template, byte-level vocabulary); options
leave out parts or quantize tensors so tests can build the cases they need.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter
from gguf.quants import quantize

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
VOCAB = [bytes([b]).decode("latin-1") for b in range(256)] + [
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
]


def tiny_llama_tensors(*, blocks: range = range(2)) -> dict[str, np.ndarray[Any, Any]]:
    """The tensors of a 2-block llama: embedding 64, feed-forward 128, numpy (out, in)."""
    rng = np.random.default_rng(0)
    vocab, embed, ff = len(VOCAB), 64, 128

    def weight(rows: int, cols: int) -> np.ndarray[Any, Any]:
        return rng.standard_normal((rows, cols)).astype(np.float16)

    tensors: dict[str, np.ndarray[Any, Any]] = {}
    if blocks.start == 0:
        tensors["token_embd.weight"] = weight(vocab, embed)
    for n in blocks:
        tensors[f"blk.{n}.attn_norm.weight"] = np.ones(embed, dtype=np.float32)
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            tensors[f"blk.{n}.{name}.weight"] = weight(embed, embed)
        tensors[f"blk.{n}.ffn_norm.weight"] = np.ones(embed, dtype=np.float32)
        tensors[f"blk.{n}.ffn_gate.weight"] = weight(ff, embed)
        tensors[f"blk.{n}.ffn_up.weight"] = weight(ff, embed)
        tensors[f"blk.{n}.ffn_down.weight"] = weight(embed, ff)
    if blocks.stop == 2:
        tensors["output_norm.weight"] = np.ones(embed, dtype=np.float32)
        tensors["output.weight"] = weight(vocab, embed)
    return tensors


def write_gguf(
    path: Path,
    *,
    name: str | None = "Tiny Llama",
    file_type: int | None = 15,
    chat_template: str | None = CHATML,
    tensors: Mapping[str, np.ndarray[Any, Any]] | None = None,
    quantized: Mapping[str, np.ndarray[Any, Any]] | None = None,
    extra: Callable[[GGUFWriter], None] | None = None,
) -> Path:
    """Write a real GGUF file; `quantized` tensors are stored as Q8_0."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(path, "llama")
    if name is not None:
        writer.add_name(name)
    writer.add_context_length(512)
    writer.add_block_count(2)
    writer.add_embedding_length(64)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(4)
    writer.add_rope_dimension_count(16)
    writer.add_layer_norm_rms_eps(1e-5)
    if file_type is not None:
        writer.add_file_type(file_type)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(VOCAB)
    writer.add_token_types([1] * 256 + [3, 3, 3])
    writer.add_token_merges([f"{chr(97 + i % 26)} {chr(97 + i // 26)}" for i in range(300)])
    writer.add_eos_token_id(257)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    if extra is not None:
        extra(writer)
    for tensor_name, array in (tensors if tensors is not None else tiny_llama_tensors()).items():
        writer.add_tensor(tensor_name, array)
    for tensor_name, array in (quantized or {}).items():
        data = quantize(array.astype(np.float32), GGMLQuantizationType.Q8_0)
        writer.add_tensor(tensor_name, data, raw_dtype=GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
