"""Which hub endpoint to talk to, and whether a token may travel to it.

Kept apart from the client so choosing an endpoint imports nothing.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

DEFAULT_ENDPOINT = "https://huggingface.co"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def resolve_endpoint(setting: str | None) -> str:
    """The endpoint to use: the app's setting, else `HF_ENDPOINT`, else huggingface.co."""
    chosen = (setting or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).strip()
    return chosen.rstrip("/")


class EndpointOrigin(StrEnum):
    """Where the endpoint in use comes from, strongest first."""

    OVERRIDE = "--endpoint"  # given for this run only (the command line)
    SETTING = "setting"  # saved in Settings
    ENVIRONMENT = "HF_ENDPOINT"  # the environment variable, used when nothing is saved
    DEFAULT = "default"  # huggingface.co


@dataclass(frozen=True, kw_only=True)
class EndpointChoice:
    """The endpoint in use, where it comes from, and what it wins over.

    `saved` and `environment` are the other candidates as they stand (None: not set).
    """

    url: str
    origin: EndpointOrigin
    saved: str | None
    environment: str | None

    @property
    def explanation(self) -> str:
        """One or two sentences for the Settings page: what wins, and why."""
        if self.origin is EndpointOrigin.OVERRIDE:
            beaten = [f"the saved endpoint ({self.saved})"] if self.saved else []
            if self.environment:
                beaten.append(f"HF_ENDPOINT ({self.environment})")
            over = f", which wins over {' and '.join(beaten)}" if beaten else ""
            if self.saved:
                otherwise = "the saved endpoint"
            elif self.environment:
                otherwise = f"HF_ENDPOINT ({self.environment})"
            else:
                otherwise = DEFAULT_ENDPOINT
            return (
                f"Using {self.url} for this run: it was given with --endpoint{over}. "
                f"Started without --endpoint, ModelDeck uses {otherwise}."
            )
        if self.origin is EndpointOrigin.ENVIRONMENT:
            return (
                f"Using {self.url} from the HF_ENDPOINT environment variable, because no "
                "endpoint is saved here. An endpoint saved here wins over it."
            )
        if self.origin is EndpointOrigin.SETTING:
            text = f"Using the saved endpoint {self.url}."
            if self.environment and not same_endpoint(self.environment, self.url):
                text += (
                    f" HF_ENDPOINT ({self.environment}) is set but not used: a saved endpoint "
                    "wins over it. Empty the field to use it."
                )
            return text
        return f"Using {self.url}: nothing is saved here and HF_ENDPOINT is not set."


def choose_endpoint(
    setting: str | None,
    *,
    in_use: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> EndpointChoice:
    """Which endpoint wins and why: `--endpoint`, then the saved setting, then `HF_ENDPOINT`,
    then huggingface.co (the order `resolve_endpoint` and `Core.endpoint` follow).

    Args:
        setting: the saved endpoint (None or "": none).
        in_use: the endpoint the core uses (`Core.endpoint`); when it differs from what the
            setting and the environment give, a `--endpoint` for this run chose it.
        environ: the environment (default: `os.environ`).
    """
    env = os.environ if environ is None else environ
    environment = (env.get("HF_ENDPOINT") or "").strip().rstrip("/") or None
    saved = (setting or "").strip().rstrip("/") or None
    without_override = saved or environment or DEFAULT_ENDPOINT
    if in_use is not None and not same_endpoint(in_use, without_override):
        origin = EndpointOrigin.OVERRIDE
        url = in_use.strip().rstrip("/")
    else:
        url = without_override
        origin = (
            EndpointOrigin.SETTING
            if saved
            else EndpointOrigin.ENVIRONMENT
            if environment
            else EndpointOrigin.DEFAULT
        )
    return EndpointChoice(url=url, origin=origin, saved=saved, environment=environment)


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
