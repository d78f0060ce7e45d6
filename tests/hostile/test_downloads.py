"""A hostile hub against `modeldeck pull` and the download queue, end to end.

Every case runs the real huggingface_hub client and ModelDeck's own code against the fake
hub in its hostile mode (`HubServer.lie`, `Answer`), or against a cache with something planted
in it. Each proves three things: a clear error (one line, the right exit status), nothing
written outside the cache (the would-be target does not exist, and no file appeared anywhere
under the test's folder except the hub's store, the cache and the app data), and a queue that
still works (a good pull right after succeeds).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import keyring
import pytest
from keyring.backends import fail

from app.commands import pull
from app.core import Core
from app.downloads import DownloadManager, DownloadPlan, JobState, PlannedFile, RetryPolicy
from app.hub.untrusted import UnsafeHubDataError
from tests.support.hub_server import (
    Answer,
    Fault,
    HubServer,
    Lies,
    Oversize,
    git_blob_sha1,
)

MODEL = os.urandom(200_000)  # LFS by suffix: redirected to the CDN origin
MODEL_SHA = hashlib.sha256(MODEL).hexdigest()
CONFIG = b'{"model_type": "llama"}'  # a regular git file, served by the hub itself
CONFIG_OID = git_blob_sha1(CONFIG)
GOOD_FILES = {"good-Q4_K_M.gguf": os.urandom(50_000), "config.json": b"{}"}
FAST = RetryPolicy(delays=(0.01,), attempts=2, stall_seconds=2.0)
PLENTY = 1 << 40


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ModelDeck's data folder for this test; no token, endpoint or keyring of this machine."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "modeldeck-data"
    monkeypatch.setenv("MODELDECK_DATA_DIR", str(folder))
    monkeypatch.setattr(keyring.core, "_keyring_backend", fail.Keyring())  # type: ignore[no-untyped-call]
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    return folder


@dataclass(frozen=True)
class Pulled:
    code: int
    events: list[dict[str, object]]

    @property
    def error(self) -> str:
        last = self.events[-1]
        assert last["event"] == "error", self.events
        return str(last["message"])


@dataclass(frozen=True)
class World:
    """A test's hub (org/evil to lie about, org/good to pull after), app and folders."""

    core: Core
    hub: HubServer
    tmp: Path
    hf_home: Path
    data_dir: Path
    evil: str  # org/evil's commit

    @property
    def cache(self) -> Path:
        return self.hf_home / "hub"

    @property
    def evil_folder(self) -> Path:
        return self.cache / "models--org--evil"

    def pull(self, *argv: str) -> Pulled:
        """`modeldeck pull ARGV --json`, in this process."""
        parser = argparse.ArgumentParser(prog="modeldeck")
        pull.register(parser.add_subparsers(dest="command"))
        out = io.StringIO()
        code = pull.run(self.core, parser.parse_args(["pull", *argv, "--json"]), out)
        return Pulled(code, [json.loads(line) for line in out.getvalue().splitlines()])

    def assert_contained(self, *targets: Path) -> None:
        """None of `targets` exists; no file outside the hub's store, the cache and the app
        data appeared; no link in the cache leads out of it."""
        for target in targets:
            assert not os.path.lexists(target), f"{target} was written"
        assert self.stray_files() == []
        assert self.cache_escapes() == []

    def assert_queue_works(self) -> None:
        """A good pull right after succeeds, and lands in the cache."""
        result = self.pull("org/good")
        assert result.code == pull.EXIT_OK, result.events
        assert result.events[-1]["event"] == "done"
        folder = Path(str(result.events[-1]["path"]))
        assert (folder / "good-Q4_K_M.gguf").read_bytes() == GOOD_FILES["good-Q4_K_M.gguf"]

    def stray_files(self) -> list[Path]:
        allowed = (self.tmp / "hub", self.cache, self.data_dir)
        found = []
        for root, folders, files in os.walk(self.tmp):
            for name in files + [f for f in folders if Path(root, f).is_symlink()]:
                path = Path(root, name)
                if not any(path.is_relative_to(folder) for folder in allowed):
                    found.append(path)
        return sorted(found)

    def cache_escapes(self) -> list[Path]:
        real_cache = os.path.realpath(self.cache)
        return [
            Path(root, name)
            for root, folders, files in os.walk(self.cache)
            for name in files + folders
            if Path(root, name).is_symlink()
            and not Path(os.path.realpath(Path(root, name))).is_relative_to(real_cache)
        ]


