"""Download throughput against curl and hf_hub_download, resume after kill -9, GUI stalls.

Three phases, each against a fake hub (`tests.support.hub_server.HubServer`) served from a
child process, so the server and the client never share a GIL. The files are made once in a
temp dir (16 MiB of random bytes repeated) and served in place; LFS files are redirected to
the server's CDN origin, as on the real Hub.

1. throughput: one file of `--size-mib` (1 GiB) fetched by `curl -L`, by
   `huggingface_hub.hf_hub_download` (no Xet, no telemetry, no progress bar) and by
   ModelDeck's `DownloadManager` (which also checks the sha256), each into a fresh folder on
   the same disk, interleaved run by run and the order rotated. Prints MiB/s (median of
   `--runs`) and ModelDeck's ratio to each (targets: >= 0.9x curl, >= 1.0x
   hf_hub_download), plus how busy each client and the server kept a CPU core.
2. resume: `modeldeck pull` in a child process, SIGKILLed once its partial file holds half
   of the file, then run again to the end. Prints the bytes fetched on resume over the file
   size (target <= 0.55), the Range header the server saw, and whether the blob's sha256 is
   right.
3. gui: the real main window on the qasync loop with the Downloads page shown, four files of
   `--size-mib`/4 downloaded at once (a DownloadManager with concurrency 4, attached to the
   page), and a 5 ms heartbeat on the main thread. Prints the longest stall and the aggregate
   throughput; runs in a fresh child process when all phases run.

    .venv/bin/python -m benchmarks.downloads [--runs 3] [--size-mib 1024] [--phase all]

Disk: at most twice `--size-mib` at once (the served file and one copy of it).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Before huggingface_hub is imported (it reads these once) and before Qt starts.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

if TYPE_CHECKING:
    from app.core import Core
    from app.downloads import DownloadPlan
    from ui.main_window import MainWindow

MIB = 1 << 20
_BLOCK = 16 * MIB  # random bytes, repeated to make the big files
_CARD = "---\nlicense: mit\n---\n# A benchmark model\n"
BIG_REPO, BIG_FILE = "bench/big", "big.gguf"
TINY_REPO, TINY_FILE = "bench/tiny", "tiny.gguf"  # warms up each client before timing
GUI_DOWNLOADS = 4
KILL_AT = 0.5


# --------------------------------------------------------------------------------------------
# The served files and the hub in a child process


@dataclass(frozen=True)
class ServedFile:
    repo_id: str
    name: str
    path: Path
    size: int
    sha256: str


def make_file(path: Path, size: int) -> str:
    """Write `size` bytes (16 MiB of random bytes, repeated) to `path`; returns the sha256."""
    block = os.urandom(min(_BLOCK, size))
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        left = size
        while left:
            chunk = block[: min(left, len(block))]
            handle.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def serve(specs: Sequence[str]) -> None:
    """Serve `repo=name=path` files; print "ready URL", then answer "requests" lines on stdin
    with the requests made since the last answer (JSON). Ends when stdin closes."""
    from tests.support.hub_server import HubServer

    with tempfile.TemporaryDirectory() as root, HubServer(Path(root)) as hub:
        for spec in specs:
            repo_id, name, path = spec.split("=", 2)
            hub.add_repo(repo_id, {name: Path(path)}, card=_CARD)
        print(f"ready {hub.url}", flush=True)
        seen = 0
        for line in sys.stdin:
            if line.strip() == "requests":
                log = hub.requests
                new, seen = log[seen:], len(log)
                rows = [
                    {
                        "origin": r.origin,
                        "method": r.method,
                        "path": r.path,
                        "range": r.range,
                        "status": r.status,
                    }
                    for r in new
                ]
                print(json.dumps(rows), flush=True)
            elif line.strip() == "errors":
                print(json.dumps([repr(e) for e in hub.errors]), flush=True)


class FileHub:
    """`serve` in a child process; `url` is its endpoint."""

    def __init__(self, files: Sequence[ServedFile]) -> None:
        specs = [f"{f.repo_id}={f.name}={f.path}" for f in files]
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.downloads", "serve", *specs],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self._readline()
        if not line.startswith("ready "):
            self.close()
            raise RuntimeError(f"the benchmark hub did not start: {line!r}")
        self.url = line.split(" ", 1)[1]

    @property
    def pid(self) -> int:
        return self._process.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        return ticks / os.sysconf("SC_CLK_TCK")

    def requests(self) -> list[dict[str, Any]]:
        """The requests the server answered since the last call."""
        rows: list[dict[str, Any]] = json.loads(self._ask("requests"))
        return rows

    def errors(self) -> list[str]:
        """Bugs the fake hub hit (not client disconnects)."""
        found: list[str] = json.loads(self._ask("errors"))
        return found

    def _ask(self, command: str) -> str:
        assert self._process.stdin is not None
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        return self._readline()

    def _readline(self) -> str:
        assert self._process.stdout is not None
        return self._process.stdout.readline().strip()

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> FileHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def resolve_url(endpoint: str, repo_id: str, name: str) -> str:
    return f"{endpoint}/{repo_id}/resolve/main/{name}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 * MIB):
            digest.update(block)
    return digest.hexdigest()


def fresh(folder: Path) -> Path:
    """`folder`, emptied; what the previous run wrote there is deleted and synced away."""
    shutil.rmtree(folder, ignore_errors=True)
    os.sync()  # no write-back of a previous run's bytes during this one
    folder.mkdir(parents=True)
    return folder


def mib_s(size: int, seconds: float) -> float:
    return size / MIB / seconds


def _list(values: Sequence[float], spec: str = ".0f") -> str:
    return ", ".join(format(value, spec) for value in values)


# --------------------------------------------------------------------------------------------
# Phase 1: throughput


@dataclass
class Timing:
    seconds: float
    cpu: float  # client CPU seconds (user + system)


def time_curl(curl: str, url: str, out: Path) -> Timing:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([curl, "-sS", "--fail", "-L", "-o", str(out), url], check=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(seconds, cpu)


def time_hf(endpoint: str, repo_id: str, name: str, cache: Path) -> tuple[Timing, Path]:
    from huggingface_hub import hf_hub_download

    cpu, started = time.process_time(), time.perf_counter()
    path = hf_hub_download(repo_id, name, cache_dir=cache, endpoint=endpoint, token=False)
    timing = Timing(time.perf_counter() - started, time.process_time() - cpu)
    return timing, Path(str(path))


def time_modeldeck(core: Core, plan: DownloadPlan, cache: Path) -> Timing:
    """The app's path: a DownloadManager job (database, worker thread, hash check, link)."""
    from app.downloads import DownloadManager, JobState

    manager = DownloadManager(core.database, endpoint=core.endpoint, cache_dir=cache)
    manager.start()
    try:
        cpu, started = time.process_time(), time.perf_counter()
        job = manager.enqueue(plan)
        status = manager.wait(job)
        timing = Timing(time.perf_counter() - started, time.process_time() - cpu)
        if status.state is not JobState.COMPLETED:
            raise RuntimeError(f"ModelDeck's download ended {status.state}: {status.error}")
        manager.remove(job)
    finally:
        manager.shutdown()
    return timing


