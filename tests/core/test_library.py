"""The library: every source found, copies joined, imports, folders, planned deletes."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from huggingface_hub import scan_cache_dir

from app.library import (
    AppFolders,
    DeleteRefusedError,
    EntryNotFoundError,
    FolderNotFoundError,
    Library,
    LibraryEntry,
    ModelKind,
    Source,
)
from app.library.deletion import IN_HF_CACHE, KEEP_IMPORTED, NOT_CONNECTED
from app.store import Database
from tests.core.test_library_layouts import (
    PICKLE_BYTES,
    app_folders,
    gguf_bytes,
    safetensors_bytes,
    write,
    write_diffusers,
    write_hf_repo,
    write_ollama,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LICENSED_CARD = b"---\nlicense: apache-2.0\ntags:\n- gguf\n---\n# Tiny\n"


@dataclass
class Machine:
    """A machine's model folders in tmp_path, and a library over them."""

    root: Path
    cache: Path
    apps: AppFolders
    database: Database
    library: Library

    @property
    def ollama(self) -> Path:
        return self.apps.ollama[0]

    def reopen(self) -> Library:
        """A new library on the same database (nothing kept in memory)."""
        return Library(self.database, hf_cache_dir=self.cache, app_folders=self.apps)


@pytest.fixture
def machine(tmp_path: Path, database: Database) -> Iterator[Machine]:
    cache = tmp_path / "hub"
    cache.mkdir()
    apps = app_folders(tmp_path / "apps")
    library = Library(database, hf_cache_dir=cache, app_folders=apps, clock=lambda: NOW)
    yield Machine(tmp_path, cache, apps, database, library)
    for folder, _dirs, _files in os.walk(tmp_path):  # read-only folders back, for cleanup
        os.chmod(folder, 0o755)


def by_name(entries: list[LibraryEntry]) -> dict[str, LibraryEntry]:
    return {entry.name: entry for entry in entries}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- sources --------------------------------------------------------------------------------


def test_hf_cache_gguf_models_with_header_details_license_and_blob_sha(machine: Machine) -> None:
    q4, q8 = gguf_bytes(file_type=15), gguf_bytes(file_type=7, elements=64)
    part1, part2 = gguf_bytes(salt=1, elements=48), gguf_bytes(salt=2, elements=48)
    snapshot = write_hf_repo(
        machine.cache,
        "org/tiny-GGUF",
        {
            "tiny-Q4_K_M.gguf": q4,
            "tiny-Q8_0.gguf": q8,
            "big/big-Q4_0-00001-of-00002.gguf": part1,
            "big/big-Q4_0-00002-of-00002.gguf": part2,
            "mmproj-tiny-f16.gguf": gguf_bytes(salt=9, elements=16),
            "README.md": LICENSED_CARD,
        },
    )
    entries = by_name(machine.library.scan())
    assert set(entries) == {"tiny-Q4_K_M", "tiny-Q8_0", "big-Q4_0"}  # the projector is no model
    q4_entry = entries["tiny-Q4_K_M"]
    assert q4_entry.kind is ModelKind.LLM_GGUF
    assert (q4_entry.architecture, q4_entry.context_length) == ("llama", 2048)
    assert (q4_entry.quantization, q4_entry.parameter_count) == ("Q4_K_M", 32)
    assert q4_entry.license == "apache-2.0"
    assert q4_entry.sha256 == sha(q4) and q4_entry.key == f"sha256:{sha(q4)}"
    assert q4_entry.size == len(q4)
    (location,) = q4_entry.locations
    assert location.path == snapshot.resolve() / "tiny-Q4_K_M.gguf"
    assert (location.source, location.repo_id, location.present) == (
        Source.HF_CACHE,
        "org/tiny-GGUF",
        True,
    )
    assert location.revision == snapshot.name and not location.owned_by_other_app
    # Reading a file (a download, a hash check) is no use: "last used" stays empty until
    # ModelDeck loads the model.
    blob = (snapshot / "tiny-Q4_K_M.gguf").resolve()
    os.utime(blob, (1_700_000_000, blob.stat().st_mtime))
    assert q4_entry.last_used is None
    assert by_name(machine.library.scan())["tiny-Q4_K_M"].last_used is None
    split = entries["big-Q4_0"]
    assert split.size == len(part1) + len(part2)
    assert split.parameter_count == 96  # both parts' tensors
    assert split.locations[0].path.name == "big-Q4_0-00001-of-00002.gguf"


