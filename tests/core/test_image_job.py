"""`ImageJob` with the real image engine (a tiny diffusers pipeline in a real child process).

The job is the workflow the Images page and `modeldeck image` share: start the engine, load
the model unless it is loaded, generate, index each image in the gallery; cancel between steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.engines.errors import EngineErrorKind
from app.images import (
    GeneratedImage,
    ImageEngine,
    ImageEngineError,
    ImageParams,
    ModelLoading,
    ModelRef,
    PipelineLoaded,
    StepProgress,
)
from app.images.gallery import Gallery
from app.images.job import EngineStarting, Generating, ImageJob, JobPhase, JobUpdate
from app.store import Database
from tests.support.diffusers_builder import TinyModels

pytestmark = pytest.mark.slow

TIMEOUT = 120.0  # a whole job on a busy 2-core machine; a stuck engine fails the test


@pytest.fixture
def gallery(database: Database, tmp_path: Path) -> Gallery:
    return Gallery(database, folder=tmp_path / "images")


def params(**changes: Any) -> ImageParams:
    values: dict[str, Any] = {"prompt": "a red fox", "steps": 2, "width": 64, "height": 64}
    return ImageParams(**(values | changes))


def tiny(image_models: TinyModels) -> ModelRef:
    return ModelRef(name="tiny", path=str(image_models.folder))


def test_a_job_loads_the_model_generates_and_indexes_each_image(
    image_engine: ImageEngine, image_models: TinyModels, gallery: Gallery
) -> None:
    image_engine.unload().wait(TIMEOUT)  # the job has to load it
    updates: list[JobUpdate] = []
    job = ImageJob(
        image_engine,
        gallery,
        tiny(image_models),
        params(seed=11, batch=2, width=128, height=128),
        size_follows_model=True,
        on_update=updates.append,
    )
    snapshot = job.start().wait(TIMEOUT)

    assert snapshot.phase is JobPhase.DONE, snapshot.error
    assert job.done and job.handle is None
    loaded = snapshot.loaded
    assert loaded is not None and loaded.pipeline == "StableDiffusionPipeline"
    assert snapshot.params is not None
    # Nobody chose a size: the model's own replaced the one asked for.
    assert (snapshot.params.width, snapshot.params.height) == loaded.default_size
    assert snapshot.params.model is not None and snapshot.params.model.path == str(
        image_models.folder
    )

    kinds = [type(update) for update in updates]
    assert kinds[:3] == [ModelLoading, PipelineLoaded, Generating]
    assert EngineStarting not in kinds  # it was running already
    assert kinds.count(StepProgress) == 4 and kinds.count(GeneratedImage) == 2
    assert snapshot.steps_seen == 4 and snapshot.step is not None
    assert snapshot.step.fraction == 1.0

    assert snapshot.result is not None and snapshot.result.images == snapshot.images
    assert [image.seed for image in snapshot.images] == [11, 12]
    assert [row.path for row in snapshot.indexed] == [image.path for image in snapshot.images]
    assert gallery.count() == 2
    assert all(row.thumbnail is not None and row.thumbnail.is_file() for row in snapshot.indexed)
    assert all(image.path.is_relative_to(gallery.folder) for image in snapshot.images)
    assert snapshot.seconds == snapshot.result.seconds > 0


def test_a_loaded_model_is_used_as_it_is_and_out_skips_the_gallery(
    image_engine: ImageEngine, image_models: TinyModels, gallery: Gallery, tmp_path: Path
) -> None:
    ImageJob(image_engine, gallery, tiny(image_models), params()).start().wait(
        TIMEOUT
    )  # loaded now
    updates: list[JobUpdate] = []
    target = tmp_path / "fox.png"
    job = ImageJob(
        image_engine,
        gallery,
        tiny(image_models),
        params(seed=3),
        out=target,
        on_update=updates.append,
    )
    snapshot = job.start().wait(TIMEOUT)

    assert snapshot.phase is JobPhase.DONE, snapshot.error
    assert snapshot.loaded is None
    assert not any(isinstance(update, ModelLoading | PipelineLoaded) for update in updates)
    assert [image.path for image in snapshot.images] == [target]
    assert target.is_file()
    assert snapshot.indexed == ()
    assert gallery.count() == 1  # the first job's image only


def test_cancel_keeps_finished_images_and_indexes_nothing_half_made(
    image_engine: ImageEngine, image_models: TinyModels, gallery: Gallery
) -> None:
    job: ImageJob

    def cancel_in_the_second_image(update: JobUpdate) -> None:
        if isinstance(update, StepProgress) and update.image == 1:
            job.cancel()

    job = ImageJob(
        image_engine,
        gallery,
        tiny(image_models),
        params(steps=50, batch=2),
        on_update=cancel_in_the_second_image,
    )
    snapshot = job.start().wait(TIMEOUT)

    assert snapshot.phase is JobPhase.CANCELLED
    assert job.cancelled and snapshot.error is None
    assert snapshot.step is not None and snapshot.step.image == 1
    assert snapshot.step.step < 50
    (kept,) = snapshot.images
    assert [row.path for row in snapshot.indexed] == [kept.path]
    assert gallery.count() == 1
    assert sorted(gallery.folder.rglob("*.png")) == [kept.path]


def test_cancel_before_the_engine_is_asked_ends_at_once(
    image_engine: ImageEngine, image_models: TinyModels, gallery: Gallery
) -> None:
    job = ImageJob(
        image_engine, gallery, ModelRef(name="other", path=str(image_models.single_file)), params()
    )
    job.cancel()
    snapshot = job.start().wait(TIMEOUT)
    assert snapshot.phase is JobPhase.CANCELLED
    assert snapshot.params is None and snapshot.images == ()
    assert image_engine.model is None or image_engine.model.path != str(
        image_models.single_file
    )  # not loaded


def test_a_model_that_cannot_load_ends_the_job_with_the_reason(
    image_engine: ImageEngine, image_models: TinyModels, gallery: Gallery, tmp_path: Path
) -> None:
    missing = ModelRef(name="missing", path=str(tmp_path / "nothing-here"))
    snapshot = ImageJob(image_engine, gallery, missing, params()).start().wait(TIMEOUT)
    assert snapshot.phase is JobPhase.ERROR
    error = snapshot.error
    assert isinstance(error, ImageEngineError)
    assert error.kind is EngineErrorKind.NOT_FOUND
    assert error.meaning == "the model is not there"
    assert "does not exist" in error.message
    assert snapshot.params is None and gallery.count() == 0
