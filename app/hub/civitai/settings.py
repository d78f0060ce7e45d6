"""Civitai's settings: whether NSFW models are shown, and where each kind of file goes.

They live in the app database's settings table under their own keys (`civitai_…`), beside
the app's `Settings`, and each stored value falls back to its default alone when it is
invalid. Files go into a models folder with one subfolder per kind; the layout names those
subfolders the way ModelDeck/ComfyUI or AUTOMATIC1111 do, so pointing the folder at another
tool's `models` folder shares it with that tool (nothing is copied).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from app.errors import SettingsError
from app.hub.civitai.models import ModelType
from app.paths import data_dir
from app.store import Database

_KEYS = {
    "show_nsfw": "civitai_show_nsfw",
    "models_dir": "civitai_models_dir",
    "layout": "civitai_layout",
}


class FolderKind(StrEnum):
    """The folders a Civitai file can go to."""

    CHECKPOINTS = "checkpoints"
    LORA = "lora"
    VAE = "vae"
    EMBEDDINGS = "embeddings"
    CONTROLNET = "controlnet"
    UPSCALERS = "upscalers"
    OTHER = "other"

    @classmethod
    def of(cls, model_type: ModelType) -> FolderKind:
        return _KIND_OF_TYPE.get(model_type, cls.OTHER)


_KIND_OF_TYPE = {
    ModelType.CHECKPOINT: FolderKind.CHECKPOINTS,
    ModelType.LORA: FolderKind.LORA,
    ModelType.LOCON: FolderKind.LORA,
    ModelType.DORA: FolderKind.LORA,
    ModelType.VAE: FolderKind.VAE,
    ModelType.TEXTUAL_INVERSION: FolderKind.EMBEDDINGS,
    ModelType.CONTROLNET: FolderKind.CONTROLNET,
    ModelType.UPSCALER: FolderKind.UPSCALERS,
}


class FolderLayout(StrEnum):
    """How the subfolders of the models folder are named."""

    COMFYUI = "comfyui"  # ModelDeck's default: checkpoints/, loras/, vae/, embeddings/, …
    A1111 = "a1111"  # AUTOMATIC1111 / Forge: Stable-diffusion/, Lora/, VAE/, …

    def subfolder(self, kind: FolderKind) -> str:
        return _SUBFOLDERS[self][kind]


_SUBFOLDERS = {
    FolderLayout.COMFYUI: {
        FolderKind.CHECKPOINTS: "checkpoints",
        FolderKind.LORA: "loras",
        FolderKind.VAE: "vae",
        FolderKind.EMBEDDINGS: "embeddings",
        FolderKind.CONTROLNET: "controlnet",
        FolderKind.UPSCALERS: "upscale_models",
        FolderKind.OTHER: "other",
    },
    FolderLayout.A1111: {
        FolderKind.CHECKPOINTS: "Stable-diffusion",
        FolderKind.LORA: "Lora",
        FolderKind.VAE: "VAE",
        # A1111 keeps embeddings beside its models folder, not in it.
        FolderKind.EMBEDDINGS: "../embeddings",
        FolderKind.CONTROLNET: "ControlNet",
        FolderKind.UPSCALERS: "ESRGAN",
        FolderKind.OTHER: "Other",
    },
}


@dataclass(frozen=True, kw_only=True)
class CivitaiSettings:
    """What the user can change about Civitai."""

    show_nsfw: bool = False  # off: NSFW models are neither listed nor shown
    models_dir: str | None = None  # None: "models" in ModelDeck's data folder
    layout: FolderLayout = FolderLayout.COMFYUI
    # ModelDeck's data folder (where the database is), under which the default models folder
    # lies; not stored. None: the standard data folder.
    data_folder: Path | None = dataclasses.field(default=None, compare=False)

    def resolved_models_dir(self) -> Path:
        if self.models_dir:
            return Path(self.models_dir).expanduser()
        return (self.data_folder or data_dir()) / "models"

    def folder_for(self, kind: FolderKind) -> Path:
        """Where files of `kind` go."""
        root = self.resolved_models_dir()
        return Path(os.path.normpath(root / self.layout.subfolder(kind)))


def load_civitai_settings(database: Database) -> CivitaiSettings:
    """The stored settings; an invalid stored value falls back to its default."""
    values: dict[str, object] = {}
    show = database.get_setting(_KEYS["show_nsfw"])
    if isinstance(show, bool):
        values["show_nsfw"] = show
    folder = database.get_setting(_KEYS["models_dir"])
    if isinstance(folder, str) and folder.strip():
        values["models_dir"] = folder
    layout = database.get_setting(_KEYS["layout"])
    if layout in {member.value for member in FolderLayout}:
        values["layout"] = FolderLayout(layout)
    return CivitaiSettings(data_folder=database.path.parent, **values)  # type: ignore[arg-type]


def save_civitai_settings(database: Database, settings: CivitaiSettings) -> None:
    """Store `settings`. Raises `SettingsError` for a models folder that is not absolute."""
    if settings.models_dir is not None and not Path(settings.models_dir).expanduser().is_absolute():
        raise SettingsError(
            f"The Civitai models folder must be a full path, not {settings.models_dir!r}."
        )
    with database.transaction():
        for field in dataclasses.fields(CivitaiSettings):
            if field.name not in _KEYS:
                continue
            value = getattr(settings, field.name)
            database.set_setting(
                _KEYS[field.name], value.value if isinstance(value, FolderLayout) else value
            )
