"""ModelDeck's image engine against a bare diffusers call: seconds per image, and the time to
the first denoising step.

Same tiny pipeline (the test model: random weights, 2 steps at 64x64 take ~0.1 s), same
prompt, seed, steps and size, same number of torch threads. The bare run calls the pipeline
in this process; the engine run goes through `ImageEngine` (a child process, events over a
pipe, the PNG written with its metadata and a thumbnail) and is timed here in the parent,
from the request to its RESULT — so the ratio includes every cost the app adds. Runs
alternate (bare, engine, bare, …) so drift hits both; medians are printed.

"Cold" is a fresh child: start (importing torch + diffusers), load, first step. "Warm" is the
next request with the model loaded.

    .venv/bin/python -m benchmarks.image_engine [--runs 9] [--threads 1] [--steps 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from app.engines.protocol import EventKind
from app.images import ImageEngine, ImageParams, ModelRef, StepProgress, read_progress

PROMPT = "a lighthouse at dusk"


def bare_run(pipeline: Any, steps: int, seed: int) -> tuple[float, float]:
    """(seconds to the first step's end, seconds in all) for one bare pipeline call."""
    import torch

    started = time.perf_counter()
    first: list[float] = []

    def on_step_end(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> Any:
        if not first:
            first.append(time.perf_counter() - started)
        return tensors

    pipeline(
        PROMPT,
        num_inference_steps=steps,
        width=64,
        height=64,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
        callback_on_step_end=on_step_end,
    )
    return first[0], time.perf_counter() - started


def engine_run(engine: ImageEngine, output: Path, steps: int, seed: int) -> tuple[float, float]:
    """(seconds to the first step event, seconds to the RESULT) for one engine request."""
    params = ImageParams(prompt=PROMPT, steps=steps, width=64, height=64, seed=seed)
    started = time.perf_counter()
    handle = engine.generate(params, output_dir=output, thumbnail_dir=output / ".thumbnails")
    first = None
    for event in handle.events(timeout=120):
        if first is None and isinstance(read_progress(event), StepProgress):
            first = time.perf_counter() - started
    assert handle.outcome is not None and handle.outcome.kind is EventKind.RESULT
    return first or 0.0, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in both runs")
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()

    import torch
    from diffusers import StableDiffusionPipeline

    from tests.support.diffusers_builder import build_pipeline_folder

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        folder = build_pipeline_folder(root / "tiny")
        pipeline: Any = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True)
        pipeline.set_progress_bar_config(disable=True)
        model = ModelRef(name="tiny", path=str(folder))

        started = time.perf_counter()
        engine = ImageEngine(config_cache_dir=root / "configs", device="cpu", threads=args.threads)
        engine.start()
        ready = time.perf_counter() - started
        outcome = engine.load(model).wait(120)
        loaded = time.perf_counter() - started
        assert outcome.kind is EventKind.RESULT, outcome.payload
        cold_first, _ = engine_run(engine, root / "out", args.steps, 0)
        cold_first += loaded

        bare_run(pipeline, args.steps, 0)  # warm-up of the bare path too
        bare_first, bare_total, engine_first, engine_total = [], [], [], []
        for run in range(args.runs):
            first, total = bare_run(pipeline, args.steps, run)
            bare_first.append(first)
            bare_total.append(total)
            first, total = engine_run(engine, root / "out", args.steps, run)
            engine_first.append(first)
            engine_total.append(total)
        engine.stop()

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:7.1f} ms"

    print(f"tiny SD pipeline, {args.steps} steps, 64x64, {args.threads} thread(s), CPU")
    print(f"  median of {args.runs}         bare call   engine    ratio")
    print(
        f"  seconds per image       {ms(bare_total)} {ms(engine_total)}  "
        f"{statistics.median(engine_total) / statistics.median(bare_total):5.2f}x"
    )
    print(
        f"  first step (warm)       {ms(bare_first)} {ms(engine_first)}  "
        f"{statistics.median(engine_first) / statistics.median(bare_first):5.2f}x"
    )
    print(f"  engine cold: READY after {ready:.2f} s, model loaded after {loaded:.2f} s,")
    print(f"               first step after {cold_first:.2f} s")


if __name__ == "__main__":
    main()
