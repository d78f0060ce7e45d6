"""Where ModelDeck keeps its own files (the HF cache is huggingface_hub's business)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "ModelDeck"
DATA_DIR_ENV = "MODELDECK_DATA_DIR"  # lets tests and portable installs move everything


def data_dir() -> Path:
    """The user data folder: `MODELDECK_DATA_DIR`, else the platform's user data dir."""
    override = os.environ.get(DATA_DIR_ENV)
    return Path(override).expanduser() if override else Path(platformdirs.user_data_dir(APP_NAME))


def database_path() -> Path:
    """The one SQLite file that holds settings, conversations, the download queue, …"""
    return data_dir() / "modeldeck.sqlite3"


def token_fallback_path() -> Path:
    """Where the hub token is kept on machines without an OS keyring (owner-only file)."""
    return data_dir() / "hf-token"


def hf_cache_dir() -> Path:
    """The HF hub cache that huggingface_hub uses, read from the environment now."""
    if explicit := os.environ.get("HF_HUB_CACHE"):
        return Path(explicit).expanduser()
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "huggingface"
    )
    return Path(hf_home).expanduser() / "hub"
