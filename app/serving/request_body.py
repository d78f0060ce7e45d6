"""The JSON body of a local API request: bounded before it is parsed, then validated.

A body is parsed straight into its pydantic model by pydantic's own JSON parser (jiter), not
through `json.loads`: it refuses nesting past 200 levels, invalid UTF-8, lone surrogates
(`"\\ud800"`, which the engine could not encode) and numbers too large to hold, all as
validation errors, where `json.loads` raised `RecursionError` (an answer 500). Two bounds
come first, because a parser builds every value before validation can refuse any:

- the body's size (`MAX_BODY_BYTES`, enforced by FastAPI as the bytes arrive: 413), and
- how many values it holds (`MAX_JSON_VALUES`): 30 MB of `{},` is a few hundred
  megabytes once parsed, however the model ignores it.

Duplicate keys take the last value, as in every JSON parser between a client and here
(`JSON.parse`, Python's `json`); refusing them would need a second parse.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeVar

from pydantic import BaseModel, ValidationError

__all__ = ["MAX_BODY_BYTES", "MAX_JSON_VALUES", "BodyError", "parse_body"]

BodyT = TypeVar("BodyT", bound=BaseModel)

# A million-token prompt is about 4 MB of text (6 bytes a character where JSON escapes it).
MAX_BODY_BYTES = 8 * 1024 * 1024
# Objects, arrays and their members: ten thousand messages with tool calls need about
# 150,000 structural characters; each value costs a few hundred bytes once parsed.
MAX_JSON_VALUES = 200_000
# A JSON string literal, matched without backtracking (possessive), to blank them out.
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)

_NOT_JSON = (
    "We could not parse the JSON body of your request ({detail}). Send JSON, e.g. "
    '{{"messages": [{{"role": "user", "content": "Hello"}}]}}.'
)


class BodyError(ValueError):
    """A request body that is not JSON, holds too much, or does not fit the endpoint."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def parse_body(raw: bytes, model: type[BodyT]) -> BodyT:
    """`raw` as `model`.

    Raises:
        BodyError: it is not a JSON object, has more than `MAX_JSON_VALUES` values, or fails
            validation (`param` names the field, OpenAI's way).
    """
    if count_values(raw) > MAX_JSON_VALUES:
        raise BodyError(
            f"The request body holds more than {MAX_JSON_VALUES:,} JSON values; "
            "send fewer messages or shorter lists."
        )
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _validation_error(exc) from None


def count_values(raw: bytes) -> int:
    """About how many JSON values `raw` holds (each comma, `{` or `[` outside a string
    counts one), cheaply: byte counts first, and only a long document with many of those
    characters has its strings blanked out to count precisely."""
    structural = raw.count(b",") + raw.count(b"{") + raw.count(b"[")
    if structural <= MAX_JSON_VALUES:
        return structural
    # Each string is a key or a value, so a document with this many strings has more values
    # than allowed: no need to count them one by one.
    strings = (raw.count(b'"') - raw.count(b'\\"')) // 2
    if strings > 2 * MAX_JSON_VALUES:
        return strings // 2
    outside = _STRING.sub(b"", raw)
    return outside.count(b",") + outside.count(b"{") + outside.count(b"[")


def _validation_error(exc: ValidationError) -> BodyError:
    error = exc.errors(include_url=False, include_input=False)[0]
    loc: tuple[int | str, ...] = tuple(error["loc"])
    if error["type"] == "json_invalid":
        detail = str(error.get("ctx", {}).get("error", "not JSON"))
        return BodyError(_NOT_JSON.format(detail=detail))
    if error["type"] == "model_type" and not loc:
        return BodyError("The request body must be a JSON object.")
    location = _location(loc)
    param = str(loc[0]) if loc else None
    if error["type"] == "missing":
        return BodyError(f"Missing required parameter: {location!r}.", param=param)
    return BodyError(f"Invalid value for {location!r}: {error['msg']}.", param=param)


def _location(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
