"""The Civitai API key: ModelDeck's keyring entry (or private file), else `CIVITAI_TOKEN`.

Kept like the Hugging Face token (`app.hub.credentials.SecretStore`), under its own keyring
entry; the client sends it only over https or to this machine.
"""

from __future__ import annotations

import os
from pathlib import Path

from app.hub.credentials import KEYRING_SERVICE, SecretStore, TokenSource

KEYRING_USERNAME = "civitai-token"
ENVIRONMENT_NAMES = ("CIVITAI_TOKEN", "CIVITAI_API_TOKEN")


class CivitaiTokenStore(SecretStore):
    """Saves and reads the Civitai API key.

    Args:
        fallback_file: the private file used when the machine has no keyring.
    """

    def __init__(self, fallback_file: Path) -> None:
        super().__init__(fallback_file, service=KEYRING_SERVICE, username=KEYRING_USERNAME)

    def resolve(self) -> tuple[str | None, TokenSource]:
        """The key to use and where it was found: saved in ModelDeck first, then the
        environment (`CIVITAI_TOKEN`, `CIVITAI_API_TOKEN`)."""
        saved = self.load()
        if saved:
            return saved, self.location
        for name in ENVIRONMENT_NAMES:
            value = os.environ.get(name, "").strip()
            if value:
                return value, TokenSource.ENVIRONMENT
        return None, TokenSource.NONE


def civitai_token_store(data_folder: Path) -> CivitaiTokenStore:
    """The store for ModelDeck's data folder (its fallback file sits beside the HF one)."""
    return CivitaiTokenStore(data_folder / "civitai-token")
