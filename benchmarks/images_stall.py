"""Longest GUI main-thread stall while the Images page generates, and the time from Generate
to the first step on screen, with the image engine cold (a fresh child: import torch and
diffusers, load the model) and warm.

A 5 ms QTimer heartbeat runs on the main thread (as in `benchmarks.stall`); a stall is the
longest gap between two beats minus the period. The window is the real MainWindow on the
real qasync loop; the model is the tests' tiny pipeline at 64x64 (built in a separate
process, so torch never loads here), with enough steps for a generation of ~5 s. "First
step" is when the page shows step 1 (`stepShown`), so it includes the 50 ms poll. The idle
line is the same heartbeat with nothing running: the noise floor of this machine.

    .venv/bin/python -m benchmarks.images_stall [--runs 3] [--seconds 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")

import qasync

from app.core import Core
from benchmarks.stall import HEARTBEAT_MS, Heartbeat
from ui.application import create_application, open_main_window
from ui.images.page import ImagesPage

CALIBRATION_STEPS = 10


@dataclass(frozen=True)
class Run:
    first_step_s: float  # Generate to the first step on screen
    total_s: float  # Generate to the end
    stall_ms: float  # the longest heartbeat gap beyond the period, during the generation


def build_tiny_pipeline(folder: Path) -> None:
    """The tests' tiny pipeline, written by another process (torch stays out of this one)."""
    code = (
        "import sys; from pathlib import Path; "
        "from tests.support.diffusers_builder import build_pipeline_folder; "
        "build_pipeline_folder(Path(sys.argv[1]))"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(folder)],
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
    )


async def generate(page: ImagesPage, steps: int) -> Run:
    """Press Generate with `steps` steps; time it while the heartbeat runs."""
    loop = asyncio.get_running_loop()
    first: asyncio.Future[float] = loop.create_future()
    finished: asyncio.Future[str] = loop.create_future()

    def on_step(_step: int, _steps: int) -> None:
        if not first.done():
            first.set_result(time.perf_counter())

    def on_finished(how: str) -> None:
        if not finished.done():
            finished.set_result(how)

    page.stepShown.connect(on_step)
    page.generationFinished.connect(on_finished)
    page.form.steps.setValue(steps)
    heartbeat = Heartbeat()
    heartbeat.start()
    started = time.perf_counter()
    page.generate_button.click()
    how = await asyncio.wait_for(finished, 600)
    ended = time.perf_counter()
    stall = heartbeat.stop()
    page.stepShown.disconnect(on_step)
    page.generationFinished.disconnect(on_finished)
    if how != "done":
        raise RuntimeError(f"the generation ended {how}: {page.status.text()}")
    return Run(first.result() - started, ended - started, stall)


async def idle_stall(seconds: float) -> float:
    heartbeat = Heartbeat()
    heartbeat.start()
    await asyncio.sleep(seconds)
    return heartbeat.stop()


async def measure(
    core: Core, page: ImagesPage, runs: int, seconds: float
) -> tuple[int, list[float], list[Run], list[Run]]:
    # Calibrate on a warm engine: how many steps make a generation of `seconds`.
    await generate(page, CALIBRATION_STEPS)
    calibration = await generate(page, CALIBRATION_STEPS)
    per_step = calibration.total_s / CALIBRATION_STEPS
    steps = max(CALIBRATION_STEPS, round(seconds / per_step))
    idle, cold, warm = [], [], []
    for _ in range(runs):
        idle.append(await idle_stall(1.0))
        await asyncio.to_thread(core.images.stop)  # the next request starts a fresh child
        while core.images.pid is not None:  # the supervisor notices the exit on its thread
            await asyncio.sleep(0.01)
        cold.append(await generate(page, steps))
        warm.append(await generate(page, steps))
    return steps, idle, cold, warm


def summary(values: list[float], unit: str, digits: int = 0) -> str:
    return (
        f"median {statistics.median(values):.{digits}f} {unit}, "
        f"worst {max(values):.{digits}f} {unit}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one generation")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the engine")
    args = parser.parse_args()

    app = create_application(sys.argv)
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        build_tiny_pipeline(root / "tiny-pipeline")
        os.environ["HOME"] = str(root / "home")  # an empty library: only the tiny model
        core = Core.open(data_dir=root / "data", endpoint_override="http://127.0.0.1:9")
        core.images.threads = args.threads
        window = open_main_window(core)
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)

        async def run() -> tuple[int, list[float], list[Run], list[Run]]:
            window.images_with(root / "tiny-pipeline")
            page = window.images
            page.form.width_box.setValue(64)
            page.form.height_box.setValue(64)
            page.form.prompt.setPlainText("a lighthouse at dusk")
            return await measure(core, page, args.runs, args.seconds)

        with loop:
            steps, idle, cold, warm = loop.run_until_complete(run())
        window.close()
        core.close()

    print(
        f"runs: {args.runs}, heartbeat: {HEARTBEAT_MS} ms, platform: {app.platformName()}, "
        f"tiny pipeline 64x64, {steps} steps, {args.threads} torch thread(s)"
    )
    print(f"idle (nothing running):           longest stall {summary(idle, 'ms')}")
    warm_stalls = summary([r.stall_ms for r in warm], "ms")
    cold_stalls = summary([r.stall_ms for r in cold], "ms")
    each = statistics.median([r.total_s for r in warm])
    print(
        f"generation, warm engine:          longest stall {warm_stalls}"
        f"  (target <= 50 ms); {each:.1f} s each"
    )
    print(
        f"generation, cold engine:          longest stall {cold_stalls}"
        "  (the child starts and loads meanwhile)"
    )
    print(
        f"Generate to first step, warm:     {summary([r.first_step_s * 1000 for r in warm], 'ms')}"
    )
    print(f"Generate to first step, cold:     {summary([r.first_step_s for r in cold], 's', 2)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
