"""Text for one line of a message: an error's first line, or any text with its breaks folded."""

from __future__ import annotations


def one_line(text: str, *, fallback: str = "", limit: int | None = None) -> str:
    """`text` on one line: runs of whitespace (newlines too) become one space.

    Empty or blank text gives `fallback`. With `limit`, a longer line is cut to `limit`
    characters, the last one an ellipsis.
    """
    line = " ".join(text.split()) or fallback
    if limit is not None and len(line) > limit:
        return line[: limit - 1] + "…"
    return line


def first_line(error: BaseException, *, limit: int | None = None) -> str:
    """The first line of `error`'s message, or its type's name when the message is blank.

    With `limit`, only the first `limit` characters of that line (no ellipsis added).
    """
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line if limit is None else line[:limit]
