"""Whatever the database holds as a queued job's source, reading it back ends cleanly.

The queue saves another hub's source as JSON (`download_jobs.source`); a database edited by
hand, damaged, or written by another version may hold anything there. `source_from_json`
ends within bounded time and memory in a source or an `UnsafeHubDataError` (the manager then
shows the job as refused), never another exception, and a source it accepts saves and reads
back the same.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from app.downloads.sources import Hub, source_from_json, source_to_json
from app.hub.untrusted import UnsafeHubDataError
from tests.hostile.bounds import within_bounds

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
KEYS = ["endpoint", "folder", "url", "provenance", "root", "revision", "file_revisions"]
SOURCE = st.fixed_dictionaries({}, optional={key: JSON for key in KEYS})
TEXT = st.text(max_size=200) | SOURCE.map(json.dumps) | JSON.map(json.dumps)


@given(hub=st.sampled_from([Hub.CIVITAI, Hub.MODELSCOPE]), text=TEXT | st.none())
def test_a_saved_source_reads_back_or_is_refused(hub: Hub, text: str | None) -> None:
    outcome = within_bounds(
        "saved download source",
        lambda: source_from_json(hub, text, about="job 1"),
        errors=(UnsafeHubDataError,),
    )
    if outcome.value is not None:
        assert outcome.value.hub is hub
        assert source_from_json(hub, source_to_json(outcome.value), about="job 1") == outcome.value


def test_deep_nesting_is_refused_not_a_crash() -> None:
    text = '{"endpoint": "e", "root": "/r", "revision": "m", "file_revisions": ' + "[" * 100_000
    outcome = within_bounds(
        "saved download source",
        lambda: source_from_json(Hub.MODELSCOPE, text, about="job 1"),
        errors=(UnsafeHubDataError,),
    )
    assert outcome.error is not None
