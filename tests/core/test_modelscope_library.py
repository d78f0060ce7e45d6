"""The library finds models in ModelScope's cache: its current layout, its older ones, and
what a ModelScope download just put there."""

from __future__ import annotations

import pickle
from pathlib import Path

from app.downloads import DownloadManager, JobState
from app.downloads.modelscope import plan_modelscope
from app.downloads.transfer import RetryPolicy
from app.hub.modelscope.api import ModelScopeClient
from app.hub.modelscope.layout import ModelScopeRoots
from app.library import AppFolders, Library, ModelKind
from app.library.catalog import Source
from app.store import Database
from tests.core.test_library_layouts import gguf_bytes, write
from tests.support.modelscope_server import ModelScopeServer


def _sdk_folder(folder: Path, model_id: str, files: dict[str, bytes]) -> None:
    """A model folder as the `modelscope` SDK leaves it (files, `.mdl`, `.msc`)."""
    for path, data in files.items():
        write(folder / path, data)
    (folder / ".mdl").write_bytes(pickle.dumps({"id": model_id}))
    index = [{"Path": path, "Revision": "a" * 40} for path in files]
    (folder / ".msc").write_bytes(pickle.dumps(index))


def _library(tmp_path: Path, database: Database, roots: ModelScopeRoots) -> Library:
    return Library(
        database, hf_cache_dir=tmp_path / "no-hf", app_folders=AppFolders(modelscope=roots.all)
    )


def test_current_and_older_layouts_are_found(tmp_path: Path, database: Database) -> None:
    roots = ModelScopeRoots.for_this_user(environ={"MODELSCOPE_CACHE": str(tmp_path / "ms")})
    # Today's layout: <cache>/models/<owner>/<name with "." as "___">.
    _sdk_folder(
        roots.current / "Qwen" / "Qwen2___5-0___5B-GGUF",
        "Qwen/Qwen2.5-0.5B-GGUF",
        {"qwen2.5-0.5b-q4_k_m.gguf": gguf_bytes(architecture="qwen2", salt=1)},
    )
    # The older layouts: <cache>/<owner>/<name> and $MODELSCOPE_CACHE/hub/<owner>/<name>,
    # without metadata files (the name comes from the folders then).
    write(tmp_path / "ms" / "old" / "tiny" / "tiny-Q8_0.gguf", gguf_bytes(salt=2))
    write(tmp_path / "ms" / "hub" / "older" / "tiny2" / "m-Q4_K_M.gguf", gguf_bytes(salt=3))
    # A download in progress is not a model.
    write(roots.current / "._____temp" / "x" / "y" / "part.gguf", gguf_bytes(salt=4))

    entries = _library(tmp_path, database, roots).scan()

    by_repo = {entry.repo_ids[0]: entry for entry in entries}
    assert set(by_repo) == {"Qwen/Qwen2.5-0.5B-GGUF", "old/tiny", "older/tiny2"}
    qwen = by_repo["Qwen/Qwen2.5-0.5B-GGUF"]
    assert qwen.kind is ModelKind.LLM_GGUF
    assert qwen.architecture == "qwen2"  # read from the header, like any other copy
    assert qwen.locations[0].source is Source.MODELSCOPE
    assert qwen.locations[0].owned_by_other_app  # ModelScope's tools use it too
    assert Source.MODELSCOPE.label == "ModelScope cache"


def test_a_modelscope_download_shows_in_the_library(tmp_path: Path, database: Database) -> None:
    roots = ModelScopeRoots.for_this_user(environ={"MODELSCOPE_CACHE": str(tmp_path / "ms")})
    weights = gguf_bytes(architecture="llama", salt=7)
    with ModelScopeServer() as server:
        server.add_model("org/Tiny-GGUF", {"tiny-Q4_K_M.gguf": weights, "README.md": b"#"})
        client = ModelScopeClient(endpoint=server.url)
        plan = plan_modelscope(client, "org/Tiny-GGUF", root=roots.current)
        queue = DownloadManager(
            database,
            endpoint="http://127.0.0.1:9",
            cache_dir=tmp_path / "hf",
            retry=RetryPolicy(delays=(0,)),
        )
        with queue:
            assert queue.wait(queue.enqueue(plan), timeout=30).state is JobState.COMPLETED

    (entry,) = _library(tmp_path, database, roots).scan()
    assert entry.repo_ids == ("org/Tiny-GGUF",)
    assert entry.quantization == "Q4_K_M"
    assert entry.locations[0].path == roots.current / "org" / "Tiny-GGUF" / "tiny-Q4_K_M.gguf"
