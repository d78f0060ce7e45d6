"""Where the API keys of remote endpoints are kept: one OS keyring entry per endpoint URL.

The same mechanism as the hub token (`SecretStore`): the keyring entry has the service
"ModelDeck remote endpoint" and the endpoint's base URL as user name; a machine without a
keyring keeps each key in an owner-only file named after a hash of the URL. Endpoints
themselves (URL, model, name) hold no secret and can be stored anywhere; `with_key` puts the
saved key back on one before it is used.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from app import paths
from app.chat.remote import RemoteEndpoint
from app.hub.credentials import SecretStore, TokenSource

KEYRING_SERVICE = "ModelDeck remote endpoint"


class EndpointKeyStore:
    """The saved API keys of remote endpoints, by base URL.

    Args:
        fallback_folder: where keys go on a machine without a keyring (one file per URL).
    """

    def __init__(self, fallback_folder: Path) -> None:
        self._folder = fallback_folder

    @classmethod
    def default(cls) -> EndpointKeyStore:
        """The store in the user's data folder."""
        return cls(paths.data_dir() / "endpoint-keys")

    @property
    def location(self) -> TokenSource:
        """Where `save` puts a key on this machine (the keyring, or ModelDeck's private file)."""
        return self._secret("").location

    def load(self, base_url: str) -> str | None:
        """The key saved for `base_url`, or None."""
        return self._secret(base_url).load()

    def save(self, base_url: str, key: str) -> TokenSource:
        """Keep `key` for `base_url` (stripped; empty clears it). Returns where it went."""
        return self._secret(base_url).save(key)

    def clear(self, base_url: str) -> None:
        """Forget the key of `base_url`."""
        self._secret(base_url).clear()

    def with_key(self, endpoint: RemoteEndpoint) -> RemoteEndpoint:
        """`endpoint` with its saved key (or with none, when none is saved)."""
        return dataclasses.replace(endpoint, api_key=self.load(endpoint.base_url))

    def _secret(self, base_url: str) -> SecretStore:
        url = base_url.strip().rstrip("/")  # as `RemoteEndpoint` keeps it
        digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]
        return SecretStore(self._folder / f"{digest}.key", service=KEYRING_SERVICE, username=url)