def test_hf_cache_pipelines_single_files_and_other_repos(machine: Machine) -> None:
    pipeline = write_diffusers(machine.root / "made" / "pipe")
    write_hf_repo(
        machine.cache,
        "org/sd-pipe",
        {str(p.relative_to(pipeline)): p.read_bytes() for p in pipeline.rglob("*") if p.is_file()}
        | {"README.md": b"---\nlicense: creativeml-openrail-m\n---\n"},
    )
    single = safetensors_bytes()
    write_hf_repo(machine.cache, "org/sd-single", {"sd15.safetensors": single})
    write_hf_repo(
        machine.cache,
        "org/llm",
        {"config.json": b"{}", "model.safetensors": safetensors_bytes(diffusion=False)},
    )
    entries = by_name(machine.library.scan())
    pipe = entries["org/sd-pipe"]
    assert pipe.kind is ModelKind.DIFFUSERS_PIPELINE
    assert pipe.architecture == "StableDiffusionPipeline"
    assert pipe.license == "creativeml-openrail-m"
    assert pipe.key.startswith("hf:org/sd-pipe@")
    assert entries["sd15"].kind is ModelKind.DIFFUSION_SINGLE_FILE
    assert entries["sd15"].sha256 == sha(single)
    other = entries["org/llm"]
    assert other.kind is ModelKind.OTHER
    assert other.size == 2 + len(safetensors_bytes(diffusion=False))


def test_other_apps_models_are_found_in_place_and_marked_as_theirs(machine: Machine) -> None:
    lm = write(
        machine.apps.lm_studio[0] / "bartowski" / "Tiny-GGUF" / "Tiny-Q5_K_M.gguf",
        gguf_bytes(salt=1),
    )
    gpt = write(machine.apps.gpt4all[0] / "orca-mini-Q4_0.gguf", gguf_bytes(elements=40))
    write(machine.apps.gpt4all[0] / "incomplete-orca-mini-Q4_0.gguf", b"GG")
    blob, _manifest = write_ollama(machine.ollama, "tinyllama", "latest", gguf_bytes(elements=56))
    entries = by_name(machine.library.scan())
    assert set(entries) == {"Tiny-Q5_K_M", "orca-mini-Q4_0", "tinyllama:latest"}
    lm_location = entries["Tiny-Q5_K_M"].locations[0]
    assert (lm_location.path, lm_location.source, lm_location.repo_id) == (
        lm,
        Source.LM_STUDIO,
        "bartowski/Tiny-GGUF",
    )
    assert entries["orca-mini-Q4_0"].locations[0].path == gpt
    ollama = entries["tinyllama:latest"]
    assert ollama.locations[0].path == blob
    assert ollama.sha256 == blob.name.removeprefix("sha256-")
    assert ollama.architecture == "llama" and ollama.quantization == "Q4_K_M"
    for entry in entries.values():
        assert all(loc.owned_by_other_app for loc in entry.locations)


def test_ollama_tags_sharing_a_blob_are_one_entry(machine: Machine) -> None:
    data = gguf_bytes()
    write_ollama(machine.ollama, "llama3", "latest", data)
    write_ollama(machine.ollama, "llama3", "8b", data)
    write_ollama(machine.ollama, "model", "q4", data, namespace="someone")
    (entry,) = machine.library.scan()
    assert entry.name == "llama3:8b"
    assert len(entry.locations) == 1


def test_app_folders_default_to_each_platforms_places(tmp_path: Path) -> None:
    home = tmp_path / "home"
    linux = AppFolders.for_this_platform(home=home, environ={}, platform="linux")
    assert linux.lm_studio == (home / ".lmstudio/models", home / ".cache/lm-studio/models")
    assert linux.ollama == (home / ".ollama/models", Path("/usr/share/ollama/.ollama/models"))
    assert linux.gpt4all == (home / ".local/share/nomic.ai/GPT4All",)
    mac = AppFolders.for_this_platform(home=home, environ={}, platform="darwin")
    assert mac.gpt4all == (home / "Library/Application Support/nomic.ai/GPT4All",)
    assert mac.ollama == (home / ".ollama/models",)
    windows = AppFolders.for_this_platform(
        home=home, environ={"LOCALAPPDATA": str(tmp_path / "local")}, platform="win32"
    )
    assert windows.gpt4all == (tmp_path / "local" / "nomic.ai" / "GPT4All",)
    moved = AppFolders.for_this_platform(
        home=home, environ={"OLLAMA_MODELS": str(tmp_path / "big")}, platform="linux"
    )
    assert moved.ollama == (tmp_path / "big",)


