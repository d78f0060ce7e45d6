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
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from app.chat.load_plan import LoadPlan
    from app.chat.local import LocalChatEngine
    from app.chat.model_choice import ChosenModel
    from app.chat.vision import ImageAttachment
    from app.core import Core
    from app.docs.prompt import DocumentPrompt
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
    chat.add_argument(
        "--image",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="an image to send with the prompt (repeat for several; needs a vision model)",
    )
    chat.add_argument(
        "--mmproj",
        type=Path,
        metavar="FILE",
        help="the vision projector to load (default: the mmproj file beside the model)",
    )
    chat.add_argument(
        "--docs",
        action="append",
        default=[],
        metavar="NAME|PATH",
        help="answer from a document collection or a file/folder, citing sources (repeatable)",
    )
    chat.add_argument("--max-tokens", type=int, default=512, help="longest reply (512)")
    chat.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (0.8)")
    chat.add_argument("--seed", type=int, help="sampling seed (default: random, reported)")
    chat.add_argument("--ctx", type=int, default=4096, help="context length (4096)")
    chat.add_argument(
        "--gpu-layers", type=int, help="layers on the GPU (default: as many as fit; -1 all)"
    )
    chat.add_argument("--threads", type=int, help="CPU threads (default: llama.cpp's choice)")
    chat.add_argument("--json", action="store_true", help="print one JSON object at the end")
    chat.add_argument(
        "--json-schema",
        metavar="FILE",
        help="a JSON Schema file: the reply is JSON valid against it (grammar-constrained)",
    )


def run(core: Core, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Answer `args.prompt` with the chosen model; returns the exit status."""
    from app.chat.local import LocalChatEngine
    from app.chat.model_choice import ModelChoiceError
    from app.chat.vision import read_image_file
    from app.errors import AppError
    from app.llm.sampling import Sampling

    err = sys.stderr
    if not args.prompt.strip():
        return _fail(err, "The prompt is empty.", 2)
    try:
        schema = _read_schema(args.json_schema) if args.json_schema else None
        sampling = Sampling(
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            seed=args.seed,
            json_schema=schema,
        )
    except (OSError, ValueError) as exc:
        return _fail(err, str(exc), 2)
    try:  # images are read before a model loads for them
        images = [read_image_file(path) for path in args.image]
    except AppError as exc:
        return _fail(err, str(exc), 2)
    engine = LocalChatEngine()
    try:
        loaded = load_model(core, engine, args, err=err)
        documents = _documents(core, engine, loaded, args, sampling, err=err)
        return _answer(
            engine, loaded, args, sampling, images, out=out, err=err, documents=documents
        )
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
    projector = _projector(core, model, args)
    plan = plan_load(
        model.path,
        context_length=args.ctx,
        gpu_layers=args.gpu_layers,
        threads=args.threads,
        kv_cache_type=KvCacheType.F16,
        flash_attention=False,
        capabilities=engine.capabilities(),
        machine=read_machine_memory(),
        projector=projector,
    )
    for note in plan.notes:
        print(f"note: {note}", file=err)
    return model, plan


def _projector(core: Core, model: ChosenModel, args: argparse.Namespace) -> Path | None:
    """The projector to load: `--mmproj`, else the one beside the model when images are
    sent, or always for `serve` (which has no --image: any request may bring one).

    Raises:
        VisionError: images for a model without a projector (naming the models that can see).
    """
    from app.chat.vision import cannot_see
    from app.library.projectors import projector_beside

    chosen: Path | None = getattr(args, "mmproj", None)
    if chosen is not None:
        return chosen
    if not hasattr(args, "image"):  # serving
        return projector_beside(model.path)
    if not args.image:
        return None
    beside = projector_beside(model.path)
    if beside is None:
        raise cannot_see(model.name, core.library.scan())
    return beside


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
    images: Sequence[ImageAttachment],
    *,
    out: TextIO,
    err: TextIO,
    documents: DocumentPrompt | None = None,
) -> int:
    from app.chat.controller import with_seed
    from app.chat.llama_command import llama_cli_command
    from app.chat.vision import content_with_images
    from app.engines.protocol import EventKind
    from app.llm.engine import result_of
    from app.llm.messages import Generated

    # The seed is chosen here, as the Chat page's controller chooses it, so the reply and its
    # llama.cpp command agree even when no --seed was given.
    sampling = with_seed(sampling)
    # With documents, the question goes with its numbered sources, as the person's own text.
    question = documents.text if documents is not None else args.prompt
    messages = [{"role": "user", "content": content_with_images(question, len(images))}]
    if args.system:
        messages.insert(0, {"role": "system", "content": args.system})
    prompt = engine.render(messages)
    if prompt.note:
        print(f"note: {prompt.note}", file=err)
    handle = engine.generate(messages, sampling, images=images)
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
        if documents is not None:
            from app.docs.prompt import citations

            out.write(f"\nSources:\n{citations(documents.sources) or '(none found)'}\n")
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
        "images": [{"name": image.name, "sha256": image.sha256} for image in images],
    }
    if documents is not None:  # what was sent as [1], [2]...: file, page and lines, score
        document["sources"] = [source.to_json() for source in documents.sources]
    out.write(json.dumps(document, ensure_ascii=False) + "\n")
    return EXIT_OK


def _documents(
    core: Core,
    engine: LocalChatEngine,
    loaded: LoadedForCommand,
    args: argparse.Namespace,
    sampling: Sampling,
    *,
    err: TextIO,
) -> DocumentPrompt | None:
    """The question with passages of `--docs`, within the context left beside the reply."""
    if not args.docs:
        return None
    from app.commands.docs import PROMPT_MARGIN_TOKENS, compose_for_chat, resolve_collections

    collections = resolve_collections(core, args.docs, err=err)
    frame = [{"role": "user", "content": ""}]
    if args.system:
        frame.insert(0, {"role": "system", "content": args.system})
    overhead = engine.count_tokens(engine.render(frame).text)
    budget = loaded.loaded.context_length - sampling.max_tokens - overhead - PROMPT_MARGIN_TOKENS
    return compose_for_chat(
        core, collections, args.prompt, budget_tokens=budget, count_tokens=engine.count_tokens
    )


def _read_schema(path: str) -> str:
    """The text of a `--json-schema` file (checked by `Sampling`).

    Raises:
        OSError: the file cannot be read (the message names it).
    """
    from pathlib import Path

    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise OSError(f"Cannot read the JSON schema {path}: {reason}") from None


def _fail(err: TextIO, message: str, status: int) -> int:
    print(f"modeldeck: {message}", file=err)
    return status
