"""Properties of every parser of untrusted bytes, over inputs hypothesis makes up.

The property is the same for each: one input costs bounded CPU time and memory, and ends in
a result or the parser's one clear error, never another exception (`within_bounds`). Inputs
are built from the formats' own parts (GGUF key/values and tensor infos, safetensors JSON,
PNG chunks, Markdown and YAML tokens) with hostile values mixed in: counts and lengths up to
2**64 - 1, nesting, huge numbers, unclosed constructs.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.errors import CheckpointError
from app.hub.card import parse_card
from app.hub.card_html import html_to_text, render_card_chunks
from app.images import ImageParamsError
from app.images.png_metadata import _a1111_pairs, parse_a1111_parameters, read_metadata
from app.library import sniff
from tests.core.test_library_layouts import gguf_bytes
from tests.hostile.bounds import within_bounds
from tests.hostile.hostile_files import (
    ARRAY,
    STRING,
    Tensor,
    gguf,
    gguf_string,
    png,
    png_chunk,
    safetensors,
    tensor_info,
)
from tests.hostile.test_card_html import assert_inert, long_lived_objects_frozen


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the module: each example overwrites its one file."""
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    """Each parser once on a plain input: the first call imports and compiles (markdown-it's
    tables, Pillow, YAML), a one-off cost that is not the cost of an input."""
    render_card_chunks("# a\n\n*b* [c](d) <b>e</b>\n\n| a |\n|---|\n| b |\n")
    parse_card("---\nlicense: mit\n---\nbody\n")
    parse_a1111_parameters("a\nSteps: 1, Seed: 2, Size: 64x64")


# Numbers a header may claim: small, around the powers of two where arithmetic breaks, huge.
claims = st.one_of(
    st.integers(0, 16),
    st.sampled_from([2**31 - 1, 2**32 - 1, 2**32, 2**40, 2**62, 2**63 - 1, 2**63, 2**64 - 1]),
    st.integers(0, 2**64 - 1),
)
u32_claims = st.one_of(st.integers(0, 16), st.integers(0, 2**32 - 1))


# --- GGUF ----------------------------------------------------------------------------------------


@st.composite
def gguf_values(draw: st.DrawFn, depth: int = 0) -> bytes:
    """A metadata value (type id, then its bytes), sometimes lying about its length."""
    kind = draw(st.integers(0, 14))
    if kind == STRING:
        text = draw(st.binary(max_size=24))
        claimed = draw(st.one_of(st.none(), claims))
        return struct.pack("<I", kind) + gguf_string(text, claimed=claimed)
    if kind == ARRAY:
        item_type = draw(st.integers(0, 14))
        count = draw(claims)
        items = b"".join(
            draw(gguf_values(depth + 1))[4:] if item_type == ARRAY and depth < 6 else b""
            for _ in range(min(count, 3))
        )
        filler = draw(st.binary(max_size=64))
        return struct.pack("<IIQ", kind, item_type, count) + items + filler
    return struct.pack("<I", kind) + draw(st.binary(min_size=0, max_size=8))


keys = st.one_of(
    st.sampled_from(
        [
            "general.architecture",
            "general.name",
            "general.alignment",
            "general.file_type",
            "llama.block_count",
            "llama.embedding_length",
            "llama.attention.head_count",
            "llama.attention.head_count_kv",
            "llama.context_length",
            "tokenizer.chat_template",
            "tokenizer.ggml.tokens",
            "split.count",
        ]
    ),
    st.text(max_size=20),
)