# -- one model, many places -----------------------------------------------------------------


def test_the_same_gguf_in_the_hf_cache_ollama_and_an_import_is_one_entry(
    machine: Machine,
) -> None:
    data = gguf_bytes()
    snapshot = write_hf_repo(machine.cache, "org/tiny-GGUF", {"tiny-Q4_K_M.gguf": data})
    blob, _ = write_ollama(machine.ollama, "tiny", "latest", data)
    copy = write(machine.root / "downloads" / "tiny.gguf", data)
    same_size = write(machine.root / "downloads" / "other.gguf", gguf_bytes(salt=5))
    result = machine.library.import_paths([copy, same_size])
    assert result.rejected == []
    entries = machine.library.scan()
    assert len(entries) == 2
    entry = next(e for e in entries if e.sha256 == sha(data))
    assert entry.name == "tiny-Q4_K_M"  # the HF cache names it
    assert [loc.source for loc in entry.locations] == [
        Source.HF_CACHE,
        Source.IMPORT,
        Source.OLLAMA,
    ]
    assert [loc.path for loc in entry.locations] == [
        snapshot.resolve() / "tiny-Q4_K_M.gguf",
        copy,
        blob,
    ]
    assert entry.size == len(data)
    # Only the imports were hashed (the cache and Ollama name their blobs by sha256), and
    # the hashes are remembered, in the memo and on the import record.
    hashes = machine.database.fetch_all("SELECT path, sha256 FROM file_hashes ORDER BY path")
    assert hashes == sorted([(str(same_size), sha(same_size.read_bytes())), (str(copy), sha(data))])
    assert machine.database.fetch_one(
        "SELECT sha256 FROM library_imports WHERE path = ?", (str(copy),)
    ) == (sha(data),)


def test_files_of_a_size_no_other_file_has_are_never_hashed(machine: Machine) -> None:
    write_hf_repo(machine.cache, "org/a", {"a-Q4_K_M.gguf": gguf_bytes()})
    model = write(machine.root / "mine" / "b.gguf", gguf_bytes(elements=80))
    machine.library.import_paths([model])
    assert len(machine.library.scan()) == 2
    assert machine.database.fetch_all("SELECT * FROM file_hashes") == []


