"""Start to first paint: the frozen bundle next to the source install, in the same run.

    .venv/bin/python packaging/bench_startup.py [--bundle build/dist/modeldeck] [--runs 5]

Each run is a fresh process, timed as benchmarks/startup.py times the source install (its
clock, its probe: MODELDECK_STARTUP_PROBE); the three commands take turns so machine noise
hits each alike. Also prints the bundle's size on disk.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.startup import BARE_WINDOW, _first_paint_seconds  # noqa: E402


def folder_size(folder: Path) -> int:
    files = (path for path in folder.rglob("*") if path.is_file() and not path.is_symlink())
    return sum(path.stat().st_size for path in files)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "build" / "dist" / "modeldeck")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    executable = args.bundle / "modeldeck"
    if not executable.is_file():
        raise SystemExit(f"no bundle at {args.bundle}: run packaging/linux/build.sh bundle")
    for package in ("app", "ui"):  # as a user's second start finds the source install
        compileall.compile_dir(ROOT / package, quiet=1)
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    with tempfile.TemporaryDirectory() as data_dir:
        app_env = dict(
            env,
            MODELDECK_DATA_DIR=data_dir,
            MODELDECK_STARTUP_PROBE="1",
            HF_ENDPOINT="http://127.0.0.1:9",
            PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        )
        commands = {
            "bundle": ([str(executable)], app_env),
            "source": ([sys.executable, "-m", "ui.launcher"], app_env),
            "bare PySide6 window": ([sys.executable, "-c", BARE_WINDOW], env),
        }
        first = {name: _first_paint_seconds(*command)[0] for name, command in commands.items()}
        times: dict[str, list[float]] = {name: [] for name in commands}
        heavy = ""
        for _ in range(args.runs):
            for name, command in commands.items():
                seconds, seen = _first_paint_seconds(*command)
                times[name].append(seconds)
                heavy = seen if name == "bundle" else heavy
    print(f"bundle: {args.bundle} ({folder_size(args.bundle) / 2**20:.0f} MiB on disk)")
    print(f"platform: {env['QT_QPA_PLATFORM']}, runs: {args.runs} (+1 first start each)")
    for name, values in times.items():
        listed = ", ".join(f"{value * 1000:.0f}" for value in values)
        print(
            f"{name:>20}: median {statistics.median(values) * 1000:5.0f} ms, first start "
            f"{first[name] * 1000:5.0f} ms  (all: {listed})"
        )
    ratio = statistics.median(times["bundle"]) / statistics.median(times["source"])
    print(f"bundle / source: {ratio:.2f}")
    print(f"heavy runtimes in the bundle at first paint: {heavy.split(' ', 1)[-1] or '?'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
