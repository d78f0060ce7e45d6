"""Hostile request bodies for the local API: JSON documents that come near a request's shape
(their keys drawn mostly from the API's own names), then broken one of four ways."""

from __future__ import annotations

import json

from hypothesis import strategies as st

# How a body is broken: not at all (valid JSON, wrong shape), numbers JSON has no word for,
# cut in half, or bytes that are not UTF-8.
MANGLES = st.sampled_from(["json", "nan", "truncate", "bytes"])


def json_documents(keys: list[str], *, max_keys: int) -> st.SearchStrategy[object]:
    """Nested JSON values whose objects mostly use `keys` (up to `max_keys` per object)."""
    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(
                st.sampled_from(keys) | st.text(max_size=5), children, max_size=max_keys
            )
        ),
        max_leaves=30,
    )


def mangled(document: object, mangle: str) -> bytes:
    """`document` as the body bytes a hostile client sends, broken as `mangle` (MANGLES) says."""
    raw = json.dumps(document).encode()
    if mangle == "nan":
        raw = raw.replace(b"0", b"NaN").replace(b"1", b"1e999")
    elif mangle == "truncate":
        raw = raw[: len(raw) // 2]
    elif mangle == "bytes":
        raw = raw.replace(b"a", b"\xff")
    return raw
