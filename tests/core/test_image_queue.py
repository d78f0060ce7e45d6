"""The image queue with the real engine: jobs run in order, move, cancel, repeat with a new
seed, fill with variations, and survive a kill -9 of the app that ran them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.core import Core
from app.images import ImageEngine, ImageParams, ModelRef, read_metadata
from app.images.job import ImageJob, JobPhase
from app.images.queue import ImageQueue, QueueError, QueueState
from app.store import Database
from tests.support.cli_process import cli_environment
from tests.support.diffusers_builder import TinyModels

pytestmark = pytest.mark.slow

TIMEOUT_S = 180.0


def params(seed: int | None = None, **changes: object) -> ImageParams:
    values: dict[str, object] = {"prompt": "a red fox", "steps": 2, "width": 64, "height": 64}
    return ImageParams(**(values | changes), seed=seed)  # type: ignore[arg-type]


@pytest.fixture
def core(hf_home: Path, data_dir: Path) -> Iterator[Core]:
    core = Core.open()
    yield core
    core.close()


@pytest.fixture
def queue(core: Core, image_engine: ImageEngine) -> Iterator[ImageQueue]:
    queue = ImageQueue(core.database, lambda: image_engine, lambda: core.gallery)
    yield queue
    queue.stop()


def test_jobs_run_in_their_order_and_a_move_changes_it(
    queue: ImageQueue, core: Core, image_models: TinyModels
) -> None:
    model = ModelRef(name="tiny", path=str(image_models.folder))
    first, second, third = (queue.add(model, params(seed)) for seed in (11, 12, 13))
    queue.move(third.id, 0)
    assert [job.id for job in queue.jobs()] == [third.id, first.id, second.id]
    changes: list[None] = []
    queue._on_change = lambda: changes.append(None)
    queue.start()
    assert queue.wait_idle(TIMEOUT_S)
    jobs = queue.jobs()
    assert [job.state for job in jobs] == [QueueState.DONE] * 3
    assert [job.params.seed for job in jobs] == [13, 11, 12]
    finished = [job.finished_at or "" for job in jobs]
    assert finished == sorted(finished)  # they ran in the order shown
    for job in jobs:
        (path,) = job.images
        metadata = read_metadata(path)
        assert metadata is not None and metadata.params.seed == job.params.seed
    assert core.gallery.count() == 3
    assert queue.progress() == (3, 3)
    assert changes  # each change was reported


def test_cancel_repeat_and_variations(queue: ImageQueue, image_models: TinyModels) -> None:
    model = ModelRef(name="tiny", path=str(image_models.folder))
    kept = queue.add(model, params(5, guidance=4.0))
    dropped = queue.add(model, params(6))
    queue.cancel(dropped.id)
    again = queue.repeat(kept.id)
    assert again.params.seed != kept.params.seed and again.params.seed is not None
    assert again.params.guidance == 4.0
    variations = queue.add_variations(model, params(1), 3)
    assert len({job.params.seed for job in variations}) == 3  # each a new seed, recorded
    with pytest.raises(ValueError, match="between 1 and 100"):
        queue.add_variations(model, params(), 0)
    queue.start()
    assert queue.wait_idle(TIMEOUT_S)
    states = {job.id: job.state for job in queue.jobs()}
    assert states.pop(dropped.id) is QueueState.CANCELLED
    assert set(states.values()) == {QueueState.DONE}
    assert not queue.job(dropped.id).images
    with pytest.raises(QueueError, match="cannot move"):
        queue.move(kept.id, 0)
    queue.clear_finished()
    assert queue.jobs() == []


def test_a_job_that_fails_says_why_and_the_queue_goes_on(
    queue: ImageQueue, image_models: TinyModels, tmp_path: Path
) -> None:
    missing = ModelRef(name="gone", path=str(tmp_path / "gone"))
    failed = queue.add(missing, params(1))
    done = queue.add(ModelRef(name="tiny", path=str(image_models.folder)), params(2))
    queue.start()
    assert queue.wait_idle(TIMEOUT_S)
    assert queue.job(failed.id).state is QueueState.FAILED
    assert "does not exist" in (queue.job(failed.id).error or "")
    assert queue.job(done.id).state is QueueState.DONE


def test_a_watched_job_gives_its_image_job_and_a_cancel_before_it_runs_ends_it(
    queue: ImageQueue, image_models: TinyModels, tmp_path: Path
) -> None:
    model = ModelRef(name="tiny", path=str(image_models.folder))
    ahead = queue.add(model, params(1))
    watched = queue.add(model, params(2), watch=True)
    waiting = queue.add(model, params(3), watch=True)
    unwatched = queue.add(model, params(4))
    assert queue.watched(watched.id) is None  # not started: the queue was not started
    assert queue.watched(unwatched.id) is None
    assert queue.cancel(waiting.id) is QueueState.QUEUED  # it never ran
    queue.start()
    assert queue.wait_idle(TIMEOUT_S)
    job = queue.watched(watched.id)
    assert isinstance(job, ImageJob)  # kept after it ended, for a page that polls late
    assert job.snapshot().phase is JobPhase.DONE
    assert [image.path for image in job.snapshot().images] == list(queue.job(watched.id).images)
    assert queue.watched(waiting.id) is None and queue.job(waiting.id).state is (
        QueueState.CANCELLED
    )
    assert queue.job(ahead.id).state is QueueState.DONE
    queue.unwatch(watched.id)
    assert queue.watched(watched.id) is None

    # A running job cancelled through the queue ends CANCELLED; a watched job whose engine
    # cannot be had says why.
    long = queue.add(model, params(5, steps=500), watch=True)
    deadline = time.monotonic() + TIMEOUT_S
    while not isinstance(started := queue.watched(long.id), ImageJob) or not (
        started.snapshot().steps_seen
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert queue.cancel(long.id) is QueueState.RUNNING
    assert queue.wait_idle(TIMEOUT_S)
    assert queue.job(long.id).state is QueueState.CANCELLED

    def no_engine() -> ImageEngine:
        raise OSError("no engine here")

    queue._engine = no_engine
    broken = queue.add(model, params(6), watch=True)
    assert queue.wait_idle(TIMEOUT_S)
    error = queue.watched(broken.id)
    assert isinstance(error, OSError) and "no engine here" in str(error)
    assert queue.job(broken.id).state is QueueState.FAILED


def _kill_the_app_once(
    script: str,
    image_models: TinyModels,
    data_dir: Path,
    hf_home: Path,
    ready: Callable[[Database], bool],
) -> None:
    """Run `script` as the app would (its own process and data folder), read the database as
    it is until `ready` (opening an ImageQueue would take the running job back), then kill the
    app with SIGKILL: no handler, no cleanup. Fails with the app's stderr if never ready."""
    log = data_dir.parent / "child.log"
    with log.open("wb") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-c", script, str(image_models.folder)],
            env=cli_environment(data_dir, hf_home),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + TIMEOUT_S
        seen = False
        while not seen and time.monotonic() < deadline and child.poll() is None:
            core = Core.open()
            try:
                seen = ready(core.database)
            finally:
                core.close()
            if not seen:
                time.sleep(0.1)
        assert seen, log.read_text(errors="replace")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)


