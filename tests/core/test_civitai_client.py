"""The Civitai client against the fake Civitai over real HTTP: shapes, paging, errors."""

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
    RepoNotFoundError,
)
from app.hub.civitai.client import CivitaiClient, error_for_status
from app.hub.civitai.models import (
    CommercialUse,
    FileFormat,
    ModelFilter,
    ModelType,
    ScanResult,
)
from tests.support.civitai_server import CivitaiServer, ServedFile

WEIGHTS = b"safetensors bytes " * 100


@pytest.fixture
def civitai() -> Iterator[CivitaiServer]:
    with CivitaiServer() as server:
        server.add_model(
            1, "Anime Diffusion", files=[ServedFile(id=11, name="anime.safetensors", data=WEIGHTS)],
            downloads=500, likes=40, tags=("anime",),
            allow_commercial_use=["Image", "RentCivit", "Rent", "Sell"],
        )  # fmt: skip
        server.add_model(
            2, "Anime Style LoRA", type="LORA", base_model="SDXL 1.0",
            trained_words=("anime style", "cel shading"),
            files=[ServedFile(id=21, name="style.safetensors", data=b"lora" * 64)],
            downloads=300, allow_commercial_use="None", allow_derivatives=False,
            allow_no_credit=False,
        )  # fmt: skip
        server.add_model(
            3, "Anime Spicy", nsfw=True, downloads=400,
            files=[ServedFile(id=31, name="spicy.safetensors", data=b"x" * 10)],
        )  # fmt: skip
        yield server


@pytest.fixture
def client(civitai: CivitaiServer) -> Iterator[CivitaiClient]:
    with CivitaiClient(endpoint=civitai.url) as made:
        yield made


def test_search_pages_by_cursor_lazily(civitai: CivitaiServer, client: CivitaiClient) -> None:
    for number in range(10, 35):
        civitai.add_model(number, f"Anime filler {number}", downloads=number)
    results = client.list_models(ModelFilter(query="anime", page_size=10))
    first = list(islice(results, 10))
    assert len(civitai.requests_to("/api/v1/models")) == 1  # only the first page so far
    rest = list(results)
    pages = civitai.requests_to("/api/v1/models")
    assert len(first) + len(rest) == 27  # 25 fillers + 2 SFW models, the NSFW one left out
    assert len(pages) == 3
    assert pages[1].query["cursor"] == ["c10"]
    assert pages[0].query["nsfw"] == ["false"]
    assert len({model.id for model in first + rest}) == 27


def test_search_sends_filters(civitai: CivitaiServer, client: CivitaiClient) -> None:
    found = list(
        client.list_models(
            ModelFilter(
                query="anime",
                types=(ModelType.LORA,),
                base_models=("SDXL 1.0",),
                allow_derivatives=False,
            )
        )
    )
    assert [model.name for model in found] == ["Anime Style LoRA"]
    query = civitai.requests_to("/api/v1/models")[0].query
    assert query["types"] == ["LORA"]
    assert query["baseModels"] == ["SDXL 1.0"]
    assert query["allowDerivatives"] == ["false"]
    assert query["sort"] == ["Most Downloaded"] and query["period"] == ["AllTime"]
    sellable = list(client.list_models(ModelFilter(allow_commercial_use=(CommercialUse.SELL,))))
    assert [model.id for model in sellable] == [1]


def test_nsfw_is_filtered_even_when_the_server_sends_it(
    civitai: CivitaiServer, client: CivitaiClient
) -> None:
    civitai.answer(
        "/api/v1/models",
        b'{"items": [{"id": 3, "name": "spicy", "nsfw": true}, {"id": 4, "name": "ok",'
        b' "nsfw": false, "nsfwLevel": 1}, {"id": 5, "name": "x", "nsfwLevel": 16}],'
        b' "metadata": {}}',
    )
    assert [model.id for model in client.list_models(ModelFilter())] == [4]
    assert [m.id for m in client.list_models(ModelFilter(nsfw=True))] == [3, 4, 5]


