"""The download manager against the fake hub: the HF cache layout, every network fault, the disk.

The real huggingface_hub reads what the manager wrote (scan_cache_dir, hf_hub_download with
local_files_only, try_to_load_from_cache), so "standard layout" is checked by the library that
defines it. Faults come from the fake hub; retries and stalls are shortened to milliseconds.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpcore2
import httpx2
import pytest
from huggingface_hub import hf_hub_download, scan_cache_dir, try_to_load_from_cache

from app.downloads import (
    DownloadManager,
    DownloadPlan,
    ErrorKind,
    FileState,
    JobState,
    JobStatus,
    RetryPolicy,
    fetch_file,
    plan_files,
)
from app.downloads import transfer as transfer_module
from app.downloads.cache import CachedFile
from app.downloads.speed import SpeedMeter
from app.downloads.transfer import StopSignal
from app.errors import IntegrityError
from app.hub.huggingface import HuggingFaceHub
from app.store import Database
from tests.support.hub_server import (
    DropAfter,
    Fault,
    FlipByte,
    HubServer,
    Stall,
    Status,
)
from tests.support.waiting import wait_until

FAST = RetryPolicy(delays=(0.05, 0.1, 0.2), attempts=4, stall_seconds=0.5)
PLENTY = 1 << 40  # free bytes, as far as the manager can tell
MODEL = os.urandom(1_000_000)  # an LFS file, served through the CDN origin
CONFIG = b'{"model_type": "llama", "hidden_size": 64}'
CDN_GET = r"^/lfs/"

ManagerFactory = Callable[..., DownloadManager]


@pytest.fixture
def cache_dir(hf_home: Path) -> Path:
    return hf_home / "hub"


@pytest.fixture
def repo(hub_server: HubServer) -> str:
    """org/tiny: one GGUF (LFS, 1 MB) and a config (a regular git file); returns the commit."""
    return hub_server.add_repo(
        "org/tiny", {"tiny-Q4_K_M.gguf": MODEL, "config.json": CONFIG}, card="# Tiny\n"
    )


@pytest.fixture
def new_manager(
    database: Database, hub_server: HubServer, cache_dir: Path
) -> Iterator[ManagerFactory]:
    """Makes managers on the test's database and hub (fast retries); shuts them down after."""
    made: list[DownloadManager] = []
    endpoint = hub_server.url  # known even after a test stops the server

    def make(**options: Any) -> DownloadManager:
        settings: dict[str, Any] = {
            "endpoint": endpoint,
            "cache_dir": cache_dir,
            "retry": FAST,
            "offline_wait": 0.2,
            "free_space": lambda _path: PLENTY,
            "database": database,
        }
        settings.update(options)
        manager = DownloadManager(settings.pop("database"), **settings)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.shutdown(timeout=5)


def plan_for(hub_server: HubServer, repo_id: str, *patterns: str) -> DownloadPlan:
    return plan_files(HuggingFaceHub(endpoint=hub_server.url).model_details(repo_id), patterns)


def run_to_end(manager: DownloadManager, plan: DownloadPlan, timeout: float = 20) -> JobStatus:
    job_id = manager.enqueue(plan)
    status = manager.wait(job_id, timeout=timeout)
    assert status.state.is_final or status.state is JobState.PAUSED, status
    return status


def wait_for(
    manager: DownloadManager, job_id: int, test: Callable[[JobStatus], bool], timeout: float = 10
) -> JobStatus:
    """Poll `jobs()` like the UI does, until `test` holds."""

    def status() -> JobStatus:
        return next(s for s in manager.jobs() if s.id == job_id)

    def matching() -> JobStatus | None:
        current = status()
        return current if test(current) else None

    return wait_until(
        matching,
        timeout=timeout,
        message=lambda: f"last status: {status()}",
    )


def blob(cache_dir: Path, repo_id: str, etag: str) -> Path:
    return cache_dir / f"models--{repo_id.replace('/', '--')}" / "blobs" / etag


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


MODEL_SHA = hashlib.sha256(MODEL).hexdigest()


