"""The user's settings: typed, validated, stored as JSON values in the app database."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.errors import SettingsError
from app.paths import hf_cache_dir
from app.store import Database


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What the user can change. None means "use the standard default"."""

    hub_endpoint: str | None = (
        None  # a mirror or private hub; None: HF_ENDPOINT, else huggingface.co
    )
    hf_cache_dir: str | None = None  # None: HF_HUB_CACHE / HF_HOME, the folder other tools share
    default_context_length: int = 4096  # for fit estimates before a model is chosen
    # Web pages (origins, "https://app.example") allowed to call the local API from a
    # browser; none by default, so no page can make the model generate (validate_origins).
    api_allowed_origins: tuple[str, ...] = ()
    # Chat: Enter sends and Shift+Enter adds a line; True swaps to Ctrl+Enter sends.
    chat_send_with_ctrl_enter: bool = False

    def resolved_cache_dir(self) -> Path:
        """The HF cache in use: the setting, else the standard one shared with other tools."""
        return Path(self.hf_cache_dir).expanduser() if self.hf_cache_dir else hf_cache_dir()


def validate_endpoint(value: str | None) -> str | None:
    """A cleaned endpoint URL, or None for "default". Raises `SettingsError` if not http(s)."""
    if value is None or not value.strip():
        return None
    cleaned = value.strip().rstrip("/")
    parts = urlsplit(cleaned)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(
            f"The hub endpoint must be an http:// or https:// address, not {cleaned!r}."
        )
    return cleaned


def validate_origins(values: Iterable[str]) -> tuple[str, ...]:
    """Web origins as a browser sends them in its Origin header: "scheme://host[:port]",
    lowercase, without the scheme's default port; duplicates dropped.

    Raises:
        SettingsError: a value is not an http(s) origin ("*" and "null" are refused too:
            either would let any page use the model).
    """
    origins: dict[str, None] = {}
    for value in values:
        cleaned = value.strip().rstrip("/")
        parts = urlsplit(cleaned)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or port == -1
            or parts.path
            or parts.query
            or parts.fragment
            or "@" in parts.netloc
        ):
            raise SettingsError(
                f"An allowed origin must look like https://app.example or "
                f"http://localhost:3000, not {value.strip()!r}."
            )
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        default_port = 80 if parts.scheme == "http" else 443
        suffix = f":{port}" if port is not None and port != default_port else ""
        origins[f"{parts.scheme}://{host}{suffix}"] = None
    return tuple(origins)


def load_settings(database: Database) -> Settings:
    """The stored settings; unknown or invalid stored values fall back to their defaults."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(Settings):
        stored = database.get_setting(field.name)
        if stored is not None and _is_valid(field.name, stored):
            values[field.name] = tuple(stored) if isinstance(stored, list) else stored
    return Settings(**values)


def _is_valid(name: str, value: object) -> bool:
    """Whether a stored value can be used for the setting `name` (each falls back alone)."""
    if name == "default_context_length":
        return isinstance(value, int) and not isinstance(value, bool) and value >= 256
    if name == "chat_send_with_ctrl_enter":
        return isinstance(value, bool)
    if name == "api_allowed_origins":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return False
        try:
            return validate_origins(value) == tuple(value)
        except SettingsError:
            return False
    if not isinstance(value, str):
        return False
    if name == "hub_endpoint":
        try:
            validate_endpoint(value)
        except SettingsError:
            return False
    return True


def save_settings(database: Database, settings: Settings) -> None:
    """Store every field of `settings` (after validating the endpoint)."""
    settings = dataclasses.replace(
        settings,
        hub_endpoint=validate_endpoint(settings.hub_endpoint),
        api_allowed_origins=validate_origins(settings.api_allowed_origins),
    )
    if settings.default_context_length < 256:
        raise SettingsError("The default context length must be at least 256 tokens.")
    with database.transaction():
        for field in dataclasses.fields(Settings):
            database.set_setting(field.name, getattr(settings, field.name))