def test_model_details_shapes(client: CivitaiClient) -> None:
    model = client.get_model(2)
    assert model.type is ModelType.LORA
    assert model.permissions.commercial_use == frozenset()
    assert not model.permissions.derivatives and not model.permissions.no_credit
    version = model.versions[0]
    assert version.id == 20 and version.base_model == "SDXL 1.0"
    assert version.trained_words == ("anime style", "cel shading")
    file = version.files[0]
    sha = hashlib.sha256(b"lora" * 64).hexdigest()
    assert file.sha256 == sha and file.autov2 == sha[:10]
    assert file.format is FileFormat.SAFETENSOR
    assert file.pickle_scan is ScanResult.SUCCESS and file.virus_scan is ScanResult.SUCCESS
    assert file.size_bytes == 256
    assert client.get_model(1).permissions.commercial_use == frozenset(CommercialUse) - {
        CommercialUse.NONE
    }


def test_version_and_by_hash(client: CivitaiClient) -> None:
    sha = hashlib.sha256(WEIGHTS).hexdigest()
    for wanted in (sha, sha.upper(), sha[:10].upper()):
        version = client.version_by_hash(wanted)
        assert version.id == 10 and version.model_id == 1
        assert version.model_name == "Anime Diffusion"
        assert version.model_type is ModelType.CHECKPOINT
    assert client.get_version(20).trained_words == ("anime style", "cel shading")


def test_not_found_and_rate_limited(civitai: CivitaiServer, client: CivitaiClient) -> None:
    with pytest.raises(RepoNotFoundError, match="No model with id 999"):
        client.get_model(999)
    with pytest.raises(RepoNotFoundError):
        client.version_by_hash("0123456789")
    with pytest.raises(RepoNotFoundError):
        client.version_by_hash("../etc")
    civitai.rate_limit(retry_after="12")
    with pytest.raises(RateLimitedError) as caught:
        client.get_model(1)
    assert caught.value.retry_after == 12.0
    assert client.get_model(1).id == 1  # the next request goes through


def test_broken_bodies_are_clear_errors(civitai: CivitaiServer, client: CivitaiClient) -> None:
    civitai.answer("/api/v1/models/1", b"<html>oops")
    with pytest.raises(HubResponseError, match="not JSON"):
        client.get_model(1)
    civitai.answer("/api/v1/models/1", b'{"id": "one"}')
    with pytest.raises(HubResponseError, match="without a valid id"):
        client.get_model(1)
    civitai.answer("/api/v1/models", b'{"items": 3}')
    with pytest.raises(HubResponseError, match="no items"):
        list(client.list_models(ModelFilter()))


def test_older_single_string_permissions(civitai: CivitaiServer, client: CivitaiClient) -> None:
    civitai.add_model(7, "old", allow_commercial_use="Rent")
    granted = client.get_model(7).permissions.commercial_use
    assert granted == {CommercialUse.IMAGE, CommercialUse.RENT_CIVIT, CommercialUse.RENT}


def test_token_is_sent_as_bearer(civitai: CivitaiServer) -> None:
    with CivitaiClient(endpoint=civitai.url, token="civitai-test-token") as client:
        client.get_model(1)
    assert civitai.requests[-1].authorization == "Bearer civitai-test-token"


def test_token_never_goes_over_plain_http_to_another_machine() -> None:
    client = CivitaiClient(endpoint="http://civitai.example", token="secret")
    assert not client.has_token
    client.close()


def test_unreachable() -> None:
    with (
        CivitaiClient(endpoint="http://127.0.0.1:9", timeout=2) as client,
        pytest.raises(HubUnreachableError, match="Cannot reach"),
    ):
        client.get_model(1)


def test_login_required_maps_to_gated() -> None:
    error = error_for_status(
        401, {}, b'{"error":"Unauthorized","message":"requires you to be logged in"}',
        endpoint="https://civitai.com", about="civitai:1@10", has_token=False,
    )  # fmt: skip
    assert isinstance(error, GatedRepoError)
    assert "logged in" in error.message and "API key" in (error.hint or "")
