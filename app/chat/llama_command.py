"""The llama.cpp command that reproduces a reply: paste it to compare output and speed."""

from __future__ import annotations

import json
import shlex

from app.llm.messages import LoadSettings
from app.llm.sampling import Sampling


def llama_cli_command(settings: LoadSettings, sampling: Sampling, prompt: str, seed: int) -> str:
    """`llama-cli` with the same model, load settings, sampling, seed and rendered prompt.

    `-no-cnv` and `--special`: the prompt is already templated (as ModelDeck sent it), so
    llama-cli must not apply its own template, and must read the special tokens in it.
    """
    args = ["llama-cli", "-m", str(settings.path), "-c", str(settings.context_length)]
    args += ["-ngl", str(settings.gpu_layers)]
    if settings.threads:
        args += ["-t", str(settings.threads)]
    if settings.flash_attention:
        args += ["-fa", "on"]
    if settings.kv_cache_type != "f16":
        args += ["-ctk", settings.kv_cache_type, "-ctv", settings.kv_cache_type]
    args += [
        "--temp", _number(sampling.temperature),
        "--top-p", _number(sampling.top_p),
        "--top-k", str(sampling.top_k),
        "--min-p", _number(sampling.min_p),
        "--repeat-penalty", _number(sampling.repeat_penalty),
        "-n", str(sampling.max_tokens),
        "--seed", str(seed),
    ]  # fmt: skip
    for stop in sampling.stop:
        args += ["-r", stop]
    if sampling.json_schema is not None:
        # The same grammar: llama-cli converts the schema with llama.cpp's own converter.
        args += ["--json-schema", json.dumps(json.loads(sampling.json_schema))]
    args += ["-no-cnv", "--special", "-p", prompt]
    return shlex.join(args)


def _number(value: float) -> str:
    return f"{value:g}"