def throughput_phase(hub: FileHub, core: Core, big: ServedFile, root: Path, runs: int) -> None:
    from app.downloads import plan_files

    curl = shutil.which("curl")
    url = resolve_url(hub.url, big.repo_id, big.name)
    plan = plan_files(core.hub.model_details(big.repo_id), [big.name])
    tiny_plan = plan_files(core.hub.model_details(TINY_REPO), [TINY_FILE])
    out = root / "out"
    # Warm up each client once (imports, the first connection) on a small file, and the
    # disk once with the big one (the first big write of a session ran slow for any client).
    if curl:
        time_curl(curl, resolve_url(hub.url, TINY_REPO, TINY_FILE), fresh(out) / "tiny")
    time_hf(hub.url, TINY_REPO, TINY_FILE, fresh(out))
    time_modeldeck(core, tiny_plan, fresh(out))
    time_modeldeck(core, plan, fresh(out))

    results: dict[str, list[Timing]] = {"curl": [], "hf_hub_download": [], "ModelDeck": []}
    server_cpu: dict[str, list[float]] = {name: [] for name in results}

    def measure(name: str, run: Callable[[], Timing]) -> None:
        before = hub.cpu_seconds()
        results[name].append(run())
        server_cpu[name].append(hub.cpu_seconds() - before)

    def run_curl() -> Timing:
        assert curl is not None
        timing = time_curl(curl, url, fresh(out) / big.name)
        if (out / big.name).stat().st_size != big.size:
            raise RuntimeError("curl fetched the wrong number of bytes")
        return timing

    def run_hf() -> Timing:
        timing, path = time_hf(hub.url, big.repo_id, big.name, fresh(out))
        if path.stat().st_size != big.size:
            raise RuntimeError("hf_hub_download fetched the wrong number of bytes")
        return timing

    def run_modeldeck() -> Timing:
        return time_modeldeck(core, plan, fresh(out))

    clients: list[tuple[str, Callable[[], Timing]]] = [
        ("hf_hub_download", run_hf),
        ("ModelDeck", run_modeldeck),
    ]
    if curl:
        clients.insert(0, ("curl", run_curl))
    for number in range(runs):  # interleaved, the order rotated, so noise hits all alike
        shift = number % len(clients)
        for name, run in clients[shift:] + clients[:shift]:
            measure(name, run)
    fresh(out)

    print(f"== 1. throughput: one {big.size / MIB:.0f} MiB file over loopback, runs: {runs}")
    if not curl:
        print("curl: not installed (Debian package `curl`): no ratio to curl")
    speeds: dict[str, float] = {}
    for name, timings in results.items():
        if not timings:
            continue
        rates = [mib_s(big.size, t.seconds) for t in timings]
        speeds[name] = statistics.median(rates)
        client_cpu = statistics.median(t.cpu / t.seconds for t in timings)
        server = statistics.median(
            cpu / t.seconds for cpu, t in zip(server_cpu[name], timings, strict=True)
        )
        print(
            f"{name + ':':17} median {speeds[name]:6.0f} MiB/s  (all: {_list(rates)})  "
            f"CPU busy: client {client_cpu:4.0%}, server {server:4.0%}"
        )
    ours = speeds["ModelDeck"]
    per_run = {
        name: [
            mib_s(big.size, m.seconds) / mib_s(big.size, o.seconds)
            for m, o in zip(results["ModelDeck"], results[name], strict=True)
        ]
        for name in ("curl", "hf_hub_download")
        if results[name]
    }
    if "curl" in speeds:
        print(
            f"ratio ModelDeck / curl:            {ours / speeds['curl']:.2f}  "
            f"(per run: {_list(per_run['curl'], '.2f')}; target >= 0.9)"
        )
    print(
        f"ratio ModelDeck / hf_hub_download: {ours / speeds['hf_hub_download']:.2f}  "
        f"(per run: {_list(per_run['hf_hub_download'], '.2f')}; target >= 1.0)"
    )
    print(
        "(CPU busy: CPU seconds over wall seconds, 100% = one core. ModelDeck's time includes "
        "its sha256 check; hf_hub_download checks no hash and shows no progress bar here)"
    )