def test_a_remembered_hash_is_not_computed_again(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = gguf_bytes()
    write_ollama(machine.ollama, "tiny", "latest", data)
    copy = write(machine.root / "mine" / "tiny.gguf", data)
    machine.library.import_paths([copy])
    machine.database.execute("UPDATE library_imports SET sha256 = NULL")

    def no_hashing(*_args: object) -> object:
        raise AssertionError("hashed again")

    monkeypatch.setattr("app.library.library.hashlib.file_digest", no_hashing)
    (entry,) = machine.reopen().scan()
    assert len(entry.locations) == 2


# -- imports --------------------------------------------------------------------------------


def test_import_gguf_safetensors_and_a_diffusers_folder_in_place(machine: Machine) -> None:
    gguf = write(machine.root / "m" / "chat-Q8_0.gguf", gguf_bytes(file_type=7))
    single = write(machine.root / "m" / "dream.safetensors", safetensors_bytes())
    pipeline = write_diffusers(machine.root / "m" / "my-pipeline")
    before = sorted(p for p in machine.root.rglob("*"))
    result = machine.library.import_paths([gguf, single, pipeline])
    assert result.rejected == []
    imported = by_name(result.imported)
    assert {name: entry.kind for name, entry in imported.items()} == {
        "chat-Q8_0": ModelKind.LLM_GGUF,
        "dream": ModelKind.DIFFUSION_SINGLE_FILE,
        "my-pipeline": ModelKind.DIFFUSERS_PIPELINE,
    }
    assert imported["chat-Q8_0"].quantization == "Q8_0"
    assert imported["my-pipeline"].locations[0].path == pipeline
    assert imported["my-pipeline"].size == sum(
        p.stat().st_size for p in pipeline.rglob("*") if p.is_file()
    )
    for entry in imported.values():
        (location,) = entry.locations
        assert location.source is Source.IMPORT and not location.owned_by_other_app
    assert sorted(p for p in machine.root.rglob("*")) == before  # nothing copied
    rows = machine.database.fetch_all("SELECT path, kind, imported_at FROM library_imports")
    assert sorted(rows) == sorted(
        [
            (str(gguf), "LLM (GGUF)", NOW.isoformat()),
            (str(single), "single-file diffusion checkpoint", NOW.isoformat()),
            (str(pipeline), "diffusers pipeline", NOW.isoformat()),
        ]
    )


def test_import_a_folder_takes_every_checkpoint_and_turns_down_pickles(machine: Machine) -> None:
    folder = machine.root / "stash"
    write(folder / "a-Q4_K_M.gguf", gguf_bytes())
    write(folder / "split-Q4_0-00001-of-00002.gguf", gguf_bytes(salt=1, elements=48))
    write(folder / "split-Q4_0-00002-of-00002.gguf", gguf_bytes(salt=2, elements=48))
    write(folder / "deep" / "sd.safetensors", safetensors_bytes())
    write_diffusers(folder / "deep" / "pipe")
    pickle = write(folder / "old.ckpt", PICKLE_BYTES)
    write(folder / "notes.txt", b"hello")
    result = machine.library.import_paths([folder])
    assert sorted(entry.name for entry in result.imported) == [
        "a-Q4_K_M",
        "pipe",
        "sd",
        "split-Q4_0",
    ]
    assert result.rejected == [(pickle, "pickle — can run code when loaded; not supported")]


def test_import_turns_down_pickles_bad_files_and_missing_paths_with_a_reason(
    machine: Machine,
) -> None:
    pickle = write(machine.root / "x" / "model.pt", PICKLE_BYTES)
    bad = write(machine.root / "x" / "broken.gguf", b"<html>not found</html>")
    truncated = write(machine.root / "x" / "cut.gguf", gguf_bytes()[:60])
    empty_folder = machine.root / "x" / "empty"
    empty_folder.mkdir()
    missing = machine.root / "x" / "nope.gguf"
    result = machine.library.import_paths([pickle, bad, truncated, empty_folder, missing])
    assert result.imported == []
    reasons = dict(result.rejected)
    assert reasons[pickle] == "pickle — can run code when loaded; not supported"
    assert reasons[bad].startswith("broken.gguf is not a GGUF file")
    assert "truncated" in reasons[truncated] or "corrupt" in reasons[truncated]
    assert reasons[empty_folder].startswith("no model files in this folder")
    assert reasons[missing] == "no such file or folder"
    assert all("\n" not in reason for reason in reasons.values())
    assert machine.database.fetch_all("SELECT * FROM library_imports") == []


def test_importing_an_hf_snapshot_joins_the_cached_entry(machine: Machine) -> None:
    pipeline = write_diffusers(machine.root / "made" / "pipe")
    snapshot = write_hf_repo(
        machine.cache,
        "org/sd",
        {str(p.relative_to(pipeline)): p.read_bytes() for p in pipeline.rglob("*") if p.is_file()},
    )
    gguf = gguf_bytes()
    gguf_snapshot = write_hf_repo(machine.cache, "org/g", {"g-Q4_K_M.gguf": gguf})
    result = machine.library.import_paths([snapshot, gguf_snapshot.parent.parent])
    assert result.rejected == []
    entries = by_name(machine.library.scan())
    assert set(entries) == {"org/sd", "g-Q4_K_M"}
    assert [loc.source for loc in entries["org/sd"].locations] == [Source.HF_CACHE, Source.IMPORT]
    assert [loc.source for loc in entries["g-Q4_K_M"].locations] == [
        Source.HF_CACHE,
        Source.IMPORT,
    ]
    # An imported file that lives in the HF cache is never deleted as an import.
    plan = machine.library.plan_delete(
        entries["g-Q4_K_M"].key,
        [entries["g-Q4_K_M"].locations[1]],
        delete_imported_files=True,
    )
    assert plan.paths == () and plan.steps[0].note == IN_HF_CACHE


# -- extra folders --------------------------------------------------------------------------


def test_an_unplugged_folder_keeps_its_models_as_missing(machine: Machine) -> None:
    drive = machine.root / "drive"
    model = write(drive / "models" / "tiny-Q4_K_M.gguf", gguf_bytes())
    imported = write(drive / "elsewhere" / "sd.safetensors", safetensors_bytes())
    machine.library.add_folder(drive / "models")
    machine.library.import_paths([imported])
    entries = by_name(machine.library.scan())
    assert entries["tiny-Q4_K_M"].locations[0].source is Source.FOLDER
    assert all(entry.present for entry in entries.values())

    drive.rename(machine.root / "unplugged")
    for library in (machine.library, machine.reopen()):
        missing = by_name(library.scan())
        assert set(missing) == {"tiny-Q4_K_M", "sd"}
        tiny = missing["tiny-Q4_K_M"]
        assert not tiny.present and tiny.locations[0].path == model
        assert tiny.kind is ModelKind.LLM_GGUF and tiny.architecture == "llama"
        assert tiny.size == len(gguf_bytes())
        assert missing["sd"].kind is ModelKind.DIFFUSION_SINGLE_FILE and not missing["sd"].present
    assert machine.library.folders() == [drive / "models"]
    assert machine.database.fetch_all("SELECT path FROM library_imports") == [(str(imported),)]
    # Nothing is deleted on a drive that is not there.
    plan = machine.library.plan_delete(missing["tiny-Q4_K_M"].key)
    assert plan.paths == () and plan.bytes_freed == 0 and plan.steps[0].note == NOT_CONNECTED
    assert machine.library.execute(plan) == 0

    (machine.root / "unplugged").rename(drive)
    assert all(entry.present for entry in machine.library.scan())


def test_a_read_only_folder_is_scanned(machine: Machine) -> None:
    folder = machine.root / "readonly"
    write(folder / "a-Q4_K_M.gguf", gguf_bytes())
    write_diffusers(folder / "pipe")
    for path in sorted(folder.rglob("*"), reverse=True):
        path.chmod(0o444 if path.is_file() else 0o555)
    folder.chmod(0o555)
    machine.library.add_folder(folder)
    entries = by_name(machine.library.scan())
    assert set(entries) == {"a-Q4_K_M", "pipe"}
    assert entries["a-Q4_K_M"].architecture == "llama"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o555
    if os.geteuid() != 0:  # root may write anywhere
        plan = machine.library.plan_delete(entries["a-Q4_K_M"].key)
        assert plan.paths == () and plan.steps[0].note is not None


def test_add_and_remove_folders(machine: Machine) -> None:
    with pytest.raises(FolderNotFoundError):
        machine.library.add_folder(machine.root / "nope")
    folder = machine.root / "f"
    model = write(folder / "a.gguf", gguf_bytes())
    machine.library.add_folder(folder)
    machine.library.add_folder(folder)
    assert machine.library.folders() == [folder]
    assert [entry.name for entry in machine.library.scan()] == ["a"]
    machine.library.remove_folder(folder)
    assert machine.library.folders() == []
    assert machine.library.scan() == []
    assert model.exists()


# -- deleting -------------------------------------------------------------------------------


def test_deleting_an_hf_repo_goes_through_huggingface_hub(machine: Machine) -> None:
    data = gguf_bytes()
    write_hf_repo(machine.cache, "org/tiny-GGUF", {"tiny-Q4_K_M.gguf": data, "README.md": b"hi"})
    # The same commit hash in another repo (a duplicated repo shares its history) stays.
    write_hf_repo(machine.cache, "org/keep", {"keep-Q4_K_M.gguf": gguf_bytes(elements=40)})
    entry = by_name(machine.library.scan())["tiny-Q4_K_M"]
    plan = machine.library.plan_delete(entry.key)
    assert plan.bytes_freed == len(data) + 2
    assert plan.paths == (machine.cache.resolve() / "models--org--tiny-GGUF",)
    assert not plan.needs_second_confirmation
    assert machine.library.execute(plan) == len(data) + 2
    assert [repo.repo_id for repo in scan_cache_dir(machine.cache).repos] == ["org/keep"]
    assert [e.name for e in machine.library.scan()] == ["keep-Q4_K_M"]


def test_deleting_one_of_two_quantizations_keeps_the_other(machine: Machine) -> None:
    q4, q8 = gguf_bytes(), gguf_bytes(elements=64)
    write_hf_repo(
        machine.cache, "org/m", {"m-Q4_K_M.gguf": q4, "m-Q8_0.gguf": q8, "README.md": b"x"}
    )
    entries = by_name(machine.library.scan())
    plan = machine.library.plan_delete(entries["m-Q8_0"].key)
    assert plan.bytes_freed == len(q8)
    assert machine.library.execute(plan) == len(q8)
    (repo,) = scan_cache_dir(machine.cache).repos
    assert sorted(f.file_name for r in repo.revisions for f in r.files) == [
        "README.md",
        "m-Q4_K_M.gguf",
    ]
    # Both models of the revision at once: the revision goes whole.
    write_hf_repo(machine.cache, "org/m", {"m-Q8_0.gguf": q8})
    keys = [entry.key for entry in machine.library.scan()]
    plan = machine.library.plan_delete_all(keys)
    assert plan.bytes_freed == len(q4) + len(q8) + 1
    machine.library.execute(plan)
    assert not scan_cache_dir(machine.cache).repos


def test_deleting_an_ollama_copy_needs_a_second_confirmation(machine: Machine) -> None:
    data = gguf_bytes()
    blob, manifest = write_ollama(machine.ollama, "tiny", "latest", data)
    _, other_tag = write_ollama(machine.ollama, "tiny", "q4", data)
    template = next(p for p in (machine.ollama / "blobs").iterdir() if p != blob)
    (entry,) = machine.library.scan()
    plan = machine.library.plan_delete(entry.key)
    assert plan.needs_second_confirmation and plan.other_apps == ("Ollama",)
    assert set(plan.paths) == {blob, manifest, other_tag, template}
    assert plan.bytes_freed == len(data) + template.stat().st_size + 2 * manifest.stat().st_size
    with pytest.raises(DeleteRefusedError):
        machine.library.execute(plan)
    assert blob.exists() and manifest.exists()
    assert machine.library.execute(plan, confirm_other_apps=True) == plan.bytes_freed
    assert not blob.exists() and not manifest.exists() and not other_tag.exists()
    assert machine.library.scan() == []


def test_deleting_an_import_forgets_it_and_deletes_the_file_only_when_asked(
    machine: Machine,
) -> None:
    data = gguf_bytes()
    write_ollama(machine.ollama, "tiny", "latest", data)
    first = write(machine.root / "a" / "tiny.gguf", data)
    machine.library.import_paths([first])
    (entry,) = machine.library.scan()
    import_location = entry.locations[0]
    assert import_location.source is Source.IMPORT
    plan = machine.library.plan_delete(entry.key, [import_location])
    assert not plan.needs_second_confirmation  # the Ollama copy is not in this plan
    assert plan.paths == () and plan.steps[0].note == KEEP_IMPORTED
    assert machine.library.execute(plan) == 0
    assert first.exists()
    assert machine.database.fetch_all("SELECT * FROM library_imports") == []
    assert [loc.source for loc in machine.library.scan()[0].locations] == [Source.OLLAMA]

    machine.library.import_paths([first])
    entry = machine.library.scan()[0]
    plan = machine.library.plan_delete(entry.key, [entry.locations[0]], delete_imported_files=True)
    assert plan.paths == (first,) and plan.bytes_freed == len(data)
    assert machine.library.execute(plan) == len(data)
    assert not first.exists()
    with pytest.raises(EntryNotFoundError):
        machine.library.plan_delete("sha256:nope")


def test_a_location_of_another_model_is_refused(machine: Machine) -> None:
    write_hf_repo(machine.cache, "org/a", {"a.gguf": gguf_bytes()})
    write_hf_repo(machine.cache, "org/b", {"b.gguf": gguf_bytes(elements=40)})
    a, b = machine.library.scan()
    with pytest.raises(EntryNotFoundError):
        machine.library.plan_delete(a.key, [b.locations[0]])


def test_find_by_key_prefix_repo_id_name_and_path(machine: Machine) -> None:
    data = gguf_bytes()
    snapshot = write_hf_repo(machine.cache, "org/tiny-GGUF", {"tiny-Q4_K_M.gguf": data})
    library = machine.library
    library.scan()
    (entry,) = library.find("org/tiny-GGUF")
    assert library.find(entry.key) == [entry]
    assert library.find(sha(data)[:8]) == [entry]
    assert library.find("tiny-Q4_K_M") == [entry]
    assert library.find(str(snapshot / "tiny-Q4_K_M.gguf")) == [entry]
    assert library.find("org/other") == []
    write_ollama(machine.ollama, "tiny", "latest", data)
    (entry,) = library.scan()
    assert library.find("tiny:latest") == [entry]  # the name of the Ollama copy


# -- scale ----------------------------------------------------------------------------------


def test_a_cache_of_a_thousand_repos_of_five_files_scans(machine: Machine) -> None:
    card = b"---\nlicense: mit\n---\n"
    for index in range(1000):
        write_hf_repo(
            machine.cache,
            f"org/model-{index}",
            {
                f"model-{index}-Q4_K_M.gguf": gguf_bytes(salt=index),
                "README.md": card,
                "config.json": b"{}",
                "tokenizer.json": b"{}",
                ".gitattributes": b"*.gguf lfs",
            },
        )
    entries = machine.library.scan()
    assert len(entries) == 1000
    assert {entry.license for entry in entries} == {"mit"}
    assert all(entry.architecture == "llama" for entry in entries)


def test_no_hf_cache_and_no_other_apps_is_an_empty_library(
    tmp_path: Path, database: Database
) -> None:
    library = Library(database, hf_cache_dir=tmp_path / "not-yet", app_folders=AppFolders())
    assert library.scan() == []
    assert library.find("anything") == []


# -- use, and pipelines that cannot run --------------------------------------------------


def test_last_used_is_when_modeldeck_loaded_it_for_every_copy(machine: Machine) -> None:
    data = gguf_bytes()
    snapshot = write_hf_repo(machine.cache, "org/tiny-GGUF", {"tiny-Q4_K_M.gguf": data})
    copy = write(machine.root / "downloads" / "tiny.gguf", data)
    machine.library.import_paths([copy])
    (entry,) = machine.library.scan()
    assert entry.last_used is None
    machine.library.mark_used(copy)  # loaded from the imported copy
    (entry,) = machine.reopen().scan()  # remembered in the database
    assert entry.last_used == NOW
    assert [loc.source for loc in entry.locations] == [Source.HF_CACHE, Source.IMPORT]
    # Loading the cached copy (through the snapshot's link) counts for the same entry.
    later = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
    machine.library.mark_used(snapshot / "tiny-Q4_K_M.gguf", when=later)
    (entry,) = machine.library.scan()
    assert entry.last_used == later


def test_an_imported_copy_of_a_cached_file_is_one_entry_with_two_locations(
    machine: Machine,
) -> None:
    data = safetensors_bytes(salt=3)
    snapshot = write_hf_repo(machine.cache, "org/sd-single", {"model.safetensors": data})
    copy = write(machine.root / "Downloads" / "my-model.safetensors", data)
    machine.library.import_paths([copy])
    (entry,) = machine.library.scan()
    assert entry.key == f"sha256:{sha(data)}"
    assert [(loc.source, loc.path) for loc in entry.locations] == [
        (Source.HF_CACHE, snapshot.resolve() / "model.safetensors"),
        (Source.IMPORT, copy),
    ]


def test_a_pipeline_with_a_missing_or_pickle_component_is_marked_incomplete(
    machine: Machine,
) -> None:
    whole = write_diffusers(machine.root / "made" / "whole")
    broken = write_diffusers(machine.root / "made" / "broken", salt=4)
    index = {
        "_class_name": "StableDiffusionPipeline",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "safety_checker": [None, None],
    }
    write(broken / "model_index.json", json.dumps(index).encode())
    write(broken / "text_encoder" / "config.json", b"{}")
    write(broken / "text_encoder" / "pytorch_model.bin", PICKLE_BYTES)
    (broken / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    (broken / "vae").rmdir()
    machine.library.import_paths([whole, broken])
    entries = by_name(machine.library.scan())
    assert entries["whole"].incomplete is None
    reason = entries["broken"].incomplete
    assert reason == "text_encoder: only pickle weights (can run code; not loaded); vae: missing"
    assert entries["broken"].warning is not None and "pickle" in entries["broken"].warning
