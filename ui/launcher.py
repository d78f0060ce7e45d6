"""The `modeldeck` command: a subcommand runs headless; no subcommand opens the window.

Qt is imported only when the window is wanted, so `modeldeck search …` starts fast and
works on a machine without a display.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from app import cli


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `modeldeck` console script."""
    args = cli.build_parser().parse_args(argv)
    if args.command is not None:
        return cli.run_command(args)
    from ui.application import run_gui

    return run_gui(endpoint_override=args.endpoint)


if __name__ == "__main__":
    sys.exit(main())
