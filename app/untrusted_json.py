"""JSON from files and hubs, parsed with its size and nesting bounded.

`json.loads` is fast and linear, but on bytes written by strangers it has two failure modes
that are not `ValueError`: 100,000 nested brackets raise `RecursionError` (out of the parser,
or later out of any `str()` or `==` that walks the result), and a parse of a very large
document takes memory in proportion. Every parse of a file or hub body goes through
`parse_untrusted_json`, which turns both into one `UntrustedJsonError` (a `ValueError`, so
callers that already catch malformed JSON need nothing new).

Huge numbers need no guard here: Python refuses integers of more than 4,300 digits while
parsing (`sys.int_max_str_digits`), and callers check the values they use against what the
file can hold.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from app.errors import AppError
from app.text import first_line

__all__ = ["DEFAULT_MAX_DEPTH", "UntrustedJsonError", "parse_untrusted_json"]

# No JSON ModelDeck reads nests more than a few levels; 32 leaves room for the unexpected
# while staying far below the interpreter's recursion limit (1000) for code that walks it.
DEFAULT_MAX_DEPTH = 32


class UntrustedJsonError(AppError, ValueError):
    """JSON from a file or a hub is malformed, too large or nested too deep."""


def parse_untrusted_json(
    raw: bytes | str, *, max_bytes: int, max_depth: int = DEFAULT_MAX_DEPTH, what: str = "JSON"
) -> object:
    """Parse `raw` as JSON whose size and nesting are bounded.

    Args:
        raw: the document (UTF-8 bytes or text).
        max_bytes: the largest document accepted (characters, for text).
        max_depth: the deepest nesting of arrays and objects accepted (1: a flat array).
        what: what the document is, for the message ("the safetensors header").

    Raises:
        UntrustedJsonError: the document is larger than `max_bytes`, is not JSON (or not
            UTF-8), or nests deeper than `max_depth`.
    """
    if len(raw) > max_bytes:
        raise UntrustedJsonError(f"{what} is larger than {max_bytes} bytes ({len(raw)})")
    try:
        value: object = json.loads(raw)
    except RecursionError:
        raise UntrustedJsonError(f"{what} nests deeper than {max_depth} levels") from None
    except ValueError as error:  # UnicodeDecodeError and integers too long are ValueErrors
        raise UntrustedJsonError(f"{what} is not JSON ({first_line(error)})") from None
    if _depth_exceeds(value, max_depth):
        raise UntrustedJsonError(f"{what} nests deeper than {max_depth} levels")
    return value


def _depth_exceeds(value: object, max_depth: int) -> bool:
    """Whether arrays/objects in `value` nest deeper than `max_depth`; iterative, linear."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[object]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
