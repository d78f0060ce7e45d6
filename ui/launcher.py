"""The `modeldeck` command: a subcommand runs headless; no subcommand opens the window.

Qt is imported only when the window is wanted, so `modeldeck search …` starts fast and
works on a machine without a display. Paths given without a command (`modeldeck a.gguf`, as
a desktop's "Open with" runs it) are imported into the Library once the window is up.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from app import cli

SELF_TEST_HELP = "check that this install starts and runs a model (no display needed), then exit"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `modeldeck` console script (and of the bundles)."""
    if getattr(sys, "frozen", False):
        # A bundle starts each engine child by running itself with multiprocessing's own
        # arguments: this runs the child and exits before argparse sees them.
        import multiprocessing

        multiprocessing.freeze_support()
    parser = cli.build_parser()
    parser.add_argument("--self-test", action="store_true", help=SELF_TEST_HELP)
    arguments = list(sys.argv[1:] if argv is None else argv)
    options, files = split_open_paths(arguments, commands=command_names(parser))
    args = parser.parse_args(options)
    if args.self_test:
        from ui.application import run_self_test

        return run_self_test()
    if args.command is not None:
        return cli.run_command(args)
    from ui.application import run_gui

    return run_gui(endpoint_override=args.endpoint, open_paths=files)


def command_names(parser: argparse.ArgumentParser) -> set[str]:
    """The subcommands `parser` knows (search, pull, …)."""
    return {
        name
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices
    }


def split_open_paths(
    arguments: Sequence[str], *, commands: set[str]
) -> tuple[list[str], list[Path]]:
    """Separate existing files or folders to open from the other arguments.

    A command name ends the search: what follows is the command's (`modeldeck import a.gguf`
    imports without a window).
    """
    options: list[str] = []
    files: list[Path] = []
    for index, argument in enumerate(arguments):
        if argument in commands:
            return [*options, *arguments[index:]], files
        if not argument.startswith("-") and Path(argument).exists():
            files.append(Path(argument).resolve())
        else:
            options.append(argument)
    return options, files


if __name__ == "__main__":
    sys.exit(main())
