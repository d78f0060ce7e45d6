"""Where the hub token comes from, where it is kept, which endpoint it may go to, and how it
is kept out of text.

Order of precedence: the token saved in ModelDeck (OS keyring, or a private file when the
machine has no keyring), then `HF_TOKEN`, then the file the `hf` CLI writes on `hf auth login`.
A token never appears in logs or error messages: `redact` scrubs text before it is shown.

Where a token may go (`TokenStore.resolve` decides; every request that carries a token
gets it from there, the app's own downloads included):

- The token saved in ModelDeck is bound to the endpoint it was saved for (kept with it). When
  the endpoint changes, it is not sent: Settings says whose it is and offers to keep it for the
  new one. A token saved before bindings existed belongs to huggingface.co, which issues them.
- `HF_TOKEN` and the `hf` CLI's token file are the user's own choice, made outside ModelDeck
  for the hub this environment talks to: like huggingface_hub itself, ModelDeck sends them to
  the endpoint in use (`HF_ENDPOINT`, `--endpoint` or the setting), and never holds them back
  because of a binding: there is none to hold them to.
- No token, from any source, is ever sent over plain http to another machine: it would be
  readable by everyone on the way. Plain http to this machine (a local mirror) is fine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from huggingface_hub import constants as hf_constants

from app.hub.endpoint import (
    DEFAULT_ENDPOINT,
    may_carry_token,
    normalize_endpoint,
    resolve_endpoint,
    same_endpoint,
)

KEYRING_SERVICE = "ModelDeck"
KEYRING_USERNAME = "huggingface-token"
# The endpoint a saved token belongs to, kept beside it (in the keyring, or a private file).
KEYRING_ENDPOINT_USERNAME = "huggingface-token-endpoint"
# Hugging Face user access tokens look like "hf_" followed by 30+ letters and digits.
_TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{8,}")


class TokenSource(StrEnum):
    """Where the token in use was found."""

    KEYRING = "the system keyring"
    APP_FILE = "ModelDeck's private token file"
    ENVIRONMENT = "the HF_TOKEN environment variable"
    HF_CLI = "the hf command-line tool's token file"
    NONE = "nowhere (no token)"


class WithheldReason(StrEnum):
    """Why a token that exists is not sent to the endpoint in use."""

    OTHER_ENDPOINT = "it was saved for another endpoint"
    PLAIN_HTTP = "the endpoint is plain http to another machine"


@dataclass(frozen=True)
class WithheldToken:
    """A token that was found but is not sent, and why."""

    source: TokenSource
    reason: WithheldReason
    saved_for: str | None = None  # the endpoint a token saved in ModelDeck belongs to


@dataclass(frozen=True)
class ResolvedToken:
    """The token to send (None: none) and where it came from. The value is kept out of `repr`.

    `withheld` names a token that exists but is not sent to this endpoint (the saved one,
    bound to another endpoint; or any, over plain http to another machine).
    """

    value: str | None = field(repr=False)
    source: TokenSource
    withheld: WithheldToken | None = None


@dataclass(frozen=True)
class SavedToken:
    """The token saved in ModelDeck and the endpoint it belongs to. The value is kept out of
    `repr`."""

    value: str = field(repr=False)
    endpoint: str


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
    """Saves and reads ModelDeck's own copy of the hub token, and decides which token (if any)
    an endpoint gets (see the module's docstring)."""

    def __init__(self, fallback_file: Path) -> None:
        super().__init__(fallback_file, service=KEYRING_SERVICE, username=KEYRING_USERNAME)
        self._binding = SecretStore(
            fallback_file.with_name(fallback_file.name + "-endpoint"),
            service=KEYRING_SERVICE,
            username=KEYRING_ENDPOINT_USERNAME,
        )

    def save(self, secret: str, *, endpoint: str | None = None) -> TokenSource:
        """Keep `secret` (stripped) for `endpoint`; an empty one clears it. Returns where it went.

        Args:
            secret: the token.
            endpoint: the hub it belongs to; None: huggingface.co.
        """
        location = super().save(secret)
        if not secret.strip() or endpoint is None:
            self._binding.clear()  # a token without a binding belongs to huggingface.co
            return location
        try:
            self._binding.save(normalize_endpoint(endpoint))
        except BaseException:
            super().clear()  # a token without its binding would belong to huggingface.co
            raise
        return location

    def clear(self) -> None:
        """Forget the saved token and the endpoint it belonged to."""
        super().clear()
        self._binding.clear()

    def saved(self) -> SavedToken | None:
        """The token saved in ModelDeck and its endpoint, or None (may block on the keyring)."""
        value = self.load()
        if not value:
            return None
        return SavedToken(value, self._binding.load() or DEFAULT_ENDPOINT)

    def rebind(self, endpoint: str) -> None:
        """Let the saved token go to `endpoint` from now on (and no longer where it went)."""
        if self.load():
            self._binding.save(normalize_endpoint(endpoint))

    def resolve(self, endpoint: str | None = None) -> ResolvedToken:
        """The token to send to `endpoint`, by precedence: saved, `HF_TOKEN`, the `hf` CLI's file.

        Args:
            endpoint: the hub the token would go to; None: the one this environment names
                (`HF_ENDPOINT`, else huggingface.co).
        """
        target = resolve_endpoint(endpoint)
        withheld: WithheldToken | None = None
        saved = self.saved()
        if saved is not None:
            if not same_endpoint(saved.endpoint, target):
                withheld = WithheldToken(
                    self.location, WithheldReason.OTHER_ENDPOINT, saved_for=saved.endpoint
                )
            elif may_carry_token(target):
                return ResolvedToken(saved.value, self.location)
            else:
                reason = WithheldReason.PLAIN_HTTP
                withheld = WithheldToken(self.location, reason, saved_for=saved.endpoint)
                return ResolvedToken(None, TokenSource.NONE, withheld)
        found = _token_from_outside()
        if found is None:
            return ResolvedToken(None, TokenSource.NONE, withheld)
        value, source = found
        if not may_carry_token(target):
            return ResolvedToken(
                None, TokenSource.NONE, withheld or WithheldToken(source, WithheldReason.PLAIN_HTTP)
            )
        return ResolvedToken(value, source, withheld)


def _token_from_outside() -> tuple[str, TokenSource] | None:
    """`HF_TOKEN`, else the `hf` CLI's token file, with where it came from; None: neither."""
    from_env = os.environ.get("HF_TOKEN", "").strip()
    if from_env:
        return from_env, TokenSource.ENVIRONMENT
    try:
        from_cli = hf_cli_token_path().read_text(encoding="utf-8").strip()
    except OSError:
        from_cli = ""
    if from_cli:
        return from_cli, TokenSource.HF_CLI
    return None


def hf_cli_token_path() -> Path:
    """The token file of the `hf` CLI, read from the environment now (not at import)."""
    if explicit := os.environ.get("HF_TOKEN_PATH"):
        return Path(explicit).expanduser()
    if hf_home := os.environ.get("HF_HOME"):
        return Path(hf_home).expanduser() / "token"
    return Path(hf_constants.HF_TOKEN_PATH)


class _RedactingRecordFactory:
    """Makes log records as before, with secrets scrubbed from their message.

    A record factory, not a handler's filter: it sees the records of every logger, the HTTP
    libraries' included, whatever handlers a front end or a test installs.
    """

    def __init__(self, inner: Callable[..., logging.LogRecord]) -> None:
        self.inner = inner
        self.secrets: set[str] = set()

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logging module's to report
            return record
        clean = redact(message, *self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            # Formatted now, as a handler's Formatter would (it reuses `exc_text`): a chained
            # cause may quote what a server echoed back, the token included.
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = redact(text, *self.secrets)
        return record


def keep_out_of_logs(*secrets: str | None) -> None:
    """From now on, scrub `secrets` and anything shaped like an HF token from every log record.

    The token itself is never logged by ModelDeck; this is for what others log at DEBUG level,
    e.g. an HTTP library logging the headers of a response in which a server echoes it.
    """
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _RedactingRecordFactory):
        factory = _RedactingRecordFactory(factory)
        logging.setLogRecordFactory(factory)
    factory.secrets.update(secret for secret in secrets if secret)


def redact(text: str, *secrets: str | None) -> str:
    """`text` with the given secrets and anything shaped like an HF token replaced by `***`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _TOKEN_PATTERN.sub("hf_***", text)
