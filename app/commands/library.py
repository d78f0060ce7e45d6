"""`modeldeck list|import|rm`: the library from the command line.

    modeldeck list [--wide] [--json]           every model on this machine, fitted to the
                                               terminal (--wide: every cell whole; files
                                               whose header cannot be read: "rejected", why)
    modeldeck import PATH... [--json]          use files or folders in place (nothing is copied)
    modeldeck rm MODEL [--yes] [--delete-files] [--other-apps]
    modeldeck verify MODEL [--json]            re-hash a model's files against what the hub
                                               published (a changed byte is reported)

MODEL is an entry key (or the start of its sha256, six characters or more), a repository id,
a model name or a path. `rm` prints what would go and asks y/N; without a terminal it needs
`--yes`. Copies that LM Studio, Ollama or GPT4All use are deleted only after a second yes
(or `--other-apps`); imported files are forgotten, and deleted only with `--delete-files`.
`list --json` carries each model's provenance (hub, repo, ref and commit, when ModelDeck
downloaded it, sha256 and its last verification, the license and where that comes from).

Exit status: 0 success; 1 error (or everything turned down, or `verify` found a damaged
file); 2 bad arguments (or `rm` without `--yes` and no terminal); 3 no such model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from app.errors import AppError
from app.table_text import terminal_width, write_table
from app.units import format_bytes

if TYPE_CHECKING:
    from app.core import Core
    from app.library import DeletePlan, Library, LibraryEntry

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3

COMMANDS = ("list", "import", "rm", "verify")

# `list` in a terminal: kinds in a word or two, and the columns that give way (with the
# fewest characters each keeps) when a row is wider than the terminal.
_SHORT_KINDS = {
    "LLM (GGUF)": "LLM GGUF",
    "diffusers pipeline": "diffusers",
    "single-file diffusion checkpoint": "diffusion file",
}
_LIST_SHRINKABLE = {0: 8, 1: 12, 2: 8, 5: 8}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `list`, `import` and `rm` to a parser's subcommands."""
    list_ = subparsers.add_parser("list", help="list every model on this machine")
    list_.add_argument(
        "--wide",
        action="store_true",
        help="show every cell whole (default: fit the terminal, long keys and names end in …)",
    )
    list_.add_argument("--json", action="store_true", help="print JSON")

    import_ = subparsers.add_parser(
        "import", help="use model files or folders where they are (nothing is copied)"
    )
    import_.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help=".gguf or .safetensors files, diffusers folders, or folders holding them",
    )
    import_.add_argument("--json", action="store_true", help="print JSON")

    rm = subparsers.add_parser("rm", help="delete a model (shows what goes, then asks)")
    rm.add_argument("model", metavar="MODEL", help="entry key, repository id, name or path")
    rm.add_argument("--yes", "-y", action="store_true", help="do not ask")
    rm.add_argument(
        "--delete-files",
        action="store_true",
        help="also delete imported files (default: only forget them)",
    )
    rm.add_argument(
        "--other-apps",
        action="store_true",
        help="also delete the copies LM Studio, Ollama or GPT4All use",
    )

    verify = subparsers.add_parser(
        "verify", help="re-hash a model's files against what the hub published"
    )
    verify.add_argument("model", metavar="MODEL", help="entry key, repository id, name or path")
    verify.add_argument("--json", action="store_true", help="print JSON")