# --------------------------------------------------------------------------------------------
# Phase 2: killed at ~50% and restarted


@dataclass
class ResumeRun:
    kept: int  # bytes of the partial file after the kill
    ranges: list[str | None]  # Range headers of the GETs for the file after the restart
    resumed_s: float  # the second command, start to exit
    sha_ok: bool


def resume_once(hub: FileHub, big: ServedFile, home: Path) -> ResumeRun:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "HF_TOKEN")}
    env |= {
        "MODELDECK_DATA_DIR": str(home / "data"),
        "HF_HOME": str(home / "hf"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    command = [
        sys.executable,
        "-m",
        "ui.launcher",
        "pull",
        "--endpoint",
        hub.url,
        big.repo_id,
        big.name,
    ]
    blobs = home / "hf" / "hub" / f"models--{big.repo_id.replace('/', '--')}" / "blobs"
    partial = blobs / f"{big.sha256}.incomplete"
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        while True:
            try:
                if partial.stat().st_size >= big.size * KILL_AT:
                    break
            except FileNotFoundError:
                pass
            if process.poll() is not None:
                raise RuntimeError(f"the pull ended ({process.returncode}) before the kill")
            time.sleep(0.001)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    kept = partial.stat().st_size
    hub.requests()  # forget the first run's requests

    started = time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)
    resumed_s = time.perf_counter() - started
    ranges = [
        r["range"]
        for r in hub.requests()
        if r["method"] == "GET" and r["path"].endswith(big.name) and r["origin"] == "cdn"
    ]
    blob = blobs / big.sha256
    return ResumeRun(kept, ranges, resumed_s, sha256_of(blob) == big.sha256)


def resume_phase(hub: FileHub, big: ServedFile, root: Path, runs: int) -> None:
    done = [resume_once(hub, big, fresh(root / "resume")) for _ in range(runs)]
    fresh(root / "resume")
    print(f"== 2. resume: `modeldeck pull` SIGKILLed at ~{KILL_AT:.0%}, run again; runs: {runs}")
    for number, run in enumerate(done, 1):
        fetched = big.size - run.kept
        print(
            f"run {number}: partial at kill {run.kept / MIB:7.1f} MiB "
            f"({run.kept / big.size:.1%}); fetched on resume {fetched / MIB:7.1f} MiB; "
            f"ratio {fetched / big.size:.3f}; server saw Range {run.ranges}; "
            f"second run {run.resumed_s:.1f} s; sha256 {'ok' if run.sha_ok else 'WRONG'}"
        )
    ratios = [(big.size - run.kept) / big.size for run in done]
    expected_ok = all(run.ranges == [f"bytes={run.kept}-"] for run in done)
    print(
        f"bytes fetched on resume / file size: median {statistics.median(ratios):.3f}, "
        f"worst {max(ratios):.3f}  (target <= 0.55); Range = bytes=<partial size>- on every "
        f"run: {'yes' if expected_ok else 'NO'}; sha256 right on every run: "
        f"{'yes' if all(run.sha_ok for run in done) else 'NO'}"
    )


# --------------------------------------------------------------------------------------------
# Phase 3: GUI stalls while four downloads run


@dataclass
class GuiRun:
    stall_ms: float
    idle_stall_ms: float
    mib_s: float


async def gui_once(
    window: MainWindow, core: Core, plans: list[DownloadPlan], cache: Path
) -> GuiRun:
    from app.downloads import DownloadManager, JobState
    from benchmarks.stall import Heartbeat
    from ui.tasks import run_blocking

    heartbeat = Heartbeat()
    heartbeat.start()  # the same window with nothing to do, as a floor for the noise
    await asyncio.sleep(2.0)
    idle = heartbeat.stop()

    manager = DownloadManager(
        core.database, endpoint=core.endpoint, cache_dir=cache, concurrency=GUI_DOWNLOADS
    )
    await run_blocking(manager.start)
    page = window.downloads
    heartbeat.start()
    started = time.perf_counter()
    # What the page's `enqueue` does for each plan: queue on a worker thread, then attach.
    ids = await asyncio.gather(*(run_blocking(manager.enqueue, plan) for plan in plans))
    page.attach(manager)
    while not all(manager.job(job).state.is_final for job in ids):
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    stall = heartbeat.stop()
    for job in ids:
        status = manager.job(job)
        if status.state is not JobState.COMPLETED:
            raise RuntimeError(f"a download ended {status.state}: {status.error}")
    await run_blocking(manager.shutdown)
    for job in ids:
        manager.remove(job)
    total = sum(plan.total_size for plan in plans)
    return GuiRun(stall, idle, mib_s(total, elapsed))


def gui_phase(root: Path, size: int, runs: int) -> None:
    import qasync

    from app.core import Core
    from app.downloads import plan_files
    from ui.application import create_application, open_main_window

    each = size // GUI_DOWNLOADS
    files = []
    for number in range(GUI_DOWNLOADS):
        path = root / f"part-{number}.gguf"
        sha = make_file(path, each)
        files.append(ServedFile(f"bench/dl-{number}", path.name, path, each, sha))
    app = create_application(sys.argv)
    with FileHub(files) as hub:
        core = Core.open(data_dir=root / "data", endpoint_override=hub.url)
        plans = [plan_files(core.hub.model_details(f.repo_id), [f.name]) for f in files]
        window = open_main_window(core)
        window.show_page(window.downloads)

        async def all_runs() -> list[GuiRun]:
            return [await gui_once(window, core, plans, fresh(root / "cache")) for _ in range(runs)]

        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)
        with loop:
            done = loop.run_until_complete(all_runs())
        core.close()
        errors = hub.errors()
    fresh(root / "cache")
    stalls = [run.stall_ms for run in done]
    idle = [run.idle_stall_ms for run in done]
    speeds = [run.mib_s for run in done]
    print(
        f"== 3. gui: {GUI_DOWNLOADS} downloads of {each / MIB:.0f} MiB at once, Downloads page "
        f"shown, {app.platformName()}; runs: {runs}"
    )
    print(
        f"longest GUI-thread stall (5 ms heartbeat): median {statistics.median(stalls):.0f} ms, "
        f"worst {max(stalls):.0f} ms  (all: {_list(stalls)}; the README's stall targets are "
        f"<= 50 ms); the idle window over 2 s: {statistics.median(idle):.0f} ms"
    )
    print(
        f"aggregate throughput: median {statistics.median(speeds):.0f} MiB/s  "
        f"(all: {_list(speeds)})"
    )
    if errors:
        print(f"the fake hub reported errors: {errors}")


# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=1024, help="the big file (default 1 GiB)")
    parser.add_argument("--phase", choices=("all", "throughput", "resume", "gui"), default="all")
    commands = parser.add_subparsers(dest="command")
    serve_command = commands.add_parser("serve", help="(internal) the hub's child process")
    serve_command.add_argument("specs", nargs="+", metavar="REPO=NAME=PATH")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.specs)
        return 0

    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="modeldeck-bench-") as temp:
        root = Path(temp)
        os.environ["HF_HOME"] = str(root / "hf-home")  # nothing lands in the user's cache
        if args.phase in ("all", "throughput", "resume"):
            started = time.perf_counter()
            big_path, tiny_path = root / BIG_FILE, root / TINY_FILE
            big = ServedFile(BIG_REPO, BIG_FILE, big_path, size, make_file(big_path, size))
            tiny = ServedFile(TINY_REPO, TINY_FILE, tiny_path, MIB, make_file(tiny_path, MIB))
            with FileHub([big, tiny]) as hub:
                print(f"(made and served the files in {time.perf_counter() - started:.1f} s)")
                if args.phase in ("all", "throughput"):
                    from app.core import Core

                    core = Core.open(data_dir=root / "data", endpoint_override=hub.url)
                    try:
                        throughput_phase(hub, core, big, root, args.runs)
                    finally:
                        core.close()
                if args.phase in ("all", "resume"):
                    resume_phase(hub, big, root, args.runs)
                errors = hub.errors()
                if errors:
                    print(f"the fake hub reported errors: {errors}")
            big_path.unlink()
        if args.phase == "gui":
            gui_phase(root, size, args.runs)
        elif args.phase == "all":  # a fresh process, as the app would be
            command = [sys.executable, "-m", "benchmarks.downloads", "--phase", "gui"]
            command += ["--runs", str(args.runs), "--size-mib", str(args.size_mib)]
            sys.stdout.flush()
            subprocess.run(command, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
