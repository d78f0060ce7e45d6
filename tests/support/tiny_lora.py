"""A real but tiny kohya-style LoRA file as bytes, for fake hubs to serve: the library's
sniffer reads it as a LoRA without torch (tests/support/lora_builder.py makes LoRAs that
really change an image, and imports torch)."""

from __future__ import annotations

import json
import struct


def tiny_kohya_lora() -> bytes:
    """A safetensors file of two 2-float kohya LoRA tensors (down and up of one projection)."""
    names = ["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
             "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight"]  # fmt: skip
    header = {
        name: {"dtype": "F32", "shape": [2], "data_offsets": [8 * i, 8 * i + 8]}
        for i, name in enumerate(names)
    }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"\x01" * 16
