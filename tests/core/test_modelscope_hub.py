"""ModelScope as a hub: search, details, files, cards and errors over real HTTP to a test server."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from itertools import islice

import pytest

from app.errors import (
    GatedRepoError,
    HubResponseError,
    HubUnreachableError,
    RateLimitedError,
    RepoFileNotFoundError,
    RepoNotFoundError,
)
from app.hub.models import AccessStatus, SearchQuery, SortOrder
from app.hub.modelscope.api import LISTING_CAP
from app.hub.modelscope.licenses import modelscope_license_id
from app.hub.modelscope.provider import ModelScopeHub
from app.licenses import CommercialUse, license_info
from tests.support.modelscope_server import ModelScopeServer

CARD = "---\nlicense: apache-2.0\n---\n# Tiny\nA tiny model.\n"


@pytest.fixture
def server() -> Iterator[ModelScopeServer]:
    with ModelScopeServer(token="ms-secret") as running:
        running.add_model(
            "qwen/Tiny-GGUF",
            {"README.md": CARD.encode(), "tiny-Q4_K_M.gguf": b"GGUF" + bytes(100)},
            downloads=500,
            likes=3,
        )
        running.add_model(
            "org/cc-model",
            {"config.json": b"{}", "weights/model.safetensors": b"x" * 64},
            license="CC BY-NC 4.0",
            tasks=("text-to-image",),
            downloads=10,
            likes=40,
        )
        running.add_model("org/hidden", {"a.bin": b"a"}, private=True)
        yield running


def test_search_pages_by_number_and_size(server: ModelScopeServer) -> None:
    for number in range(120):
        server.add_model(f"bulk/m{number:03d}", {"a.txt": b"a"}, downloads=1000 - number)
    hub = ModelScopeHub(endpoint=server.url)

    results = hub.search(SearchQuery(text="bulk/"))
    assert len(list(islice(results, 50))) == 50
    assert len(server.requests_to("/openapi/v1/models")) == 1  # pages come as they are read
    found = list(ModelScopeHub(endpoint=server.url).search(SearchQuery(text="bulk/")))

    assert [m.repo_id for m in found] == [f"bulk/m{n:03d}" for n in range(120)]
    pages = server.requests_to("/openapi/v1/models")[1:]
    assert [r.query["page_number"] for r in pages] == ["1", "2", "3"]
    assert {r.query["page_size"] for r in pages} == {"50"}


def test_search_is_lazy_and_filters(server: ModelScopeServer) -> None:
    hub = ModelScopeHub(endpoint=server.url)
    results = hub.search(SearchQuery(text="", task="text-to-image", sort=SortOrder.LIKES))
    assert len(server.requests_to("/openapi/v1/models")) == 1  # the first page only
    first = list(islice(results, 5))
    assert [m.repo_id for m in first] == ["org/cc-model"]
    assert first[0].license_id == "cc-by-nc-4.0"
    request = server.requests_to("/openapi/v1/models")[0]
    assert request.query["filter.task"] == "text-to-image"
    assert request.query["sort"] == "likes"


def test_details_list_files_with_sha256_at_master(server: ModelScopeServer) -> None:
    hub = ModelScopeHub(endpoint=server.url)
    details = hub.model_details("org/cc-model")

    assert details.repo_id == "org/cc-model"
    assert details.task == "text-to-image"
    assert details.url == f"{server.url}/models/org/cc-model"
    files = {file.path: file for file in details.files}
    assert set(files) == {"config.json", "weights/model.safetensors"}  # no folder entries
    weights = files["weights/model.safetensors"]
    assert weights.size == 64
    assert weights.sha256 == hashlib.sha256(b"x" * 64).hexdigest()
    listing = server.requests_to("/api/v1/models/org/cc-model/repo/files")[0]
    assert listing.query["Revision"] == "master"
    assert listing.query["Recursive"] == "True"


def test_license_goes_into_the_license_view(server: ModelScopeServer) -> None:
    details = ModelScopeHub(endpoint=server.url).model_details("org/cc-model")
    info = license_info(details.license_id)
    assert info.is_known
    assert info.commercial_use is CommercialUse.NO


def test_a_capped_listing_is_walked_folder_by_folder(server: ModelScopeServer) -> None:
    # 31 folders of 100 files: more than one listing holds, less than the cap per folder.
    files = {f"shards/s{d:02d}/part-{n:03d}.txt": b"p" for d in range(31) for n in range(100)}
    files.update({"config.json": b"{}", "deep/er/last.bin": b"zz"})
    server.add_model("big/repo", files)
    details = ModelScopeHub(endpoint=server.url).model_details("big/repo")

    assert len(files) > LISTING_CAP
    assert {f.path for f in details.files} == set(files)
    roots = [r.query.get("Root") for r in server.requests_to("/api/v1/models/big/repo/repo/files")]
    assert roots[0] is None and {"shards", "shards/s30", "deep", "deep/er"} <= set(roots)


def test_a_folder_over_the_cap_is_refused_not_truncated(server: ModelScopeServer) -> None:
    server.add_model("big/flat", {f"f{n:05d}": b"" for n in range(LISTING_CAP + 1)})
    with pytest.raises(HubResponseError, match="incomplete"):
        ModelScopeHub(endpoint=server.url).model_details("big/flat")


def test_card_and_text_files(server: ModelScopeServer) -> None:
    hub = ModelScopeHub(endpoint=server.url)
    card = hub.model_card("qwen/Tiny-GGUF")
    assert card.metadata["license"] == "apache-2.0"
    assert "A tiny model." in card.body
    assert hub.model_card("org/cc-model").body == ""  # no README: an empty card
    with pytest.raises(RepoFileNotFoundError):
        hub.read_text_file("org/cc-model", "LICENSE")


def test_unknown_model_is_not_found(server: ModelScopeServer) -> None:
    with pytest.raises(RepoNotFoundError, match="nobody/nothing"):
        ModelScopeHub(endpoint=server.url).model_details("nobody/nothing")


def test_private_model_needs_the_token(server: ModelScopeServer) -> None:
    anonymous = ModelScopeHub(endpoint=server.url, token=None)
    with pytest.raises(GatedRepoError) as refused:
        anonymous.model_details("org/hidden")
    assert "ms-secret" not in str(refused.value)
    assert anonymous.check_access("org/hidden") is AccessStatus.NO_TOKEN

    with_token = ModelScopeHub(endpoint=server.url, token="ms-secret")
    assert [f.path for f in with_token.model_details("org/hidden").files] == ["a.bin"]
    assert with_token.check_access("org/hidden") is AccessStatus.GRANTED
    request = server.requests_to("/openapi/v1/models/org/hidden")[-1]
    assert request.headers["authorization"] == "Bearer ms-secret"


def test_rate_limit_is_reported_with_its_wait(server: ModelScopeServer) -> None:
    server.rate_limit(1, retry_after="7")
    with pytest.raises(RateLimitedError) as limited:
        list(ModelScopeHub(endpoint=server.url).search(SearchQuery(text="tiny")))
    assert limited.value.retry_after == 7.0
    assert [m.repo_id for m in ModelScopeHub(endpoint=server.url).search(SearchQuery())]


def test_unreachable_hub_says_so_quickly() -> None:
    with ModelScopeServer() as stopped:
        url = stopped.url
    with pytest.raises(HubUnreachableError, match="Cannot reach"):
        list(ModelScopeHub(endpoint=url, timeout=2).search(SearchQuery(text="x")))


@pytest.mark.parametrize(
    ("name", "license_id"),
    [
        ("Apache License 2.0", "apache-2.0"),
        ("apache-2.0", "apache-2.0"),
        ("MIT License", "mit"),
        ("CC BY-NC-SA 4.0", "cc-by-nc-sa-4.0"),
        ("CreativeML OpenRAIL-M", "creativeml-openrail-m"),
        ("Tongyi Qianwen LICENSE AGREEMENT", "tongyi-qianwen"),
        ("", None),
    ],
)
def test_modelscope_license_names_map_to_known_ids(name: str, license_id: str | None) -> None:
    assert modelscope_license_id(name) == license_id
    if license_id is not None:
        assert license_info(license_id).is_known


def test_an_unknown_license_name_is_kept_and_shown_as_unrecognised() -> None:
    info = license_info(modelscope_license_id("Some Lab Model License"))
    assert not info.is_known and "some lab model license" in info.summary
