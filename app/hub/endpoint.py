"""Which hub endpoint to talk to. Kept apart from the client so choosing it imports nothing."""

from __future__ import annotations

import os

DEFAULT_ENDPOINT = "https://huggingface.co"


def resolve_endpoint(setting: str | None) -> str:
    """The endpoint to use: the app's setting, else `HF_ENDPOINT`, else huggingface.co."""
    chosen = (setting or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).strip()
    return chosen.rstrip("/")
