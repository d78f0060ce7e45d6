"""Hostile checkpoints: tiny GGUF, safetensors and diffusers files whose headers lie.

Each file is written for real in tmp_path and read by `sniff`, within bounded CPU time and
memory (`within_bounds`): it ends in a result or a `CheckpointError` a person can act on,
never in another exception. Then one bad file sits in a real HF cache beside good ones, and
`modeldeck list` still lists everything, the bad file as a rejected entry with its reason.
"""

from __future__ import annotations

import argparse
import io
import json
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.commands import library as commands
from app.core import Core
from app.errors import CheckpointError
from app.library import Checkpoint, Library, sniff
from tests.core.test_library_layouts import (
    app_folders,
    gguf_bytes,
    safetensors_bytes,
    write,
    write_diffusers,
    write_hf_repo,
)
from tests.hostile.bounds import within_bounds
from tests.hostile.hostile_files import (
    ARRAY,
    LLAMA_SHAPE,
    STRING,
    U8,
    U32,
    Tensor,
    gguf,
    gguf_string,
    kv_array,
    kv_u64,
    safetensors,
)


@dataclass(frozen=True)
class Case:
    """A hostile file and what `sniff` must make of it."""

    name: str  # the file name (its suffix matters)
    data: bytes
    says: str | None = None  # a CheckpointError whose message holds this; None: a result
    check: Callable[[Checkpoint], bool] | None = None  # about the result, when there is one


def _nested_arrays(depth: int) -> bytes:
    """A metadata value of arrays nested `depth` deep (each holding the next)."""
    value = struct.pack("<IQ", U8, 0)
    for _ in range(depth - 1):
        value = struct.pack("<IQ", ARRAY, 1) + value
    return gguf_string("x.nested") + struct.pack("<I", ARRAY) + value


def _claims_layers(block_count: int) -> Case:
    # The finding: 258 bytes claiming 50,000,000 layers took 5 s and 1.2 GB; 2**40 ran out of
    # memory, 2**63 overflowed. A layer has at least one tensor: the shape is unknown instead.
    return Case(
        f"layers-{block_count}.gguf",
        gguf([*LLAMA_SHAPE, kv_u64("llama.block_count", block_count)]),
        check=lambda c: c.gguf_shape is None and c.parameter_count == 64,
    )