# -- the cache layout ---------------------------------------------------------------------------


def test_a_download_lands_in_the_standard_hf_cache(
    hub_server: HubServer, repo: str, new_manager: ManagerFactory, cache_dir: Path
) -> None:
    manager = new_manager()
    manager.start()
    status = run_to_end(manager, plan_for(hub_server, "org/tiny"))

    assert status.state is JobState.COMPLETED
    assert status.error is None and status.error_kind is None
    assert status.bytes_done == status.total == len(MODEL) + len(CONFIG) + len("# Tiny\n")
    assert {f.state for f in status.files} == {FileState.DONE}

    # huggingface_hub's own scanner sees one repo, one revision, every file, refs/main.
    info = scan_cache_dir(cache_dir)
    assert info.warnings == []
    (cached,) = info.repos
    assert cached.repo_id == "org/tiny"
    (revision,) = cached.revisions
    assert revision.commit_hash == repo
    assert revision.refs == frozenset({"main"})
    assert {f.file_name for f in revision.files} == {"tiny-Q4_K_M.gguf", "config.json", "README.md"}
    assert not info.incomplete_files

    # ... and its download functions find the files without the network.
    path = hf_hub_download(
        "org/tiny", "tiny-Q4_K_M.gguf", revision=repo, cache_dir=cache_dir, local_files_only=True
    )
    assert Path(path).read_bytes() == MODEL
    config = try_to_load_from_cache("org/tiny", "config.json", cache_dir=cache_dir)
    assert isinstance(config, str) and Path(config).read_bytes() == CONFIG

    pointer = cache_dir / "models--org--tiny" / "snapshots" / repo / "tiny-Q4_K_M.gguf"
    assert os.readlink(pointer) == f"../../blobs/{MODEL_SHA}"  # relative, like huggingface_hub


def test_files_already_in_the_cache_are_not_downloaded_again(
    hub_server: HubServer, repo: str, new_manager: ManagerFactory, cache_dir: Path
) -> None:
    # Fetched by huggingface_hub itself: the manager must recognise its blobs.
    hf_hub_download("org/tiny", "tiny-Q4_K_M.gguf", endpoint=hub_server.url, cache_dir=cache_dir)
    hub_server.clear_requests()
    manager = new_manager()
    manager.start()

    status = run_to_end(manager, plan_for(hub_server, "org/tiny", "*.gguf", "config.json"))

    assert status.state is JobState.COMPLETED
    downloads = [r.path for r in hub_server.requests if "/resolve/" in r.path or "/lfs/" in r.path]
    assert downloads == [f"/org/tiny/resolve/{repo}/config.json"]


# -- network faults -----------------------------------------------------------------------------


def test_a_dropped_connection_resumes_with_a_range_request(
    hub_server: HubServer, repo: str, new_manager: ManagerFactory, cache_dir: Path
) -> None:
    hub_server.inject(Fault(DropAfter(300_000), path=CDN_GET, method="GET"))
    manager = new_manager()
    manager.start()

    status = run_to_end(manager, plan_for(hub_server, "org/tiny", "*.gguf"))

    assert status.state is JobState.COMPLETED
    first, second = hub_server.requests_to(CDN_GET, "GET")
    assert first.range is None and first.fault == DropAfter(300_000)
    assert second.range == "bytes=300000-" and second.status == 206
    assert sha256_of(blob(cache_dir, "org/tiny", MODEL_SHA)) == MODEL_SHA


def test_a_server_error_is_retried(
    hub_server: HubServer, repo: str, new_manager: ManagerFactory
) -> None:
    hub_server.inject(Fault(Status(500), path=r"/resolve/.*\.gguf$", method="GET"))
    manager = new_manager()
    manager.start()

    status = run_to_end(manager, plan_for(hub_server, "org/tiny", "*.gguf"))

    assert status.state is JobState.COMPLETED
    assert [r.status for r in hub_server.requests_to(r"/resolve/", "GET")] == [500, 302]


