"""A reply's citations: which source each [n] names, and how a person opens it.

A `Citation` is a numbered source as kept with the reply (file, page, line span, score; not
the passage, which is in the file). Text, Markdown, code and HTML open in the app's own
viewer at the cited lines (`read_source_lines` gives the lines they count); PDF and Word open
in the system's application, a PDF at its page (`page_fragment`), since the app shows neither.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePath

from app.docs.chunking import Chunk
from app.docs.extract import DocumentError, DocumentKind, decode_text, kind_of
from app.docs.walk import MAX_FILE_BYTES

# "[1]", "[2, 3]" or "[1,2]" in a reply: the numbers it cites. Not "[1](url)" (a link).
_CITES = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\](?!\()")


class Opener(StrEnum):
    """Where a cited file opens."""

    VIEWER = "viewer"  # the app's read-only text view, at the cited lines
    SYSTEM = "system"  # the system's application for the file (PDF, Word)


@dataclass(frozen=True)
class Citation:
    """Source [number] of a reply: where it is and how it ranked."""

    number: int
    path: str
    page: int | None
    line_start: int  # 1-based, inclusive (a Word file's "lines" are paragraphs)
    line_end: int
    heading: str = ""
    score: float = 0.0

    @property
    def location(self) -> str:
        """ "page 3, lines 10-24"."""
        return Chunk("", self.heading, self.line_start, self.line_end, self.page).location

    def label(self) -> str:
        """ "[1] report.pdf, page 3, lines 10-24"."""
        return f"[{self.number}] {PurePath(self.path).name}, {self.location}"

    def to_json(self) -> dict[str, object]:
        return {
            "number": self.number,
            "file": self.path,
            "page": self.page,
            "line_start": self.line_start,
            "line_end": self.line_end,
            "heading": self.heading,
            "score": round(self.score, 6),
        }

    @classmethod
    def from_json(cls, value: object) -> Citation | None:
        """A stored citation, or None for a malformed one (never an error: it is only shown)."""
        if not isinstance(value, Mapping):
            return None
        number, path, page = value.get("number"), value.get("file"), value.get("page")
        start, end = value.get("line_start"), value.get("line_end")
        heading, score = value.get("heading", ""), value.get("score", 0.0)
        if not (_count(number) and isinstance(path, str) and path and _count(start)):
            return None
        if not (_count(end) and (page is None or _count(page)) and isinstance(heading, str)):
            return None
        if isinstance(score, bool) or not isinstance(score, int | float):
            return None
        if not math.isfinite(score):
            return None
        assert isinstance(number, int) and isinstance(start, int) and isinstance(end, int)
        assert page is None or isinstance(page, int)
        return cls(number, path, page, start, max(start, end), heading, float(score))

    @property
    def opener(self) -> Opener:
        return opener_for(Path(self.path))

    @property
    def page_fragment(self) -> str | None:
        """ "page=3" for a PDF's page (PDF viewers honour `#page=N`); None otherwise."""
        if self.page is not None and kind_of(PurePath(self.path)) is DocumentKind.PDF:
            return f"page={self.page}"
        return None


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def opener_for(path: PurePath) -> Opener:
    """The system's application for PDF and Word files; the app's viewer for the rest."""
    kind = kind_of(path)
    return Opener.SYSTEM if kind in (DocumentKind.PDF, DocumentKind.DOCX) else Opener.VIEWER


def cited_numbers(text: str) -> Iterator[int]:
    """The source numbers `text` cites as [n] or [n, m], in order of appearance."""
    for match in _CITES.finditer(text):
        for part in match.group(1).split(","):
            yield int(part)


def read_source_lines(path: Path) -> list[str]:
    """The lines of a cited file as its citations count them (decoded, never rendered).

    Blocks (reads the file): call on a worker.
    Raises:
        DocumentError: the file is gone, too big, unreadable or not text.
    """
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DocumentError(
                f"{path.name} is {size // (1024 * 1024)} MB: too big to show here. "
                "Open it in another application."
            )
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise DocumentError(
            f"{path} is no longer there: it was moved or deleted since it was indexed."
        ) from exc
    except OSError as exc:
        raise DocumentError(f"{path} cannot be read: {exc.strerror or exc}.") from exc
    return decode_text(data, path.name).splitlines()  # as extract counts them
