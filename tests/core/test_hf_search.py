"""Search through the real huggingface_hub client against the fake hub: filters, mapping, paging."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice

import pytest

from app.errors import RepoNotFoundError
from app.hub.huggingface import HuggingFaceHub
from app.hub.models import Gating, ModelSummary, SearchQuery, SortOrder
from tests.support.hub_server import HubServer, RecordedRequest


def listing_requests(hub_server: HubServer) -> list[RecordedRequest]:
    return hub_server.requests_to(r"^/api/models$", "GET")


def ids(results: list[ModelSummary]) -> list[str]:
    return [result.repo_id for result in results]


@pytest.fixture
def catalogue(hub_server: HubServer) -> HubServer:
    """A handful of repos that differ in every filterable way."""
    hub_server.add_repo(
        "alice/llama-gguf",
        {"llama-Q4_K_M.gguf": b"GGUF" * 8},
        card="---\nlicense: apache-2.0\npipeline_tag: text-generation\n---\n# Llama\n",
        downloads=500,
        likes=3,
        last_modified=datetime(2024, 3, 1, 12, 30, tzinfo=UTC),
    )
    hub_server.add_repo(
        "bob/llama-safetensors",
        {"model.safetensors": b"\0" * 16},
        card="---\nlicense: mit\nlibrary_name: transformers\n---\n",
        pipeline_tag="text-generation",
        downloads=900,
        likes=1,
        last_modified=datetime(2024, 1, 1, tzinfo=UTC),
    )
    hub_server.add_repo(
        "alice/sd-tiny",
        {"model_index.json": b"{}"},
        library_name="diffusers",
        pipeline_tag="text-to-image",
        tags=["license:openrail"],  # a license known only from the tag, not from cardData
        gated="manual",
        downloads=100,
        likes=50,
        last_modified=datetime(2024, 6, 1, tzinfo=UTC),
    )
    hub_server.add_repo(
        "carol/multi-license",
        card="---\nlicense:\n- MIT\n- apache-2.0\n---\n",
        gated="auto",
        downloads=1,
        last_modified=datetime(2025, 1, 1, tzinfo=UTC),
    )
    return hub_server


def test_results_map_every_field_to_model_summary(
    catalogue: HubServer, hub: HuggingFaceHub
) -> None:
    results = {item.repo_id: item for item in hub.search(SearchQuery())}

    assert set(results) == set(catalogue.repo_ids())
    llama = results["alice/llama-gguf"]
    assert llama == ModelSummary(
        repo_id="alice/llama-gguf",
        task="text-generation",
        library=None,
        downloads=500,
        likes=3,
        license_id="apache-2.0",
        last_modified=datetime(2024, 3, 1, 12, 30, tzinfo=UTC),
        gating=Gating.OPEN,
    )
    assert results["bob/llama-safetensors"].library == "transformers"
    assert results["bob/llama-safetensors"].license_id == "mit"
    assert results["alice/sd-tiny"].license_id == "openrail"  # from the `license:` tag
    assert results["alice/sd-tiny"].gating is Gating.MANUAL
    assert results["carol/multi-license"].gating is Gating.AUTO
    assert results["carol/multi-license"].license_id == "mit"  # the first of a list, lowered


def test_default_sort_is_downloads_descending(catalogue: HubServer, hub: HuggingFaceHub) -> None:
    results = list(hub.search(SearchQuery()))

    assert ids(results) == [
        "bob/llama-safetensors",
        "alice/llama-gguf",
        "alice/sd-tiny",
        "carol/multi-license",
    ]
    (request,) = listing_requests(catalogue)
    assert request.query["sort"] == ["downloads"]


@pytest.mark.parametrize(
    ("order", "sent", "first"),
    [
        (SortOrder.LIKES, "likes", "alice/sd-tiny"),
        (SortOrder.UPDATED, "lastModified", "carol/multi-license"),
        (SortOrder.DOWNLOADS, "downloads", "bob/llama-safetensors"),
    ],
)
def test_sort_order_reaches_the_server(
    catalogue: HubServer, hub: HuggingFaceHub, order: SortOrder, sent: str, first: str
) -> None:
    results = list(hub.search(SearchQuery(sort=order)))

    assert results[0].repo_id == first
    (request,) = listing_requests(catalogue)
    assert request.query["sort"] == [sent]


def test_text_filter_is_sent_and_applied(catalogue: HubServer, hub: HuggingFaceHub) -> None:
    results = list(hub.search(SearchQuery(text="  llama  ")))

    assert sorted(ids(results)) == ["alice/llama-gguf", "bob/llama-safetensors"]
    (request,) = listing_requests(catalogue)
    assert request.query["search"] == ["llama"]  # stripped


def test_task_filter_becomes_pipeline_tag(catalogue: HubServer, hub: HuggingFaceHub) -> None:
    results = list(hub.search(SearchQuery(task="text-to-image")))

    assert ids(results) == ["alice/sd-tiny"]
    (request,) = listing_requests(catalogue)
    assert request.query["pipeline_tag"] == ["text-to-image"]


def test_library_filter_matches_format_tags(catalogue: HubServer, hub: HuggingFaceHub) -> None:
    results = list(hub.search(SearchQuery(library="gguf")))

    assert ids(results) == ["alice/llama-gguf"]
    (request,) = listing_requests(catalogue)
    assert request.query["filter"] == ["gguf"]


def test_license_filter_becomes_a_license_tag(catalogue: HubServer, hub: HuggingFaceHub) -> None:
    results = list(hub.search(SearchQuery(license=" MIT ")))

    assert ids(results) == ["bob/llama-safetensors"]
    (request,) = listing_requests(catalogue)
    assert request.query["filter"] == ["license:mit"]


def test_author_and_combined_filters(catalogue: HubServer, hub: HuggingFaceHub) -> None:
    query = SearchQuery(text="llama", author="alice", library="gguf", license="apache-2.0")
    results = list(hub.search(query))

    assert ids(results) == ["alice/llama-gguf"]
    (request,) = listing_requests(catalogue)
    assert request.query["author"] == ["alice"]
    assert sorted(request.query["filter"]) == ["gguf", "license:apache-2.0"]
    assert request.query["search"] == ["llama"]


def test_empty_filters_are_not_sent(catalogue: HubServer, hub: HuggingFaceHub) -> None:
    list(hub.search(SearchQuery(text="   ", author=" ", task="", library="", license="")))

    (request,) = listing_requests(catalogue)
    for name in ("search", "author", "filter", "pipeline_tag"):
        assert name not in request.query


def test_no_match_yields_nothing(catalogue: HubServer, hub: HuggingFaceHub) -> None:
    assert list(hub.search(SearchQuery(text="no-such-model-anywhere"))) == []


# --- paging -----------------------------------------------------------------------------------


@pytest.fixture
def big_hub(hub_server: HubServer) -> HubServer:
    hub_server.page_size = 50
    for number in range(5000):
        hub_server.add_repo(f"bulk/model-{number:04d}", downloads=number)
    return hub_server


def test_consuming_one_page_requests_only_that_page(
    big_hub: HubServer, hub: HuggingFaceHub
) -> None:
    results = list(islice(hub.search(SearchQuery()), 50))

    assert len(results) == 50
    assert results[0].repo_id == "bulk/model-4999"
    assert len(listing_requests(big_hub)) == 1


def test_consuming_120_results_requests_three_pages(
    big_hub: HubServer, hub: HuggingFaceHub
) -> None:
    results = list(islice(hub.search(SearchQuery()), 120))

    assert [r.downloads for r in results] == list(range(4999, 4879, -1))
    pages = listing_requests(big_hub)
    assert len(pages) == 3
    assert [r.query.get("cursor") for r in pages] == [None, ["50"], ["100"]]


def test_search_is_lazy_until_iterated(big_hub: HubServer, hub: HuggingFaceHub) -> None:
    results = hub.search(SearchQuery())
    assert listing_requests(big_hub) == []  # only the reachability probe may have run

    next(iter(results))
    assert len(listing_requests(big_hub)) == 1


def test_all_pages_are_followed_to_the_end(hub_server: HubServer, hub: HuggingFaceHub) -> None:
    hub_server.page_size = 7
    for number in range(20):
        hub_server.add_repo(f"small/m{number:02d}", downloads=number)

    results = list(hub.search(SearchQuery()))

    assert ids(results) == [f"small/m{n:02d}" for n in range(19, -1, -1)]
    assert len(listing_requests(hub_server)) == 3


def test_one_reachability_probe_per_search_not_per_page(
    hub_server: HubServer, hub: HuggingFaceHub
) -> None:
    hub_server.page_size = 2
    for number in range(5):
        hub_server.add_repo(f"small/m{number}")

    assert len(list(hub.search(SearchQuery()))) == 5

    assert len(hub_server.requests_to(r"^/$", "HEAD")) == 1
    assert len(listing_requests(hub_server)) == 3


# --- unicode ---------------------------------------------------------------------------------


def test_unicode_repo_names_are_found_and_mapped(
    hub_server: HubServer, hub: HuggingFaceHub
) -> None:
    hub_server.add_repo("équipe/модель-日本語", card="---\nlicense: mit\n---\n# Ünïcode\n")
    hub_server.add_repo("plain/ascii")

    results = list(hub.search(SearchQuery(text="модель")))

    assert ids(results) == ["équipe/модель-日本語"]
    assert results[0].license_id == "mit"
    (request,) = listing_requests(hub_server)
    assert request.query["search"] == ["модель"]


def test_a_repo_id_huggingface_hub_rejects_is_reported_as_not_found(
    hub_server: HubServer, hub: HuggingFaceHub
) -> None:
    # huggingface_hub validates ids client-side (ASCII letters, digits, "-", "_", "."): such a
    # repository can be listed by a mirror but never opened, and no request is made for it.
    hub_server.add_repo("équipe/модель-日本語")

    with pytest.raises(RepoNotFoundError) as caught:
        hub.model_details("équipe/модель-日本語")

    assert caught.value.repo_id == "équipe/модель-日本語"
    assert "not a valid repository id" in str(caught.value)
    assert hub_server.requests_to(r"^/api/models/") == []
