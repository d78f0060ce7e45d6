"""Whatever JSON a ModelScope endpoint sends, the client ends in a typed result or a clear error.

Generated bodies (hypothesis) are served by the ModelScope test server and read by the real
client over HTTP: for search results, a model's description and a file listing. Each ends
within bounded time and memory (`within_bounds`) in a result or a `HubError`, never another
exception; a listed file's name is kept as sent (a download checks it) but is always text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.errors import HubError
from app.hub.models import SearchQuery
from app.hub.modelscope.provider import ModelScopeHub
from tests.hostile.bounds import within_bounds
from tests.support.modelscope_server import ModelScopeServer

SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=40,
)
FIELDS = ["id", "downloads", "likes", "license", "tasks", "tags", "last_modified", "libraries"]
MODEL = st.fixed_dictionaries({}, optional={key: JSON for key in FIELDS})
FILE = st.fixed_dictionaries(
    {}, optional={key: JSON for key in ["Path", "Size", "Sha256", "Type", "Revision", "Name"]}
)
SEARCH = st.fixed_dictionaries(
    {"success": st.booleans() | JSON},
    optional={
        "data": JSON
        | st.fixed_dictionaries(
            {"models": st.lists(MODEL, max_size=5) | JSON}, optional={"total_count": JSON}
        )
    },
)
LISTING = st.fixed_dictionaries(
    {"Code": st.sampled_from([200, 0, 500]) | JSON},
    optional={"Data": JSON | st.fixed_dictionaries({"Files": st.lists(FILE, max_size=8) | JSON})},
)
BYTES = st.binary(max_size=200) | st.sampled_from([b"[" * 50_000, b'{"data":' * 5000, b"\xff\xfe"])

SLOW_OK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def server() -> Iterator[ModelScopeServer]:
    with ModelScopeServer() as running:
        running.add_model("org/model", {"a.bin": b"a"})
        yield running


def _body(value: object) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


@SLOW_OK
@given(body=SEARCH | BYTES)
def test_any_search_answer_is_read_or_refused(server: ModelScopeServer, body: object) -> None:
    server.answer_raw("/openapi/v1/models", _body(body))
    hub = ModelScopeHub(endpoint=server.url)
    outcome = within_bounds(
        "modelscope search",
        lambda: list(hub.search(SearchQuery())),
        errors=(HubError,),
        pure=False,
    )
    for summary in outcome.value or []:
        assert isinstance(summary.repo_id, str) and summary.repo_id.count("/") == 1
        assert isinstance(summary.downloads, int) and summary.downloads >= 0
    server.answer_raw(None)


@SLOW_OK
@given(body=LISTING | BYTES)
def test_any_file_listing_is_read_or_refused(server: ModelScopeServer, body: object) -> None:
    server.answer_raw("/api/v1/models/org/model/repo/files", _body(body))
    hub = ModelScopeHub(endpoint=server.url)
    outcome = within_bounds(
        "modelscope listing",
        lambda: hub.model_details("org/model"),
        errors=(HubError,),
        pure=False,
    )
    if outcome.value is not None:
        for file in outcome.value.files:
            assert isinstance(file.path, str) and file.path
            assert file.size is None or (isinstance(file.size, int) and file.size >= 0)
            assert file.sha256 is None or isinstance(file.sha256, str)
    server.answer_raw(None)
