"""CivitaiHub over the real client and the fake Civitai: summaries, details, licenses,
scans, cards, NSFW, and Identify."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import pytest

from app.errors import RepoNotFoundError
from app.hub.civitai.client import CivitaiClient
from app.hub.civitai.identify import identify_file
from app.hub.civitai.provenance import read_sidecar
from app.hub.civitai.provider import CivitaiHub, description_markdown, parse_ref
from app.hub.models import SearchQuery
from app.hub.provider import HubProvider
from app.hub.security import ScanLevel
from app.licenses import CommercialUse, LicenseCategory, license_info
from tests.support.civitai_server import CivitaiServer, ServedFile

LORA = b"lora weights" * 50


@pytest.fixture
def civitai() -> Iterator[CivitaiServer]:
    with CivitaiServer() as server:
        server.add_model(
            1, "Anime Checkpoint", downloads=900,
            description="<p>Best <b>anime</b> model.</p><script>alert(1)</script><p>Use *it*.</p>",
            allow_commercial_use=["Image"], allow_derivatives=True, allow_no_credit=False,
            files=[
                ServedFile(id=11, name="anime.safetensors", data=b"ckpt" * 100),
                ServedFile(id=12, name="anime.ckpt", data=b"pickle", format="PickleTensor",
                           primary=False, pickle_scan="Danger",
                           pickle_message="Dangerous import: os.system"),
            ],
            extra_versions=((5, "v0.9", [ServedFile(id=51, name="old.safetensors", data=b"o")]),),
        )  # fmt: skip
        server.add_model(
            2, "Anime LoRA", type="LORA", base_model="Pony", trained_words=("anime girl",),
            files=[ServedFile(id=21, name="anime-lora.safetensors", data=LORA)], downloads=800,
            allow_commercial_use=["Image", "RentCivit", "Rent", "Sell"],
        )  # fmt: skip
        server.add_model(3, "Anime NSFW", nsfw=True, downloads=1000)
        yield server


@pytest.fixture
def hub(civitai: CivitaiServer) -> Iterator[CivitaiHub]:
    made = CivitaiHub(CivitaiClient(endpoint=civitai.url))
    yield made
    made.close()


def test_it_is_a_hub_provider(hub: CivitaiHub) -> None:
    provider: HubProvider = hub
    assert provider.name.startswith("Civitai")


def test_search_finds_checkpoints_and_loras_with_permissions(hub: CivitaiHub) -> None:
    results = list(islice(hub.search(SearchQuery(text="anime")), 10))
    assert [r.repo_id for r in results] == ["civitai:1/Anime Checkpoint", "civitai:2/Anime LoRA"]
    assert [r.library for r in results] == ["Checkpoint", "LORA"]
    lora = license_info(results[1].license_id)
    assert lora.commercial_use is CommercialUse.YES
    checkpoint = license_info(results[0].license_id)
    assert checkpoint.commercial_use is CommercialUse.CONDITIONAL
    assert "sell images" in (checkpoint.commercial_condition or "")
    assert "attribution" in checkpoint.obligations


def test_search_filters_by_type_and_permissions(civitai: CivitaiServer, hub: CivitaiHub) -> None:
    loras = list(hub.search(SearchQuery(text="anime", library="LORA")))
    assert [r.repo_id for r in loras] == ["civitai:2/Anime LoRA"]
    sellable = list(hub.search(SearchQuery(license="civitai:sell")))
    assert [r.repo_id for r in sellable] == ["civitai:2/Anime LoRA"]
    assert civitai.requests_to("/api/v1/models")[-1].query["allowCommercialUse"] == ["Sell"]


def test_nsfw_only_with_the_setting(civitai: CivitaiServer) -> None:
    with CivitaiClient(endpoint=civitai.url) as client:
        hidden = CivitaiHub(client)
        with pytest.raises(RepoNotFoundError, match="NSFW"):
            hidden.model_details("civitai:3")
        shown = CivitaiHub(client, show_nsfw=True)
        assert shown.model_details("civitai:3").repo_id == "civitai:3/Anime NSFW"
        assert "civitai:3/Anime NSFW" in [
            r.repo_id for r in shown.search(SearchQuery(text="anime"))
        ]


def test_details_files_scans_and_license(hub: CivitaiHub) -> None:
    details = hub.model_details("civitai:1")
    assert details.sha is None and details.base_models == ("SD 1.5",)
    files = {file.path: file for file in details.files}
    assert files["anime.safetensors"].sha256 == hashlib.sha256(b"ckpt" * 100).hexdigest()
    assert files["anime.safetensors"].size == 400
    assert details.scan_of("anime.safetensors").level is ScanLevel.SAFE
    pickle = details.scan_of("anime.ckpt")
    assert pickle.level is ScanLevel.UNSAFE and "os.system" in pickle.finding
    info = license_info(details.license_id)
    assert info.category is LicenseCategory.USE_RESTRICTED
    assert details.card_data["civitai"]["version_id"] == 10
    assert details.url.endswith("/models/1?modelVersionId=10")


def test_versions_by_id_and_revision(hub: CivitaiHub) -> None:
    assert hub.model_details("civitai:1@5").files[0].path == "old.safetensors"
    assert hub.model_details("civitai:1", revision="5").card_data["civitai"]["version_id"] == 5
    with pytest.raises(RepoNotFoundError, match="no version 77"):
        hub.model_details("civitai:1@77")
    with pytest.raises(RepoNotFoundError, match="not a Civitai model id"):
        hub.model_details("org/name")
    assert parse_ref("12").model_id == 12


def test_card_is_text_never_markup(hub: CivitaiHub) -> None:
    card = hub.model_card("civitai:2")
    assert "`anime girl`" in card.body
    body = hub.model_card("civitai:1").body
    assert "Best anime model." in body and "alert" not in body and "<" not in body
    assert "Use \\*it\\*." in body


def test_description_markdown_is_linear_on_unclosed_tags() -> None:
    # 200 kB of unclosed "<p" must not take quadratic time (it returns at once).
    assert description_markdown("<p" * 100_000) == ""


def test_identify_by_hash_records_provenance(civitai: CivitaiServer, tmp_path: Path) -> None:
    local = tmp_path / "whatever-name.safetensors"
    local.write_bytes(LORA)
    with CivitaiClient(endpoint=civitai.url) as client:
        provenance = identify_file(local, client)
    assert provenance.civitai_id == "civitai:2@20"
    assert provenance.base_model == "Pony" and provenance.trained_words == ("anime girl",)
    assert read_sidecar(local) == provenance
    unknown = tmp_path / "unknown.safetensors"
    unknown.write_bytes(b"nobody has this")
    with CivitaiClient(endpoint=civitai.url) as client, pytest.raises(RepoNotFoundError):
        identify_file(unknown, client)


def test_named_ids_are_read_past_their_name(hub: CivitaiHub) -> None:
    assert parse_ref("civitai:2/Anime LoRA").model_id == 2
    assert parse_ref("civitai:1@5/a name with @ and / in it").version_id == 5
    assert hub.model_details("civitai:1@5/Anime Checkpoint").files[0].path == "old.safetensors"


def test_offline_copies_work_for_civitai(civitai: CivitaiServer, tmp_path: Path) -> None:
    from app.hub.offline import OfflineAwareHub
    from app.store import Database

    database = Database(tmp_path / "db.sqlite3")
    client = CivitaiClient(endpoint=civitai.url, timeout=2)
    hub = OfflineAwareHub(CivitaiHub(client), database)
    fresh = hub.model_details("civitai:2")
    assert [r.repo_id for r in hub.search(SearchQuery(text="anime"))][:1] == [
        "civitai:1/Anime Checkpoint"
    ]
    civitai.__exit__(None, None, None)  # Civitai goes away
    saved = hub.model_details("civitai:2")
    assert saved.saved_at is not None
    assert saved.license_id == fresh.license_id and saved.files == fresh.files
    assert saved.scan_of("anime-lora.safetensors").level is ScanLevel.SAFE
    database.close()