@pytest.fixture
def world(hub_server: HubServer, data_dir: Path, hf_home: Path, tmp_path: Path) -> Iterator[World]:
    evil = hub_server.add_repo("org/evil", {"evil-Q4_K_M.gguf": MODEL, "config.json": CONFIG})
    hub_server.add_repo("org/good", GOOD_FILES)
    core = Core.open(data_dir=data_dir, endpoint_override=hub_server.url)
    yield World(core, hub_server, tmp_path, hf_home, data_dir, evil)
    core.close()


# -- 1. names that leave the cache --------------------------------------------------------------

HOSTILE_NAMES = [
    pytest.param("../../../../.config/autostart/x.desktop", "'..' part", id="dot-dot"),
    pytest.param("sub/../../../../../escape.gguf", "'..' part", id="dot-dot-inside"),
    pytest.param("{tmp}/absolute-target.gguf", "absolute path", id="absolute"),
    pytest.param("C:\\Users\\x\\evil.gguf", "backslash", id="windows-drive-backslash"),
    pytest.param("C:evil.gguf", "drive letter", id="windows-drive-relative"),
    pytest.param("\\\\server\\share\\evil.gguf", "backslash", id="windows-unc"),
    pytest.param("..\\..\\evil.gguf", "backslash", id="windows-dot-dot"),
    pytest.param("evil\x00.gguf", "NUL", id="nul"),
    pytest.param("a//b.gguf", "empty", id="empty-segment"),
    pytest.param("./evil.gguf", "'.'", id="dot-segment"),
    pytest.param("x" * 300 + ".gguf", "longer than 255 bytes", id="too-long"),
]


@pytest.mark.parametrize(("name", "reason"), HOSTILE_NAMES)
def test_a_hostile_file_name_is_refused_before_anything_is_written(
    world: World, name: str, reason: str
) -> None:
    name = name.replace("{tmp}", str(world.tmp))
    world.hub.lie("org/evil", Lies(names={"evil-Q4_K_M.gguf": name}))

    result = world.pull("org/evil")

    assert result.code == pull.EXIT_ERROR
    assert "refuses" in result.error and reason in result.error, result.error
    snapshot = world.evil_folder / "snapshots" / world.evil
    world.assert_contained(Path(os.path.normpath(snapshot / name.replace("\x00", ""))))
    assert not world.evil_folder.exists()  # refused at plan time: nothing at all
    assert world.hub.requests_to(r"/resolve/|^/lfs/") == []
    world.assert_queue_works()


def _lfs(sha256: str, size: int = 1) -> dict[str, object]:
    return {"lfs": {"sha256": sha256, "size": size, "pointerSize": 130}}


def _listed(path: str, **fields: object) -> dict[str, object]:
    return {"rfilename": path, "blobId": "0" * 40, "size": 5, **fields}


@pytest.mark.parametrize(
    ("lies", "reason"),
    [
        pytest.param(Lies(sha="../../../../escape"), "commit id", id="commit-dot-dot"),
        pytest.param(Lies(sha="a" * 39), "commit id", id="commit-short"),
        pytest.param(
            Lies(fields={"config.json": {"blobId": "../../../escape"}}),
            "git blob id",
            id="git-oid-dot-dot",
        ),
        pytest.param(
            Lies(fields={"evil-Q4_K_M.gguf": _lfs("../escape")}), "sha256", id="sha256-dot-dot"
        ),
        pytest.param(
            Lies(fields={"evil-Q4_K_M.gguf": _lfs("g" * 64)}), "sha256", id="sha256-not-hex"
        ),
        pytest.param(Lies(repo_id="org/../../escape"), "repository id", id="repo-id-dot-dot"),
        pytest.param(Lies(repo_id="../escape"), "repository id", id="repo-id-parent"),
        pytest.param(Lies(fields={"config.json": {"size": -1}}), "negative", id="size-negative"),
        pytest.param(
            Lies(fields={"config.json": {"size": 1 << 62}}), "no model file", id="size-absurd"
        ),
        pytest.param(Lies(extra=(_listed("config.json"),)), "twice", id="listed-twice"),
        pytest.param(Lies(extra=(_listed("CONFIG.JSON"),)), "twice", id="listed-twice-case"),
        pytest.param(
            Lies(extra=(_listed("config.json/inner"),)), "folder", id="both-file-and-folder"
        ),
    ],
)
def test_hostile_ids_hashes_and_sizes_in_the_listing_are_refused(
    world: World, lies: Lies, reason: str
) -> None:
    world.hub.lie("org/evil", lies)

    result = world.pull("org/evil")

    assert result.code == pull.EXIT_ERROR
    assert reason in result.error, result.error
    world.assert_contained(world.hf_home / "escape", world.cache / "escape")
    assert list(world.cache.glob("models--*evil*")) == []
    world.assert_queue_works()


