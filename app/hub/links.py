"""Which link targets ModelDeck will open: the one rule shared by card rendering and viewers."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

SAFE_SCHEMES = frozenset({"http", "https", "mailto"})


def safe_link(url: str, base_url: str | None) -> str | None:
    """`url` made absolute against `base_url`, or None if its scheme is not safe to open."""
    url = url.strip()
    if not url:
        return None
    if base_url and not urlsplit(url).scheme:
        url = urljoin(base_url, url)
    return url if urlsplit(url).scheme.lower() in SAFE_SCHEMES else None
