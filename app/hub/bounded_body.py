"""A hub's streamed answer read into memory only up to a limit.

A broken or hostile hub can send a body of any size, declared or not; every hub client reads
its JSON through here, so none of them holds more than its limit.
"""

from __future__ import annotations

import httpx2

from app.errors import HubResponseError

__all__ = ["read_at_most"]


def read_at_most(response: httpx2.Response, limit: int, *, too_large: str) -> bytes:
    """The body of a streamed `response`.

    Raises:
        HubResponseError: with the message `too_large`, once the body passes `limit` bytes
            (or its Content-Length says it will).
    """
    error = HubResponseError(
        too_large, status=response.status_code, hint="The hub is broken or hostile."
    )
    declared = response.headers.get("Content-Length", "")
    if declared.strip().isdigit() and int(declared) > limit:
        raise error
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise error
        chunks.append(chunk)
    return b"".join(chunks)
