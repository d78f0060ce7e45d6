"""Where the hub token comes from, where it is kept, and how it is kept out of text.

Order of precedence: the token saved in ModelDeck (OS keyring, or a private file when the
machine has no keyring), then `HF_TOKEN`, then the file the `hf` CLI writes on `hf auth login`.
A token never appears in logs or error messages: `redact` scrubs text before it is shown.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from huggingface_hub import constants as hf_constants

KEYRING_SERVICE = "ModelDeck"
KEYRING_USERNAME = "huggingface-token"
# Hugging Face user access tokens look like "hf_" followed by 30+ letters and digits.
_TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{8,}")


class TokenSource(StrEnum):
    """Where the token in use was found."""

    KEYRING = "the system keyring"
    APP_FILE = "ModelDeck's private token file"
    ENVIRONMENT = "the HF_TOKEN environment variable"
    HF_CLI = "the hf command-line tool's token file"
    NONE = "nowhere (no token)"


@dataclass(frozen=True)
class ResolvedToken:
    """A token and where it came from. The value is kept out of `repr`."""

    value: str | None = field(repr=False)
    source: TokenSource


class SecretStore:
    """Saves and reads one secret: an OS keyring entry, or a private file when there is none.

    The OS keyring is used when the machine has a working backend; a headless Linux box has
    none, so the secret goes to `fallback_file` (created readable by the owner only) instead,
    and `location` says which one is in use so the settings page can tell the user.

    Args:
        fallback_file: the private file used when there is no keyring.
        service: the keyring entry's service name.
        username: the keyring entry's user name (which secret of the service this is).
    """

    def __init__(self, fallback_file: Path, *, service: str, username: str) -> None:
        self._fallback_file = fallback_file
        self._service = service
        self._username = username

    @staticmethod
    def keyring_available() -> bool:
        """True when `keyring` has a real backend (not the "fail" or "null" one)."""
        try:
            import keyring
            from keyring.backends import fail, null
        except ImportError:
            return False
        backend = keyring.get_keyring()
        return not isinstance(backend, fail.Keyring | null.Keyring)

    @property
    def location(self) -> TokenSource:
        """Where `save` puts a secret on this machine."""
        return TokenSource.KEYRING if self.keyring_available() else TokenSource.APP_FILE

    @property
    def fallback_file(self) -> Path:
        """The private file used when there is no keyring."""
        return self._fallback_file

    def load(self) -> str | None:
        """The saved secret, or None."""
        if self.keyring_available():
            import keyring

            value: str | None = keyring.get_password(self._service, self._username)
            return value or None
        try:
            return self._fallback_file.read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def save(self, secret: str) -> TokenSource:
        """Keep `secret` (stripped); an empty one clears it. Returns where it went."""
        secret = secret.strip()
        if not secret:
            self.clear()
            return self.location
        if self.keyring_available():
            import keyring

            keyring.set_password(self._service, self._username, secret)
            return TokenSource.KEYRING
        self._fallback_file.parent.mkdir(parents=True, exist_ok=True)
        # Create with owner-only permissions from the start, so the secret is never world-readable.
        descriptor = os.open(self._fallback_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        if hasattr(os, "fchmod"):  # the mode above applies only to a new file: tighten an old one
            os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(secret)
        return TokenSource.APP_FILE

    def clear(self) -> None:
        """Forget the saved secret (keyring entry and file)."""
        if self.keyring_available():
            import keyring
            from keyring.errors import PasswordDeleteError

            with contextlib.suppress(PasswordDeleteError):
                keyring.delete_password(self._service, self._username)
        self._fallback_file.unlink(missing_ok=True)


class TokenStore(SecretStore):
    """Saves and reads ModelDeck's own copy of the hub token, and finds the one to use."""

    def __init__(self, fallback_file: Path) -> None:
        super().__init__(fallback_file, service=KEYRING_SERVICE, username=KEYRING_USERNAME)

    def resolve(self) -> ResolvedToken:
        """The token to use, by precedence: saved, `HF_TOKEN`, the `hf` CLI's file."""
        saved = self.load()
        if saved:
            return ResolvedToken(saved, self.location)
        from_env = os.environ.get("HF_TOKEN", "").strip()
        if from_env:
            return ResolvedToken(from_env, TokenSource.ENVIRONMENT)
        try:
            from_cli = hf_cli_token_path().read_text(encoding="utf-8").strip()
        except OSError:
            from_cli = ""
        if from_cli:
            return ResolvedToken(from_cli, TokenSource.HF_CLI)
        return ResolvedToken(None, TokenSource.NONE)


def hf_cli_token_path() -> Path:
    """The token file of the `hf` CLI, read from the environment now (not at import)."""
    if explicit := os.environ.get("HF_TOKEN_PATH"):
        return Path(explicit).expanduser()
    if hf_home := os.environ.get("HF_HOME"):
        return Path(hf_home).expanduser() / "token"
    return Path(hf_constants.HF_TOKEN_PATH)


def redact(text: str, *secrets: str | None) -> str:
    """`text` with the given secrets and anything shaped like an HF token replaced by `***`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _TOKEN_PATTERN.sub("hf_***", text)
