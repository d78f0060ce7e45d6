"""`modeldeck pull --hub modelscope`: files of a ModelScope model into ModelScope's own cache.

The same transfer as a Hugging Face pull (resumed after any interruption, each file's sha256
verified), into the folder the `modelscope` SDK uses (`MODELSCOPE_CACHE` honoured), so its
tools see the files; the library lists them from there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import TYPE_CHECKING, TextIO

from app.units import format_bytes

if TYPE_CHECKING:
    from app.core import Core

EXIT_OK = 0


def run(core: Core, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Pull what `args` names from ModelScope; errors propagate to the CLI's handlers."""
    from app.downloads.modelscope import pull_modelscope
    from app.hub.modelscope.api import DEFAULT_REVISION, ModelScopeClient
    from app.hub.modelscope.provider import modelscope_endpoint

    client = ModelScopeClient(
        endpoint=modelscope_endpoint(args.endpoint),
        token=os.environ.get("MODELSCOPE_API_TOKEN") or None,
    )
    shown = _Progress(out, as_json=args.json)
    pulled = pull_modelscope(
        client,
        args.repo_id,
        args.patterns,
        on_progress=shown.report,
        revision=args.revision or DEFAULT_REVISION,
    )
    if args.json:
        record = {
            "hub": "modelscope",
            "repo_id": pulled.model_id,
            "folder": str(pulled.folder),
            "files": list(pulled.files),
            "size": pulled.size,
            "state": "done",
        }
        out.write(json.dumps(record) + "\n")
    else:
        out.write(
            f"{pulled.model_id}: {len(pulled.files)} files, {format_bytes(pulled.size)}, "
            f"verified, in {pulled.folder}\n"
        )
    del core  # the library finds the files on its next scan (ModelScope's cache is a source)
    return EXIT_OK


class _Progress:
    """One line per file at most every second (text), or nothing until the end (JSON)."""

    def __init__(self, out: TextIO, *, as_json: bool) -> None:
        self._out = out
        self._as_json = as_json
        self._last = 0.0

    def report(self, path: str, done: int, size: int) -> None:
        now = time.monotonic()
        if self._as_json or (done < size and now - self._last < 1.0):
            return
        self._last = now
        self._out.write(f"  {path}: {format_bytes(done)} of {format_bytes(size)}\n")
