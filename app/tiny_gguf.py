"""Tiny real GGUF files written with the `gguf` package: the 2-block llama of TESTING.md.

`write_projector` writes a tiny vision projector (libmtmd loads it beside the tiny llama).
`write_scripted_gguf` writes a model that answers every ChatML prompt with a fixed reply
("Quick fox."), which `modeldeck --self-test` loads to check the LLM runtime of an install,
and the tests use everywhere. `write_gguf` writes a real, loadable file (ChatML template,
byte-level vocabulary); its options leave out parts or quantize tensors so tests can build
the cases they need. `gguf` and numpy come with the `llm` extra (and every bundle).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter, PoolingType
from gguf.quants import quantize

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _byte_level_alphabet() -> list[str]:
    """GPT-2's bytes-to-unicode map: the text of each of the 256 byte tokens, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    shifted = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(shifted)) for b in range(256)]


VOCAB = [*_byte_level_alphabet(), "<|im_start|>", "<|im_end|>", "<|endoftext|>"]
IM_END = VOCAB.index("<|im_end|>")
SCRIPTED_REPLY = "Quick fox."  # every byte once, so a bigram map can spell it


def tiny_llama_tensors(
    *, blocks: range = range(2), block_count: int = 2, embed: int = 64, ff: int = 128
) -> dict[str, np.ndarray[Any, Any]]:
    """The tensors of a 2-block llama: embedding 64, feed-forward 128, numpy (out, in).

    `blocks` is the part of the model's `block_count` blocks to write (a split file's part
    holds some); the output layer comes with the last block. `embed` and `ff` make bigger
    models, for benchmarks.
    """
    rng = np.random.default_rng(0)
    vocab = len(VOCAB)

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
    if blocks.stop == block_count:
        tensors["output_norm.weight"] = np.ones(embed, dtype=np.float32)
        tensors["output.weight"] = weight(vocab, embed)
    return tensors


def scripted_tensors(
    reply: str = SCRIPTED_REPLY,
    *,
    endless: bool = False,
    embed: int = 64,
    ff: int = 128,
    block_count: int = 2,
) -> dict[str, np.ndarray[Any, Any]]:
    """Weights of a model that answers every ChatML prompt with `reply`, then `<|im_end|>`.

    Attention and feed-forward outputs are zero, so the residual stream is the last token's
    embedding and the model is a bigram table: "\n" (the end of "<|im_start|>assistant\n")
    leads to the reply's first byte, each byte to the next, the last to `<|im_end|>`, and every
    other token to `<|im_end|>`. The margins are large, so any sampling settings give the
    same text. `reply` must not repeat a byte and must fit in 63 bytes. An `endless` model
    repeats the reply until `max_tokens` or the context ends it (for cancel and speed tests).
    """
    chain = [ord("\n"), *reply.encode("utf-8")]
    if len(set(chain)) != len(chain) or len(chain) > 63:
        raise ValueError("the reply must use each byte once, at most 62 bytes")
    tensors = tiny_llama_tensors(
        blocks=range(block_count), block_count=block_count, embed=embed, ff=ff
    )
    vocab = len(VOCAB)
    for name, array in tensors.items():
        if name.startswith("blk.") and not name.endswith("norm.weight"):
            tensors[name] = np.zeros_like(array)
    embedding = np.zeros((vocab, embed), dtype=np.float16)
    embedding[:, 0] = 1.0  # dimension 0: "not in the reply" -> <|im_end|>
    output = np.zeros((vocab, embed), dtype=np.float16)
    output[IM_END, 0] = 8.0
    for slot, token in enumerate(chain, start=1):
        embedding[token, 0] = 0.0
        embedding[token, slot] = 1.0
        following = chain[slot] if slot < len(chain) else chain[1] if endless else IM_END
        output[following, slot] = 8.0  # after rms-norm the slot holds 8: logit 64 vs 0
    tensors["token_embd.weight"] = embedding
    tensors["output.weight"] = output
    return tensors


def write_scripted_gguf(
    path: Path,
    *,
    reply: str = SCRIPTED_REPLY,
    endless: bool = False,
    embed: int = 64,
    ff: int = 128,
    block_count: int = 2,
    **options: Any,
) -> Path:
    """A real GGUF that answers every ChatML prompt with `reply` (see `scripted_tensors`);
    `embed`, `ff` and `block_count` make it bigger and slower, with the same answers."""
    tensors = scripted_tensors(reply, endless=endless, embed=embed, ff=ff, block_count=block_count)
    shape = {"embed": embed, "ff": ff, "block_count": block_count}
    return write_gguf(path, tensors=tensors, shape=shape, **options)


