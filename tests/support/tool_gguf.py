"""A tiny real GGUF scripted to answer with whole pieces of text, e.g. a tool call.

`app.tiny_gguf`'s scripted model spells its reply byte by byte, so the reply cannot repeat a
byte, and a tool call (`{"name": "…", "arguments": {…}}`) repeats quotes. This one adds each
piece of the reply to the vocabulary as one token (written in GPT-2's byte-level alphabet, so
llama.cpp detokenizes it to the piece's text) and chains them the same way: the "\\n" ending
"<|im_start|>assistant\\n" leads to the first piece, each piece to the next, the last to
<|im_end|>. Prompts never tokenize into these tokens (no merges make them), so the model
still answers every ChatML prompt with the same reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFWriter

from app.tiny_gguf import CHATML, IM_END, VOCAB, tiny_llama_tensors

EMBED = 64
MAX_PIECE_BYTES = 32


def write_piece_scripted_gguf(
    path: Path, pieces: Sequence[str], *, chat_template: str = CHATML, context_length: int = 512
) -> Path:
    """A GGUF that answers every ChatML prompt with "".join(pieces), then <|im_end|>."""
    if len(pieces) >= EMBED - 1 or len(set(pieces)) != len(pieces):
        raise ValueError("pieces must be distinct, fewer than 63")
    if any(len(piece.encode("utf-8")) > MAX_PIECE_BYTES for piece in pieces):
        # llama-cpp-python detokenizes into a 32-byte buffer: a longer token comes out empty.
        raise ValueError(f"each piece must fit in {MAX_PIECE_BYTES} bytes")
    alphabet = VOCAB[:256]
    extra = ["".join(alphabet[byte] for byte in piece.encode("utf-8")) for piece in pieces]
    vocab = [*VOCAB, *extra]
    chain = [ord("\n"), *range(len(VOCAB), len(vocab))]
    tensors = tiny_llama_tensors()
    for name, array in tensors.items():
        if name.startswith("blk.") and not name.endswith("norm.weight"):
            tensors[name] = np.zeros_like(array)
    embedding: np.ndarray[Any, Any] = np.zeros((len(vocab), EMBED), dtype=np.float16)
    embedding[:, 0] = 1.0  # dimension 0: "not in the reply" -> <|im_end|>
    output: np.ndarray[Any, Any] = np.zeros((len(vocab), EMBED), dtype=np.float16)
    output[IM_END, 0] = 8.0
    for slot, token in enumerate(chain, start=1):
        embedding[token, 0] = 0.0
        embedding[token, slot] = 1.0
        following = chain[slot] if slot < len(chain) else IM_END
        output[following, slot] = 8.0
    tensors["token_embd.weight"] = embedding
    tensors["output.weight"] = output

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(path, "llama")
    writer.add_name("Tiny Tool Caller")
    writer.add_context_length(context_length)
    writer.add_block_count(2)
    writer.add_embedding_length(EMBED)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(4)
    writer.add_rope_dimension_count(EMBED // 4)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(0)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(vocab)
    writer.add_token_types([1] * 256 + [3, 3, 3] + [1] * len(extra))
    writer.add_token_merges([f"{chr(97 + i % 26)} {chr(97 + i // 26)}" for i in range(300)])
    writer.add_eos_token_id(IM_END)
    writer.add_chat_template(chat_template)
    for tensor_name, array in tensors.items():
        writer.add_tensor(tensor_name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