GGUF_CASES = {
    "block-count-50-million": _claims_layers(50_000_000),
    "block-count-2**40": _claims_layers(2**40),
    "block-count-2**63": _claims_layers(2**63),
    "block-count-u64-max": _claims_layers(2**64 - 1),
    "block-count-beyond-its-tensors": _claims_layers(2),
    "tensor-count-u64-max": Case(
        "tensors.gguf", gguf(tensor_count=2**64 - 1), says="the file is too small"
    ),
    "kv-count-u64-max": Case("kv.gguf", gguf(kv_count=2**64 - 1), says="the file is too small"),
    "key-length-2**63": Case(
        "key.gguf",
        gguf([gguf_string("general.name", claimed=2**63) + struct.pack("<I", STRING)]),
        says="more than 65535 bytes",
    ),
    "string-value-u64-max": Case(
        "value.gguf",
        gguf(
            [gguf_string("general.name") + struct.pack("<I", STRING) + struct.pack("<Q", 2**64 - 1)]
        ),
        says="more than 64 MiB",
    ),
    "string-array-of-2**60": Case(
        "strings.gguf",
        gguf([kv_array("tokenizer.ggml.tokens", STRING, 2**60)]),
        says="more than the rest of the file holds",
    ),
    "string-in-array-longer-than-the-file": Case(
        "token.gguf",
        gguf(
            [
                kv_array(
                    "tokenizer.ggml.tokens", STRING, 2, gguf_string("a") + struct.pack("<Q", 10**6)
                )
            ]
        ),
        says="only",
    ),
    "nested-arrays-too-deep": Case("deep.gguf", gguf([_nested_arrays(6)]), says="too deep"),
    "array-of-2**62-arrays": Case(
        "arrays.gguf", gguf([kv_array("x.arrays", ARRAY, 2**62)]), says="more than the rest"
    ),
    "per-layer-heads-claiming-2**40": Case(
        "heads.gguf",
        gguf([*LLAMA_SHAPE[:2], kv_array("llama.attention.head_count", U32, 2**40)]),
        says="more than the rest of the file holds",
    ),
    "tensor-dims-past-2**63-elements": Case(
        "elements.gguf",
        gguf(tensors=[Tensor(dims=(2**32, 2**32, 2**32))]),
        says="elements",
    ),
    "tensor-with-2**32-1-dims": Case(
        "dims.gguf", gguf(tensors=[Tensor(n_dims=2**32 - 1)]), says="dimensions"
    ),
    "tensor-data-past-the-end": Case(
        "offset.gguf", gguf(tensors=[Tensor(offset=2**62)]), says="truncated"
    ),
    "tensor-name-2**63-bytes": Case(
        "name.gguf",
        b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + struct.pack("<Q", 2**63) + bytes(64),
        says="more than 65535 bytes",
    ),
    "alignment-2**63": Case(
        "align.gguf",
        gguf([*LLAMA_SHAPE, kv_u64("general.alignment", 2**63)]),
        says="truncated",
    ),
    "chat-template-of-2**40-bytes": Case(
        "template.gguf",
        gguf([gguf_string("tokenizer.chat_template") + struct.pack("<IQ", STRING, 2**40)]),
        says="more than 64 MiB",
    ),
}
_DEEP = 100_000
SAFETENSORS_CASES = {
    "header-nested-100000-deep": Case(
        "deep.safetensors", safetensors(b"[" * _DEEP + b"]" * _DEEP), says="nests deeper"
    ),
    "metadata-nested-100000-deep": Case(
        "meta.safetensors",
        safetensors(b'{"__metadata__": ' + b'{"a": ' * _DEEP + b"1" + b"}" * (_DEEP + 1)),
        says="nests deeper",
    ),
    # The finding: a 4 MB header of huge shape numbers held the GIL for 60 s.
    "4-mb-of-huge-shape-numbers": Case(
        "huge.safetensors",
        safetensors(
            {"w": {"dtype": "F16", "shape": [int("9" * 4000)] * 1000, "data_offsets": [0, 2]}},
            b"\0\0",
        ),
        says="more elements than its 2 bytes hold",
    ),
    "a-thousand-dims-of-2**62": Case(
        "dims.safetensors",
        safetensors(
            {"w": {"dtype": "F16", "shape": [2**62] * 1000, "data_offsets": [0, 2]}}, b"\0\0"
        ),
        says="more elements",
    ),
    "a-number-of-5000-digits": Case(
        "digits.safetensors",
        safetensors(
            b'{"w": {"dtype": "F16", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 2]}}',
            b"\0\0",
        ),
        says="not JSON",
    ),
    "data-offsets-past-the-end": Case(
        "offsets.safetensors",
        safetensors({"w": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2**70]}}, b"\0\0"),
        says="truncated",
    ),
    "header-length-u64-max": Case(
        "length.safetensors", safetensors(b"{}", claimed=2**64 - 1), says="larger than the file"
    ),
    "float-dimensions": Case(
        "floats.safetensors",
        safetensors(b'{"w": {"dtype": "F16", "shape": [1e400], "data_offsets": [0, 2]}}', b"\0\0"),
        says="no valid shape",
    ),
    "zero-sized-but-a-thousand-dims": Case(
        "zero.safetensors",
        safetensors({"w": {"dtype": "F16", "shape": [0] + [2**62] * 1000, "data_offsets": [0, 0]}}),
        check=lambda c: c.parameter_count == 0,
    ),
}


@pytest.mark.parametrize("case", GGUF_CASES.values(), ids=GGUF_CASES.keys())
def test_hostile_gguf_headers(tmp_path: Path, case: Case) -> None:
    _expect(tmp_path, case, "gguf header")


@pytest.mark.parametrize("case", SAFETENSORS_CASES.values(), ids=SAFETENSORS_CASES.keys())
def test_hostile_safetensors_headers(tmp_path: Path, case: Case) -> None:
    _expect(tmp_path, case, "safetensors header")


def _expect(tmp_path: Path, case: Case, label: str) -> None:
    path = write(tmp_path / case.name, case.data)
    outcome = within_bounds(label, lambda: sniff(path), errors=(CheckpointError,))
    if case.says is None:
        assert outcome.error is None, outcome.error
        assert outcome.value is not None
        assert case.check is None or case.check(outcome.value), outcome.value
    else:
        assert isinstance(outcome.error, CheckpointError), outcome.value
        assert case.says in outcome.error.message, outcome.error.message
        assert outcome.error.path == str(path)
        assert "\n" not in outcome.error.message  # one line a person can act on
        assert len(outcome.error.message) < 400


