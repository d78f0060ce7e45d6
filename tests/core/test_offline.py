"""OfflineAwareHub: saved copies of details and cards, offline fallbacks and seen models."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.errors import HubUnreachableError, RateLimitedError
from app.hub.huggingface import HuggingFaceHub
from app.hub.models import Gating, SearchQuery
from app.hub.offline import OfflineAwareHub
from app.hub.security import ScanLevel
from app.store import Database
from tests.support.hub_server import Fault, HubServer, Status

CARD = "---\nlicense: apache-2.0\nbase_model: org/base\n---\n# Saved card\n\nWith a body.\n"


@pytest.fixture
def offline_hub(hub: HuggingFaceHub, database: Database) -> OfflineAwareHub:
    return OfflineAwareHub(hub, database)


@pytest.fixture
def seen(hub_server: HubServer) -> HubServer:
    hub_server.add_repo(
        "org/llama-gguf",
        {"llama-Q4_K_M.gguf": b"GGUF" * 10},
        card=CARD,
        pipeline_tag="text-generation",
        library_name="llama.cpp",
        downloads=10,
        last_modified=datetime(2024, 2, 2, tzinfo=UTC),
    )
    hub_server.add_repo(
        "org/sd-tiny",
        {"model_index.json": b"{}"},
        card="---\nlicense: mit\n---\n",
        pipeline_tag="text-to-image",
        library_name="diffusers",
        gated="manual",
    )
    hub_server.add_repo("other/Tiny-LLaMA", card="---\nlicense: mit\n---\n")
    return hub_server


def test_saved_details_and_card_are_served_offline(
    seen: HubServer, offline_hub: OfflineAwareHub, hf_home: Path
) -> None:
    before = datetime.now(UTC)
    online = offline_hub.model_details("org/llama-gguf")
    online_card = offline_hub.model_card("org/llama-gguf")
    assert online.saved_at is None
    assert online_card.saved_at is None
    seen.stop()

    details = offline_hub.model_details("org/llama-gguf")

    assert details.saved_at is not None
    assert before - timedelta(seconds=1) <= details.saved_at <= datetime.now(UTC)
    assert details == dataclasses.replace(online, saved_at=details.saved_at)
    assert details.gating is Gating.OPEN
    assert details.last_modified == datetime(2024, 2, 2, tzinfo=UTC)
    assert details.files == online.files
    assert details.base_models == ("org/base",)
    # The README is also in the HF cache, so the provider itself still has the card.
    card = offline_hub.model_card("org/llama-gguf")
    assert card.body == online_card.body
    assert card.metadata == online_card.metadata


def test_saved_details_keep_the_hubs_scan_results_offline(
    seen: HubServer, offline_hub: OfflineAwareHub
) -> None:
    seen.add_repo("org/scanned", {"model.gguf": b"GGUF" * 4, "weights.bin": b"pickle"})
    seen.set_scans("org/scanned", {"weights.bin": "unsafe"})
    online = offline_hub.model_details("org/scanned")
    assert online.scan_of("weights.bin").level is ScanLevel.UNSAFE
    seen.stop()

    details = offline_hub.model_details("org/scanned")

    assert details.saved_at is not None
    assert details.security == online.security
    assert details.scan_of("model.gguf").level is ScanLevel.SAFE
    assert details.scan_of("weights.bin") == online.scan_of("weights.bin")


def test_a_saved_copy_without_scans_stays_not_scanned(
    seen: HubServer, offline_hub: OfflineAwareHub
) -> None:
    offline_hub.model_details("org/llama-gguf")  # this hub reports no scans for it
    seen.stop()

    details = offline_hub.model_details("org/llama-gguf")

    assert details.security is None
    assert details.scan_of("llama-Q4_K_M.gguf").level is ScanLevel.NOT_SCANNED


def test_saved_card_is_served_when_the_hf_cache_lost_it(
    seen: HubServer, offline_hub: OfflineAwareHub, hf_home: Path
) -> None:
    online_card = offline_hub.model_card("org/llama-gguf")
    seen.stop()
    shutil.rmtree(hf_home / "hub")

    card = offline_hub.model_card("org/llama-gguf")

    assert card.saved_at is not None
    assert card.body == online_card.body == "# Saved card\n\nWith a body.\n"
    assert card.metadata == {"license": "apache-2.0", "base_model": "org/base"}
    assert card.metadata_error is None


def test_provider_alone_reads_a_cached_card_offline(seen: HubServer, hub: HuggingFaceHub) -> None:
    online = hub.model_card("org/llama-gguf")
    seen.stop()

    offline = hub.model_card("org/llama-gguf")

    assert offline.body == online.body
    assert offline.saved_at is None  # not a saved copy: the HF cache's own file


def test_broken_card_metadata_error_survives_saving(
    hub_server: HubServer, offline_hub: OfflineAwareHub, hf_home: Path
) -> None:
    hub_server.add_repo("org/broken", card="---\nlicense: [mit\n---\nBody\n")
    online = offline_hub.model_card("org/broken")
    assert online.metadata_error
    hub_server.stop()
    shutil.rmtree(hf_home / "hub")

    card = offline_hub.model_card("org/broken")

    assert (card.body, card.metadata_error) == ("Body\n", online.metadata_error)


def test_never_seen_repo_offline_is_unreachable(
    seen: HubServer, offline_hub: OfflineAwareHub
) -> None:
    offline_hub.model_details("org/llama-gguf")
    seen.stop()

    with pytest.raises(HubUnreachableError):
        offline_hub.model_details("org/sd-tiny")
    with pytest.raises(HubUnreachableError):
        offline_hub.model_card("org/sd-tiny")
    with pytest.raises(HubUnreachableError):
        next(iter(offline_hub.search(SearchQuery())))


def test_other_revisions_are_neither_saved_nor_served_offline(
    seen: HubServer, offline_hub: OfflineAwareHub
) -> None:
    first = seen.add_repo("org/evolving", {"v1.gguf": b"one"})
    seen.add_repo("org/evolving", {"v2.gguf": b"two"})
    offline_hub.model_details("org/evolving")
    old = offline_hub.model_details("org/evolving", revision=first)
    assert [f.path for f in old.files] == ["v1.gguf"]
    seen.stop()

    assert [f.path for f in offline_hub.model_details("org/evolving").files] == ["v2.gguf"]
    with pytest.raises(HubUnreachableError):
        offline_hub.model_details("org/evolving", revision=first)


def test_other_errors_are_not_hidden_by_a_saved_copy(
    seen: HubServer, offline_hub: OfflineAwareHub
) -> None:
    offline_hub.model_details("org/llama-gguf")
    seen.inject(Fault(Status(429, retry_after=5), path=r"^/api/models/org/llama-gguf$"))

    with pytest.raises(RateLimitedError):
        offline_hub.model_details("org/llama-gguf")


def test_saved_copies_belong_to_their_endpoint(
    seen: HubServer, offline_hub: OfflineAwareHub, database: Database, tmp_path: Path
) -> None:
    offline_hub.model_details("org/llama-gguf")
    seen.stop()
    with HubServer(tmp_path / "elsewhere") as elsewhere:
        other = OfflineAwareHub(HuggingFaceHub(endpoint=elsewhere.url), database)
        assert other.seen_models(SearchQuery()) == []
        elsewhere.stop()
        with pytest.raises(HubUnreachableError):
            other.model_details("org/llama-gguf")


def test_seen_models_filter_and_order(seen: HubServer, offline_hub: OfflineAwareHub) -> None:
    for repo_id in ("org/sd-tiny", "other/Tiny-LLaMA", "org/llama-gguf"):
        offline_hub.model_details(repo_id)
    seen.stop()

    def seen_ids(
        text: str = "",
        *,
        task: str | None = None,
        library: str | None = None,
        license: str | None = None,
        author: str | None = None,
    ) -> list[str]:
        query = SearchQuery(text=text, task=task, library=library, license=license, author=author)
        return [m.repo_id for m in offline_hub.seen_models(query)]

    assert seen_ids() == ["org/llama-gguf", "other/Tiny-LLaMA", "org/sd-tiny"]  # newest first
    assert seen_ids(text="LLAMA") == ["org/llama-gguf", "other/Tiny-LLaMA"]
    assert seen_ids(text=" tiny-llama ") == ["other/Tiny-LLaMA"]
    assert seen_ids(text="nothing-like-it") == []
    assert seen_ids(task="text-to-image") == ["org/sd-tiny"]
    assert seen_ids(library="diffusers") == ["org/sd-tiny"]
    assert seen_ids(library="gguf") == ["org/llama-gguf"]  # a format tag, as the hub filters
    assert seen_ids(license="MIT") == ["other/Tiny-LLaMA", "org/sd-tiny"]
    assert seen_ids(author="org") == ["org/llama-gguf", "org/sd-tiny"]
    assert seen_ids(author="org", text="sd") == ["org/sd-tiny"]


def test_seen_models_summaries_and_limit(seen: HubServer, offline_hub: OfflineAwareHub) -> None:
    for repo_id in ("org/sd-tiny", "other/Tiny-LLaMA", "org/llama-gguf"):
        offline_hub.model_details(repo_id)

    (llama,) = offline_hub.seen_models(SearchQuery(text="gguf"))
    assert llama.task == "text-generation"
    assert llama.library == "llama.cpp"
    assert llama.license_id == "apache-2.0"
    assert llama.gating is Gating.OPEN
    (tiny,) = offline_hub.seen_models(SearchQuery(text="sd-"))
    assert tiny.gating is Gating.MANUAL
    assert llama.downloads == 10
    assert llama.last_modified == datetime(2024, 2, 2, tzinfo=UTC)
    # The limit counts models that pass the filters.
    limited = offline_hub.seen_models(SearchQuery(license="mit"), limit=1)
    assert [m.repo_id for m in limited] == ["other/Tiny-LLaMA"]


def test_saved_copies_survive_reopening_the_database(
    seen: HubServer, hub: HuggingFaceHub, tmp_path: Path
) -> None:
    path = tmp_path / "reopened.sqlite3"
    first = Database(path)
    OfflineAwareHub(hub, first).model_details("org/llama-gguf")
    first.close()
    seen.stop()

    second = Database(path)
    try:
        details = OfflineAwareHub(hub, second).model_details("org/llama-gguf")
    finally:
        second.close()
    assert details.saved_at is not None
    assert details.repo_id == "org/llama-gguf"
