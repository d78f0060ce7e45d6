"""Civitai download throughput: ModelDeck's verified transfer vs curl on the same loopback URL.

The fake Civitai (`tests.support.civitai_server.CivitaiServer`) runs in a child process, so
the server and the client never share a GIL; it holds one file of `--size-mib` (16 MiB of
random bytes repeated) and redirects `/api/download/models/{version}` to its "CDN" path, as
Civitai does. Each run fetches it with `curl -L` and with `fetch_civitai_file` (which also
checks the sha256 and writes the provenance sidecar) into fresh folders, the order rotated.
Prints MiB/s per client (median of `--runs`) and ModelDeck's ratio to curl.

    .venv/bin/python -m benchmarks.civitai_download [--runs 3] [--size-mib 256]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_SERVER = """
import os, sys
from tests.support.civitai_server import CivitaiServer, ServedFile
size = int(sys.argv[1]) << 20
block = os.urandom(16 << 20)
data = (block * (size // len(block) + 1))[:size]
with CivitaiServer() as server:
    server.add_model(1, "Bench", files=[ServedFile(id=11, name="bench.safetensors", data=data)])
    print(server.url, flush=True)
    sys.stdin.read()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=256)
    args = parser.parse_args()

    from app.downloads.civitai import fetch_civitai_file, plan_civitai_download
    from app.hub.civitai.client import CivitaiClient
    from app.hub.civitai.provider import CivitaiHub
    from app.hub.civitai.settings import CivitaiSettings

    root = Path(__file__).resolve().parents[1]
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(args.size_mib)],
        cwd=root,
        env=os.environ | {"PYTHONPATH": str(root)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    url = server.stdout.readline().strip()
    size = args.size_mib << 20
    speeds: dict[str, list[float]] = {"curl": [], "modeldeck": []}
    try:
        with tempfile.TemporaryDirectory() as scratch, CivitaiClient(endpoint=url) as client:
            model, version = CivitaiHub(client).version("civitai:1")

            def curl(folder: Path) -> None:
                subprocess.run(
                    ["curl", "-sSL", "-o", str(folder / "bench.safetensors"),
                     f"{url}/api/download/models/{version.id}"],
                    check=True,
                )  # fmt: skip

            def modeldeck(folder: Path) -> None:
                settings = CivitaiSettings(models_dir=str(folder))
                plan = plan_civitai_download(model, version, endpoint=url, settings=settings)
                fetch_civitai_file(plan, client=client)

            clients = {"curl": curl, "modeldeck": modeldeck}
            for run in range(args.runs):
                order = list(clients) if run % 2 == 0 else list(reversed(clients))
                for name in order:
                    folder = Path(scratch) / f"{name}-{run}"
                    folder.mkdir()
                    started = time.perf_counter()
                    clients[name](folder)
                    elapsed = time.perf_counter() - started
                    speeds[name].append(size / elapsed / (1 << 20))
                    shutil.rmtree(folder)
    finally:
        server.communicate("", timeout=30)
    medians = {name: statistics.median(values) for name, values in speeds.items()}
    for name, values in speeds.items():
        shown = ", ".join(f"{value:.0f}" for value in values)
        print(f"{name:10} {medians[name]:7.0f} MiB/s median  (runs: {shown})")
    print(f"modeldeck / curl: {medians['modeldeck'] / medians['curl']:.2f}")


if __name__ == "__main__":
    main()
