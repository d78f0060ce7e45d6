"""Two costs the image features of round two add, each against its baseline in the same run:

1. LoRAs: seconds per image with two LoRAs stacked (the engine fuses them into the weights,
   once, and keeps them) over seconds per image without: two engines, runs alternating
   between them so drift hits both; then one engine turning the LoRAs on and off at each
   image (fusing or taking them out every time). For scale, the same ratio for a bare
   diffusers pipeline with the two adapters left unfused (`set_adapters` only).
2. The queue: each job through `ImageQueue` (saved in SQLite, run by its thread as an
   `ImageJob`, indexed in the gallery, its end saved and reported) against the same
   generation sent straight to the engine, alternating. For each, the time beyond the
   generation (the wall time less each image's own denoising time, from its PNG); the
   difference of the medians is the queue's overhead per job. (A difference of the wall times
   drowns a few ms in the CPU's noise: ±100 ms per image on a shared machine.)

The model is the tests' tiny random pipeline (CPU); the LoRAs are the tests' tiny random ones
(rank 4 on every attention projection).

    .venv/bin/python -m benchmarks.image_loras_queue [--runs 7] [--jobs 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from app.engines.protocol import EventKind
from app.images import ImageEngine, ImageParams, ModelRef
from app.images.loras import LoraRef

PROMPT = "a lighthouse at dusk"


def engine_seconds(engine: ImageEngine, output: Path, params: ImageParams) -> float:
    started = time.perf_counter()
    outcome = engine.generate(params, output_dir=output).wait(300)
    assert outcome.kind is EventKind.RESULT, outcome.payload
    return time.perf_counter() - started


def bare_seconds(pipeline: Any, steps: int, size: int, seed: int) -> float:
    import torch

    started = time.perf_counter()
    pipeline(
        PROMPT,
        num_inference_steps=steps,
        width=size,
        height=size,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    )
    return time.perf_counter() - started


def beyond_generation(started: float, images: list[Path]) -> float:
    """Seconds since `started` beyond the generation itself: the wall time less each image's
    own time (denoising and decoding, as its PNG records it). What is left is the path's:
    saving, thumbnails, messages, the database, threads, waits."""
    from app.images.png_metadata import read_metadata

    wall = time.perf_counter() - started
    generating = 0.0
    for image in images:
        metadata = read_metadata(image)
        assert metadata is not None and metadata.seconds is not None, image
        generating += metadata.seconds
    return wall - generating


def queue_seconds(
    engine: ImageEngine, root: Path, model: ModelRef, jobs: list[ImageParams]
) -> tuple[list[float], list[float]]:
    """Seconds beyond the generation per job sent straight to the engine, and per job through
    the queue (added, saved, run by its thread, indexed with its thumbnail, its end saved and
    reported), alternating. Subtracting each image's own generation time keeps the CPU's
    noise (hundreds of ms on a shared machine) out of a difference of a few ms."""
    import threading
    from dataclasses import replace

    from app.images.engine import generated_images
    from app.images.gallery import Gallery
    from app.images.queue import ImageQueue, QueueState
    from app.store import Database

    database = Database(root / "bench.sqlite3")
    gallery = Gallery(database, folder=root / "gallery")
    changed = threading.Event()
    queue = ImageQueue(database, lambda: engine, lambda: gallery, on_change=changed.set)
    queue.start()
    direct, queued = [], []
    for params in jobs:
        started = time.perf_counter()
        outcome = engine.generate(params, output_dir=root / "direct").wait(300)
        assert outcome.kind is EventKind.RESULT, outcome.payload
        direct.append(
            beyond_generation(started, [image.path for image in generated_images(outcome)])
        )
        started = time.perf_counter()
        job = queue.add(model, replace(params, seed=(params.seed or 0) + 1))
        while (ended := queue.job(job.id)).state is not QueueState.DONE:
            assert ended.waiting, ended.error
            changed.wait(60)
            changed.clear()
        queued.append(beyond_generation(started, list(ended.images)))
    queue.stop()
    database.close()
    return direct, queued


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch
    from diffusers import StableDiffusionPipeline

    from tests.support.diffusers_builder import build_pipeline_folder
    from tests.support.lora_builder import write_kohya_lora, write_peft_lora

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        folder = build_pipeline_folder(root / "tiny")
        first = write_peft_lora(root / "ink.safetensors", seed=1)
        second = write_kohya_lora(root / "moss.safetensors", seed=2)
        loras = (
            LoraRef(name="ink", path=str(first), weight=0.8),
            LoraRef(name="moss", path=str(second), weight=0.6),
        )
        # Two engines, one keeping the two LoRAs fused, one without: runs alternate between
        # them, so neither sees the machine at a quieter moment.
        engine = ImageEngine(config_cache_dir=root / "configs", device="cpu", threads=args.threads)
        with_loras = ImageEngine(
            config_cache_dir=root / "configs", device="cpu", threads=args.threads
        )
        model = ModelRef(name="tiny", path=str(folder))
        assert engine.load(model).wait(300).kind is EventKind.RESULT
        assert with_loras.load(model).wait(300).kind is EventKind.RESULT

        def params(seed: int, with_loras: bool) -> ImageParams:
            return ImageParams(
                prompt=PROMPT,
                steps=args.steps,
                width=args.size,
                height=args.size,
                seed=seed,
                loras=loras if with_loras else (),
            )

        out = root / "out"
        # Each LoRA run changes the set (none <-> two), so it includes fusing and taking
        # them out again; "fused, kept" repeats the same two, fused once.
        engine_seconds(engine, out, params(0, False))
        engine_seconds(with_loras, out, params(0, True))  # fused once, kept after
        plain, kept, switching = [], [], []
        for run in range(args.runs):
            plain.append(engine_seconds(engine, out, params(run, False)))
            kept.append(engine_seconds(with_loras, out, params(run, True)))
        for run in range(args.runs):  # the same engine, LoRAs on, off, on…: fused each time
            switching.append(engine_seconds(engine, out, params(run, run % 2 == 0)))
        with_loras.stop()

        bare: Any = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True)
        bare.set_progress_bar_config(disable=True)
        bare_seconds(bare, args.steps, args.size, 0)
        bare_plain = [bare_seconds(bare, args.steps, args.size, run) for run in range(args.runs)]
        bare.load_lora_weights(str(first), adapter_name="a")
        bare.load_lora_weights(str(second), adapter_name="b")
        bare.set_adapters(["a", "b"], adapter_weights=[0.8, 0.6])
        bare_unfused = [bare_seconds(bare, args.steps, args.size, run) for run in range(args.runs)]

        direct, queued = queue_seconds(
            engine, root, model, [params(1000 + job, False) for job in range(args.jobs)]
        )
        engine.stop()

    def median(values: list[float]) -> float:
        return statistics.median(values)

    print(
        f"tiny SD pipeline, {args.steps} steps, {args.size}x{args.size}, "
        f"{args.threads} thread(s), CPU, median of {args.runs}"
    )
    print(f"  engine, no LoRA                 {median(plain) * 1000:8.1f} ms per image")
    print(
        f"  engine, two LoRAs fused, kept   {median(kept) * 1000:8.1f} ms per image  "
        f"{median(kept) / median(plain):5.2f}x"
    )
    print(
        f"  engine, LoRAs on/off each image {median(switching) * 1000:8.1f} ms per image  "
        f"{median(switching) / median(plain):5.2f}x  (fuse or take out each time)"
    )
    print(
        f"  bare diffusers, unfused         {median(bare_unfused) * 1000:8.1f} ms per image  "
        f"{median(bare_unfused) / median(bare_plain):5.2f}x  (vs bare, no LoRA)"
    )
    overhead = median(queued) - median(direct)
    print(
        f"  beyond the generation: queue {median(queued) * 1000:.1f} ms per job, straight to"
        f" the engine {median(direct) * 1000:.1f} ms (median of {args.jobs}):"
        f" queue overhead {overhead * 1000:+.1f} ms per job"
    )


if __name__ == "__main__":
    main()
