"""Tiny random upscaler models in the two ESRGAN-family safetensors layouts ModelDeck loads.

- `write_compact_upscaler`: Real-ESRGAN's SRVGGNetCompact (`body.N.weight/bias`: a conv, then
  (PReLU, conv) pairs, a last conv to 3 x scale² channels for the pixel shuffle);
- `write_rrdb_upscaler`: BasicSR's RRDBNet (`conv_first`, `body.N.rdbM.convK`, `conv_body`,
  `conv_up1`, `conv_up2`, `conv_hr`, `conv_last`); scale 4 takes RGB, scale 2 takes the input
  folded by a pixel unshuffle (12 channels); `esrgan_names=True` writes the x4 net under the
  original ESRGAN code's names (`model.0`, `model.1.sub.N.RDBk.convj.0`, `model.3`…), as
  many popular upscalers (4x-UltraSharp) still ship.

Importing this module imports torch: tests only.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file


def _conv(
    tensors: dict[str, torch.Tensor], name: str, out: int, into: int, g: torch.Generator
) -> None:
    tensors[f"{name}.weight"] = torch.randn(out, into, 3, 3, generator=g) * 0.05
    tensors[f"{name}.bias"] = torch.randn(out, generator=g) * 0.01


def write_compact_upscaler(
    path: Path, *, scale: int = 2, features: int = 8, convs: int = 2, seed: int = 0
) -> Path:
    """A random SRVGGNetCompact; returns `path`."""
    g = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    index = 0
    _conv(tensors, f"body.{index}", features, 3, g)
    for _ in range(convs):
        tensors[f"body.{index + 1}.weight"] = torch.full((features,), 0.25)  # PReLU
        _conv(tensors, f"body.{index + 2}", features, features, g)
        index += 2
    tensors[f"body.{index + 1}.weight"] = torch.full((features,), 0.25)
    _conv(tensors, f"body.{index + 2}", 3 * scale * scale, features, g)
    save_file(tensors, str(path))
    return path


def write_rrdb_upscaler(
    path: Path,
    *,
    scale: int = 4,
    features: int = 8,
    growth: int = 4,
    blocks: int = 1,
    seed: int = 0,
    esrgan_names: bool = False,
) -> Path:
    """A random RRDBNet (scale 4 or 2); returns `path`."""
    g = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    _conv(tensors, "conv_first", features, 3 * (4 // scale) ** 2, g)
    for block in range(blocks):
        for rdb in (1, 2, 3):
            for k in range(1, 6):
                out = features if k == 5 else growth
                _conv(
                    tensors, f"body.{block}.rdb{rdb}.conv{k}", out, features + (k - 1) * growth, g
                )
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        _conv(tensors, name, features, features, g)
    _conv(tensors, "conv_last", 3, features, g)
    if esrgan_names:
        tensors = _esrgan_names(tensors, blocks)
    save_file(tensors, str(path))
    return path


def _esrgan_names(tensors: dict[str, torch.Tensor], blocks: int) -> dict[str, torch.Tensor]:
    outer = {
        "conv_first": "model.0",
        "conv_body": f"model.1.sub.{blocks}",
        "conv_up1": "model.3",
        "conv_up2": "model.6",
        "conv_hr": "model.8",
        "conv_last": "model.10",
    }
    renamed = {}
    for name, tensor in tensors.items():
        module, _, kind = name.rpartition(".")
        if module.startswith("body."):
            _, block, rdb, conv = module.split(".")
            module = f"model.1.sub.{block}.RDB{rdb[3:]}.conv{conv[4:]}.0"
        else:
            module = outer[module]
        renamed[f"{module}.{kind}"] = tensor
    return renamed
