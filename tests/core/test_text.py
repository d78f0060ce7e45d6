"""One-line text for messages: an error's first line, any text with its breaks folded."""

from __future__ import annotations

from app.text import first_line, one_line


def test_one_line_folds_whitespace_and_falls_back() -> None:
    assert one_line("  a\n\tb   c ") == "a b c"
    assert one_line(" \n ", fallback="Untitled") == "Untitled"
    assert one_line("x" * 10, limit=5) == "xxxx…"
    assert one_line("short", limit=5) == "short"


def test_first_line_of_an_error() -> None:
    assert first_line(ValueError("bad value\nat line 3")) == "bad value"
    assert first_line(ValueError("  ")) == "ValueError"
    assert first_line(KeyError()) == "KeyError"
    assert first_line(RuntimeError("y" * 300), limit=200) == "y" * 200
