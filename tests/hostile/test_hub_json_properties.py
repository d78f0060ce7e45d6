"""Properties of what a hub sends, for any input: a clear error or a safe result, in bounds.

The names, hashes and JSON here are generated (hypothesis) and go through the same code a real
download does: `app.hub.untrusted`'s checks, the real huggingface_hub client reading a model
description from the fake hub (an `Answer` fault serves the generated JSON), the plan, the
cache paths, and a queue restoring a saved row. Each input is bounded in CPU time and memory
(`within_bounds`), and ends in a result or one of the clear errors named, never another
exception; a result never names a path outside its folder.
"""

from __future__ import annotations

import ntpath
import os
import posixpath
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub.file_download import repo_folder_name
from hypothesis import event, given
from hypothesis import strategies as st

from app.downloads import DownloadManager, JobState, plan_files
from app.downloads.cache import CachedFile, ensure_inside, repo_folder
from app.errors import AppError, HubError
from app.hub.huggingface import HuggingFaceHub
from app.hub.models import ModelDetails
from app.hub.untrusted import (
    UnsafeHubDataError,
    check_commit,
    check_file_path,
    check_git_oid,
    check_ref,
    check_repo_id,
    check_sha256,
)
from app.store import Database
from tests.hostile.bounds import within_bounds
from tests.support.hub_server import Answer, Fault, HubServer

REFUSED = (UnsafeHubDataError,)
BASE = "/cache/models--org--name/snapshots/" + "a" * 40
WINDOWS_BASE = "C:\\cache\\models--org--name\\snapshots\\" + "a" * 40
DEVICES = re.compile(r"(CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³]|CONIN\$|CONOUT\$)", re.I)

# -- strategies ----------------------------------------------------------------------------------

NASTY_PARTS = [
    "..", ".", "", "a", "b.gguf", "C:", "c:x", "\\", "\\\\srv\\share", "/", "//", "\x00", "\x1f",
    "CON", "nul.txt", "com1", "LPT¹", "x.", "x ", ":", "a:b", "*", "?", "<", ">", "|", '"',
    "é", "e\u0301", "\ud800", "\udcff", "~", "$", ".lock", "@{", "x" * 256, "%2e%2e",
    "\uff0e\uff0e",
]  # fmt: skip

# Any text, lone surrogates included (a JSON string can carry them).
ANY_TEXT = st.text(st.characters() | st.characters(categories=["Cs"]), max_size=60)


@st.composite
def path_like(draw: st.DrawFn) -> str:
    """Text built from the pieces that break paths, joined by either separator."""
    parts = draw(st.lists(st.sampled_from(NASTY_PARTS) | ANY_TEXT, min_size=1, max_size=8))
    separators = draw(st.lists(st.sampled_from(["/", "\\", ""]), min_size=len(parts)))
    text = "".join(part + separator for part, separator in zip(parts, separators, strict=False))
    return text[: draw(st.integers(0, len(text)))] if draw(st.booleans()) else text


NAMES = path_like() | ANY_TEXT | st.sampled_from(NASTY_PARTS)
HEX_LIKE = (
    st.from_regex(r"[0-9a-fA-F]{40}", fullmatch=True)
    | st.from_regex(r"[0-9a-fA-F]{64}", fullmatch=True)
    | st.from_regex(r"[0-9a-fA-F]{0,70}", fullmatch=True)
    | NAMES
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)
SIZES = st.integers(-(2**70), 2**70) | st.integers(0, 10**6) | JSON
COMMITS = st.from_regex(r"[0-9a-f]{40}", fullmatch=True)
SHA256S = st.from_regex(r"[0-9a-f]{64}", fullmatch=True)
PLAIN_NAMES = st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8}){0,2}\.(gguf|json|txt)", fullmatch=True)