def test_rate_limiting_honours_retry_after(
    hub_server: HubServer, repo: str, new_manager: ManagerFactory
) -> None:
    hub_server.inject(Fault(Status(429, retry_after=1), path=r"/resolve/", method="GET"))
    manager = new_manager()  # its own backoff is 0.05 s: a wait of 1 s is the Retry-After
    manager.start()

    started = time.monotonic()
    status = run_to_end(manager, plan_for(hub_server, "org/tiny", "*.gguf"))

    assert status.state is JobState.COMPLETED
    assert time.monotonic() - started >= 1.0
    assert [r.status for r in hub_server.requests_to(r"/resolve/", "GET")] == [429, 302]


def test_a_stalled_transfer_is_dropped_and_reopened(
    hub_server: HubServer, repo: str, new_manager: ManagerFactory
) -> None:
    hub_server.inject(Fault(Stall(20), path=CDN_GET, method="GET"))
    manager = new_manager()  # stall_seconds=0.5
    manager.start()

    started = time.monotonic()
    status = run_to_end(manager, plan_for(hub_server, "org/tiny", "*.gguf"))

    assert status.state is JobState.COMPLETED
    assert time.monotonic() - started < 10  # not the 20 s the server would have stalled
    # Asked twice; the stalled CDN request is logged only when the server's stall ends.
    assert len(hub_server.requests_to(r"/resolve/.*\.gguf$", "GET")) == 2


def test_a_corrupted_file_is_downloaded_again_once(
    hub_server: HubServer, repo: str, new_manager: ManagerFactory, cache_dir: Path
) -> None:
    hub_server.inject(Fault(FlipByte(123_456), path=CDN_GET, method="GET"))
    manager = new_manager()
    manager.start()

    status = run_to_end(manager, plan_for(hub_server, "org/tiny", "*.gguf"))

    assert status.state is JobState.COMPLETED
    first, second = hub_server.requests_to(CDN_GET, "GET")
    assert first.fault == FlipByte(123_456)
    assert second.range is None  # the bad bytes were thrown away, not resumed
    assert sha256_of(blob(cache_dir, "org/tiny", MODEL_SHA)) == MODEL_SHA


def test_a_file_corrupted_twice_fails_and_leaves_nothing_in_the_cache(
    hub_server: HubServer, repo: str, new_manager: ManagerFactory, cache_dir: Path
) -> None:
    hub_server.inject(Fault(FlipByte(10), path=CDN_GET, method="GET", times=2))
    manager = new_manager()
    manager.start()

    status = run_to_end(manager, plan_for(hub_server, "org/tiny", "*.gguf"))

    assert status.state is JobState.FAILED
    assert status.error_kind is ErrorKind.INTEGRITY
    assert status.error is not None and "sha256 mismatch twice" in status.error
    assert status.files[0].state is FileState.FAILED
    folder = cache_dir / "models--org--tiny"
    assert list((folder / "blobs").iterdir()) == []
    assert not (folder / "snapshots").exists() or not any((folder / "snapshots").rglob("*.gguf"))


def test_fetch_file_raises_integrity_error_for_a_corrupted_regular_file(
    hub_server: HubServer, repo: str, cache_dir: Path
) -> None:
    (config,) = plan_for(hub_server, "org/tiny", "config.json").files
    hub_server.inject(Fault(FlipByte(3), path=r"config\.json$", method="GET", times=2))
    target = CachedFile(
        cache_dir=cache_dir, repo_id="org/tiny", revision=repo, path="config.json", etag=config.etag
    )

    with pytest.raises(IntegrityError, match="sha256 mismatch twice"):
        fetch_file(
            target,
            config,
            endpoint=hub_server.url,
            token=None,
            policy=FAST,
            stop=StopSignal(),
            on_progress=lambda _done: None,
        )
    assert not target.blob.exists() and not target.partial.exists() and not target.pointer.exists()


