"""Properties of what Civitai sends, for any input: a typed result or a clear error, in bounds.

Generated answers go through the same code a real search, details page, download or Identify
does: the bounded JSON parse, the typed reading of models, versions and files, the real
client over HTTP against the fake Civitai, Content-Disposition names, sidecars, and the
permissions id the license view reads. Each input is bounded in CPU time and memory.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.downloads.civitai import content_disposition_filename
from app.errors import HubError, HubResponseError
from app.hub.civitai import parse
from app.hub.civitai.client import CivitaiClient
from app.hub.civitai.models import ModelFilter
from app.hub.civitai.provenance import read_sidecar, sidecar_path
from app.hub.civitai.provider import description_markdown
from app.licenses import license_info
from tests.hostile.bounds import within_bounds
from tests.support.civitai_server import CivitaiServer

ANY_TEXT = st.text(st.characters() | st.characters(categories=["Cs"]), max_size=60)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)


def mostly(valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> Any:
    return st.integers(0, 5).flatmap(lambda pick: hostile if pick == 0 else valid)


HEX = st.from_regex(r"[0-9A-F]{64}", fullmatch=True)
FILE = st.fixed_dictionaries(
    {
        "id": mostly(st.integers(1, 10**6), JSON),
        "name": mostly(st.text(max_size=30), JSON),
        "sizeKB": mostly(st.floats(0, 10**7), JSON),
        "hashes": mostly(
            st.fixed_dictionaries({"SHA256": mostly(HEX, JSON), "AutoV2": mostly(HEX, JSON)}),
            JSON,
        ),
        "metadata": mostly(
            st.fixed_dictionaries(
                {"format": st.sampled_from(["SafeTensor", "PickleTensor", "GGUF", None, 3])}
            ),
            JSON,
        ),
        "pickleScanResult": st.sampled_from(["Success", "Danger", "Pending", "Error", None, 1]),
        "virusScanResult": st.sampled_from(["Success", "Danger", "Pending", "Error", None, []]),
    }
)
VERSION = st.fixed_dictionaries(
    {
        "id": mostly(st.integers(1, 10**9), JSON),
        "name": mostly(st.text(max_size=20), JSON),
        "baseModel": mostly(st.sampled_from(["SD 1.5", "SDXL 1.0", "Pony"]), JSON),
        "trainedWords": mostly(st.lists(st.text(max_size=20), max_size=4), JSON),
        "files": mostly(st.lists(FILE, max_size=3), JSON),
        "publishedAt": mostly(st.just("2026-01-01T00:00:00.000Z"), JSON),
    },
    optional={"model": mostly(st.fixed_dictionaries({"name": ANY_TEXT, "type": ANY_TEXT}), JSON)},
)
MODEL = st.fixed_dictionaries(
    {
        "id": mostly(st.integers(1, 10**9), JSON),
        "name": mostly(st.text(max_size=20), JSON),
        "type": mostly(st.sampled_from(["Checkpoint", "LORA", "VAE", "TextualInversion"]), JSON),
        "nsfw": mostly(st.booleans(), JSON),
        "allowCommercialUse": mostly(
            st.lists(st.sampled_from(["None", "Image", "RentCivit", "Rent", "Sell"]), max_size=4)
            | st.sampled_from(["None", "Image", "Rent", "Sell"]),
            JSON,
        ),
        "modelVersions": mostly(st.lists(VERSION, max_size=3), JSON),
        "description": mostly(st.text(max_size=200), JSON),
        "stats": mostly(st.fixed_dictionaries({"downloadCount": st.integers()}), JSON),
    }
)
PAGE = st.fixed_dictionaries(
    {
        "items": mostly(st.lists(MODEL, max_size=4), JSON),
        "metadata": mostly(st.fixed_dictionaries({"nextCursor": mostly(ANY_TEXT, JSON)}), JSON),
    }
)


@given(data=PAGE | JSON)
def test_any_page_reads_or_is_refused(data: object) -> None:
    outcome = within_bounds(
        "civitai models page", lambda: parse.models_page(data), errors=(HubResponseError,)
    )
    page = outcome.value
    if page is not None:
        for model in page.items:
            assert model.id > 0
            for version in model.versions:
                for file in version.files:
                    assert file.sha256 is None or len(file.sha256) == 64
                    assert (
                        file.autov2 is None
                        or file.sha256 is None
                        or (file.sha256.startswith(file.autov2))
                    )


@given(data=VERSION | JSON)
def test_any_version_reads_or_is_refused(data: object) -> None:
    within_bounds("civitai version", lambda: parse.version(data), errors=(HubResponseError,))


@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_parse_or_are_refused(raw: bytes) -> None:
    within_bounds(
        "civitai body", lambda: parse.parse_json(raw, what="x"), errors=(HubResponseError,)
    )


def test_deep_nesting_and_huge_bodies_are_refused() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    within_bounds(
        "civitai body", lambda: parse.parse_json(deep, what="x"), errors=(HubResponseError,)
    )
    with pytest.raises(HubResponseError, match="nests deeper"):
        parse.parse_json(deep, what="x")
    huge = b'"' + b"a" * (parse.MAX_BODY_BYTES + 1) + b'"'
    with pytest.raises(HubResponseError, match="larger"):
        parse.parse_json(huge, what="x")


@pytest.fixture(scope="module")
def civitai() -> Iterator[CivitaiServer]:
    with CivitaiServer() as server:
        yield server


@settings(max_examples=40)
@given(data=MODEL | JSON)
def test_the_real_client_reads_any_model_answer(civitai: CivitaiServer, data: object) -> None:
    civitai.answer("/api/v1/models/1", json.dumps(data).encode("utf-8", "surrogatepass"))
    with CivitaiClient(endpoint=civitai.url) as client:
        within_bounds(
            "civitai model over http", lambda: client.get_model(1), errors=(HubError,), pure=False
        )


@settings(max_examples=40)
@given(data=PAGE | JSON)
def test_the_real_client_pages_any_answer(civitai: CivitaiServer, data: object) -> None:
    civitai.answer("/api/v1/models", json.dumps(data).encode("utf-8", "surrogatepass"))
    with CivitaiClient(endpoint=civitai.url) as client:
        # A cursor that repeats ends the paging (the same page is not asked for forever).
        within_bounds(
            "civitai search over http",
            lambda: list(client.list_models(ModelFilter(nsfw=True))),
            errors=(HubError,),
            pure=False,
            seconds=5.0,
        )


@given(header=ANY_TEXT | st.text(alphabet="attachment;filename*=\"'UTF-8%2e./\\ ", max_size=80))
def test_any_content_disposition(header: str) -> None:
    outcome = within_bounds(
        "content-disposition", lambda: content_disposition_filename(header), errors=()
    )
    assert outcome.value is None or isinstance(outcome.value, str)


@given(text=ANY_TEXT)
def test_any_permissions_id_is_explained(text: str) -> None:
    info = within_bounds("civitai license", lambda: license_info("civitai:" + text), errors=())
    assert info.value is not None and info.value.id.startswith("civitai:")


@given(html=st.text(alphabet="<>/p br div a=\"'x&;#!-", max_size=2000))
def test_any_description(html: str) -> None:
    within_bounds("civitai description", lambda: description_markdown(html), errors=())


@given(
    raw=st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass"))
)
def test_any_sidecar_reads_or_is_ignored(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        model = Path(folder) / "m.safetensors"
        sidecar_path(model).write_bytes(raw)
        within_bounds("civitai sidecar", lambda: read_sidecar(model), errors=())
