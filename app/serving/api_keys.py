"""The API key a request carries, however its client sends it.

OpenAI and Ollama clients send `Authorization: Bearer KEY`; Anthropic's clients send
`x-api-key: KEY` (older versions) or the Bearer header (current ones). Each API answers a
missing or wrong key in its own error shape; this only says which it is.
"""

from __future__ import annotations

import hmac
from enum import Enum

from starlette.datastructures import Headers


class KeyCheck(Enum):
    ACCEPTED = "accepted"  # the right key, or the server has none
    MISSING = "missing"
    WRONG = "wrong"


def check_key(headers: Headers, expected: str | None, *, x_api_key: bool = False) -> KeyCheck:
    """Whether these request headers carry `expected` (None: the server needs no key).

    Args:
        x_api_key: accept the key in an `x-api-key` header too (Anthropic's way).
    """
    if expected is None:
        return KeyCheck.ACCEPTED
    given = _bearer(headers.get("authorization", ""))
    if given is None and x_api_key:
        given = headers.get("x-api-key", "").strip() or None
    if given is None:
        return KeyCheck.MISSING
    same = hmac.compare_digest(given.encode(), expected.encode())
    return KeyCheck.ACCEPTED if same else KeyCheck.WRONG


def _bearer(header: str) -> str | None:
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return None
    return given.strip()