def test_upper_case_hashes_are_the_same_hashes_and_land_in_lower_case(world: World) -> None:
    world.hub.lie(
        "org/evil",
        Lies(
            sha=world.evil.upper(),
            fields={
                "evil-Q4_K_M.gguf": _lfs(MODEL_SHA.upper(), len(MODEL)),
                "config.json": {"blobId": CONFIG_OID.upper()},
            },
        ),
    )

    result = world.pull("org/evil")

    assert result.code == pull.EXIT_OK, result.events
    repo = world.evil_folder
    assert (repo / "blobs" / MODEL_SHA).read_bytes() == MODEL
    assert (repo / "blobs" / CONFIG_OID).read_bytes() == CONFIG
    assert (repo / "snapshots" / world.evil / "evil-Q4_K_M.gguf").read_bytes() == MODEL
    assert [p.name for p in (repo / "snapshots").iterdir()] == [world.evil]


def test_a_branch_name_that_leaves_the_refs_folder_is_refused(world: World) -> None:
    # The hub answers for any revision, so the branch asked for reaches the plan.
    info = true_model_info(world.hub, "org/evil")
    world.hub.inject(Fault(Answer(info), path=r"^/api/models/org/evil/revision/", times=None))

    result = world.pull("org/evil", "--revision", "../../../../escape")

    assert result.code == pull.EXIT_ERROR
    assert "branch or tag" in result.error
    world.assert_contained(world.hf_home / "escape", world.cache / "escape")
    world.assert_queue_works()


def test_a_hub_that_answers_another_commit_than_the_one_asked_for_is_refused(
    world: World,
) -> None:
    asked = "f" * 40
    info = true_model_info(world.hub, "org/evil")  # describes the latest commit
    world.hub.inject(Fault(Answer(info), path=rf"^/api/models/org/evil/revision/{asked}$"))

    result = world.pull("org/evil", "--revision", asked)

    assert result.code == pull.EXIT_ERROR
    assert "was asked for" in result.error
    assert not world.evil_folder.exists()
    world.assert_queue_works()


# -- siblings on the wire: headers, bodies, redirects, sizes -----------------------------------


@pytest.mark.parametrize(
    ("lies", "reason"),
    [
        pytest.param(Lies(repo_commit="0" * 40), "with commit", id="x-repo-commit"),
        pytest.param(Lies(repo_commit="../../escape"), "with commit", id="x-repo-commit-path"),
        pytest.param(Lies(etag="e" * 64), "LFS sha256", id="x-linked-etag"),
    ],
)
def test_a_resolve_answer_about_another_commit_or_file_is_refused(
    world: World, lies: Lies, reason: str
) -> None:
    world.hub.lie("org/evil", lies)

    result = world.pull("org/evil", "*.gguf")

    assert result.code == pull.EXIT_ERROR
    assert reason in result.error, result.error
    assert world.hub.requests_to(r"^/lfs/") == []  # refused before any byte was fetched
    assert not (world.evil_folder / "blobs" / MODEL_SHA).exists()
    world.assert_contained(world.hf_home / "escape")
    world.assert_queue_works()