def mostly(valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> Any:
    """Valid seven times in eight: a description broken in one place reaches the plan."""
    return st.integers(0, 7).flatmap(lambda pick: hostile if pick == 0 else valid)


SIBLING = st.fixed_dictionaries(
    {
        "rfilename": mostly(PLAIN_NAMES, NAMES | JSON),
        "size": mostly(st.integers(0, 10**6), SIZES),
        "blobId": mostly(COMMITS, HEX_LIKE | JSON),
    },
    optional={
        "lfs": mostly(
            st.fixed_dictionaries(
                {
                    "sha256": mostly(SHA256S, HEX_LIKE),
                    "size": mostly(st.integers(0, 10**6), SIZES),
                    "pointerSize": st.integers(0, 200),
                }
            ),
            JSON,
        ),
    },
)
REPO_IDS = st.sampled_from(["org/model", "org/../x", "../x", "a--b/c", "org/x.git"]) | NAMES
MODEL_INFO = st.fixed_dictionaries(
    {
        "id": mostly(st.just("org/model"), REPO_IDS),
        "sha": mostly(COMMITS, HEX_LIKE),
        "siblings": mostly(st.lists(SIBLING, min_size=1, max_size=6), JSON),
    },
    optional={
        "tags": mostly(st.lists(st.text(max_size=12), max_size=3), JSON),
        "gated": mostly(st.sampled_from([False, "auto", "manual"]), JSON),
        "cardData": mostly(st.dictionaries(st.text(max_size=8), JSON, max_size=3), JSON),
        "lastModified": mostly(st.just("2024-01-01T00:00:00.000Z"), JSON),
        "library_name": mostly(st.text(max_size=12), JSON),
        "pipeline_tag": mostly(st.text(max_size=12), JSON),
    },
)


# -- names, hashes, refs and repository ids ----------------------------------------------------


@given(name=NAMES, windows=st.booleans())
def test_any_file_name_is_refused_or_stays_inside_its_folder(name: str, windows: bool) -> None:
    outcome = within_bounds(
        "hub file name", lambda: check_file_path(name, windows=windows), errors=REFUSED
    )
    event("accepted" if outcome.value is not None else "refused")
    if outcome.value is None:
        return
    assert outcome.value == name
    name.encode("utf-8")  # no lone surrogate reaches the file system
    assert not re.search(r"[\x00-\x1f\x7f\\]", name)
    joined = posixpath.normpath(posixpath.join(BASE, name))
    assert joined.startswith(BASE + "/")
    on_windows = ntpath.normpath(ntpath.join(WINDOWS_BASE, name))
    assert on_windows.startswith(WINDOWS_BASE + "\\")
    assert not ntpath.splitdrive(name)[0] and not ntpath.isabs(name)
    if windows:
        for part in name.split("/"):
            assert not DEVICES.fullmatch(part.split(".")[0].rstrip(" "))
            assert not set('<>:"|?*') & set(part) and not part.endswith((".", " "))


@given(value=HEX_LIKE | JSON)
def test_any_hash_is_refused_or_is_lower_case_hex_of_its_length(value: object) -> None:
    for check, length in ((check_commit, 40), (check_git_oid, 40), (check_sha256, 64)):
        outcome = within_bounds("hub hash", lambda: check(value), errors=REFUSED)  # noqa: B023
        exact = isinstance(value, str) and re.fullmatch(rf"[0-9a-fA-F]{{{length}}}", value)
        assert (outcome.value is not None) == bool(exact)
        if outcome.value is not None:
            assert isinstance(value, str) and outcome.value == value.lower()


@given(ref=NAMES | st.sampled_from(["main", "v1.0", "refs/pr/1", "feature/x", "a.lock", "@"]))
def test_any_branch_is_refused_or_stays_inside_refs(ref: str) -> None:
    outcome = within_bounds("hub ref", lambda: check_ref(ref), errors=REFUSED)
    if outcome.value is None:
        return
    assert posixpath.normpath(posixpath.join("/refs", ref)).startswith("/refs/")
    assert ntpath.normpath(ntpath.join("C:\\refs", ref)).startswith("C:\\refs\\")
    assert ".." not in ref and not ref.startswith(".") and "\\" not in ref


@given(repo_id=REPO_IDS)
def test_any_repo_id_is_refused_or_names_one_cache_folder(repo_id: str) -> None:
    outcome = within_bounds("hub repo id", lambda: check_repo_id(repo_id), errors=REFUSED)
    if outcome.value is None:
        return
    folder = repo_folder_name(repo_id=repo_id, repo_type="model")
    assert "/" not in folder and "\\" not in folder and ".." not in folder
    assert repo_folder(Path("/cache"), repo_id).parent == Path("/cache")


# -- a model description, end to end -----------------------------------------------------------


@pytest.fixture(scope="module")
def hub_and_client() -> Iterator[tuple[HubServer, HuggingFaceHub]]:
    """One fake hub for every example: its model description is what hypothesis generates."""
    with tempfile.TemporaryDirectory() as folder, HubServer(Path(folder)) as hub:
        hub.add_repo("org/model", {"model.gguf": b"GGUF"})
        yield hub, HuggingFaceHub(endpoint=hub.url, probe_timeout=2)
    assert not hub.errors, hub.errors


@given(info=mostly(MODEL_INFO, JSON))
def test_any_model_description_gives_details_or_a_clear_error_and_safe_paths(
    hub_and_client: tuple[HubServer, HuggingFaceHub], info: Any
) -> None:
    hub, client = hub_and_client
    hub.clear_faults()
    hub.inject(Fault(Answer(info), path=r"^/api/models/org/model$", times=None))

    outcome = within_bounds(
        "hub model description",
        lambda: client.model_details("org/model"),
        errors=(HubError,),
        seconds=2.0,
    )
    details = outcome.value
    if outcome.error is not None:
        event(f"a clear error: {type(outcome.error).__name__}: {str(outcome.error)[:70]}")
        return
    assert isinstance(details, ModelDetails)  # no error, so details
    for file in details.files:  # typed, whatever the JSON held
        assert isinstance(file.path, str)
        assert file.size is None or type(file.size) is int
        assert file.sha256 is None or isinstance(file.sha256, str)
    planning = within_bounds(
        "download plan", lambda: plan_files(details), errors=(AppError, ValueError)
    )
    plan = planning.value
    if plan is None:
        event(f"details, no plan: {type(planning.error).__name__}")
        return
    event(f"details, a plan of {'some' if plan.files else 'no'} files")
    cache = Path("/nonexistent-cache")
    for planned in plan.files:
        target = CachedFile(
            cache_dir=cache,
            repo_id=plan.repo_id,
            revision=plan.revision,
            path=planned.path,
            etag=planned.etag,
        )
        for path in (target.blob, target.partial, target.pointer):
            ensure_inside(target.folder, path)
        assert target.folder.parent == cache


# -- a saved job, restored -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_jobs() -> Iterator[Database]:
    # In memory where the system offers it: every example commits twice, and fsync on a
    # shared disk would make the test minutes long.
    memory = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=memory) as folder:
        database = Database(Path(folder) / "app.sqlite3")
        yield database
        database.close()