def write_gguf(
    path: Path,
    *,
    name: str | None = "Tiny Llama",
    file_type: int | None = 15,
    chat_template: str | None = CHATML,
    tensors: Mapping[str, np.ndarray[Any, Any]] | None = None,
    quantized: Mapping[str, np.ndarray[Any, Any]] | None = None,
    extra: Callable[[GGUFWriter], None] | None = None,
    context_length: int = 512,
    architecture: str = "llama",
    shape: Mapping[str, int] | None = None,
) -> Path:
    """Write a real GGUF file; `quantized` tensors are stored as Q8_0."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(path, architecture)
    if name is not None:
        writer.add_name(name)
    writer.add_context_length(context_length)
    dims = {"embed": 64, "ff": 128, "block_count": 2, **(shape or {})}
    writer.add_block_count(dims["block_count"])
    writer.add_embedding_length(dims["embed"])
    writer.add_feed_forward_length(dims["ff"])
    writer.add_head_count(4)
    writer.add_head_count_kv(4)
    writer.add_rope_dimension_count(dims["embed"] // 4)
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


def write_embedding_gguf(path: Path, *, pooling: int | None = 1, **options: Any) -> Path:
    """A real GGUF for embeddings: the random 2-block llama with `llama.pooling_type` set
    (llama.cpp's enum: 1 mean, 2 CLS, 3 last; None leaves the key out, as a generative model
    does). Its random weights give different texts different vectors."""

    def add_pooling(writer: GGUFWriter) -> None:
        if pooling is not None:
            writer.add_pooling_type(PoolingType(pooling))

    return write_gguf(path, name="Tiny Embedder", chat_template=None, extra=add_pooling, **options)


def write_projector(
    path: Path,
    *,
    text_embedding: int = 64,
    vision_embedding: int = 32,
    image_size: int = 32,
    patch_size: int = 8,
    block_count: int = 2,
    name: str | None = "Tiny Vision Projector",
) -> Path:
    """A real LLaVA-style ("mlp") vision projector that llama.cpp's libmtmd loads.

    A 2-block ViT on `image_size`² images in `patch_size`² patches (16 patches: 16 image
    tokens), projected by a 2-layer MLP to `text_embedding`, which must be the language
    model's embedding width (64 for the tiny llama). Random weights: it evaluates, it does
    not see. The keys and tensors are the ones llama.cpp's tools/mtmd/clip.cpp requires.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    vision, ff = vision_embedding, 2 * vision_embedding

    def weight(*shape: int) -> np.ndarray[Any, Any]:
        return (rng.standard_normal(shape) * 0.02).astype(np.float16)

    def zeros(width: int) -> np.ndarray[Any, Any]:
        return np.zeros(width, dtype=np.float32)

    def ones(width: int) -> np.ndarray[Any, Any]:
        return np.ones(width, dtype=np.float32)

    writer = GGUFWriter(path, "clip")
    if name is not None:
        writer.add_name(name)
    writer.add_file_type(1)  # mostly F16
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_llava_projector", True)
    writer.add_string("clip.projector_type", "mlp")
    writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.image_size", image_size)
    writer.add_uint32("clip.vision.patch_size", patch_size)
    writer.add_uint32("clip.vision.embedding_length", vision)
    writer.add_uint32("clip.vision.feed_forward_length", ff)
    writer.add_uint32("clip.vision.projection_dim", text_embedding)
    writer.add_uint32("clip.vision.attention.head_count", 4)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    writer.add_uint32("clip.vision.block_count", block_count)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    patches = (image_size // patch_size) ** 2
    tensors: dict[str, np.ndarray[Any, Any]] = {
        "v.patch_embd.weight": weight(vision, 3, patch_size, patch_size),
        "v.class_embd": weight(vision).astype(np.float32),
        "v.position_embd.weight": weight(patches + 1, vision),
        "v.pre_ln.weight": ones(vision),
        "v.pre_ln.bias": zeros(vision),
    }
    for n in range(block_count):
        for part in ("attn_q", "attn_k", "attn_v", "attn_out"):
            tensors[f"v.blk.{n}.{part}.weight"] = weight(vision, vision)
            tensors[f"v.blk.{n}.{part}.bias"] = zeros(vision)
        for part in ("ln1", "ln2"):
            tensors[f"v.blk.{n}.{part}.weight"] = ones(vision)
            tensors[f"v.blk.{n}.{part}.bias"] = zeros(vision)
        tensors[f"v.blk.{n}.ffn_up.weight"] = weight(ff, vision)
        tensors[f"v.blk.{n}.ffn_up.bias"] = zeros(ff)
        tensors[f"v.blk.{n}.ffn_down.weight"] = weight(vision, ff)
        tensors[f"v.blk.{n}.ffn_down.bias"] = zeros(vision)
    tensors["mm.0.weight"] = weight(text_embedding, vision)
    tensors["mm.0.bias"] = zeros(text_embedding)
    tensors["mm.2.weight"] = weight(text_embedding, text_embedding)
    tensors["mm.2.bias"] = zeros(text_embedding)
    for tensor_name, array in tensors.items():
        writer.add_tensor(tensor_name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
