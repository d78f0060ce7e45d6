"""Hostile PNGs: generation parameters that ReDoS, JSON nested too deep, text and pixel bombs.

Each PNG is written byte by byte in tmp_path and read with `read_metadata` (what a drop on
the Images page does) within bounded CPU time and memory: a result, None, or an `OSError`
for what is not an image, never another exception.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.images import ImageParamsError
from app.images.gallery import make_thumbnail
from app.images.pixels import ImageTooLargeError
from app.images.png_metadata import (
    MAX_TEXT_CHARS,
    ImageMetadata,
    parse_a1111_parameters,
    read_metadata,
)
from tests.hostile.bounds import within_bounds
from tests.hostile.hostile_files import (
    itxt_chunk,
    png,
    png_chunk,
    text_chunk,
    ztxt_chunk,
)

_GOOD_LINE = "Steps: 9, Sampler: DDIM, CFG scale: 4, Seed: 77, Size: 64x72"
_DEEP = 100_000


def _read(tmp_path: Path, data: bytes, name: str = "hostile.png") -> ImageMetadata | None:
    path = tmp_path / name
    path.write_bytes(data)
    outcome = within_bounds("png metadata", lambda: read_metadata(path), errors=(OSError,))
    assert outcome.error is None, outcome.error
    return outcome.value


# The finding: A1111's pattern is quadratic on a long last line: 32 kB took 8 s, 64 kB 36 s.
# Now a text is at most MAX_TEXT_CHARS, and the line is parsed in one linear pass: each hostile
# run below fills the last line (after three real pairs) up to that cap.
_ROOM = MAX_TEXT_CHARS - 200
REDOS_RUNS = {
    "letters": "a",
    "spaces-then-a-dash": " ",
    "a-key-run-without-a-colon": "Steps Sampler CFG scale ",
    "unclosed-quotes": 'a: "x, ',
    "one-letter-keys": "a:",
    "dashes-and-slashes": "-/",
    "backslashes-in-quotes": 'k: "\\\\',
}


@pytest.mark.parametrize("run", REDOS_RUNS.values(), ids=REDOS_RUNS.keys())
def test_parameters_that_made_the_pattern_quadratic_parse_in_linear_time(
    tmp_path: Path, run: str
) -> None:
    line = "Steps: 9, Sampler: DDIM, CFG scale: 4, " + run * (_ROOM // len(run))
    text = f"a prompt\n{line}"

    outcome = within_bounds(
        "a1111 parameters", lambda: parse_a1111_parameters(text), errors=(ImageParamsError,)
    )

    assert outcome.value is not None, outcome.error
    assert outcome.value.params.prompt == "a prompt"
    assert outcome.value.params.steps == 9
    # The same text in a dropped PNG: read within bounds too.
    read = _read(tmp_path, png([text_chunk("parameters", text)]))
    assert read is not None and read.params.steps == 9


@pytest.mark.parametrize("size", [32_000, 64_000], ids=["32-kB", "64-kB"])
def test_the_texts_of_the_finding_are_refused_before_parsing(tmp_path: Path, size: int) -> None:
    assert _read(tmp_path, png([text_chunk("parameters", "a" * size)])) is None


def test_a_prompt_too_long_to_show_is_not_restored(tmp_path: Path) -> None:
    # One 16 kB word: the form would lay it out for 50 ms on the GUI thread (64 kB: 0.6 s).
    text = "a" * (MAX_TEXT_CHARS - 100) + "\n" + _GOOD_LINE
    assert _read(tmp_path, png([text_chunk("parameters", text)])) is None


def test_a_parameters_text_over_the_cap_is_refused_not_parsed() -> None:
    outcome = within_bounds(
        "a1111 parameters",
        lambda: parse_a1111_parameters("a" * (MAX_TEXT_CHARS + 1) + "\n" + _GOOD_LINE),
        errors=(ImageParamsError,),
    )
    assert isinstance(outcome.error, ImageParamsError)
    assert "more than" in str(outcome.error)


def test_a_size_of_thousands_of_digits_is_no_error(tmp_path: Path) -> None:
    line = "Steps: 9, Sampler: DDIM, CFG scale: 4, Seed: 77, Size: " + "9" * 5000 + "x8"
    assert _read(tmp_path, png([text_chunk("parameters", "cat\n" + line)])) is not None


@pytest.mark.parametrize(
    "document",
    [
        "[" * _DEEP + "]" * _DEEP,
        '{"params": ' + '{"prompt": ' * 5_000 + "1" + "}" * 5_001,
        json.dumps({"params": {"prompt": [[[[[[[[[[[[["deep"]]]]]]]]]]]]]}}),
        '{"params": {"prompt": "x", "steps": 1' + "0" * 400 + "}}",
        '{"params": {"prompt": "x", "guidance": 1' + "0" * 400 + "}}",
        '{"params": {"prompt": "x"}, "seconds": 1' + "0" * 400 + "}",
        '{"params": {"prompt": "x", "seed": 1' + "0" * 5000 + "}}",
        '{"params": {"prompt": "x", "steps": NaN, "guidance": Infinity}}',
    ],
    ids=[
        "nested-100000",
        "params-nested-5000",
        "prompt-a-nested-list",
        "steps-of-400-digits",
        "guidance-of-400-digits",
        "seconds-of-400-digits",
        "seed-of-5000-digits",
        "nan-and-infinity",
    ],
)
def test_a_hostile_modeldeck_chunk_falls_back_to_the_parameters_chunk(
    tmp_path: Path, document: str
) -> None:
    chunks = [
        itxt_chunk("modeldeck", document.encode()),
        text_chunk("parameters", "cat\n" + _GOOD_LINE),
    ]

    read = _read(tmp_path, png(chunks))

    assert read is not None and read.source in ("a1111", "modeldeck")
    if read.source == "a1111":
        assert read.params.prompt == "cat"
    elif "deep" in document:  # a nested list is readable: shown as text, not a crash
        assert "deep" in read.params.prompt


def test_text_chunk_bombs_are_not_inflated(tmp_path: Path) -> None:
    bomb = b"a" * (64 * 2**20)  # 64 MB of text in a chunk of ~64 kB
    chunks = [
        ztxt_chunk("parameters", bomb),
        itxt_chunk("modeldeck", bomb, compressed=True),
        itxt_chunk("parameters", b"\xff\xfe not UTF-8"),
    ]
    assert _read(tmp_path, png(chunks)) is None


def test_a_pixel_bomb_is_never_decoded(tmp_path: Path) -> None:
    # 100,000 x 100,000 pixels declared (10 GB decoded), a few hundred bytes on disk.
    data = png([text_chunk("parameters", "cat\n" + _GOOD_LINE)], width=100_000, height=100_000)
    path = tmp_path / "bomb.png"
    path.write_bytes(data)

    assert _read(tmp_path, data, "bomb.png") is not None
    outcome = within_bounds(
        "thumbnail",
        lambda: make_thumbnail(path, tmp_path / "thumbs"),
        errors=(ImageTooLargeError,),
    )
    assert isinstance(outcome.error, ImageTooLargeError)
    assert "bomb.png is too large to open" in str(outcome.error)


def test_an_image_just_over_the_pixel_limit_is_refused_by_us_not_by_pillow(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    path.write_bytes(png(width=8192 * 8192 // 1000 + 1, height=1000))
    outcome = within_bounds(
        "thumbnail",
        lambda: make_thumbnail(path, tmp_path / "thumbs"),
        errors=(ImageTooLargeError,),
    )
    assert isinstance(outcome.error, ImageTooLargeError)


@pytest.mark.parametrize(
    "data",
    [
        png(end=False, pixels=False),  # cut short
        png([png_chunk(b"tEXt", b"parameters\0cat", claimed=2**32 - 1)]),  # a length past the end
        png([png_chunk(b"abcd", b"x") for _ in range(200_000)]),  # chunks beyond the walk's cap
        png([png_chunk(b"tEXt", b"no separator")]),
        png([png_chunk(b"iTXt", b"parameters\0")]),  # an iTXt header cut short
        png([png_chunk(b"zTXt", b"parameters\0\0not zlib")]),
    ],
    ids=[
        "truncated",
        "length-past-the-end",
        "200000-chunks",
        "no-keyword",
        "short-itxt",
        "bad-zlib",
    ],
)
def test_damaged_pngs_read_as_having_no_settings(tmp_path: Path, data: bytes) -> None:
    assert _read(tmp_path, data) is None


def test_what_is_not_an_image_is_an_oserror(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_bytes(b"[" * _DEEP)
    outcome = within_bounds("png metadata", lambda: read_metadata(path), errors=(OSError,))
    assert isinstance(outcome.error, OSError)