@pytest.mark.parametrize(
    ("path", "oversize"),
    [
        pytest.param("config.json", Oversize(64 << 20), id="hub-content-length"),
        pytest.param("config.json", Oversize(64 << 20, content_length=False), id="hub-no-length"),
        pytest.param("evil-Q4_K_M.gguf", Oversize(64 << 20), id="cdn-content-length"),
        pytest.param(
            "evil-Q4_K_M.gguf", Oversize(64 << 20, content_length=False), id="cdn-no-length"
        ),
    ],
)
def test_a_body_longer_than_its_declared_size_stops_at_the_size(
    world: World, path: str, oversize: Oversize
) -> None:
    world.hub.lie("org/evil", Lies(oversize={path: oversize}))

    result = world.pull("org/evil", path)

    assert result.code == pull.EXIT_ERROR
    assert "the hub sent" in result.error and "Nothing was kept" in result.error, result.error
    blobs = world.evil_folder / "blobs"
    assert [p.name for p in blobs.iterdir()] == []
    written = sum(p.stat().st_size for p in world.cache.rglob("*") if p.is_file())
    assert written < 1 << 20  # nowhere near the 64 MiB sent
    world.assert_contained()
    world.assert_queue_works()


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        pytest.param("cdn", "sha256 mismatch", id="other-cdn-wrong-bytes"),
        pytest.param("hub", "with commit", id="other-hub-another-commit"),
    ],
)
def test_a_redirect_to_another_host_gets_no_token_and_is_refused(
    world: World, monkeypatch: pytest.MonkeyPatch, where: str, reason: str
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_SECRETsecret1234567890")
    other_bytes = os.urandom(len(MODEL))
    with HubServer(world.tmp / "hub" / "elsewhere") as other:
        other.add_repo("x/y", {"other.gguf": other_bytes})
        location = {
            "cdn": f"{other.cdn_url}/lfs/{hashlib.sha256(other_bytes).hexdigest()}/other.gguf",
            "hub": f"{other.url}/x/y/resolve/main/other.gguf",
        }[where]
        world.hub.lie("org/evil", Lies(redirects={"evil-Q4_K_M.gguf": location}))

        result = world.pull("org/evil", "*.gguf")

        sent = [r.authorization for r in other.requests]
    assert result.code == pull.EXIT_ERROR
    assert reason in result.error, result.error
    assert sent and set(sent) == {None}
    resolves = world.hub.requests_to(r"/resolve/")
    assert resolves and all(r.authorization for r in resolves)  # the token went to the hub only
    assert not (world.evil_folder / "blobs" / MODEL_SHA).exists()
    world.assert_contained()
    world.assert_queue_works()


def test_an_oversized_model_description_is_not_read(world: World) -> None:
    world.hub.lie("org/evil", Lies(json_padding=40 << 20))

    result = world.pull("org/evil")

    assert result.code == pull.EXIT_ERROR
    assert "larger than" in result.error
    assert not world.evil_folder.exists()
    world.assert_queue_works()


# -- 2. one bad job never breaks the queue ------------------------------------------------------


def insert_saved_job(core: Core, *, repo_id: str, revision: str, path: str, etag: str) -> int:
    """A job row as an older ModelDeck (without these checks) could have saved it."""
    with core.database.transaction() as connection:
        cursor = connection.execute(
            "INSERT INTO download_jobs (endpoint, repo_id, revision, ref, label, state, "
            "created_at) VALUES (?, ?, ?, 'main', 'all files', 'queued', '2024-01-01')",
            (core.endpoint, repo_id, revision),
        )
        job_id = cursor.lastrowid
        assert job_id is not None
        connection.execute(
            "INSERT INTO download_files (job_id, path, size, sha256, etag, state) "
            "VALUES (?, ?, 5, NULL, ?, 'pending')",
            (job_id, path, etag),
        )
    return job_id


@pytest.mark.parametrize(
    "row",
    [
        pytest.param({"etag": "bad\x00blob"}, id="etag-nul"),
        pytest.param({"etag": "../../../escape"}, id="etag-dot-dot"),
        pytest.param({"path": "../../../../escape"}, id="path-dot-dot"),
        pytest.param({"path": "/etc/escape"}, id="path-absolute"),
        pytest.param({"revision": "../../escape"}, id="revision-dot-dot"),
        pytest.param({"repo_id": "org/../../escape"}, id="repo-id-dot-dot"),
    ],
)
def test_a_saved_job_that_cannot_be_restored_fails_alone(world: World, row: dict[str, str]) -> None:
    values = {"repo_id": "org/old", "revision": "a" * 40, "path": "x.gguf", "etag": "b" * 40}
    job_id = insert_saved_job(world.core, **(values | row))

    world.assert_queue_works()  # the CLI's manager restores the bad row first

    manager = DownloadManager(
        world.core.database,
        endpoint=world.core.endpoint,
        cache_dir=world.cache,
        free_space=lambda _path: PLENTY,
    )
    status = manager.job(job_id)
    assert status.state is JobState.FAILED
    assert status.error is not None and status.error.startswith("Refused: "), status.error
    assert "refuses" in status.error
    assert not manager.retry(job_id)  # it cannot run, now or later
    assert manager.remove(job_id)
    world.assert_contained(world.hf_home / "escape", world.cache / "escape")
    (saved,) = world.core.database.fetch_all(
        "SELECT COUNT(*) FROM download_jobs WHERE id = ?", (job_id,)
    )
    assert saved == (0,)


def test_a_hostile_plan_is_refused_by_the_queue_and_nothing_is_saved(world: World) -> None:
    plan = DownloadPlan(
        repo_id="org/evil",
        revision="a" * 40,
        label="all files",
        files=(PlannedFile(path="../../escape", size=5, sha256=None, etag="b" * 40),),
    )
    core = world.core
    with DownloadManager(core.database, endpoint=core.endpoint, cache_dir=world.cache) as manager:
        with pytest.raises(UnsafeHubDataError, match=r"'\.\.' part"):
            manager.enqueue(plan)
        assert manager.jobs() == []
    assert core.database.fetch_all("SELECT * FROM download_jobs") == []
    assert core.database.fetch_all("SELECT * FROM download_files") == []
    world.assert_queue_works()


# -- 6. links planted in a shared cache ---------------------------------------------------------


def plant(kind: str, at: Path, victim: Path) -> None:
    at.parent.mkdir(parents=True, exist_ok=True)
    if kind == "symlink":
        victim.write_bytes(b"precious")
        at.symlink_to(victim)
    elif kind == "dangling-symlink":
        at.symlink_to(victim)  # O_CREAT through it would create the victim
    elif kind == "hardlink":
        victim.write_bytes(b"precious")
        os.link(victim, at)
    elif kind == "fifo":
        os.mkfifo(at)  # opening it for writing would block forever
    else:
        raise AssertionError(kind)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX links and FIFOs")
@pytest.mark.parametrize("kind", ["symlink", "dangling-symlink", "hardlink", "fifo"])
def test_a_planted_incomplete_file_is_never_written_through(world: World, kind: str) -> None:
    victim = world.tmp / "victim" / "secret.txt"
    victim.parent.mkdir()
    plant(kind, world.evil_folder / "blobs" / f"{MODEL_SHA}.incomplete", victim)

    result = world.pull("org/evil", "*.gguf")

    assert result.code == pull.EXIT_ERROR
    assert "link or not a plain file" in result.error, result.error
    if kind == "dangling-symlink":
        assert not os.path.lexists(victim)
    elif kind != "fifo":
        assert victim.read_bytes() == b"precious"
    assert not (world.evil_folder / "blobs" / MODEL_SHA).exists()
    world.assert_queue_works()


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="symlinks")
@pytest.mark.parametrize(
    "folder",
    [
        "models--org--evil/blobs",
        "models--org--evil/snapshots/{sha}",
        "models--org--evil/snapshots",
        ".locks/models--org--evil",
    ],
)
def test_a_folder_of_the_repo_linked_elsewhere_is_refused(world: World, folder: str) -> None:
    elsewhere = world.tmp / "victim"
    elsewhere.mkdir()
    link = world.cache / folder.format(sha=world.evil)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(elsewhere, target_is_directory=True)

    result = world.pull("org/evil")

    assert result.code == pull.EXIT_ERROR
    assert "leads outside" in result.error, result.error
    assert list(elsewhere.rglob("*")) == []
    world.assert_queue_works()


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="symlinks")
@pytest.mark.parametrize("where", ["blob", "pointer", "ref"])
def test_a_link_planted_at_a_blob_pointer_or_ref_is_replaced_not_followed(
    world: World, where: str
) -> None:
    victim = world.tmp / "victim.gguf"
    victim.write_bytes(b"attacker's bytes")
    repo = world.evil_folder
    pointer = repo / "snapshots" / world.evil / "evil-Q4_K_M.gguf"
    at = {"blob": repo / "blobs" / MODEL_SHA, "pointer": pointer, "ref": repo / "refs" / "main"}
    at[where].parent.mkdir(parents=True)
    at[where].symlink_to(victim)

    result = world.pull("org/evil", "*.gguf")

    assert result.code == pull.EXIT_OK, result.events
    assert victim.read_bytes() == b"attacker's bytes"
    assert not (repo / "blobs" / MODEL_SHA).is_symlink()
    assert (repo / "blobs" / MODEL_SHA).read_bytes() == MODEL
    assert os.path.realpath(pointer) == os.path.realpath(repo / "blobs" / MODEL_SHA)
    assert (repo / "refs" / "main").read_text() == world.evil
    assert not (repo / "refs" / "main").is_symlink()


# -- helpers ------------------------------------------------------------------------------------


def true_model_info(hub: HubServer, repo_id: str) -> object:
    """The fake hub's true JSON for a repo, to serve back where it lies (an `Answer` fault)."""
    answer = httpx2.get(f"{hub.url}/api/models/{repo_id}", params={"blobs": "true"})
    answer.raise_for_status()
    return answer.json()
