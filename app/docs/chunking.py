"""Chunks: passages of a document small enough to embed and to quote, cut where it breaks.

Blocks (paragraphs) are gathered until a chunk is full; a heading or a new page starts a new
chunk, so a chunk never mixes two sections. A block longer than a chunk (a 10,000-line log
paragraph) is cut at line boundaries, and a line longer than a chunk at a fixed width, so
memory and chunk size stay bounded whatever the file holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from app.docs.extract import Block

CHUNK_CHARS = 1200  # ~300 tokens of English: fits a 512-token embedding model with room


@dataclass(frozen=True)
class Chunk:
    """A passage to index: its text and where it is in its file."""

    text: str
    heading: str
    line_start: int
    line_end: int
    page: int | None = None

    @property
    def location(self) -> str:
        """Where it is, for a person: "page 3, lines 10-24"."""
        lines = (
            f"line {self.line_start}"
            if self.line_start == self.line_end
            else f"lines {self.line_start}-{self.line_end}"
        )
        return f"page {self.page}, {lines}" if self.page is not None else lines


def chunk_blocks(blocks: Iterable[Block], *, size: int = CHUNK_CHARS) -> Iterator[Chunk]:
    """Gather blocks into chunks of at most `size` characters (about: a joined newline each)."""
    pending: list[Block] = []
    length = 0
    for block in _bounded(blocks, size):
        new_section = block.is_heading or (pending and block.page != pending[-1].page)
        if pending and (new_section or length + len(block.text) > size):
            yield _chunk(pending)
            pending, length = [], 0
        pending.append(block)
        length += len(block.text) + 2
    if pending:
        yield _chunk(pending)


def _chunk(blocks: list[Block]) -> Chunk:
    first, last = blocks[0], blocks[-1]
    # A heading opening a chunk belongs to the text under it; the heading field names the
    # section for the citation, the text keeps it for the words a search matches.
    return Chunk(
        text="\n\n".join(block.text for block in blocks),
        heading=last.heading,
        line_start=first.line_start,
        line_end=last.line_end,
        page=first.page,
    )


def _bounded(blocks: Iterable[Block], size: int) -> Iterator[Block]:
    """Blocks no longer than `size`: long ones cut at lines, long lines at `size`."""
    for block in blocks:
        if len(block.text) <= size:
            yield block
            continue
        lines = block.text.split("\n")
        span = block.line_end - block.line_start + 1
        exact = span == len(lines)  # a PDF paragraph's lines are its text's lines too
        piece: list[str] = []
        piece_start = 0
        length = 0
        for index, line in enumerate([*lines, None]):
            if line is not None and (not piece or length + len(line) + 1 <= size):
                piece.append(line)
                length += len(line) + 1
                continue
            joined = "\n".join(piece)
            for start in range(0, max(1, len(joined)), size):
                text = joined[start : start + size]
                first = block.line_start + (piece_start if exact else 0)
                last = block.line_start + (index - 1 if exact else span - 1)
                yield Block(text, first, last, block.page, block.heading)
            if line is not None:
                piece, piece_start, length = [line], index, len(line) + 1