@st.composite
def gguf_files(draw: st.DrawFn) -> bytes:
    entries = [
        gguf_string(draw(keys), claimed=draw(st.one_of(st.none(), st.none(), claims)))
        + draw(gguf_values())
        for _ in range(draw(st.integers(0, 6)))
    ]
    tensors = [
        Tensor(
            name=draw(
                st.sampled_from(["token_embd.weight", "blk.0.attn_q.weight", "output.weight"])
            ),
            dims=tuple(draw(st.lists(claims, max_size=5))),
            ggml_type=draw(st.one_of(st.integers(0, 42), u32_claims)),
            offset=draw(claims),
            n_dims=draw(st.one_of(st.none(), st.none(), u32_claims)),
        )
        for _ in range(draw(st.integers(0, 4)))
    ]
    return gguf(
        entries,
        tensors,
        tensor_count=draw(st.one_of(st.none(), st.none(), claims)),
        kv_count=draw(st.one_of(st.none(), st.none(), claims)),
        version=draw(st.sampled_from([2, 3, 3, 3, 1, 2**32 - 1])),
        data_bytes=draw(st.integers(0, 2048)),
    )


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """`original` with a few bytes overwritten by little-endian claims at chosen places."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(0, len(data) - 8)))
        data[at : at + 8] = struct.pack("<Q", draw(claims))[: len(data) - at]
    return bytes(data)


def _sniff_within_bounds(folder: Path, name: str, data: bytes, label: str) -> None:
    path = folder / name
    path.write_bytes(data)
    within_bounds(label, lambda: sniff(path), errors=(CheckpointError,))


@given(data=gguf_files())
def test_any_gguf_header_is_read_within_bounds(folder: Path, data: bytes) -> None:
    _sniff_within_bounds(folder, "any.gguf", data, "gguf header (hypothesis)")


@given(data=mutated(gguf_bytes()))
def test_a_valid_gguf_with_claims_overwritten_is_read_within_bounds(
    folder: Path, data: bytes
) -> None:
    _sniff_within_bounds(folder, "mutated.gguf", data, "gguf header (hypothesis)")


@given(name_length=claims, dims=st.lists(claims, max_size=8))
def test_any_tensor_info_is_read_within_bounds(
    folder: Path, name_length: int, dims: list[int]
) -> None:
    info = tensor_info(Tensor(dims=tuple(dims)))
    info = struct.pack("<Q", name_length) + info[8:]
    data = b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + info + bytes(256)
    _sniff_within_bounds(folder, "tensor.gguf", data, "gguf header (hypothesis)")


# --- safetensors ---------------------------------------------------------------------------------

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([10**4000, -(10**4000), 2**64 - 1]),
    st.floats(allow_nan=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=40,
)
dtypes = st.sampled_from(["F16", "BF16", "F32", "F8_E4M3", "I64", "U8", "", "??"])


@st.composite
def tensor_entries(draw: st.DrawFn) -> object:
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    start = draw(claims)
    return {
        "dtype": draw(st.one_of(dtypes, json_values)),
        "shape": draw(st.one_of(st.lists(claims, max_size=8), json_values)),
        "data_offsets": draw(st.one_of(st.tuples(st.just(start), claims).map(list), json_values)),
    }


@st.composite
def safetensors_files(draw: st.DrawFn) -> bytes:
    header: dict[str, object] = draw(
        st.dictionaries(
            st.one_of(
                st.just("__metadata__"),
                st.sampled_from(["model.diffusion_model.x", "lm_head.weight"]),
                st.text(max_size=8),
            ),
            tensor_entries(),
            max_size=5,
        )
    )
    raw = json.dumps(header).encode()
    depth = draw(st.sampled_from([0, 0, 0, 10, 1_000, 50_000]))
    if depth:  # a nesting wrapped around the header
        raw = b'{"a": ' * depth + raw + b"}" * depth
    claimed = draw(st.one_of(st.none(), st.none(), claims))
    return safetensors(raw, bytes(draw(st.integers(0, 256))), claimed=claimed)


@given(data=safetensors_files())
def test_any_safetensors_header_is_read_within_bounds(folder: Path, data: bytes) -> None:
    _sniff_within_bounds(folder, "any.safetensors", data, "safetensors header (hypothesis)")


@given(header=st.binary(max_size=200), claimed=st.one_of(st.none(), claims))
def test_any_bytes_as_a_safetensors_header_are_read_within_bounds(
    folder: Path, header: bytes, claimed: int | None
) -> None:
    _sniff_within_bounds(
        folder,
        "bytes.safetensors",
        safetensors(header, claimed=claimed),
        "safetensors header (hypothesis)",
    )


# --- PNG metadata ---------------------------------------------------------------------------

# Pieces of A1111 parameter lines, and the runs that made its pattern quadratic.
a1111_pieces = st.sampled_from(
    [
        "Steps",
        ": ",
        ", ",
        "Seed",
        "Size",
        " x ",
        "9",
        "a",
        " ",
        "-",
        "/",
        '"',
        "\\",
        ":",
        ",",
        "\n",
        "Negative prompt:",
        "é",
        "\t",
        "CFG scale",
        "1" * 50,
        "a" * 200,
        " " * 200,
    ]
)
a1111_texts = st.lists(a1111_pieces, max_size=60).map("".join)
nested_json = st.integers(1, 200_000).map(lambda depth: "[" * depth + "]" * depth)


@st.composite
def png_files(draw: st.DrawFn) -> bytes:
    chunks = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from([b"tEXt", b"zTXt", b"iTXt", b"IDAT", b"IEND", b"abcd"]))
        key = draw(st.sampled_from([b"parameters", b"modeldeck", b"", b"x"]))
        text = draw(st.one_of(a1111_texts, nested_json, json_values.map(json.dumps)))
        body = text.encode("utf-8")
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            body = key + b"\0" + draw(st.binary(max_size=4)) + body
        claimed = draw(st.one_of(st.none(), st.none(), st.none(), u32_claims))
        chunks.append(png_chunk(kind, body, claimed=claimed))
    size = draw(st.sampled_from([(8, 8), (100_000, 100_000), (1, 2**31 - 1)]))
    return png(chunks, width=size[0], height=size[1], end=draw(st.booleans()))


@given(data=png_files())
def test_any_png_is_read_within_bounds(folder: Path, data: bytes) -> None:
    path = folder / "any.png"
    path.write_bytes(data)
    within_bounds("png metadata (hypothesis)", lambda: read_metadata(path), errors=(OSError,))


@given(text=a1111_texts)
def test_any_parameters_text_is_parsed_within_bounds(text: str) -> None:
    within_bounds(
        "a1111 parameters (hypothesis)",
        lambda: parse_a1111_parameters(text),
        errors=(ImageParamsError,),
    )


_A1111_PATTERN = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


@given(line=st.text(alphabet='ab 1é:,"\\-/\t', max_size=40))
def test_the_linear_pair_parser_finds_what_a1111s_pattern_finds(line: str) -> None:
    assert _a1111_pairs(line) == _A1111_PATTERN.findall(line)


# --- cards ----------------------------------------------------------------------------------

markdown_pieces = st.sampled_from(
    [
        "*",
        "**",
        "_",
        "[",
        "]",
        "(",
        ")",
        "![",
        "<",
        ">",
        "`",
        "```",
        "#",
        "- ",
        "1. ",
        "\n",
        "\n\n",
        " ",
        "    ",
        "|",
        "---",
        "<!--",
        "-->",
        "&",
        "&#x",
        "\\",
        "a",
        "word ",
        "<div>",
        "</div>",
        "<script>",
        "<object>",
        "<a href='javascript:x'>",
        "[x]: javascript:y",
        "[x]",
        "~~",
        "> ",
        "\t",
        "\0",
        "\r",
    ]
)
markdown_texts = st.lists(markdown_pieces, max_size=80).map("".join)
repeated = st.tuples(markdown_pieces, st.integers(1, 20_000)).map(lambda pair: pair[0] * pair[1])


@given(markdown=st.one_of(markdown_texts, repeated, st.lists(repeated, max_size=4).map("".join)))
def test_any_card_renders_within_bounds_and_inert(markdown: str) -> None:
    with long_lived_objects_frozen():
        outcome = within_bounds(
            "card markdown (hypothesis)",
            lambda: render_card_chunks(markdown, base_url="https://hub.example/o/m/blob/main/"),
            errors=(),
            megabytes=128,
        )
    assert outcome.value is not None
    assert_inert("".join(outcome.value))


@given(fragment=st.one_of(markdown_texts, repeated))
def test_any_html_fragment_is_reduced_to_text_within_bounds(fragment: str) -> None:
    outcome = within_bounds("card html (hypothesis)", lambda: html_to_text(fragment), errors=())
    assert outcome.value is not None


yaml_pieces = st.sampled_from(
    [
        "a",
        "b",
        ": ",
        "\n",
        "  ",
        "- ",
        "&a ",
        "*a",
        "&b ",
        "*b",
        "[",
        "]",
        "{",
        "}",
        ", ",
        "<<: ",
        "!!python/object:os.system",
        "'",
        '"',
        "1" * 100,
        "2024-13-45",
        "? ",
        "|",
        ">",
        "license: ",
        "mit",
        "\t",
        "#",
    ]
)


@given(front=st.lists(yaml_pieces, max_size=80).map("".join))
def test_any_front_matter_is_read_within_bounds(front: str) -> None:
    text = f"---\n{front}\n---\nbody\n"
    outcome = within_bounds("card front matter (hypothesis)", lambda: parse_card(text), errors=())
    assert outcome.value is not None
    within_bounds(
        "card front matter (hypothesis)",
        lambda: json.dumps(dict(outcome.value.metadata), default=str),  # type: ignore[union-attr]
        errors=(),
    )
