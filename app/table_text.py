"""Plain-text tables for the command line, fitted to a terminal's width.

A column that may give way has a minimum width; when the table is wider than the terminal,
the widest of those columns give up characters first, and cut cells end in "…" (a key or a
name keeps its start, which is what a person types back).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from typing import TextIO

GAP = "  "
ELLIPSIS = "…"
DEFAULT_WIDTH = 80


def terminal_width(out: TextIO) -> int:
    """The width to fit: the terminal's when `out` is one, else 80 (a pipe, a file, a test)."""
    try:
        if out.isatty():
            return max(40, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns)
    except (AttributeError, ValueError):
        pass
    return DEFAULT_WIDTH


def elide(text: str, width: int) -> str:
    """`text` cut to `width` characters, ending in "…" when cut."""
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + ELLIPSIS if width > 0 else ""


def fit_widths(
    natural: Sequence[int], width: int | None, shrinkable: Mapping[int, int]
) -> list[int]:
    """Column widths that fit `width` (None: no limit), taking characters from the columns in
    `shrinkable` (index -> minimum width), widest first. The result may still be wider than
    `width` when every shrinkable column is at its minimum."""
    widths = list(natural)
    if width is None:
        return widths
    excess = sum(widths) + len(GAP) * (len(widths) - 1) - width
    while excess > 0:
        candidates = [i for i, least in shrinkable.items() if widths[i] > least]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: (widths[i] - shrinkable[i], widths[i]))
        widths[widest] -= 1
        excess -= 1
    return widths


def write_table(
    out: TextIO,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    width: int | None = None,
    shrinkable: Mapping[int, int] | None = None,
) -> None:
    """Write `header` and `rows` as aligned columns, fitted to `width` (None: as wide as the
    cells need; `shrinkable`: see `fit_widths`)."""
    table = [list(map(str, header)), *[list(map(str, row)) for row in rows]]
    natural = [max(len(row[i]) for row in table) for i in range(len(header))]
    widths = fit_widths(natural, width, shrinkable or {})
    for row in table:
        cells = (elide(cell, size).ljust(size) for cell, size in zip(row, widths, strict=True))
        out.write(GAP.join(cells).rstrip() + "\n")