ROW_VALUES = HEX_LIKE | st.integers(-(2**63), 2**63 - 1) | st.none() | st.binary(max_size=8)


SAVED_ROWS = st.fixed_dictionaries(
    {
        "repo_id": REPO_IDS | ROW_VALUES,
        "revision": ROW_VALUES,
        "path": NAMES | ROW_VALUES,
        "size": ROW_VALUES,
        "sha256": ROW_VALUES,
        "etag": ROW_VALUES,
    }
)


@given(row=SAVED_ROWS)
def test_any_saved_job_is_restored_or_fails_alone(
    saved_jobs: Database, row: dict[str, object]
) -> None:
    with saved_jobs.transaction() as connection:
        connection.execute("DELETE FROM download_files")
        connection.execute("DELETE FROM download_jobs")
        cursor = connection.execute(
            "INSERT INTO download_jobs (endpoint, repo_id, revision, ref, label, state, "
            "created_at) VALUES ('http://127.0.0.1:9', ?, ?, 'main', 'x', 'queued', 'now')",
            (_storable(row["repo_id"]), _storable(row["revision"])),
        )
        connection.execute(
            "INSERT INTO download_files (job_id, path, size, sha256, etag, state) "
            "VALUES (?, ?, ?, ?, ?, 'pending')",
            (
                cursor.lastrowid,
                _storable(row["path"]),
                _storable(row["size"]) if row["size"] is not None else None,
                _storable(row["sha256"]) if row["sha256"] is not None else None,
                _storable(row["etag"]),
            ),
        )

    def restore() -> DownloadManager:
        return DownloadManager(
            saved_jobs, endpoint="http://127.0.0.1:9", cache_dir=Path("/nonexistent-cache")
        )

    manager = within_bounds("saved download job", restore, errors=(), pure=False).value
    assert manager is not None
    (status,) = manager.jobs()
    assert isinstance(status.repo_id, str) and all(isinstance(f.path, str) for f in status.files)
    if status.state is JobState.FAILED:
        assert status.error is not None and status.error.startswith("Refused: ")
    else:
        assert status.state is JobState.QUEUED


def _storable(value: object) -> object:
    """What SQLite can hold: NOT NULL columns get some value (an older version wrote one,
    however odd), and text is UTF-8 (a lone surrogate cannot be stored)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    return value
