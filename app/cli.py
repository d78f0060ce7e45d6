"""`modeldeck search|info|pull|list|import|rm|chat …`: the headless commands, over the same core
as the window.

Exit status: 0 success; 2 bad arguments; 3 repository not found; 4 gated or not permitted;
5 hub unreachable (offline); 6 (pull) a file flagged by the hub's security scan; 1 any other
error. Failures print one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from itertools import islice
from typing import TYPE_CHECKING, Any, TextIO

from app import __version__
from app.hub.models import SortOrder

if TYPE_CHECKING:
    from app.core import Core
    from app.hub.provider import HubProvider

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_FORBIDDEN = 4
EXIT_OFFLINE = 5


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `modeldeck` (no command: open the window)."""
    parser = argparse.ArgumentParser(
        prog="modeldeck",
        description="Find open models on a hub, read their card and license, and run them.",
    )
    parser.add_argument("--version", action="version", version=f"modeldeck {__version__}")
    endpoint_help = "hub endpoint for this run (default: the setting, HF_ENDPOINT, huggingface.co)"
    parser.add_argument("--endpoint", type=_endpoint_url, help=endpoint_help)
    # Accepted after the command too; SUPPRESS keeps a missing one from hiding the global one.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--endpoint", type=_endpoint_url, default=argparse.SUPPRESS, help=endpoint_help
    )
    # Which hub search, info and pull talk to; `--endpoint` applies to the chosen hub.
    hub_choice = argparse.ArgumentParser(add_help=False)
    hub_choice.add_argument(
        "--hub",
        choices=["hf", "civitai", "modelscope"],
        default="hf",
        help="the hub: hf (Hugging Face, default), civitai or modelscope",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    search = commands.add_parser(
        "search", parents=[common, hub_choice], help="search the hub for models"
    )
    search.add_argument("query", nargs="?", default="", help="text to look for in model ids")
    search.add_argument("--task", help="pipeline tag, e.g. text-generation, text-to-image")
    search.add_argument("--library", help="library or format, e.g. gguf, diffusers, transformers")
    search.add_argument("--license", help="license id, e.g. apache-2.0")
    search.add_argument("--author", help="user or organisation")
    search.add_argument(
        "--sort", choices=[order.value for order in SortOrder], default=SortOrder.DOWNLOADS.value
    )
    search.add_argument("--limit", type=_positive_int, default=20, help="results to show (20)")
    search.add_argument("--json", action="store_true", help="print JSON")

    info = commands.add_parser(
        "info", parents=[common, hub_choice], help="show a model's license, gating and files"
    )
    info.add_argument("repo_id", help="e.g. Qwen/Qwen2.5-0.5B-Instruct-GGUF")
    info.add_argument("--revision", help="branch, tag or commit (default: main)")
    info.add_argument(
        "--context", type=_positive_int, default=None, help="context length for the fit estimate"
    )
    info.add_argument("--json", action="store_true", help="print JSON")

    # Both modules keep their heavy imports inside `run`: this parser is built at every start.
    from app.commands import chat, image, library, pull, serve

    pull.register(commands, parents=[common, hub_choice])
    library.register(commands)
    chat.register(commands, parents=[common])
    from app.commands import docs

    docs.register(commands)
    from app.commands import civitai

    civitai.register_identify(commands, parents=[common])
    serve.register(commands, parents=[common])
    image.register(commands)
    from app.commands import upscale

    upscale.register(commands)
    from app.commands import updates

    updates.register(commands, parents=[common])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a headless command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    return run_command(args)


def run_command(args: argparse.Namespace, *, out: TextIO = sys.stdout) -> int:
    """Run a parsed command and return the exit status."""
    # huggingface_hub logs each retry as a warning; a failure here is reported in one line.
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    # Imported here, not at the top: the window's launcher parses arguments with this module.
    from app.core import Core
    from app.errors import AppError, GatedRepoError, HubUnreachableError, RepoNotFoundError
    from app.store import DatabaseError

    try:
        core = Core.open(endpoint_override=args.endpoint)
    except DatabaseError as exc:  # a damaged, foreign or newer database: nothing was run
        return _fail(str(exc), EXIT_ERROR)
    except AppError as exc:
        return _fail(exc.message, EXIT_USAGE)
    if core.database.recovery is not None:  # the command still runs, on a fresh database
        sys.stderr.write(f"modeldeck: {core.database.recovery.message}\n")
    try:
        if args.command == "pull" and args.hub == "modelscope":
            from app.commands import modelscope_pull

            return modelscope_pull.run(core, args, out)
        if args.command == "pull" and args.hub == "civitai":
            from app.commands import civitai

            return civitai.run_pull(core, args, out)
        if args.command == "identify":
            from app.commands import civitai

            return civitai.run_identify(core, args, out)
        if args.command == "pull":
            from app.commands import pull

            return pull.run(core, args, out)
        if args.command == "chat":
            from app.commands import chat

            return chat.run(core, args, out)
        if args.command == "docs":
            from app.commands import docs

            return docs.run(core, args, out)
        if args.command == "serve":
            from app.commands import serve

            return serve.run(core, args, out)
        if args.command == "image":
            from app.commands import image

            return image.run(core, args, out)
        if args.command == "upscale":
            from app.commands import upscale

            return upscale.run(core, args, out)
        if args.command in ("outdated", "update"):
            from app.commands import updates

            if args.command == "outdated":
                return updates.run_outdated(core, args, out)
            return updates.run_update(core, args, out)
        if args.command in ("list", "import", "rm", "verify"):
            from app.commands import library

            return library.run(core, args, out, library=core.library)
        if args.command == "search":
            _search(core, args, out)
        else:
            _info(core, args, out)
    except HubUnreachableError as exc:
        return _fail(f"offline: {exc}", EXIT_OFFLINE)
    except GatedRepoError as exc:
        return _fail(str(exc), EXIT_FORBIDDEN)
    except RepoNotFoundError as exc:
        return _fail(str(exc), EXIT_NOT_FOUND)
    except AppError as exc:
        return _fail(str(exc), EXIT_ERROR)
    finally:
        core.close()
    return EXIT_OK


def _search(core: Core, args: argparse.Namespace, out: TextIO) -> None:
    from app.hub.models import SearchQuery
    from app.model_report import summary_json

    query = SearchQuery(
        text=args.query,
        task=args.task,
        library=args.library,
        license=args.license,
        author=args.author,
        sort=SortOrder(args.sort),
    )
    results = list(islice(_hub(core, args).search(query), args.limit))
    if args.json:
        hub = {"hub": args.hub}  # every result says which hub it is from
        json.dump([{**summary_json(item), **hub} for item in results], out, indent=2)
        out.write("\n")
        return
    if not results:
        out.write("No models match.\n")
        return
    rows = [
        (
            item.repo_id,
            item.task or "-",
            f"{item.downloads:,}",
            f"{item.likes:,}",
            item.license_id or "-",
            _date(item.last_modified),
        )
        for item in results
    ]
    _write_table(out, ("MODEL", "TASK", "DOWNLOADS", "LIKES", "LICENSE", "UPDATED"), rows)


def _info(core: Core, args: argparse.Namespace, out: TextIO) -> None:
    from app.hardware import read_machine_memory
    from app.hub.models import AccessStatus, Gating
    from app.model_report import describe_model

    hub = _hub(core, args)
    details = hub.model_details(args.repo_id, revision=args.revision)
    if details.gating is Gating.OPEN:
        access = AccessStatus.GRANTED
    elif details.saved_at is not None:  # offline: the hub cannot be asked
        access = AccessStatus.UNKNOWN
    else:
        access = hub.check_access(details.repo_id)
    memory = read_machine_memory()
    context = args.context or core.settings.default_context_length
    report = describe_model(details, access, memory, context_length=context)
    if args.json:
        json.dump(report, out, indent=2)
        out.write("\n")
        return
    _write_info_text(out, report)


def _hub(core: Core, args: argparse.Namespace) -> HubProvider:
    """The provider `--hub` names: the core's Hugging Face hub, or another one remembered
    (offline copies) in the same database."""
    from app.hub.choice import HubKind, make_provider
    from app.hub.offline import OfflineAwareHub

    kind = HubKind(args.hub)
    if kind is HubKind.HUGGING_FACE:
        return core.hub
    if kind is HubKind.CIVITAI:  # with the user's NSFW setting and saved Civitai key
        from app.commands.civitai import civitai_hub

        return OfflineAwareHub(civitai_hub(core.database, args.endpoint), core.database)
    return OfflineAwareHub(make_provider(kind, endpoint=args.endpoint), core.database)


def _write_info_text(out: TextIO, report: dict[str, Any]) -> None:
    from app.model_report import access_text, gating_text, security_text
    from app.units import format_bytes

    license_ = report["license"]
    lines = [f"{report['id']}  ({report['url']})"]
    if report["offline_copy_from"]:
        lines.append(f"offline: showing the copy saved {report['offline_copy_from'][:19]}")
    lines += [
        f"  task:        {report['task'] or '-'}    library: {report['library'] or '-'}",
        f"  commit:      {report['sha'] or '-'}    updated: {report['last_modified'] or '-'}",
        f"  downloads:   {report['downloads']:,}    likes: {report['likes']:,}",
        f"  license:     {license_['name']} [{license_['category']}]",
        f"  commercial:  {license_['commercial_use']}"
        + (f" ({license_['commercial_condition']})" if license_["commercial_condition"] else ""),
        f"  terms:       {license_['summary']}",
        f"  gated:       {gating_text(report['gated'])}",
        f"  download:    {access_text(report['access'])}",
        f"  hub scans:   {security_text(report['security'])}",
    ]
    if report["base_models"]:
        lines.append(f"  base model:  {', '.join(report['base_models'])}")
    out.write("\n".join(lines) + "\n\n")

    def size(value: int | None) -> str:
        return format_bytes(value) if value is not None else "?"

    # A split GGUF is one model: one row with its part count, as the window shows it.
    sha256 = {file["path"]: file["sha256"] for file in report["files"]}
    grouped = {part for model in report["gguf_models"] for part in model["parts"]}
    rows = []
    for model in report["gguf_models"]:
        parts = len(model["parts"])
        label = model["path"]
        if parts > 1:
            label += f" (+{parts - 1} part{'' if parts == 2 else 's'})"
        if not model["complete"]:
            label += " (parts missing)"
        fit = "projector" if model["projector"] else model["fit"] or ""
        rows.append(
            (label, size(model["size"]), model["quantization"] or "", fit,
             (sha256.get(model["path"]) or "")[:12], model["scan"]["level"])
        )  # fmt: skip
    rows += [
        (file["path"], size(file["size"]), "", "", (file["sha256"] or "")[:12],
         file["scan"]["level"])
        for file in report["files"]
        if file["path"] not in grouped
    ]  # fmt: skip
    _write_table(out, ("FILE", "SIZE", "QUANT", "FIT", "SHA256", "SCAN"), rows)


def _write_table(out: TextIO, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        out.write(
            "  ".join(
                str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )
        out.write("\n")


def _date(value: datetime | None) -> str:
    return value.date().isoformat() if value else "-"


def _endpoint_url(text: str) -> str | None:
    """An http(s) URL for `--endpoint` (cleaned), so a typo is a usage error, not "offline"."""
    from app.errors import SettingsError
    from app.settings import validate_endpoint

    try:
        return validate_endpoint(text)
    except SettingsError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def _fail(message: str, status: int) -> int:
    sys.stderr.write(f"modeldeck: {' '.join(message.split())}\n")
    return status
