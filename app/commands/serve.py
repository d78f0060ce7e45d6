"""`modeldeck serve [MODEL]`: serve local GGUFs on an OpenAI-compatible API until Ctrl+C.

MODEL is chosen as `modeldeck chat` chooses it, and loaded before the server answers. Without
MODEL every chat model of the library is served: a request naming one loads it just in time
(`--max-loaded`, `--idle-unload` and the memory fit decide what stays loaded).

The server listens on 127.0.0.1:8080 unless told otherwise; any other address needs an API
key, given with `--api-key` or, to keep it out of the shell's history, in MODELDECK_API_KEY.
Web pages may call it only from the origins given with `--allow-origin` (repeatable), or else
those in the settings (the Chat page's server panel keeps them); none by default.
Ctrl+C or SIGTERM stops it (exit status 0).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from app.core import Core
    from app.serving import ModelServer

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3
API_KEY_ENV = "MODELDECK_API_KEY"


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> None:
    """Add `serve` to a parser's subcommands."""
    serve = subparsers.add_parser(
        "serve",
        parents=list(parents),
        help="serve local GGUF models on an OpenAI-compatible API",
        description="Serve a GGUF model — or, without MODEL, every chat model of the library, "
        "each loaded when a request names it — and answer OpenAI-style requests "
        "(/v1/chat/completions, "
        "/v1/completions, /v1/models) until Ctrl+C.",
    )
    serve.add_argument(
        "model",
        metavar="MODEL",
        nargs="?",
        help="library name, REPO[:QUANT], or a .gguf path (default: every library model, "
        "each loaded when a request names it)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (8080)")
    serve.add_argument(
        "--api-key",
        help=f"require this bearer token (default: ${API_KEY_ENV}; needed beyond 127.0.0.1)",
    )
    serve.add_argument(
        "--allow-origin",
        action="append",
        metavar="ORIGIN",
        help="let web pages from ORIGIN (e.g. http://localhost:3000) call the API from a "
        "browser; repeatable (default: the allowed origins in the settings, none at first)",
    )
    serve.add_argument("--ctx", type=int, default=4096, help="context length (4096)")
    serve.add_argument(
        "--gpu-layers", type=int, help="layers on the GPU (default: as many as fit; -1 all)"
    )
    serve.add_argument("--threads", type=int, help="CPU threads (default: llama.cpp's choice)")
    serve.add_argument(
        "--max-loaded",
        type=int,
        metavar="N",
        help="without MODEL: keep at most N models loaded (default: as many as the memory fits)",
    )
    serve.add_argument(
        "--idle-unload",
        type=float,
        metavar="SECONDS",
        help="without MODEL: unload a model after SECONDS without a request (default: never)",
    )


