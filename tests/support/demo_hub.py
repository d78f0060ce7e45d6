"""A small, realistic set of repos on a `HubServer`, for manual demos and benchmarks.

`seed_demo_hub(server)` adds the kinds of repos ModelDeck has to understand: a GGUF repo with
several quantizations and a split model, a diffusers pipeline, a gated Llama-licensed repo, an
Apache-2.0 transformers repo, a custom ("other") license with a LICENSE file, a card whose YAML
is broken, and optionally many small filler repos so that search has pages to turn.

With `runnable=True` it also serves two models that really run, so a person (or
`scripts/screenshots`) can download, chat and generate against it:
- `demo-org/Tiny-Chat-GGUF`: a random-weight GGUF that llama.cpp loads, scripted to answer
  every message with the same short reply (`app.tiny_gguf`, as `--self-test` uses);
- `demo-org/Tiny-SD-Pipeline`: a tiny Stable Diffusion pipeline with safetensors components
  (`tests.support.diffusers_builder`): 64x64 in 2 steps takes well under a second on a CPU.
Building them needs the `llm` and `image` extras and takes a few seconds (torch); they are
built only when asked, so importing this module stays cheap.

File contents are small but well-formed where it is cheap: GGUF files have a valid header with
real metadata keys, safetensors files hold one real tensor. Sizes follow the quantization's bits
per weight, so relative sizes look right even though everything is a few KiB.

Run it for a person to point the app at (with the runnable models unless --no-runnable)::

    python -m tests.support.demo_hub [--port 8765] [--filler 200] [--no-runnable]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import struct
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from tests.support.hub_server import HubServer

__all__ = [
    "DemoRepos",
    "RunnableRepos",
    "gguf_file",
    "safetensors_file",
    "seed_demo_hub",
    "seed_filler_repos",
    "seed_runnable_repos",
]

GRANTED_TOKEN = "hf_demo_granted_token"
"""A token that `seed_demo_hub` grants access to the gated repo."""


@dataclass(frozen=True, slots=True)
class RunnableRepos:
    """The demo hub's models that really run, and the files it serves them from (a test or
    the screenshots can use them in place instead of downloading them)."""

    chat: str  # the GGUF repo
    chat_file: str  # its one GGUF, as named in the repo
    chat_path: Path  # that file on disk
    pipeline: str  # the diffusers repo
    pipeline_folder: Path  # the pipeline folder on disk (what the repo holds)


@dataclass(frozen=True, slots=True)
class DemoRepos:
    """Ids of the repos `seed_demo_hub` added, so tests and benchmarks need not spell them."""

    gguf: str
    diffusers: str
    gated: str
    transformers: str
    other_license: str
    broken_card: str
    granted_token: str
    filler: tuple[str, ...]
    runnable: RunnableRepos | None = None  # only when asked for (`runnable=True`)

    def all(self) -> tuple[str, ...]:
        """Every demo repo id, filler included."""
        named = (self.gguf, self.diffusers, self.gated, self.transformers, self.other_license)
        running = (self.runnable.chat, self.runnable.pipeline) if self.runnable else ()
        return (*named, self.broken_card, *running, *self.filler)


# --------------------------------------------------------------------------------------------
# Well-formed small files


_GGUF_STRING, _GGUF_UINT32 = 8, 4
_GGUF_ALIGNMENT = 32

# llama.cpp's `general.file_type` ids and approximate bits per weight of each quantization.
_QUANTS: dict[str, tuple[int, float]] = {
    "F16": (1, 16.0),
    "Q8_0": (7, 8.5),
    "Q5_K_S": (16, 5.54),
    "Q4_K_M": (15, 4.89),
    "IQ2_XS": (20, 2.31),
}


def gguf_file(metadata: Mapping[str, str | int], *, padding: int = 0) -> bytes:
    """A GGUF v3 file with these metadata keys and no tensors, then `padding` zero bytes.

    Readers that look at the header (architecture, name, file type) see a real GGUF file.
    """

    def text(value: str) -> bytes:
        data = value.encode()
        return struct.pack("<Q", len(data)) + data

    header = b"GGUF" + struct.pack("<IQQ", 3, 0, len(metadata))
    for key, value in metadata.items():
        if isinstance(value, str):
            header += text(key) + struct.pack("<I", _GGUF_STRING) + text(value)
        else:
            header += text(key) + struct.pack("<II", _GGUF_UINT32, value)
    header += b"\0" * (-len(header) % _GGUF_ALIGNMENT)
    return header + b"\0" * padding


def safetensors_file(n_values: int, *, dtype: str = "F32", name: str = "weight") -> bytes:
    """A valid safetensors file holding one zero tensor `name` of `n_values` elements."""
    width = {"F32": 4, "F16": 2, "BF16": 2}[dtype]
    size = n_values * width
    tensors = {
        "__metadata__": {"format": "pt"},
        name: {"dtype": dtype, "shape": [n_values], "data_offsets": [0, size]},
    }
    header = json.dumps(tensors, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + b"\0" * size


def _json(obj: object) -> bytes:
    return json.dumps(obj, indent=2).encode() + b"\n"


_GITATTRIBUTES = b"""*.gguf filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
*.bin filter=lfs diff=lfs merge=lfs -text
*.onnx filter=lfs diff=lfs merge=lfs -text
"""


# --------------------------------------------------------------------------------------------
# The repos


_GGUF_CARD = """---
license: apache-2.0
base_model: demo-org/Pocket-Llama-3B-Instruct
pipeline_tag: text-generation
language:
- en
- fr
tags:
- llama
- chat
- quantized
quantized_by: demo-quantizer
---