def run(
    core: Core,
    args: argparse.Namespace,
    out: TextIO = sys.stdout,
    *,
    library: Library | None = None,
    stdin: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run `list`, `import` or `rm`; returns the exit status (failures: one line on `err`).

    Args:
        core: the opened core (its database and HF cache setting are used).
        args: parsed by a parser that `register` filled.
        out: where results go.
        library: the library to use (default: `core.library`).
        stdin: where `rm` reads its answers (default: `sys.stdin`).
        err: where failures and prompts go (default: `sys.stderr`).
    """
    from app.library import EntryNotFoundError

    err = sys.stderr if err is None else err
    stdin = sys.stdin if stdin is None else stdin
    if library is None:
        library = core.library
    try:
        if args.command == "list":
            return _list(library, args, out)
        if args.command == "import":
            return _import(library, args, out)
        if args.command == "rm":
            return _rm(library, args, out, stdin, err)
        if args.command == "verify":
            return _verify(library, args, out, err)
    except EntryNotFoundError as exc:
        return _fail(err, str(exc), EXIT_NOT_FOUND)
    except AppError as exc:
        return _fail(err, str(exc), EXIT_ERROR)
    return _fail(err, f"unknown command {args.command!r}", EXIT_USAGE)


def entry_json(entry: LibraryEntry) -> dict[str, Any]:
    """An entry as JSON-ready data (paths as strings)."""
    return {
        "key": entry.key,
        "name": entry.name,
        "kind": entry.kind.value,
        "format": entry.format.value if entry.format else None,
        "architecture": entry.architecture,
        "parameter_count": entry.parameter_count,
        "quantization": entry.quantization,
        "context_length": entry.context_length,
        "size": entry.size,
        "license": entry.license,
        "sha256": entry.sha256,
        "present": entry.present,
        "warning": entry.warning,
        "unreadable": entry.unreadable,
        "incomplete": entry.incomplete,
        "last_used": entry.last_used.isoformat() if entry.last_used else None,
        "provenance": entry.provenance.to_json() if entry.provenance else None,
        "locations": [
            {
                "path": str(location.path),
                "source": location.source.value,
                "present": location.present,
                "owned_by_other_app": location.owned_by_other_app,
                "repo_id": location.repo_id,
                "revision": location.revision,
            }
            for location in entry.locations
        ],
    }


def _list(library: Library, args: argparse.Namespace, out: TextIO) -> int:
    entries = library.scan()
    if args.json:
        _dump(out, [entry_json(entry) for entry in entries])
        return EXIT_OK
    if not entries:
        out.write("No models on this machine yet.\n")
        return EXIT_OK
    wide = bool(getattr(args, "wide", False))
    rows = [
        (
            _short_key(entry),
            entry.name,
            entry.kind.value if wide else _SHORT_KINDS.get(entry.kind.value, entry.kind.value),
            entry.quantization or "",
            format_bytes(entry.size) if entry.size else "?",
            _where(entry),
        )
        for entry in entries
    ]
    write_table(
        out,
        ("KEY", "NAME", "KIND", "QUANT", "SIZE", "WHERE"),
        rows,
        width=None if wide else terminal_width(out),
        shrinkable=_LIST_SHRINKABLE,
    )
    # A file whose header cannot be read is listed (it takes space; `rm` frees it), and says
    # why here, in the words `modeldeck import` uses for what it turns down.
    for entry in entries:
        if entry.unreadable:
            out.write(f"rejected  {entry.name} ({_where(entry)}): {entry.unreadable}\n")
        elif entry.incomplete:
            out.write(f"incomplete  {entry.name} ({_where(entry)}): {entry.incomplete}\n")
    return EXIT_OK


def _import(library: Library, args: argparse.Namespace, out: TextIO) -> int:
    result = library.import_paths(args.paths)
    if args.json:
        _dump(
            out,
            {
                "imported": [entry_json(entry) for entry in result.imported],
                "rejected": [
                    {"path": str(path), "reason": reason} for path, reason in result.rejected
                ],
            },
        )
    else:
        for entry in result.imported:
            size = format_bytes(entry.size) if entry.size else "?"
            out.write(f"imported  {entry.name}  ({entry.kind.value}, {size})\n")
        for path, reason in result.rejected:
            out.write(f"rejected  {path}: {reason}\n")
    return EXIT_ERROR if result.rejected and not result.imported else EXIT_OK


def _matching(library: Library, query: str) -> list[LibraryEntry]:
    """The entries `query` names (after a fresh scan), for `rm` and `verify`.

    Raises:
        EntryNotFoundError: none matches.
    """
    from app.library import EntryNotFoundError

    library.scan()
    matches = library.find(query)
    if not matches:
        raise EntryNotFoundError(
            f"No model in the library matches {query!r}.",
            query=query,
            hint="See `modeldeck list` for keys, names and repository ids.",
        )
    return matches


def _rm(library: Library, args: argparse.Namespace, out: TextIO, stdin: TextIO, err: TextIO) -> int:
    matches = _matching(library, args.model)
    keys = [entry.key for entry in matches]
    delete_files = bool(args.delete_files)
    plan = library.plan_delete_all(keys, delete_imported_files=delete_files)
    _write_plan(out, plan)
    interactive = _is_tty(stdin)
    if not args.yes:
        if not interactive:
            return _fail(err, "not deleting without --yes: input is not a terminal", EXIT_USAGE)
        if not _ask(err, stdin, "Delete? [y/N] "):
            out.write("Nothing deleted.\n")
            return EXIT_OK
    confirm_other_apps = bool(args.other_apps)
    if plan.needs_second_confirmation and not confirm_other_apps:
        apps = " and ".join(plan.other_apps)
        if interactive and not args.yes:
            confirm_other_apps = _ask(
                err, stdin, f"{apps} will lose its copy. Delete it there too? [y/N] "
            )
        if not confirm_other_apps:
            out.write(f"Keeping the copies {apps} uses (--other-apps deletes them too).\n")
            mine = [
                location
                for entry in matches
                for location in entry.locations
                if not location.owned_by_other_app
            ]
            if not mine:
                out.write("Nothing deleted.\n")
                return EXIT_OK
            plan = library.plan_delete_all(keys, mine, delete_imported_files=delete_files)
    freed = library.execute(plan, confirm_other_apps=confirm_other_apps)
    out.write(f"Deleted {plan.name}: {format_bytes(freed)} freed.\n")
    return EXIT_OK


def _verify(library: Library, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    matches = _matching(library, args.model)
    results = [library.verify(entry.key) for entry in matches]
    if args.json:
        _dump(out, [result.to_json() for result in results])
    for result in results:
        if not result.intact:
            err.write(f"modeldeck: {result.summary()}\n")
        elif not args.json:
            out.write(result.summary() + "\n")
    return EXIT_OK if all(result.intact for result in results) else EXIT_ERROR


def _write_plan(out: TextIO, plan: DeletePlan) -> None:
    out.write(f"Deleting {plan.name} frees {format_bytes(plan.bytes_freed)}:\n")
    for step in plan.steps:
        where = step.source.label
        extra = " (another app's copy: asks again)" if step.needs_second_confirmation else ""
        out.write(f"  {where}{extra}: {format_bytes(step.bytes_freed)}\n")
        for path in step.paths:
            out.write(f"    {path}\n")
        if step.forget_imports:
            out.write("    the import record is forgotten\n")
        if step.note:
            out.write(f"    ({step.note})\n")


def _where(entry: LibraryEntry) -> str:
    from app.library import Source

    places = []
    for location in entry.locations:
        label = location.source.label
        if location.source is Source.HF_CACHE and location.repo_id:
            label = location.repo_id
        elif location.repo_id:
            label = f"{label}: {location.repo_id}"
        places.append(label if location.present else f"{label} (missing)")
    return ", ".join(dict.fromkeys(places))


def _short_key(entry: LibraryEntry) -> str:
    return entry.sha256[:12] if entry.sha256 else entry.key


def _ask(err: TextIO, stdin: TextIO, question: str) -> bool:
    err.write(question)
    err.flush()
    return stdin.readline().strip().lower() in ("y", "yes")


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _dump(out: TextIO, data: object) -> None:
    json.dump(data, out, indent=2, ensure_ascii=False)
    out.write("\n")


def _fail(err: TextIO, message: str, status: int) -> int:
    err.write(f"modeldeck: {' '.join(message.split())}\n")
    return status
