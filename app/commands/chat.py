"""`modeldeck chat MODEL --prompt TEXT`: one reply from a local GGUF, streamed to stdout.

MODEL is a library name or entry key, a repo id with an optional `:QUANT`, or a path. Notes
(a clamped context, a tight fit) go to stderr; `--json` prints one object at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from app.chat.load_plan import LoadPlan
    from app.chat.local import LocalChatEngine
    from app.chat.model_choice import ChosenModel
    from app.core import Core
    from app.llm.engine import LoadedModel
    from app.llm.sampling import Sampling

EXIT_OK, EXIT_ERROR, EXIT_NOT_FOUND, EXIT_INTERRUPTED = 0, 1, 3, 130


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> None:
    """Add `chat` to a parser's subcommands."""
    chat = subparsers.add_parser(
        "chat",
        parents=list(parents),
        help="chat with a local GGUF model (one reply, streamed)",
        description="Load a GGUF model with llama.cpp in a child process and stream one reply.",
    )
    chat.add_argument("model", metavar="MODEL", help="library name, REPO[:QUANT], or a .gguf path")
    chat.add_argument("--prompt", required=True, help="your message")
    chat.add_argument("--system", help="system prompt")
    chat.add_argument("--max-tokens", type=int, default=512, help="longest reply (512)")
    chat.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (0.8)")
    chat.add_argument("--seed", type=int, help="sampling seed (default: random, reported)")
    chat.add_argument("--ctx", type=int, default=4096, help="context length (4096)")
    chat.add_argument(
        "--gpu-layers", type=int, help="layers on the GPU (default: as many as fit; -1 all)"
    )
    chat.add_argument("--threads", type=int, help="CPU threads (default: llama.cpp's choice)")
    chat.add_argument("--json", action="store_true", help="print one JSON object at the end")


def run(core: Core, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Answer `args.prompt` with the chosen model; returns the exit status."""
    from app.chat.local import LocalChatEngine
    from app.chat.model_choice import ModelChoiceError
    from app.errors import AppError
    from app.llm.sampling import Sampling

    err = sys.stderr
    if not args.prompt.strip():
        return _fail(err, "The prompt is empty.", 2)
    try:
        sampling = Sampling(
            temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed
        )
    except ValueError as exc:
        return _fail(err, str(exc), 2)
    engine = LocalChatEngine()
    try:
        loaded = load_model(core, engine, args, err=err)
        return _answer(engine, loaded, args, sampling, out=out, err=err)
    except KeyboardInterrupt:
        return _fail(err, "stopped", EXIT_INTERRUPTED)
    except ModelChoiceError as exc:
        return _fail(err, str(exc), EXIT_NOT_FOUND)
    except AppError as exc:
        return _fail(err, str(exc), EXIT_ERROR)
    finally:
        engine.close()


@dataclass(frozen=True)
class LoadedForCommand:
    model: ChosenModel
    plan: LoadPlan
    loaded: LoadedModel


def plan_model(
    core: Core, engine: LocalChatEngine, args: argparse.Namespace, *, err: TextIO
) -> tuple[ChosenModel, LoadPlan]:
    """Choose `args.model` and plan its load (`--ctx`, `--gpu-layers`, `--threads`), printing
    the plan's notes on `err`. Shared by `chat` and `serve`.

    Raises:
        ModelChoiceError, ModelTooLargeError, EngineError: as a one-line AppError.
    """
    from app.chat.load_plan import plan_load
    from app.chat.model_choice import choose_gguf
    from app.hardware import read_machine_memory
    from app.llm import KvCacheType

    model = choose_gguf(args.model, core.library)
    plan = plan_load(
        model.path,
        context_length=args.ctx,
        gpu_layers=args.gpu_layers,
        threads=args.threads,
        kv_cache_type=KvCacheType.F16,
        flash_attention=False,
        capabilities=engine.capabilities(),
        machine=read_machine_memory(),
    )
    for note in plan.notes:
        print(f"note: {note}", file=err)
    return model, plan


def load_model(
    core: Core, engine: LocalChatEngine, args: argparse.Namespace, *, err: TextIO
) -> LoadedForCommand:
    """`plan_model`, then load it."""
    model, plan = plan_model(core, engine, args, err=err)
    return LoadedForCommand(model, plan, engine.load(plan.settings))


def _answer(
    engine: LocalChatEngine,
    loaded: LoadedForCommand,
    args: argparse.Namespace,
    sampling: Sampling,
    *,
    out: TextIO,
    err: TextIO,
) -> int:
    from app.chat.controller import with_seed
    from app.chat.llama_command import llama_cli_command
    from app.engines.protocol import EventKind
    from app.llm.engine import result_of
    from app.llm.messages import Generated

    # The seed is chosen here, as the Chat page's controller chooses it, so the reply and its
    # llama.cpp command agree even when no --seed was given.
    sampling = with_seed(sampling)
    messages = [{"role": "user", "content": args.prompt}]
    if args.system:
        messages.insert(0, {"role": "system", "content": args.system})
    prompt = engine.render(messages)
    if prompt.note:
        print(f"note: {prompt.note}", file=err)
    handle = engine.generate(messages, sampling)
    parts: list[str] = []
    try:
        for event in handle.events():
            if event.kind is EventKind.CHUNK:
                parts.append(event.text)
                if not args.json:
                    out.write(parts[-1])
                    out.flush()
    except KeyboardInterrupt:
        handle.cancel()
        raise
    stats = result_of(handle.wait(), Generated).stats
    if not args.json:
        out.write("\n")
        out.flush()  # before the stats line on stderr, even when stdout is a pipe
        print(stats.summary(), file=err)
        return EXIT_OK
    settings = loaded.plan.settings
    document = {
        "text": "".join(parts),
        "model": {
            "path": str(loaded.model.path),
            "name": loaded.model.name,
            "sha256": loaded.model.sha256,
        },
        "stats": stats.to_json(),
        "load": {**settings.to_args(), "placement": loaded.loaded.placement},
        "template": prompt.format_name,
        "notes": [*loaded.plan.notes, *([prompt.note] if prompt.note else [])],
        "llama_cpp_command": llama_cli_command(
            settings, sampling, prompt.text, seed=stats.seed or 0
        ),
    }
    out.write(json.dumps(document, ensure_ascii=False) + "\n")
    return EXIT_OK


def _fail(err: TextIO, message: str, status: int) -> int:
    print(f"modeldeck: {message}", file=err)
    return status
