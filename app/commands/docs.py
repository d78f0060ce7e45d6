"""`modeldeck docs add|list|remove|index`, and the documents part of `chat --docs`.

    modeldeck docs add NAME PATH... [--embedder MODEL] [--json]
                                       a collection of files and folders, indexed in place
                                       (MODEL: an embedding GGUF; without one, words only)
    modeldeck docs list [--json]       collections with their files, chunks and sizes
    modeldeck docs index NAME [--embedder MODEL|none] [--json]
                                       bring a collection up to date with its files (with
                                       another embedding model: all embedded again)
    modeldeck docs remove NAME         forget a collection (its files are never touched)
    modeldeck chat MODEL --docs NAME|PATH --prompt ...
                                       answer from the best passages, cited as [n]

Exit status: 0 success; 1 error; 3 no such collection or model.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from app.errors import AppError
from app.units import format_bytes

if TYPE_CHECKING:
    from app.core import Core
    from app.docs.collections import DocumentCollections
    from app.docs.indexer import IndexReport
    from app.docs.prompt import DocumentPrompt
    from app.docs.store import Collection

EXIT_OK, EXIT_ERROR, EXIT_NOT_FOUND = 0, 1, 3
PASSAGES = 8  # passages retrieved for a question; as many as fit are sent
# Tokens kept free beside the reply and the template's own tokens (role markers, BOS).
PROMPT_MARGIN_TOKENS = 64


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `docs` and its subcommands."""
    docs = subparsers.add_parser(
        "docs",
        help="collections of documents to chat with (add, list, index, remove)",
        description="Files and folders indexed in place, for `modeldeck chat --docs`.",
    )
    actions = docs.add_subparsers(dest="docs_command", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add a collection of files and folders, and index it")
    add.add_argument("name", metavar="NAME")
    add.add_argument("paths", metavar="PATH", nargs="+", type=Path)
    add.add_argument(
        "--embedder",
        metavar="MODEL",
        help="an embedding GGUF (library name, REPO[:QUANT] or path) for search by meaning",
    )
    add.add_argument("--json", action="store_true", help="print JSON")
    list_ = actions.add_parser("list", help="list the collections")
    list_.add_argument("--json", action="store_true", help="print JSON")
    index = actions.add_parser("index", help="bring a collection up to date with its files")
    index.add_argument("name", metavar="NAME")
    index.add_argument(
        "--embedder",
        metavar="MODEL",
        help="search by meaning with this embedding GGUF from now on ('none': words only); "
        "a model other than the collection's embeds it again, the same one never",
    )
    index.add_argument("--json", action="store_true", help="print JSON")
    remove = actions.add_parser("remove", help="forget a collection (files stay)")
    remove.add_argument("name", metavar="NAME")


def run(core: Core, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run a `docs` action; returns the exit status."""
    from app.chat.model_choice import ModelChoiceError, choose_gguf
    from app.docs.store import CollectionError

    documents = core.documents
    err = sys.stderr
    try:
        if args.docs_command == "add":
            embedder = choose_gguf(args.embedder, core.library).path if args.embedder else None
            collection = documents.add(args.name, args.paths, embedder=embedder)
            return _index(documents, collection.name, args.json, out, err)
        if args.docs_command == "index":
            if args.embedder is not None:
                chosen = args.embedder.strip().lower() != "none"
                model = choose_gguf(args.embedder, core.library).path if chosen else None
                documents.set_embedder(args.name, model)
            return _index(documents, args.name, args.json, out, err)
        if args.docs_command == "remove":
            documents.remove(args.name)
            print(f"Removed the collection {args.name!r} (its files are untouched).", file=out)
            return EXIT_OK
        return _list(documents, args.json, out)
    except (CollectionError, ModelChoiceError) as exc:
        print(f"modeldeck: {exc}", file=err)
        return EXIT_NOT_FOUND
    except AppError as exc:
        print(f"modeldeck: {exc}", file=err)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("modeldeck: stopped (what was indexed is kept)", file=err)
        return 130


def _index(
    documents: DocumentCollections, name: str, as_json: bool, out: TextIO, err: TextIO
) -> int:
    report = documents.index(name)
    collection = documents.store.get(name)
    if as_json:
        out.write(json.dumps(_report_json(collection, report), ensure_ascii=False) + "\n")
        return EXIT_OK
    print(f"{collection.name}: {report.summary()}", file=out)
    for path, reason in report.skipped:
        print(f"  skipped {path}: {reason}", file=out)
    if collection.embedder is None:
        print("note: words only; `docs add --embedder MODEL` adds search by meaning", file=err)
    return EXIT_OK


def _report_json(collection: Collection, report: IndexReport) -> dict[str, Any]:
    return {
        "name": collection.name,
        "added": report.added,
        "changed": report.changed,
        "removed": report.removed,
        "unchanged": report.unchanged,
        "skipped": [{"file": path, "reason": reason} for path, reason in report.skipped],
        "offline": report.offline,
        "missing": [str(root) for root in report.missing_roots],
        "chunks_added": report.chunks_added,
        "chunks_embedded": report.chunks_embedded,
        "bytes_read": report.bytes_read,
        "seconds": round(report.seconds, 3),
    }


def _list(documents: DocumentCollections, as_json: bool, out: TextIO) -> int:
    summaries = documents.summaries()
    if as_json:
        rows = [
            {
                "name": s.collection.name,
                "paths": [str(root) for root in s.collection.roots],
                "embedder": str(s.collection.embedder) if s.collection.embedder else None,
                "files": s.stats.files,
                "skipped": s.stats.skipped,
                "bytes": s.stats.bytes,
                "chunks": s.stats.chunks,
                "embedded": s.stats.embedded,
                "offline": s.collection.offline,
                "indexed_at": s.collection.indexed_at,
            }
            for s in summaries
        ]
        out.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return EXIT_OK
    if not summaries:
        print("No collections yet: `modeldeck docs add NAME FOLDER` makes one.", file=out)
    for s in summaries:
        state = " (offline)" if s.collection.offline else ""
        search = "words + meaning" if s.collection.embedder else "words"
        print(
            f"{s.collection.name}{state}: {s.stats.files} files, {format_bytes(s.stats.bytes)}, "
            f"{s.stats.chunks} chunks ({search}); {s.stats.skipped} skipped",
            file=out,
        )
        for root in s.collection.roots:
            print(f"  {root}", file=out)
    return EXIT_OK


def resolve_collections(
    core: Core, names_or_paths: Sequence[str], *, err: TextIO
) -> list[Collection]:
    """The collections `chat --docs` names: a collection's name, or a file or folder (kept
    as a collection of its own, words only), each brought up to date first.

    Raises:
        CollectionError: neither a collection nor an existing path.
    """
    documents = core.documents
    collections: list[Collection] = []
    for given in names_or_paths:
        found = documents.store.find(given)
        collection = found or documents.for_path(Path(given), embedder=None)
        report = documents.index(collection.name)
        if report.added or report.changed or report.removed or report.offline:
            print(f"note: {given}: {report.summary()}", file=err)
        collections.append(documents.store.get(collection.name))
    return collections


def compose_for_chat(
    core: Core,
    collections: Sequence[Collection],
    question: str,
    *,
    budget_tokens: int,
    count_tokens: Callable[[str], int],
) -> DocumentPrompt:
    """The question with the best passages of `collections` that fit in `budget_tokens`."""
    from app.docs.prompt import compose_prompt

    passages = core.documents.search(collections, question, limit=PASSAGES)
    return compose_prompt(
        question, passages, budget_tokens=budget_tokens, count_tokens=count_tokens
    )