def test_a_hub_that_is_gone_makes_the_job_wait_and_retry(
    hub_server: HubServer, repo: str, new_manager: ManagerFactory, tmp_path: Path
) -> None:
    plan = plan_for(hub_server, "org/tiny", "*.gguf")
    port = int(hub_server.url.rsplit(":", 1)[1])
    hub_server.stop()
    manager = new_manager(offline_wait=0.2)
    manager.start()
    job_id = manager.enqueue(plan)

    waiting = wait_for(manager, job_id, lambda s: s.state is JobState.WAITING)
    assert waiting.error_kind is ErrorKind.OFFLINE
    assert waiting.error is not None and waiting.error.startswith("Cannot reach 127.0.0.1")

    with HubServer(tmp_path / "hub-again", port=port) as again:
        again.add_repo(
            "org/tiny", {"tiny-Q4_K_M.gguf": MODEL, "config.json": CONFIG}, card="# Tiny\n"
        )
        status = manager.wait(job_id, timeout=20)
    assert status.state is JobState.COMPLETED
    assert status.error is None


def test_without_offline_waiting_an_unreachable_hub_fails_the_job(
    hub_server: HubServer, repo: str, new_manager: ManagerFactory
) -> None:
    plan = plan_for(hub_server, "org/tiny", "*.gguf")
    hub_server.stop()
    manager = new_manager(offline_wait=None)
    manager.start()

    status = run_to_end(manager, plan)

    assert status.state is JobState.FAILED
    assert status.error_kind is ErrorKind.OFFLINE
    assert status.files[0].state is FileState.PENDING  # nothing wrong with the file itself


# -- gated repositories -------------------------------------------------------------------------


def test_a_gated_repo_without_access_fails_with_the_page_to_accept_its_terms(
    hub_server: HubServer, new_manager: ManagerFactory
) -> None:
    hub_server.add_repo("org/gated", {"model.gguf": MODEL}, gated="manual")
    manager = new_manager()
    manager.start()

    status = run_to_end(manager, plan_for(hub_server, "org/gated"))

    assert status.state is JobState.FAILED
    assert status.error_kind is ErrorKind.GATED
    assert status.error is not None and f"{hub_server.url}/org/gated" in status.error
    assert "add your token" in status.error


def test_a_granted_token_downloads_a_gated_repo_and_stays_on_the_hub(
    hub_server: HubServer, new_manager: ManagerFactory, cache_dir: Path
) -> None:
    hub_server.add_repo("org/gated", {"model.gguf": MODEL}, gated="auto")
    hub_server.grant("org/gated", "hf_granted_token")
    manager = new_manager(token="hf_granted_token")
    manager.start()

    status = run_to_end(manager, plan_for(hub_server, "org/gated"))

    assert status.state is JobState.COMPLETED, status.error
    (resolve,) = hub_server.requests_to(r"/resolve/", "GET")
    assert resolve.authorization == "Bearer hf_granted_token"
    (cdn,) = hub_server.requests_to(CDN_GET, "GET")
    assert cdn.authorization is None  # the token never leaves the hub
    assert sha256_of(blob(cache_dir, "org/gated", MODEL_SHA)) == MODEL_SHA


# -- the disk -----------------------------------------------------------------------------------


def test_too_little_free_space_fails_before_downloading_and_keeps_the_partial(
    hub_server: HubServer, repo: str, new_manager: ManagerFactory, cache_dir: Path
) -> None:
    plan = plan_for(hub_server, "org/tiny", "*.gguf")
    partial = blob(cache_dir, "org/tiny", MODEL_SHA).with_suffix(".incomplete")
    partial.parent.mkdir(parents=True)
    partial.write_bytes(MODEL[:400_000])  # what an earlier run got
    free = {"bytes": 1_000}
    manager = new_manager(free_space=lambda _path: free["bytes"])
    manager.start()

    status = run_to_end(manager, plan)

    assert status.state is JobState.FAILED
    assert status.error_kind is ErrorKind.DISK_FULL
    assert (
        status.error is not None
        and "600 kB more" in status.error
        and "1 kB is free" in status.error
    )
    assert status.bytes_done == 400_000
    assert partial.read_bytes() == MODEL[:400_000]
    assert hub_server.requests_to(CDN_GET) == []

    free["bytes"] = PLENTY
    assert manager.retry(status.id)
    status = manager.wait(status.id, timeout=20)
    assert status.state is JobState.COMPLETED
    (get,) = hub_server.requests_to(CDN_GET, "GET")
    assert get.range == "bytes=400000-"