def run(core: Core, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Serve the chosen model until Ctrl+C or SIGTERM; returns the exit status."""
    from app.chat.model_choice import ModelChoiceError
    from app.commands.chat import plan_model
    from app.errors import AppError, SettingsError
    from app.serving import ModelServer, ServingError, check_bind_address
    from app.settings import validate_origins

    err = sys.stderr
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    try:
        check_bind_address(args.host, args.port, api_key=api_key)  # before a slow load
        # The flags for this run, else the saved setting (flags are not saved).
        origins = validate_origins(args.allow_origin or core.settings.api_allowed_origins)
    except (ServingError, SettingsError) as exc:
        return _fail(err, str(exc), EXIT_USAGE)
    if args.model is None:
        return _serve_library(core, args, api_key, origins, out=out)
    if args.max_loaded is not None or args.idle_unload is not None:
        return _fail(err, "--max-loaded and --idle-unload apply without MODEL only.", EXIT_USAGE)
    engine = core.llm
    try:
        model, plan = plan_model(core, engine, args, err=err)
    except ModelChoiceError as exc:
        return _fail(err, str(exc), EXIT_NOT_FOUND)
    except AppError as exc:
        return _fail(err, str(exc), EXIT_ERROR)
    server = ModelServer(engine, documents=lambda: core.documents)

    def load() -> tuple[str, str]:
        loaded = server.load(plan.settings)
        return f"{server.model_id}", (
            f"Loaded {model.name}: {loaded.placement}, context {loaded.context_length:,}"
        )

    return _serve_until_stopped(server, args, api_key, origins, load, out=out)


def _serve_library(
    core: Core,
    args: argparse.Namespace,
    api_key: str | None,
    origins: tuple[str, ...],
    *,
    out: TextIO,
) -> int:
    """Serve every chat model of the library, each loaded when a request names it."""
    from app.serving import ModelServer
    from app.serving.library_models import LibraryModels
    from app.serving.model_pool import ModelPool, PoolLimits, PoolLoadOptions

    err = sys.stderr
    try:
        limits = PoolLimits(max_loaded=args.max_loaded, idle_unload_s=args.idle_unload)
    except ValueError as exc:
        return _fail(err, str(exc), EXIT_USAGE)
    options = PoolLoadOptions(
        context_length=args.ctx, gpu_layers=args.gpu_layers, threads=args.threads
    )
    core.models.refresh()  # the library as it is now; new downloads show on the next refresh
    pool = ModelPool(
        LibraryModels(lambda: core.models.entries, lambda: core.library),
        limits=limits,
        options=options,
    )
    server = ModelServer(core.llm, documents=lambda: core.documents)
    server.serve_library(pool)

    def listing() -> tuple[str, str]:
        count = len(pool.listing())
        if count:
            note = "Each loads when a request names it (GET /v1/models lists them)."
        else:
            note = "The library has no chat model yet: `modeldeck pull` one."
        return f"{count} library models", note

    return _serve_until_stopped(server, args, api_key, origins, listing, out=out)


def _serve_until_stopped(
    server: ModelServer,
    args: argparse.Namespace,
    api_key: str | None,
    origins: tuple[str, ...],
    ready: Callable[[], tuple[str, str]],
    *,
    out: TextIO,
) -> int:
    """Listen, let `ready` load what it must (it returns what is served and a line for stderr),
    then serve until Ctrl+C or SIGTERM; returns the exit status."""
    from app.chat.model_choice import ModelChoiceError
    from app.errors import AppError
    from app.serving import UnprotectedBindError

    err = sys.stderr
    try:
        with _interrupt_on_sigterm():
            # Listening first: a client that comes during a load is told to retry (503).
            url = server.start(args.host, args.port, api_key, allowed_origins=origins)
            served, note = ready()
            key_note = " (API key required)" if server.requires_key else ""
            print(f"Serving {served} at {url}{key_note}", file=out, flush=True)
            _print_api_urls(server, out)
            if origins:
                print(f"Web pages allowed from: {', '.join(origins)}", file=err)
            print(note, file=err)
            print("Press Ctrl+C to stop.", file=out, flush=True)
            threading.Event().wait()  # until Ctrl+C or SIGTERM
    except KeyboardInterrupt:
        pass
    except UnprotectedBindError as exc:
        return _fail(err, str(exc), EXIT_USAGE)
    except ModelChoiceError as exc:
        return _fail(err, str(exc), EXIT_NOT_FOUND)
    except AppError as exc:
        return _fail(err, str(exc), EXIT_ERROR)
    finally:
        server.stop()
    print("Stopped.", file=err)
    return EXIT_OK


def _print_api_urls(server: ModelServer, out: TextIO) -> None:
    """Each API's base URL, for the client a person uses (OpenAI's is the line above too)."""
    urls = server.api_urls()
    if urls is not None:
        for line in urls.lines():
            print(f"  {line}", file=out, flush=True)


@contextlib.contextmanager
def _interrupt_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM interrupts like Ctrl+C (a load in progress included).
    Only the main thread can set handlers: elsewhere (tests calling `run`) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _fail(err: TextIO, message: str, status: int) -> int:
    print(f"modeldeck: {message}", file=err)
    return status