# Pocket Llama 3B Instruct — GGUF

GGUF quantizations of [Pocket Llama 3B Instruct](https://huggingface.co/demo-org/Pocket-Llama-3B-Instruct),
made with [llama.cpp](https://github.com/ggml-org/llama.cpp) `b4500`.

## Which file should I choose?

| File | Quant | Bits/weight | Use case |
|------|-------|------------:|----------|
| `Pocket-Llama-3B-Instruct-IQ2_XS.gguf` | IQ2_XS | 2.31 | smallest, noticeably worse |
| `Pocket-Llama-3B-Instruct-Q4_K_M.gguf` | Q4_K_M | 4.89 | **recommended** |
| `Pocket-Llama-3B-Instruct-Q5_K_S.gguf` | Q5_K_S | 5.54 | a little better |
| `Pocket-Llama-3B-Instruct-Q8_0-0000X-of-00002.gguf` | Q8_0 | 8.50 | near lossless, split in two |
| `Pocket-Llama-3B-Instruct-F16.gguf` | F16 | 16.00 | full precision |

## Prompt format

```
<|im_start|>system
{system_prompt}<|im_end|>
<|im_start|>user
{prompt}<|im_end|>
<|im_start|>assistant
```

## Running it

1. Download one file, for example the Q4_K_M.
2. Run it with llama.cpp:

   ```bash
   llama-cli -m Pocket-Llama-3B-Instruct-Q4_K_M.gguf -p "Hello" -n 128
   ```

3. Or load it in any GGUF-compatible app.

> **Note:** the Q8_0 model is split; keep both parts in the same folder and open the first one.

### Limitations

- Trained mostly on English and French text.
- May produce *incorrect* or biased answers; see the [original card](https://example.org/card).
"""


def _gguf_repo(server: HubServer) -> str:
    repo_id = "demo-quantizer/Pocket-Llama-3B-Instruct-GGUF"
    stem = "Pocket-Llama-3B-Instruct"
    files: dict[str, bytes] = {".gitattributes": _GITATTRIBUTES}
    for quant, (file_type, bits) in _QUANTS.items():
        meta = _gguf_metadata(stem, file_type)
        padding = int(bits * 2048)
        if quant == "Q8_0":
            for part in (1, 2):
                split = {**meta, "split.no": part - 1, "split.count": 2}
                name = f"{stem}-{quant}-{part:05d}-of-00002.gguf"
                files[name] = gguf_file(split, padding=padding // 2)
        else:
            files[f"{stem}-{quant}.gguf"] = gguf_file(meta, padding=padding)
    server.add_repo(repo_id, files, card=_GGUF_CARD, downloads=48_213, likes=412)
    return repo_id


def _gguf_metadata(name: str, file_type: int) -> dict[str, str | int]:
    return {
        "general.architecture": "llama",
        "general.name": name,
        "general.file_type": file_type,
        "llama.context_length": 8192,
        "llama.block_count": 26,
    }


_DIFFUSERS_CARD = """---
license: creativeml-openrail-m
library_name: diffusers
pipeline_tag: text-to-image
tags:
- stable-diffusion
- stable-diffusion-diffusers
---

# Tiny Diffusion

A very small Stable-Diffusion-style pipeline layout: the files are placeholders (its text
encoder is a pickle), so the app can show what it says about such a download. For a pipeline
that runs, see demo-org/Tiny-SD-Pipeline.

```python
from diffusers import StableDiffusionPipeline
pipe = StableDiffusionPipeline.from_pretrained("demo-org/tiny-diffusion")
image = pipe("an astronaut riding a horse", num_inference_steps=2).images[0]
```
"""


def _diffusers_repo(server: HubServer) -> str:
    repo_id = "demo-org/tiny-diffusion"
    component = {"_class_name": "UNet2DConditionModel", "_diffusers_version": "0.42.0"}
    files: dict[str, bytes] = {
        ".gitattributes": _GITATTRIBUTES,
        "model_index.json": _json(
            {
                "_class_name": "StableDiffusionPipeline",
                "_diffusers_version": "0.42.0",
                "scheduler": ["diffusers", "DDIMScheduler"],
                "text_encoder": ["transformers", "CLIPTextModel"],
                "tokenizer": ["transformers", "CLIPTokenizer"],
                "unet": ["diffusers", "UNet2DConditionModel"],
                "vae": ["diffusers", "AutoencoderKL"],
            }
        ),
        "scheduler/scheduler_config.json": _json({"_class_name": "DDIMScheduler"}),
        "unet/config.json": _json(component),
        "unet/diffusion_pytorch_model.safetensors": safetensors_file(6000),
        "unet/diffusion_pytorch_model.fp16.safetensors": safetensors_file(6000, dtype="F16"),
        "vae/config.json": _json({**component, "_class_name": "AutoencoderKL"}),
        "vae/diffusion_pytorch_model.safetensors": safetensors_file(2000),
        "text_encoder/config.json": _json({"architectures": ["CLIPTextModel"]}),
        "text_encoder/pytorch_model.bin": b"PK\x03\x04" + b"\0" * 4000,  # placeholder bytes
        "tokenizer/vocab.json": _json({"<|startoftext|>": 0, "<|endoftext|>": 1}),
        "tokenizer/merges.txt": b"#version: 0.2\n",
        "tokenizer/tokenizer_config.json": _json({"model_max_length": 77}),
    }
    server.add_repo(repo_id, files, card=_DIFFUSERS_CARD, downloads=7_340, likes=95)
    return repo_id


_GATED_CARD = """---
license: llama3.1
language: [en, de, fr, it, pt, hi, es, th]
library_name: transformers
pipeline_tag: text-generation
tags: [facebook, meta, llama, llama-3]
extra_gated_prompt: >-
  You agree to the Llama 3.1 Community License and the Acceptable Use Policy.
extra_gated_fields:
  First Name: text
  Last Name: text
  Country: country
  I accept the terms: checkbox
---

# Llama 3.1 Mini Instruct (demo)

Access is reviewed by the authors. Once granted, download with your token.
"""

_LLAMA_LICENSE = b"""LLAMA 3.1 COMMUNITY LICENSE AGREEMENT (demo excerpt)

"Agreement" means the terms and conditions for use, reproduction, distribution and
modification of the Llama Materials set forth herein.
"""


def _gated_repo(server: HubServer) -> str:
    repo_id = "demo-meta/Llama-3.1-Mini-Instruct"
    shards = {
        f"model-0000{i + 1}-of-00002.safetensors": safetensors_file(3000, name=f"layers.{i}.weight")
        for i in range(2)
    }
    weight_map = {f"layers.{i}.weight": shard for i, shard in enumerate(shards)}
    index = {"metadata": {"total_size": 24000}, "weight_map": weight_map}
    files: dict[str, bytes] = {
        ".gitattributes": _GITATTRIBUTES,
        "config.json": _json({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}),
        "generation_config.json": _json({"temperature": 0.6, "top_p": 0.9}),
        "model.safetensors.index.json": _json(index),
        "tokenizer.json": _json({"version": "1.0", "model": {"type": "BPE"}}),
        "LICENSE": _LLAMA_LICENSE,
        "USE_POLICY.md": b"# Llama 3.1 Acceptable Use Policy (demo)\n",
        **shards,
    }
    server.add_repo(repo_id, files, card=_GATED_CARD, gated="manual", downloads=95_020, likes=2_100)
    server.grant(repo_id, GRANTED_TOKEN)
    return repo_id


_BERT_CARD = """---
license: apache-2.0
language: en
library_name: transformers
pipeline_tag: text-classification
datasets: [sst2]
metrics: [accuracy]
---

# BERT mini — sentiment

Classifies English sentences as positive or negative. Accuracy 0.91 on SST-2.
"""


def _transformers_repo(server: HubServer) -> str:
    repo_id = "demo-org/bert-mini-sentiment"
    files: dict[str, bytes] = {
        ".gitattributes": _GITATTRIBUTES,
        "config.json": _json({"architectures": ["BertForSequenceClassification"]}),
        "model.safetensors": safetensors_file(4000),
        "tokenizer.json": _json({"version": "1.0", "model": {"type": "WordPiece"}}),
        "vocab.txt": b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ngood\nbad\n",
    }
    server.add_repo(repo_id, files, card=_BERT_CARD, downloads=12_500, likes=40)
    return repo_id


_OTHER_CARD = """---
license: other
license_name: demo-research-license
license_link: LICENSE
pipeline_tag: text-generation
tags: [research]
---

# Research Model 1B

For non-commercial research only; read the LICENSE before use.
"""

_RESEARCH_LICENSE = b"""DEMO RESEARCH LICENSE 1.0

1. You may use the model for non-commercial research.
2. You may not use the model to provide a commercial service.
3. Redistribution must include this license.
"""


def _other_license_repo(server: HubServer) -> str:
    repo_id = "demo-lab/research-model-1b"
    files: dict[str, bytes] = {
        "LICENSE": _RESEARCH_LICENSE,
        "research-model-1b-Q4_K_M.gguf": gguf_file(_gguf_metadata("research-model-1b", 15)),
    }
    server.add_repo(repo_id, files, card=_OTHER_CARD, downloads=310, likes=12)
    return repo_id


def _broken_card_repo(server: HubServer) -> str:
    repo_id = "demo-org/broken-card-model"
    card = "---\nlicense: mit\ntags: [unclosed\n---\n# A card whose YAML does not parse\n"
    server.add_repo(repo_id, {"model.Q4_0.gguf": gguf_file({})}, card=card, downloads=3)
    return repo_id


# --------------------------------------------------------------------------------------------
# Models that run (built on demand)


CHAT_REPO = "demo-org/Tiny-Chat-GGUF"
CHAT_FILE = "Tiny-Chat-F32.gguf"
PIPELINE_REPO = "demo-org/Tiny-SD-Pipeline"
# Found by the Documents page's "Get an embedding model" search (app.docs.embedders).
EMBEDDER_REPO = "demo-org/Tiny-nomic-embed-text-GGUF"
EMBEDDER_FILE = "tiny-nomic-embed-text-F32.gguf"

_EMBEDDER_CARD = """---
license: apache-2.0
pipeline_tag: feature-extraction
library_name: gguf
tags:
- gguf
- sentence-similarity
- demo
---

# Tiny embed text (demo)

A two-block llama with random weights and mean pooling: a stand-in for nomic-embed-text that
loads in a blink. Download it, then pick it as a collection's embedding model in Documents.
"""


def seed_embedder_repo(server: HubServer, folder: Path) -> str:
    """Serve a tiny embedding GGUF (real: llama.cpp embeds with it) as `EMBEDDER_REPO`."""
    from app.tiny_gguf import write_embedding_gguf

    folder.mkdir(parents=True, exist_ok=True)
    path = write_embedding_gguf(folder / EMBEDDER_FILE, file_type=0)
    files: dict[str, bytes | Path] = {".gitattributes": _GITATTRIBUTES, EMBEDDER_FILE: path}
    server.add_repo(EMBEDDER_REPO, files, card=_EMBEDDER_CARD, downloads=3_870, likes=41)
    return EMBEDDER_REPO


_CHAT_CARD = """---
license: apache-2.0
pipeline_tag: text-generation
library_name: gguf
tags:
- gguf
- chat
- demo
---

# Tiny Chat (demo)

A two-block llama with random weights, small enough to load in a blink. It is scripted:
whatever you say, it answers "{reply}". Use it to try ModelDeck's Chat page offline:
download `{file}`, press *Chat with this*, Load, and send a message.
"""

_PIPELINE_CARD = """---
license: creativeml-openrail-m
library_name: diffusers
pipeline_tag: text-to-image
tags:
- stable-diffusion
- stable-diffusion-diffusers
- demo
---

# Tiny SD Pipeline (demo)

A Stable Diffusion 1.x pipeline with random weights and every component in safetensors: a
2-level UNet, a 2-level VAE and a 5-layer CLIP text encoder. It makes colourful noise, fast:
64x64 in 2 steps takes well under a second on a CPU. Download the pipeline, open it in
Images, set the size to 64x64 and the steps to 2, and press Generate.
"""


def seed_runnable_repos(server: HubServer, folder: Path) -> RunnableRepos:
    """Build the runnable models into `folder` and serve them (seconds: imports torch)."""
    from app.tiny_gguf import SCRIPTED_REPLY, write_scripted_gguf
    from tests.support.diffusers_builder import build_pipeline_folder

    folder.mkdir(parents=True, exist_ok=True)
    # file_type 0: all F32, which is what the scripted tensors are.
    chat_path = write_scripted_gguf(
        folder / CHAT_FILE, name="Tiny Chat", file_type=0, context_length=4096
    )
    card = _CHAT_CARD.format(reply=SCRIPTED_REPLY, file=CHAT_FILE)
    files: dict[str, bytes | Path] = {".gitattributes": _GITATTRIBUTES, CHAT_FILE: chat_path}
    server.add_repo(CHAT_REPO, files, card=card, downloads=1_204, likes=17)
    seed_embedder_repo(server, folder)

    pipeline_folder = folder / "tiny-sd-pipeline"
    if not (pipeline_folder / "model_index.json").is_file():
        build_pipeline_folder(pipeline_folder)
    components: dict[str, bytes | Path] = {".gitattributes": _GITATTRIBUTES}
    for path in sorted(pipeline_folder.rglob("*")):
        if path.is_file():
            components[path.relative_to(pipeline_folder).as_posix()] = path
    server.add_repo(PIPELINE_REPO, components, card=_PIPELINE_CARD, downloads=2_310, likes=29)
    return RunnableRepos(
        chat=CHAT_REPO,
        chat_file=CHAT_FILE,
        chat_path=chat_path,
        pipeline=PIPELINE_REPO,
        pipeline_folder=pipeline_folder,
    )


# --------------------------------------------------------------------------------------------
# Public entry points


_FILLER_KINDS = (
    ("text-generation", "gguf", "apache-2.0"),
    ("text-generation", "transformers", "mit"),
    ("text-to-image", "diffusers", "creativeml-openrail-m"),
    ("text-classification", "transformers", "apache-2.0"),
    ("automatic-speech-recognition", "transformers", "cc-by-4.0"),
)


def seed_filler_repos(server: HubServer, count: int) -> tuple[str, ...]:
    """Add `count` metadata-only repos with varied tasks, libraries, licenses and popularity.

    Deterministic, and cheap enough for thousands (for search benchmarks).
    """
    ids = []
    for i in range(count):
        task, library, license_id = _FILLER_KINDS[i % len(_FILLER_KINDS)]
        repo_id = f"filler-{i % 17:02d}/{library}-{task}-{i:05d}"
        card = f"---\nlicense: {license_id}\n---\n# Filler model {i}\n"
        server.add_repo(
            repo_id,
            card=card,
            pipeline_tag=task,
            library_name=None if library == "gguf" else library,
            tags=("gguf",) if library == "gguf" else (),
            downloads=(i * 7919) % 100_000,
            likes=(i * 104_729) % 5_000,
        )
        ids.append(repo_id)
    return tuple(ids)


def seed_demo_hub(
    server: HubServer, *, filler_repos: int = 0, runnable: Path | None = None
) -> DemoRepos:
    """Add the demo repos (and `filler_repos` extra metadata-only repos) to `server`; with
    `runnable` (a folder to build them in), the models that really run too."""
    return DemoRepos(
        gguf=_gguf_repo(server),
        diffusers=_diffusers_repo(server),
        gated=_gated_repo(server),
        transformers=_transformers_repo(server),
        other_license=_other_license_repo(server),
        broken_card=_broken_card_repo(server),
        granted_token=GRANTED_TOKEN,
        filler=seed_filler_repos(server, filler_repos),
        runnable=seed_runnable_repos(server, runnable) if runnable is not None else None,
    )


def main(argv: list[str] | None = None) -> int:
    """Serve the demo hub in the foreground until Ctrl+C."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.demo_hub", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="Hub port (default: a free one)")
    parser.add_argument("--filler", type=int, default=120, help="extra small repos for search")
    parser.add_argument("--root", type=Path, help="folder for file contents (default: temporary)")
    parser.add_argument(
        "--no-runnable",
        dest="runnable",
        action="store_false",
        help="skip the models that really run (they need the llm and image extras)",
    )
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="demo-hub-") as temporary,
        HubServer(args.root or Path(temporary), port=args.port) as server,
    ):
        if args.runnable:
            print("Building the models that run (a few seconds)…", flush=True)
        models = (args.root or Path(temporary)) / "demo-models" if args.runnable else None
        demo = seed_demo_hub(server, filler_repos=args.filler, runnable=models)
        print(f"Demo hub: {server.url}   (CDN: {server.cdn_url})")
        print(f"{len(demo.all())} repos; the gated {demo.gated} opens with this token:")
        print(f"  {demo.granted_token}")
        if demo.runnable is not None:
            print(f"To chat: {demo.runnable.chat}; to generate: {demo.runnable.pipeline}")
        print(f"Try: curl '{server.url}/api/models?search=llama'")
        print("Ctrl+C to stop.", flush=True)
        _wait_for_interrupt()
        print("\nStopped.")
    return 0


def _wait_for_interrupt() -> None:
    """Block until Ctrl+C or SIGTERM (a shell's `&` starts children with SIGINT ignored)."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