_CHILD = """
import sys, time
from app.core import Core
from app.images.params import ImageParams, ModelRef
from app.images.queue import ImageQueue

core = Core.open()
queue = ImageQueue(core.database, lambda: core.images, lambda: core.gallery)
model = ModelRef(name="tiny", path=sys.argv[1])
for seed in (21, 22, 23):
    queue.add(model, ImageParams(prompt="a fox", steps=4, width=64, height=64, seed=seed))
queue.start()
time.sleep(600)
"""


def test_the_queue_survives_a_kill_of_the_app_and_finishes_after_a_start(
    hf_home: Path, data_dir: Path, image_models: TinyModels, image_engine: ImageEngine
) -> None:
    def running(database: Database) -> bool:
        rows = database.fetch_all("SELECT state FROM image_queue")
        return QueueState.RUNNING in [QueueState(state) for (state,) in rows]

    _kill_the_app_once(_CHILD, image_models, data_dir, hf_home, running)
    core = Core.open()
    try:
        queue = ImageQueue(core.database, lambda: image_engine, lambda: core.gallery)
        assert QueueState.RUNNING not in {job.state for job in queue.jobs()}  # back in line
        queue.start()
        assert queue.wait_idle(TIMEOUT_S)
        jobs = queue.jobs()
        queue.stop()
        assert [job.state for job in jobs] == [QueueState.DONE] * 3
        assert [job.params.seed for job in jobs] == [21, 22, 23]
        assert all(len(job.images) == 1 and job.images[0].is_file() for job in jobs)
    finally:
        core.close()


_BATCH_CHILD = """
import sys, time
from app.core import Core
from app.images.params import ImageParams, ModelRef
from app.images.queue import ImageQueue

core = Core.open()
queue = ImageQueue(core.database, lambda: core.images, lambda: core.gallery)
model = ModelRef(name="tiny", path=sys.argv[1])
queue.add(model, ImageParams(prompt="a fox", steps=40, width=64, height=64, seed=31, batch=3))
queue.start()
time.sleep(600)
"""


def test_a_batch_cut_off_by_a_kill_makes_only_the_rest_after_a_start(
    hf_home: Path, data_dir: Path, image_models: TinyModels, image_engine: ImageEngine
) -> None:
    def some_made(database: Database) -> bool:
        row = database.fetch_one("SELECT state, images FROM image_queue")
        return row is not None and row[0] == QueueState.RUNNING.value and bool(json.loads(row[1]))

    _kill_the_app_once(_BATCH_CHILD, image_models, data_dir, hf_home, some_made)
    core = Core.open()
    try:
        queue = ImageQueue(core.database, lambda: image_engine, lambda: core.gallery)
        (cut,) = queue.jobs()
        assert cut.state is QueueState.QUEUED and 1 <= len(cut.images) < 3
        queue.start()
        assert queue.wait_idle(TIMEOUT_S)
        (job,) = queue.jobs()
        queue.stop()
        assert job.state is QueueState.DONE, job.error
        assert job.images[: len(cut.images)] == cut.images  # kept, not made again
        assert len(job.images) == 3 and all(path.is_file() for path in job.images)
        seeds = []
        for path in job.images:
            metadata = read_metadata(path)
            assert metadata is not None
            seeds.append(metadata.params.seed)
        assert seeds == [31, 32, 33]  # the seeds the whole batch would have had
        assert core.gallery.count() == 3
    finally:
        core.close()