class _FullDisk(io.FileIO):
    """A partial file on a disk with room for `room` more bytes."""

    room = 250_000

    def write(self, data: Any) -> int:
        size = len(data)
        if size > _FullDisk.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        _FullDisk.room -= size
        return super().write(data)


def test_a_disk_that_fills_up_while_writing_keeps_the_partial(
    hub_server: HubServer,
    repo: str,
    new_manager: ManagerFactory,
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transfer_module, "_open_partial", lambda path: _FullDisk(path, "ab"))
    manager = new_manager()
    manager.start()

    status = run_to_end(manager, plan_for(hub_server, "org/tiny", "*.gguf"))

    assert status.state is JobState.FAILED
    assert status.error_kind is ErrorKind.DISK_FULL
    assert status.error is not None and status.error.startswith("The disk is full")
    partial = blob(cache_dir, "org/tiny", MODEL_SHA).with_suffix(".incomplete")
    kept = partial.stat().st_size
    assert 0 < kept <= 250_000
    assert status.files[0].state is FileState.PENDING

    monkeypatch.undo()
    assert manager.retry(status.id)
    assert manager.wait(status.id, timeout=20).state is JobState.COMPLETED
    assert hub_server.requests_to(CDN_GET, "GET")[-1].range == f"bytes={kept}-"
    assert sha256_of(blob(cache_dir, "org/tiny", MODEL_SHA)) == MODEL_SHA


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs (needs root; skipped elsewhere)."""
    mount_point = tmp_path / "tiny-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_real_full_disk_fails_with_disk_full_and_keeps_the_partial(
    hub_server: HubServer, new_manager: ManagerFactory, tiny_disk: Path
) -> None:
    big = os.urandom(2_000_000)
    hub_server.add_repo("org/big", {"big.gguf": big})
    manager = new_manager(cache_dir=tiny_disk)  # free_space says there is plenty: it lies
    manager.start()

    status = run_to_end(manager, plan_for(hub_server, "org/big"))

    assert status.state is JobState.FAILED
    assert status.error_kind is ErrorKind.DISK_FULL
    partial = blob(tiny_disk, "org/big", hashlib.sha256(big).hexdigest()).with_suffix(".incomplete")
    assert partial.stat().st_size > 0
    assert partial.read_bytes() == big[: partial.stat().st_size]


# -- pause, resume, cancel, retry ---------------------------------------------------------------

# The first GET sends 300 kB and drops; the manager then waits 30 s before it tries again. A
# job in that wait is "running" with bytes on disk: a steady state to pause or cancel in.
SLOW_RETRY = RetryPolicy(delays=(30.0,), attempts=3, stall_seconds=5)


def stuck_after_300_kb(hub_server: HubServer, manager: DownloadManager) -> int:
    hub_server.inject(Fault(DropAfter(300_000), path=CDN_GET, method="GET"))
    manager.start()
    job_id = manager.enqueue(plan_for(hub_server, "org/tiny", "*.gguf"))
    wait_for(manager, job_id, lambda s: s.bytes_done == 300_000)
    return job_id


def test_pause_and_resume_continue_from_the_bytes_on_disk(
    hub_server: HubServer, repo: str, new_manager: ManagerFactory, cache_dir: Path
) -> None:
    manager = new_manager(retry=SLOW_RETRY)
    states: list[JobState] = []
    manager.subscribe(lambda status: states.append(status.state))
    job_id = stuck_after_300_kb(hub_server, manager)

    assert manager.pause(job_id)
    paused = manager.wait(job_id, timeout=5)
    assert paused.state is JobState.PAUSED
    assert paused.bytes_done == 300_000 and paused.speed == 0 and paused.eta is None
    assert not manager.pause(job_id)  # already paused

    assert manager.resume(job_id)
    assert manager.wait(job_id, timeout=20).state is JobState.COMPLETED
    assert hub_server.requests_to(CDN_GET, "GET")[-1].range == "bytes=300000-"
    assert states == [
        JobState.QUEUED,
        JobState.RUNNING,
        JobState.PAUSED,
        JobState.QUEUED,
        JobState.RUNNING,
        JobState.COMPLETED,
    ]
    assert not manager.resume(job_id) and not manager.pause(job_id) and not manager.cancel(job_id)


def test_cancel_is_quiet_and_deletes_the_partial_files(
    hub_server: HubServer, repo: str, new_manager: ManagerFactory, cache_dir: Path
) -> None:
    manager = new_manager(retry=SLOW_RETRY)
    job_id = stuck_after_300_kb(hub_server, manager)
    partial = blob(cache_dir, "org/tiny", MODEL_SHA).with_suffix(".incomplete")
    assert partial.exists()

    assert manager.cancel(job_id)
    status = manager.wait(job_id, timeout=5)
    assert status.state is JobState.CANCELLED
    assert status.error is None and status.error_kind is None
    assert status.bytes_done == 0
    assert not partial.exists()

    assert manager.retry(job_id)  # a cancelled job can be started again, from zero
    assert manager.wait(job_id, timeout=20).state is JobState.COMPLETED
    assert hub_server.requests_to(CDN_GET, "GET")[-1].range is None


def test_a_failed_job_can_be_retried_and_an_unknown_id_is_an_error(
    hub_server: HubServer, repo: str, new_manager: ManagerFactory
) -> None:
    hub_server.inject(Fault(FlipByte(10), path=CDN_GET, method="GET", times=2))
    manager = new_manager()
    manager.start()
    status = run_to_end(manager, plan_for(hub_server, "org/tiny", "*.gguf"))
    assert status.state is JobState.FAILED
    assert not manager.resume(status.id)

    assert manager.retry(status.id)
    done = manager.wait(status.id, timeout=20)
    assert done.state is JobState.COMPLETED and done.error is None
    assert not manager.retry(status.id)
    assert manager.remove(status.id)
    assert manager.jobs() == []
    with pytest.raises(KeyError):
        manager.pause(status.id)


def test_the_same_plan_is_not_queued_twice(
    hub_server: HubServer, repo: str, new_manager: ManagerFactory
) -> None:
    manager = new_manager()
    plan = plan_for(hub_server, "org/tiny", "*.gguf")
    first = manager.enqueue(plan)
    manager.pause(first)
    assert manager.enqueue(plan) == first  # and it is queued again
    assert manager.job(first).state is JobState.QUEUED
    other = manager.enqueue(plan_for(hub_server, "org/tiny", "config.json"))
    assert other != first
    assert [s.id for s in manager.jobs()] == [first, other]


def test_two_jobs_that_share_a_file_download_it_once(
    hub_server: HubServer, repo: str, new_manager: ManagerFactory
) -> None:
    manager = new_manager(concurrency=2)
    first = manager.enqueue(plan_for(hub_server, "org/tiny", "*.gguf"))
    second = manager.enqueue(plan_for(hub_server, "org/tiny"))
    manager.start()

    assert manager.wait(first, timeout=20).state is JobState.COMPLETED
    assert manager.wait(second, timeout=20).state is JobState.COMPLETED
    assert len(hub_server.requests_to(CDN_GET, "GET")) == 1


def test_concurrency_limits_the_jobs_running_at_once(
    hub_server: HubServer, repo: str, new_manager: ManagerFactory
) -> None:
    hub_server.add_repo("org/other", {"other.gguf": MODEL[::-1]})
    hub_server.inject(Fault(DropAfter(100_000), path=CDN_GET, method="GET", times=2))
    manager = new_manager(retry=SLOW_RETRY, concurrency=1)
    manager.start()
    first = manager.enqueue(plan_for(hub_server, "org/tiny", "*.gguf"))
    second = manager.enqueue(plan_for(hub_server, "org/other"))

    wait_for(manager, first, lambda s: s.bytes_done == 100_000)
    assert manager.job(second).state is JobState.QUEUED
    manager.pause(first)  # frees the one slot
    running = wait_for(manager, second, lambda s: s.bytes_done == 100_000)
    assert running.state is JobState.RUNNING


# -- persistence --------------------------------------------------------------------------------


def test_the_queue_survives_a_new_manager_on_the_same_database(
    hub_server: HubServer, repo: str, new_manager: ManagerFactory, database: Database
) -> None:
    first = new_manager()
    done_id = first.enqueue(plan_for(hub_server, "org/tiny", "config.json"))
    first.start()
    assert first.wait(done_id, timeout=20).state is JobState.COMPLETED
    queued_id = first.enqueue(plan_for(hub_server, "org/tiny", "*.gguf"))
    first.shutdown()
    first.pause(queued_id)
    first.resume(queued_id)  # still queued, in the database too

    second = new_manager()
    statuses = {s.id: s for s in second.jobs()}
    assert statuses[done_id].state is JobState.COMPLETED
    assert statuses[done_id].bytes_done == len(CONFIG)
    assert statuses[queued_id].state is JobState.QUEUED
    second.start()
    assert second.wait(queued_id, timeout=20).state is JobState.COMPLETED


def test_a_job_left_running_by_a_dead_process_resumes_from_its_partial_file(
    hub_server: HubServer,
    repo: str,
    new_manager: ManagerFactory,
    database: Database,
    cache_dir: Path,
) -> None:
    job_id = new_manager().enqueue(plan_for(hub_server, "org/tiny", "*.gguf"))
    # What a kill -9 leaves behind: the row says running, and some bytes are on disk.
    database.execute("UPDATE download_jobs SET state = 'running' WHERE id = ?", (job_id,))
    partial = blob(cache_dir, "org/tiny", MODEL_SHA).with_suffix(".incomplete")
    partial.parent.mkdir(parents=True)
    partial.write_bytes(MODEL[:654_321])

    manager = new_manager()
    (status,) = manager.jobs()
    assert status.state is JobState.QUEUED and status.bytes_done == 654_321
    manager.start()

    assert manager.wait(job_id, timeout=20).state is JobState.COMPLETED
    (get,) = hub_server.requests_to(CDN_GET, "GET")
    assert get.range == "bytes=654321-"
    assert sha256_of(blob(cache_dir, "org/tiny", MODEL_SHA)) == MODEL_SHA


def test_speed_is_a_sliding_window_that_falls_to_zero_when_bytes_stop() -> None:
    meter = SpeedMeter(window=5.0)
    assert meter.rate(0.0) == 0.0
    for second in range(4):
        meter.add(float(second), second * 1_000_000)
    assert meter.rate(3.0) == pytest.approx(1_000_000)
    # Nothing arrives: the window slides on (it holds t=1..6 now) and the rate sinks.
    assert meter.rate(6.0) == pytest.approx(2_000_000 / 5)
    assert meter.rate(20.0) == 0.0
    meter.add(21.0, 10)  # fewer bytes than before: the file started again
    meter.add(22.0, 500_010)
    assert meter.rate(22.0) == pytest.approx(500_000)


def test_the_socket_is_read_a_mebibyte_at_a_time() -> None:
    # The throughput fix (README, Benchmarks): httpcore reads 64 kB a time unless widened.
    assert httpcore2.HTTP11Connection.READ_NUM_BYTES >= 1 << 20


@pytest.mark.parametrize("encoding", ["", "identity", "gzip"])
def test_the_body_is_taken_raw_unless_the_server_encoded_it(encoding: str) -> None:
    data = os.urandom(4096)
    sent = gzip.compress(data) if encoding == "gzip" else data
    headers = {"Content-Encoding": encoding} if encoding else {}
    response = httpx2.Response(200, headers=headers, stream=httpx2.ByteStream(sent))
    assert b"".join(transfer_module._body(response)) == data
