"""`modeldeck pull REPO_ID [FILE_OR_GLOB...]`: download into the HF cache, in the foreground.

    modeldeck pull org/model-GGUF Q4_K_M          one GGUF quantization (all parts of a split)
    modeldeck pull org/model '*.json' unet/*       paths or globs
    modeldeck pull org/model --revision v1.0       the whole repository at a branch, tag or sha

The files land in the standard HF cache, where transformers, diffusers, llama.cpp tools and
ModelDeck's window find them. Dropped connections, stalls, 5xx and rate limits are retried;
an interrupted pull (Ctrl+C, a crash, a kill) continues from the bytes on disk when the same
command runs again, and the window's download list shows it too.

Progress: a bar on one line when stdout is a terminal; with `--json`, one JSON object a line:
{"event": "progress" | "done" | "error" | "paused", ...}.

A file the hub's scanners flagged suspicious or unsafe is not downloaded: the pull stops
before any byte is fetched (exit 6); `--allow-unsafe` downloads it anyway.

Exit status: 0 done; 1 error; 3 not found; 4 gated (no access); 5 hub unreachable;
6 a file was flagged by the hub's security scan; 130 interrupted (the job is paused and its
partial files kept). Failures print one line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from app.units import format_bytes, format_duration

if TYPE_CHECKING:  # the rest is imported when a pull runs: `register` runs at every start
    from app.commands.foreground import ForegroundDownload
    from app.core import Core
    from app.downloads.status import ErrorKind, JobStatus
    from app.hub.security import FileScan

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_NOT_FOUND = 3
EXIT_FORBIDDEN = 4
EXIT_OFFLINE = 5
EXIT_FLAGGED = 6
EXIT_INTERRUPTED = 130

_REFRESH_S = 0.1  # how often the bar is redrawn
_JSON_PROGRESS_EVERY_S = 0.5
_BAR_WIDTH = 24
_EXIT_BY_KIND = {  # keyed by `ErrorKind` value
    "offline": EXIT_OFFLINE,
    "gated": EXIT_FORBIDDEN,
    "not-found": EXIT_NOT_FOUND,
}


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> None:
    """Add `pull` to a parser's subcommands (`parents`: options shared by all commands)."""
    pull = subparsers.add_parser(
        "pull",
        parents=list(parents),
        help="download a model's files into the Hugging Face cache",
        description="Download files of a model into the Hugging Face cache. An interrupted "
        "pull continues from where it stopped when run again.",
    )
    pull.add_argument("repo_id", help="e.g. Qwen/Qwen2.5-0.5B-Instruct-GGUF")
    pull.add_argument(
        "patterns",
        nargs="*",
        metavar="FILE_OR_GLOB",
        help="paths, globs ('*.json') or a GGUF quantization (Q4_K_M); none: every file",
    )
    pull.add_argument("--revision", help="branch, tag or commit (default: main)")
    pull.add_argument("--json", action="store_true", help="print JSON lines")
    pull.add_argument(
        "--allow-unsafe",
        action="store_true",
        help="download files the hub's security scan flagged suspicious or unsafe",
    )


