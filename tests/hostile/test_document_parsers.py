"""Documents are untrusted bytes: every extractor ends in blocks or a `DocumentError`, within
bounded time and memory, and chunking keeps every chunk within its size whatever it is fed."""

from __future__ import annotations

import functools
import struct
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from app.docs.chunking import chunk_blocks
from app.docs.extract import Block, DocumentError, DocumentKind, extract_blocks
from tests.hostile.bounds import within_bounds
from tests.support.documents import write_docx, write_pdf

MARKUP = st.sampled_from(
    ["# ", "## ", "\n", "\n\n", "```", "<h1>", "</h1>", "<p>", "<script>", "</script>",
     "<!--", "-->", "&amp;", "&#x110000;", "<", ">", "- ", "1. ", "> ", "|a|b|\n|-|-|",
     "\x00", "\ufeff", "\udcff", "word ", "[x](y)", "<![CDATA[", "\r\n", "\t"]
)  # fmt: skip


@functools.cache
def _pdf() -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return write_pdf(Path(folder) / "a.pdf", ["One\ntwo", "Three"]).read_bytes()


@functools.cache
def _docx() -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return write_docx(
            Path(folder) / "a.docx", [("Title", "Heading 1"), ("Body", None)]
        ).read_bytes()


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data) - 1))
        claim = draw(st.sampled_from([0, 1, 2**31 - 1, 2**32 - 1, 2**63, 2**64 - 1]))
        data[at : at + 8] = struct.pack("<Q", claim)[: len(data) - at]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def _extract(kind: DocumentKind, data: bytes) -> list[Block]:
    blocks = extract_blocks(kind, data)
    for chunk in chunk_blocks(blocks, size=200):
        assert len(chunk.text) <= 200 * 2  # one block at most `size`, joined with others
        assert 1 <= chunk.line_start <= chunk.line_end
    return blocks


@given(text=st.lists(st.one_of(MARKUP, st.text(max_size=40)), max_size=200).map("".join))
def test_any_text_markdown_or_html_is_read_within_bounds(text: str) -> None:
    data = text.encode("utf-8", errors="surrogatepass")
    for kind in (DocumentKind.TEXT, DocumentKind.MARKDOWN, DocumentKind.HTML, DocumentKind.CODE):
        within_bounds(
            f"{kind.value} document (hypothesis)",
            lambda kind=kind: _extract(kind, data),  # type: ignore[misc]
            errors=(DocumentError,),
        )


@given(data=mutated(_pdf()))
def test_a_damaged_pdf_is_a_clear_error_within_bounds(data: bytes) -> None:
    within_bounds(
        "pdf document (hypothesis)",
        lambda: _extract(DocumentKind.PDF, data),
        errors=(DocumentError,),
        seconds=2.0,
    )


@given(data=mutated(_docx()))
def test_a_damaged_docx_is_a_clear_error_within_bounds(data: bytes) -> None:
    within_bounds(
        "docx document (hypothesis)",
        lambda: _extract(DocumentKind.DOCX, data),
        errors=(DocumentError,),
        seconds=2.0,
    )


@given(data=st.binary(max_size=4096))
def test_random_bytes_as_any_kind_are_read_within_bounds(data: bytes) -> None:
    for kind in DocumentKind:
        within_bounds(
            f"{kind.value} document (hypothesis)",
            lambda kind=kind: _extract(kind, data),  # type: ignore[misc]
            errors=(DocumentError,),
        )


def test_a_long_single_line_is_chunked_in_bounded_pieces() -> None:
    line = "x" * 5_000_000  # a minified log: one 5 MB line
    outcome = within_bounds(
        "long line chunking",
        lambda: list(chunk_blocks(extract_blocks(DocumentKind.TEXT, line.encode()))),
        errors=(DocumentError,),
        seconds=5.0,
        megabytes=64.0,
    )
    assert outcome.value is not None
    assert all(len(chunk.text) <= 1200 for chunk in outcome.value)
    assert sum(len(chunk.text) for chunk in outcome.value) == len(line)
