"""Which hub endpoint to talk to, and whether a token may travel to it.

Kept apart from the client so choosing an endpoint imports nothing.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

DEFAULT_ENDPOINT = "https://huggingface.co"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def resolve_endpoint(setting: str | None) -> str:
    """The endpoint to use: the app's setting, else `HF_ENDPOINT`, else huggingface.co."""
    chosen = (setting or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).strip()
    return chosen.rstrip("/")


def normalize_endpoint(endpoint: str) -> str:
    """`endpoint` in one spelling, to compare two: scheme and host in lower case, no default
    port, no trailing slash (`HTTPS://Hub.example:443/` is `https://hub.example`)."""
    parts = urlsplit(endpoint.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 address goes back in brackets
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # not a number: keep the text, it matches only itself
        return endpoint.strip().rstrip("/")
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def same_endpoint(first: str, second: str) -> bool:
    """Whether two endpoint URLs name the same hub (see `normalize_endpoint`)."""
    return normalize_endpoint(first) == normalize_endpoint(second)


def is_loopback(endpoint: str) -> bool:
    """Whether `endpoint`'s host is this machine (`localhost`, 127.0.0.0/8, `::1`)."""
    host = (urlsplit(endpoint.strip()).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def may_carry_token(endpoint: str) -> bool:
    """Whether a token may be sent to `endpoint`: over https, or plain http to this machine.

    Plain http to another machine would show the token to everyone on the way.
    """
    scheme = urlsplit(endpoint.strip()).scheme.lower()
    return scheme == "https" or (scheme == "http" and is_loopback(endpoint))