@pytest.mark.parametrize(
    ("index", "says"),
    [
        (b"[" * _DEEP + b"]" * _DEEP, "nests deeper"),
        (b'{"_class_name": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", "nests deeper"),
        (b'{"_class_name": 1' + b"0" * 5000 + b"}", "not JSON"),
        (b'{"_class_name": "P", "x": "' + b"a" * (2 * 2**20) + b'"}', "larger than"),
    ],
    ids=["nested-100000", "class-name-nested", "5000-digit-number", "2-mb-index"],
)
def test_hostile_model_index_json(tmp_path: Path, index: bytes, says: str) -> None:
    folder = write_diffusers(tmp_path / "pipeline")
    write(folder / "model_index.json", index)

    outcome = within_bounds("diffusers folder", lambda: sniff(folder), errors=(CheckpointError,))

    assert isinstance(outcome.error, CheckpointError)
    assert "malformed model_index.json" in outcome.error.message
    assert says in outcome.error.message


def test_a_hostile_diffusers_config_json_is_never_parsed_by_the_library(tmp_path: Path) -> None:
    folder = write_diffusers(tmp_path / "pipeline")
    write(folder / "unet" / "config.json", b"[" * _DEEP)

    outcome = within_bounds("diffusers folder", lambda: sniff(folder), errors=(CheckpointError,))

    assert outcome.value is not None and outcome.value.architecture == "StableDiffusionPipeline"


# --- one bad file in the HF cache --------------------------------------------------------------

BAD_FILES = {
    "deep.safetensors": safetensors(b"[" * _DEEP + b"]" * _DEEP),
    "evil-Q4_K_M.gguf": gguf(tensor_count=2**64 - 1),
}


def _billion_laughs() -> str:
    """YAML front matter whose `license` expands to 9**10 items if anything walks it."""
    lines = ["license: &l0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 10):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return "---\n" + "\n".join(lines) + "\n---\n# a card\n"


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Core]:
    opened = Core.open(data_dir=tmp_path / "data")
    yield opened
    opened.close()


def _run(core: Core, cache: Path, tmp_path: Path, *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="modeldeck")
    commands.register(parser.add_subparsers(dest="command"))
    library = Library(core.database, hf_cache_dir=cache, app_folders=app_folders(tmp_path / "apps"))
    out, err = io.StringIO(), io.StringIO()
    status = commands.run(core, parser.parse_args(argv), out, library=library, err=err)
    return status, out.getvalue(), err.getvalue()


def test_modeldeck_list_survives_bad_files_in_the_hf_cache(core: Core, tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    write_hf_repo(cache, "good/tiny-GGUF", {"tiny-Q4_K_M.gguf": gguf_bytes()})
    write_hf_repo(cache, "good/sd", {"model.safetensors": safetensors_bytes()})
    write_hf_repo(cache, "evil/repo", {**BAD_FILES, "README.md": _billion_laughs().encode()})
    # A header whose claims are not believed is still a model: listed, its shape unknown.
    layers = gguf([*LLAMA_SHAPE, kv_u64("llama.block_count", 2**63)])
    write_hf_repo(cache, "odd/layers", {"layers-Q8_0.gguf": layers})

    outcome = within_bounds(
        "modeldeck list",
        lambda: _run(core, cache, tmp_path, "list"),
        errors=(),
        seconds=5.0,
        pure=False,
    )

    assert outcome.value is not None
    status, out, err = outcome.value
    assert status == 0, err
    lines = out.splitlines()
    assert any("tiny-Q4_K_M" in line and "good/tiny-GGUF" in line for line in lines), out
    assert any("good/sd" in line for line in lines), out
    assert any("odd/layers" in line for line in lines), out
    rejected = [line for line in lines if line.startswith("rejected")]
    assert len(rejected) == len(BAD_FILES), out
    assert all("(evil/repo)" in line for line in rejected), out
    assert any("deep.safetensors" in line and "nests deeper" in line for line in rejected), out
    assert any("evil-Q4_K_M.gguf" in line and "too small" in line for line in rejected), out

    status, out, _ = _run(core, cache, tmp_path, "list", "--json")
    entries = json.loads(out)
    unreadable = [entry for entry in entries if entry["unreadable"]]
    assert len(unreadable) == len(BAD_FILES)
    assert len(entries) == len(unreadable) + 3
    # The README's license never expanded: the aliases were refused, not walked.
    assert all(entry["license"] is None for entry in unreadable)
