"""Where a file came from on Civitai, kept beside it as `<file>.civitai.info`.

The sidecar is JSON in the shape of Civitai's own model-version answer (`id`, `modelId`,
`name`, `baseModel`, `trainedWords`, `model: {name, type, nsfw}`, `files[].hashes.SHA256`),
which is what AUTOMATIC1111's Civitai Helper and similar tools write and read, so a file
downloaded or identified here is known to them too, and theirs to ModelDeck.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from app.hub.civitai import parse
from app.hub.civitai.models import CivitaiVersion, ModelType
from app.licenses import CIVITAI_PREFIX
from app.untrusted_json import UntrustedJsonError, parse_untrusted_json

SIDECAR_SUFFIX = ".civitai.info"
_MAX_SIDECAR_BYTES = 4 << 20


@dataclass(frozen=True, kw_only=True)
class CivitaiProvenance:
    """A local file's Civitai model and version."""

    model_id: int | None
    version_id: int
    model_name: str | None
    version_name: str
    model_type: ModelType | None
    base_model: str | None
    trained_words: tuple[str, ...]
    sha256: str | None  # of the file, as Civitai lists it
    nsfw: bool | None = None
    license_id: str | None = None  # the creator's permissions, as `license_id_of` writes them

    @property
    def civitai_id(self) -> str:
        if self.model_id is None:
            return f"civitai:@{self.version_id}"
        return f"civitai:{self.model_id}@{self.version_id}"

    @classmethod
    def of(
        cls, version: CivitaiVersion, *, sha256: str | None, license_id: str | None = None
    ) -> CivitaiProvenance:
        return cls(
            license_id=license_id,
            model_id=version.model_id,
            version_id=version.id,
            model_name=version.model_name,
            version_name=version.name,
            model_type=version.model_type,
            base_model=version.base_model,
            trained_words=version.trained_words,
            sha256=sha256,
            nsfw=version.model_nsfw,
        )

    def lines(self) -> list[str]:
        """What a person reads about it (the Library's provenance, `modeldeck identify`)."""
        name = self.model_name or "?"
        lines = [f"Civitai: {name} — {self.version_name} ({self.civitai_id})"]
        if self.model_type is not None:
            lines.append(f"type: {self.model_type.value}")
        if self.base_model:
            lines.append(f"base model: {self.base_model}")
        if self.trained_words:
            lines.append("trigger words: " + ", ".join(self.trained_words))
        return lines

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.version_id,
            "modelId": self.model_id,
            "name": self.version_name,
            "baseModel": self.base_model,
            "trainedWords": list(self.trained_words),
            "model": {
                "name": self.model_name,
                "type": self.model_type.value if self.model_type else None,
                "nsfw": self.nsfw,
            },
            "files": [{"hashes": {"SHA256": self.sha256.upper()}}] if self.sha256 else [],
            "source": "modeldeck",
            "modeldeckLicense": self.license_id,
        }


def sidecar_path(model_file: Path) -> Path:
    """`<folder>/<name without its suffix>.civitai.info` (Civitai Helper's name for it)."""
    return model_file.with_name(model_file.stem + SIDECAR_SUFFIX)


def write_sidecar(model_file: Path, provenance: CivitaiProvenance) -> Path:
    """Write the sidecar atomically (a temporary file, then a rename); returns its path."""
    path = sidecar_path(model_file)
    temporary = path.with_name(path.name + f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(provenance.to_json(), indent=2), encoding="utf-8")
    os.replace(temporary, path)
    return path


def read_sidecar(model_file: Path) -> CivitaiProvenance | None:
    """The provenance beside `model_file`; None when there is none or it cannot be read
    (another tool's file may be broken; it is never a reason to fail)."""
    path = sidecar_path(model_file)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_SIDECAR_BYTES + 1)
        data = parse_untrusted_json(raw, max_bytes=_MAX_SIDECAR_BYTES, what=str(path))
        return provenance_from_json(data)
    except (OSError, UntrustedJsonError, ValueError):
        return None


def provenance_from_json(data: object) -> CivitaiProvenance:
    """Provenance from parsed JSON in the sidecar's shape (`CivitaiProvenance.to_json`).

    Raises:
        ValueError: `data` is not a model version.
    """
    version = parse.version(data)
    files = [file for file in version.files if file.sha256]
    license_id = data.get("modeldeckLicense") if isinstance(data, dict) else None
    return CivitaiProvenance.of(
        version,
        sha256=files[0].sha256 if files else None,
        license_id=license_id
        if isinstance(license_id, str)
        and license_id.startswith(CIVITAI_PREFIX)
        and len(license_id) < 200
        else None,
    )
