"""Civitai files in the Library: the models folder is listed, and each entry shows its Civitai
provenance (downloaded, or found by Identify), read from the `.civitai.info` beside it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.downloads.civitai import fetch_civitai_file, plan_civitai_download
from app.hub.civitai.client import CivitaiClient
from app.hub.civitai.identify import identify_file
from app.hub.civitai.provenance import sidecar_path
from app.hub.civitai.provider import CivitaiHub
from app.hub.civitai.settings import (
    CivitaiSettings,
    FolderLayout,
    load_civitai_settings,
    save_civitai_settings,
)
from app.library import Library
from app.library.catalog import LibraryEntry, Source
from app.library.other_apps import AppFolders
from app.licenses import CommercialUse, license_info
from app.store import Database
from tests.support.civitai_server import CivitaiServer, ServedFile
from tests.support.tiny_lora import tiny_kohya_lora

LORA = tiny_kohya_lora()


@pytest.fixture
def civitai() -> Iterator[CivitaiServer]:
    with CivitaiServer() as server:
        server.add_model(
            2, "Anime LoRA", type="LORA", base_model="Pony", trained_words=("anime girl",),
            files=[ServedFile(id=21, name="animeLora.safetensors", data=LORA)],
            allow_commercial_use=["Image"],
        )  # fmt: skip
        yield server


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    made = Database(tmp_path / "db.sqlite3")
    yield made
    made.close()


def library(database: Database, tmp_path: Path) -> Library:
    return Library(database, hf_cache_dir=tmp_path / "hf", app_folders=AppFolders())


def entry_at(entries: list[LibraryEntry], path: Path) -> LibraryEntry:
    return next(e for e in entries if any(loc.path == path for loc in e.locations))


def test_settings_round_trip_and_fall_back(database: Database, tmp_path: Path) -> None:
    assert load_civitai_settings(database) == CivitaiSettings()  # NSFW off by default
    chosen = CivitaiSettings(
        show_nsfw=True, models_dir=str(tmp_path / "m"), layout=FolderLayout.A1111
    )
    save_civitai_settings(database, chosen)
    assert load_civitai_settings(database) == chosen
    database.set_setting("civitai_layout", "nonsense")
    assert load_civitai_settings(database).layout is FolderLayout.COMFYUI


def test_a_downloaded_file_shows_its_civitai_provenance(
    civitai: CivitaiServer, database: Database, tmp_path: Path
) -> None:
    settings = CivitaiSettings(models_dir=str(tmp_path / "models"))
    save_civitai_settings(database, settings)
    with CivitaiClient(endpoint=civitai.url) as client:
        model, version = CivitaiHub(client).version("civitai:2")
        plan = plan_civitai_download(model, version, endpoint=civitai.url, settings=settings)
        path = fetch_civitai_file(plan, client=client)

    entry = entry_at(library(database, tmp_path).scan(), path)
    assert entry.locations[0].source is Source.CIVITAI
    provenance = entry.provenance
    assert provenance is not None and provenance.civitai is not None
    assert provenance.civitai.civitai_id == "civitai:2@20"
    assert provenance.civitai.base_model == "Pony"
    text = "\n".join(provenance.lines())
    assert "Anime LoRA" in text and "trigger words: anime girl" in text
    info = license_info(provenance.license)
    assert info.commercial_use is CommercialUse.CONDITIONAL
    assert provenance.to_json()["civitai"]["id"] == 20


def test_identify_an_imported_file(
    civitai: CivitaiServer, database: Database, tmp_path: Path
) -> None:
    local = tmp_path / "downloads" / "some-lora.safetensors"
    local.parent.mkdir()
    local.write_bytes(LORA)
    models = library(database, tmp_path)
    models.import_paths([local])
    before = entry_at(models.scan(), local).provenance
    assert before is not None and before.civitai is None

    with CivitaiClient(endpoint=civitai.url) as client:
        identify_file(local, client)

    after = entry_at(models.scan(), local).provenance
    assert after is not None and after.civitai is not None
    assert after.civitai.trained_words == ("anime girl",)
    assert after.license is not None and after.license.startswith("civitai:image")


def test_deleting_a_civitai_file_deletes_its_sidecar(
    civitai: CivitaiServer, database: Database, tmp_path: Path
) -> None:
    settings = CivitaiSettings(models_dir=str(tmp_path / "models"))
    save_civitai_settings(database, settings)
    with CivitaiClient(endpoint=civitai.url) as client:
        model, version = CivitaiHub(client).version("civitai:2")
        plan = plan_civitai_download(model, version, endpoint=civitai.url, settings=settings)
        path = fetch_civitai_file(plan, client=client)
    models = library(database, tmp_path)
    entry = entry_at(models.scan(), path)
    delete = models.plan_delete(entry.key)
    assert sidecar_path(path) in [p for step in delete.steps for p in step.paths]
    models.execute(delete)
    assert not path.exists() and not sidecar_path(path).exists()
