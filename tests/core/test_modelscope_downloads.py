"""ModelScope downloads: jobs of the download queue into ModelScope's own cache, resumed,
verified, over real HTTP."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.downloads import DownloadManager, DownloadPlan, ErrorKind, JobState, JobStatus
from app.downloads.modelscope import ModelScopeTarget, plan_modelscope
from app.downloads.transfer import RetryPolicy
from app.errors import RepoFileNotFoundError
from app.hub.modelscope.api import ModelScopeClient
from app.hub.modelscope.layout import ModelScopeRoots, cached_paths, model_folder, model_id_of
from app.store import Database
from tests.support.modelscope_server import ModelScopeServer

WEIGHTS = bytes(range(256)) * 400  # 100 KiB
FAST = RetryPolicy(delays=(0.0,), attempts=3, stall_seconds=5)


@pytest.fixture
def server() -> Iterator[ModelScopeServer]:
    with ModelScopeServer() as running:
        running.add_model(
            "Qwen/Qwen2.5-Tiny-GGUF",
            {
                "README.md": b"# tiny\n",
                "qwen2.5-tiny-q4_k_m.gguf": WEIGHTS,
                "qwen2.5-tiny-q8_0.gguf": WEIGHTS[:5000],
                "sub/config.json": b"{}",
            },
        )
        yield running


@pytest.fixture
def roots(tmp_path: Path) -> ModelScopeRoots:
    return ModelScopeRoots.for_this_user(environ={"MODELSCOPE_CACHE": str(tmp_path / "ms")})


def pull(
    client: ModelScopeClient,
    model_id: str,
    patterns: list[str],
    *,
    roots: ModelScopeRoots,
    database: Database,
) -> tuple[DownloadPlan, JobStatus]:
    """Plan the files and run them as a job of the download queue, to its end."""
    plan = plan_modelscope(client, model_id, patterns, root=roots.current)
    manager = DownloadManager(
        database,
        endpoint="http://127.0.0.1:9",  # Hugging Face: never asked here
        cache_dir=roots.current.parent / "hf",
        retry=FAST,
        offline_wait=None,
    )
    with manager:
        status = manager.wait(manager.enqueue(plan), timeout=30)
    assert status.state.is_final, status
    return plan, status


def test_pull_writes_modelscope_cache_layout(
    server: ModelScopeServer, roots: ModelScopeRoots, tmp_path: Path, database: Database
) -> None:
    client = ModelScopeClient(endpoint=server.url)
    plan, status = pull(
        client, "Qwen/Qwen2.5-Tiny-GGUF", ["Q4_K_M", "sub/*"], roots=roots, database=database
    )
    assert status.state is JobState.COMPLETED, status

    folder = tmp_path / "ms" / "models" / "Qwen" / "Qwen2___5-Tiny-GGUF"  # "." is "___"
    assert model_folder(roots.current, plan.repo_id) == folder
    files = [file.path for file in plan.files]
    assert set(files) == {"qwen2.5-tiny-q4_k_m.gguf", "sub/config.json"}
    assert (folder / "qwen2.5-tiny-q4_k_m.gguf").read_bytes() == WEIGHTS
    assert (folder / "sub" / "config.json").read_bytes() == b"{}"
    assert not (folder / "qwen2.5-tiny-q8_0.gguf").exists()
    # The SDK's own metadata, readable by the SDK's plain pickle.load:
    assert pickle.loads((folder / ".mdl").read_bytes()) == {"id": "Qwen/Qwen2.5-Tiny-GGUF"}
    index = pickle.loads((folder / ".msc").read_bytes())
    assert sorted(entry["Path"] for entry in index) == sorted(files)
    assert all(len(entry["Revision"]) == 40 for entry in index)
    assert model_id_of(folder) == "Qwen/Qwen2.5-Tiny-GGUF"
    downloads = server.requests_to("/api/v1/models/Qwen/Qwen2.5-Tiny-GGUF/repo")
    assert {r.query.get("Revision") for r in downloads if "FilePath" in r.query} == {"master"}

    # A second pull finds the files in place and fetches nothing.
    before = len(server.requests)
    _, again = pull(client, "Qwen/Qwen2.5-Tiny-GGUF", ["Q4_K_M"], roots=roots, database=database)
    assert again.state is JobState.COMPLETED
    assert not [r for r in server.requests[before:] if "FilePath" in r.query]


def test_a_corrupt_byte_is_refused_and_nothing_kept(
    server: ModelScopeServer, roots: ModelScopeRoots, database: Database
) -> None:
    server.flip_byte("Qwen/Qwen2.5-Tiny-GGUF", "qwen2.5-tiny-q4_k_m.gguf")
    client = ModelScopeClient(endpoint=server.url)
    _, status = pull(client, "Qwen/Qwen2.5-Tiny-GGUF", ["Q4_K_M"], roots=roots, database=database)
    assert status.state is JobState.FAILED and status.error_kind is ErrorKind.INTEGRITY
    assert status.error is not None and "sha256" in status.error
    folder = roots.current / "Qwen" / "Qwen2___5-Tiny-GGUF"
    assert not (folder / "qwen2.5-tiny-q4_k_m.gguf").exists()
    assert "qwen2.5-tiny-q4_k_m.gguf" not in cached_paths(folder)
    assert not list((roots.current / "._____temp").rglob("*.incomplete"))


def test_a_partial_left_by_a_killed_process_is_continued(
    server: ModelScopeServer, roots: ModelScopeRoots, database: Database
) -> None:
    sha256 = hashlib.sha256(WEIGHTS).hexdigest()
    target = ModelScopeTarget(
        root=roots.current,
        model_id="Qwen/Qwen2.5-Tiny-GGUF",
        path="qwen2.5-tiny-q4_k_m.gguf",
        sha256=sha256,
        file_revision="x",
    )
    target.partial.parent.mkdir(parents=True)
    target.partial.write_bytes(WEIGHTS[:30000])  # what a kill -9 left behind

    client = ModelScopeClient(endpoint=server.url)
    _, status = pull(client, "Qwen/Qwen2.5-Tiny-GGUF", ["Q4_K_M"], roots=roots, database=database)
    assert status.state is JobState.COMPLETED, status

    assert (target.folder / "qwen2.5-tiny-q4_k_m.gguf").read_bytes() == WEIGHTS
    ranges = [r.headers.get("range") for r in server.requests if "FilePath" in r.query]
    assert ranges == ["bytes=30000-"]
    assert not target.partial.exists()


def test_a_dropped_connection_resumes_where_it_stopped(
    server: ModelScopeServer, roots: ModelScopeRoots, database: Database
) -> None:
    server.drop_after("Qwen/Qwen2.5-Tiny-GGUF", "qwen2.5-tiny-q4_k_m.gguf", 40000)
    client = ModelScopeClient(endpoint=server.url)
    _, status = pull(client, "Qwen/Qwen2.5-Tiny-GGUF", ["Q4_K_M"], roots=roots, database=database)
    assert status.state is JobState.COMPLETED, status
    ranges = [r.headers.get("range") for r in server.requests if "FilePath" in r.query]
    assert ranges == [None, "bytes=40000-"]
    folder = roots.current / "Qwen" / "Qwen2___5-Tiny-GGUF"
    assert (folder / "qwen2.5-tiny-q4_k_m.gguf").read_bytes() == WEIGHTS


def test_a_pattern_that_matches_nothing_is_refused(
    server: ModelScopeServer, roots: ModelScopeRoots
) -> None:
    client = ModelScopeClient(endpoint=server.url)
    with pytest.raises(RepoFileNotFoundError, match="Q2_K"):
        plan_modelscope(client, "Qwen/Qwen2.5-Tiny-GGUF", ["Q2_K"], root=roots.current)


def test_roots_follow_modelscope_cache(tmp_path: Path) -> None:
    default = ModelScopeRoots.for_this_user(environ={}, home=tmp_path)
    assert default.current == tmp_path / ".cache" / "modelscope" / "hub" / "models"
    assert default.older == (tmp_path / ".cache" / "modelscope" / "hub",)
    custom = ModelScopeRoots.for_this_user(environ={"MODELSCOPE_CACHE": str(tmp_path / "c")})
    assert custom.current == tmp_path / "c" / "models"
    assert custom.older == (tmp_path / "c", tmp_path / "c" / "hub")


def test_metadata_that_is_not_plain_data_is_never_run(tmp_path: Path) -> None:
    folder = tmp_path / "owner" / "name"
    folder.mkdir(parents=True)

    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("ran",))

    (folder / ".mdl").write_bytes(pickle.dumps(Boom()))
    (folder / ".msc").write_bytes(b"\x80\x04garbage")
    assert model_id_of(folder) == "owner/name"
    assert cached_paths(folder) == {}