def run(core: Core, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Download what `args` asks for, showing progress on `out`; returns the exit status."""
    from app.commands.foreground import download_in_foreground
    from app.downloads.plan import plan_files
    from app.downloads.status import ErrorKind
    from app.errors import AppError
    from app.hub.security import flagged_files

    report = report_for(out, as_json=args.json)
    try:
        details = core.hub.model_details(args.repo_id, revision=args.revision)
        if details.saved_at is not None:  # the hub did not answer; this is a saved copy
            return report.failed(f"cannot reach {core.endpoint}.", ErrorKind.OFFLINE)
        plan = plan_files(details, args.patterns, ref=args.revision or "main")
    except AppError as exc:
        return report.failed(str(exc), ErrorKind.of(exc))
    except ValueError as exc:
        return report.failed(str(exc), ErrorKind.OTHER)
    flagged = flagged_files(details.security, [file.path for file in plan.files])
    if flagged and not getattr(args, "allow_unsafe", False):
        return report.flagged(refusal(details.repo_id, flagged))

    outcome = download_in_foreground(core, plan, poll_s=_REFRESH_S, on_progress=report.progress)
    code = settle(outcome, report)  # paused (here or from the window), failed or refused
    if code is not None or outcome.status is None:
        return EXIT_ERROR if code is None else code
    from app.downloads.cache import snapshot_folder

    folder = snapshot_folder(core.settings.resolved_cache_dir(), plan.repo_id, plan.revision)
    return report.done(outcome.status, str(folder))


def report_for(out: TextIO, *, as_json: bool) -> _TextReport | _JsonReport:
    """How a foreground download shows progress and failures on `out` (text or JSON lines)."""
    return _JsonReport(out) if as_json else _TextReport(out)


def settle(outcome: ForegroundDownload, report: _TextReport | _JsonReport) -> int | None:
    """The exit status of a foreground download that did not complete (reported);
    None when it completed."""
    from app.downloads.status import ErrorKind, JobState

    if outcome.refused is not None:
        return report.failed(str(outcome.refused), ErrorKind.of(outcome.refused))
    status = outcome.status
    if outcome.interrupted or status is None or status.state is JobState.PAUSED:
        return report.paused(status)
    if status.state is JobState.COMPLETED:
        return None
    return report.failed(
        status.error or f"the download ended {status.state}", status.error_kind or ErrorKind.OTHER
    )


def refusal(repo_id: str, flagged: Sequence[tuple[str, FileScan]]) -> str:
    """The one line a refused pull prints: the worst file, its level and finding."""
    path, scan = flagged[0]
    others = f" (and {len(flagged) - 1} more)" if len(flagged) > 1 else ""
    finding = f" ({scan.finding.rstrip('.')})" if scan.finding else ""
    return (
        f"{path} of {repo_id}{others} was flagged {scan.level.value} by the hub's security "
        f"scan{finding}; not downloaded. Pass --allow-unsafe to download it anyway."
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m app.commands.pull [--endpoint URL] REPO_ID ...`, without app.cli."""
    from app.core import Core

    parser = argparse.ArgumentParser(prog="modeldeck")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--endpoint", help="hub endpoint for this run")
    register(parser.add_subparsers(dest="command", required=True), parents=[common])
    args = parser.parse_args(["pull", *(argv if argv is not None else sys.argv[1:])])
    core = Core.open(endpoint_override=args.endpoint)
    try:
        return run(core, args)
    finally:
        core.close()


class _TextReport:
    """A bar redrawn in place on a terminal; elsewhere only the outcome."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._tty = out.isatty()
        self._drawn = 0  # width of the line on screen

    def progress(self, status: JobStatus) -> None:
        if not self._tty:
            return
        filled = round(status.fraction * _BAR_WIDTH)
        speed = f"{format_bytes(status.speed)}/s" if status.speed else "-"
        eta = format_duration(status.eta) if status.eta is not None else "-"
        line = (
            f"{status.repo_id} [{status.label}] "
            f"[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {status.fraction:4.0%}  "
            f"{format_bytes(status.bytes_done)} / {format_bytes(status.total)}  "
            f"{speed}  ETA {eta}"
        )
        self._out.write("\r" + line.ljust(self._drawn))
        self._out.flush()
        self._drawn = len(line)

    def done(self, status: JobStatus, folder: str) -> int:
        self._end_line()
        count = len(status.files)
        self._out.write(
            f"Downloaded {count} file{'s' if count != 1 else ''} "
            f"({format_bytes(status.total)}) of {status.repo_id} to {folder}\n"
        )
        return EXIT_OK

    def paused(self, status: JobStatus | None) -> int:
        self._end_line()
        _fail("interrupted: the download is paused; run the same command again to continue.")
        return EXIT_INTERRUPTED

    def failed(self, message: str, kind: ErrorKind) -> int:
        self._end_line()
        _fail(_headline(message, kind))
        return _EXIT_BY_KIND.get(kind, EXIT_ERROR)

    def flagged(self, message: str) -> int:
        self._end_line()
        _fail(message)
        return EXIT_FLAGGED

    def _end_line(self) -> None:
        if self._drawn:
            self._out.write("\n")
            self._out.flush()
            self._drawn = 0


class _JsonReport:
    """One JSON object a line, progress at most every half second."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._last = 0.0

    def progress(self, status: JobStatus) -> None:
        now = time.monotonic()
        if now - self._last < _JSON_PROGRESS_EVERY_S and not status.state.is_final:
            return
        self._last = now
        self._emit(
            "progress",
            job=status.id,
            repo_id=status.repo_id,
            state=status.state,
            bytes=status.bytes_done,
            total=status.total,
            speed=round(status.speed),
            eta=None if status.eta is None else round(status.eta, 1),
        )

    def done(self, status: JobStatus, folder: str) -> int:
        self._emit(
            "done",
            job=status.id,
            repo_id=status.repo_id,
            revision=status.revision,
            path=folder,
            files=[file.path for file in status.files],
            bytes=status.total,
        )
        return EXIT_OK

    def paused(self, status: JobStatus | None) -> int:
        self._emit(
            "paused",
            job=None if status is None else status.id,
            bytes=None if status is None else status.bytes_done,
        )
        _fail("interrupted: the download is paused; run the same command again to continue.")
        return EXIT_INTERRUPTED

    def failed(self, message: str, kind: ErrorKind) -> int:
        code = _EXIT_BY_KIND.get(kind, EXIT_ERROR)
        self._emit("error", kind=kind, message=" ".join(message.split()), exit_code=code)
        _fail(_headline(message, kind))
        return code

    def flagged(self, message: str) -> int:
        self._emit("error", kind="flagged", message=message, exit_code=EXIT_FLAGGED)
        _fail(message)
        return EXIT_FLAGGED

    def _emit(self, event: str, **fields: object) -> None:
        self._out.write(json.dumps({"event": event, **fields}) + "\n")
        self._out.flush()


def _headline(message: str, kind: ErrorKind) -> str:
    """The one line a failure prints; "offline: …" like the other commands."""
    return f"offline: {message}" if kind == "offline" else message


def _fail(message: str) -> None:
    sys.stderr.write(f"modeldeck: {' '.join(message.split())}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
