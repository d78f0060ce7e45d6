"""Documents: index throughput, fused retrieval latency at many files, and recall@5.

- throughput: a generated mixed corpus (Markdown, text, HTML, code, a few PDFs and Word
  files) indexed words-only (MB of file bytes per minute), then embedded (chunks per second)
  with the embedding GGUF (default: the tests' tiny random-weights model, which measures the
  pipeline — engine process, pipe, batches, SQLite — not a real model's arithmetic);
- latency: `--files` small files (default 10,000), then the median of `retrieve()` (FTS5
  BM25 + the question embedded by the engine + the memory-mapped matrix + fusion) over
  varied questions. The stored vectors are random unit rows of the model's width: a search's
  cost does not depend on their values, and embedding 10,000 chunks on a shared CPU would
  measure the model, not the index. The bare matrix product at 768 wide is printed too;
- recall@5: `benchmarks.docs_corpus` (24 sections, one file each, among `--distractors`
  generated files) and its 25 labelled questions: the share whose section is in the top 5,
  words only and fused (with the tiny model's random vectors, fusion can only add noise; pass
  `--embedder` a real embedding GGUF for a meaningful fused figure).

    .venv/bin/python -m benchmarks.docs_index [--mb 10] [--files 10000] [--embedder PATH]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from app.docs.embedder import EngineEmbedder
from app.docs.indexer import index_collection
from app.docs.retrieval import retrieve
from app.docs.store import DocumentStore
from app.docs.vectors import VectorIndex
from app.store import Database
from app.tiny_gguf import write_embedding_gguf
from benchmarks.docs_corpus import QUESTIONS, SECTIONS

WORDS = [
    "river",
    "stone",
    "harbour",
    "lamp",
    "wool",
    "mill",
    "ferry",
    "island",
    "school",
    "bell",
    "seal",
    "puffin",
    "reservoir",
    "turbine",
    "cable",
    "nurse",
    "helicopter",
    "quiz",
    "shop",
    "path",
    "summit",
    "cairn",
    "longhouse",
    "crown",
    "barque",
    "fog",
    "crew",
    "figurehead",
    "croft",
    "oats",
    "kale",
    "cattle",
    "market",
    "tide",
    "beach",
    "shower",
    "signal",
    "mast",
    "gaelic",
    "norse",
    "census",
    "winter",
    "gale",
    "snow",
    "summer",
    "cliff",
    "tern",
    "gannet",
    "moor",
    "heather",
    "lichen",
    "yarn",
    "tweed",
    "regatta",
]


def _vocabulary(size: int = 5000) -> list[str]:
    """Themed words, then made-up ones: `size` words for a Zipf-like draw (a real text's few
    very common and many rare words, which is what a words index is fast or slow on)."""
    rng = random.Random(0)
    syllables = ["ka", "lo", "mir", "tes", "van", "qui", "dor", "el", "sun", "bra", "ith", "op"]
    made_up = {
        "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(size * 2)
    }
    return [*WORDS, *sorted(made_up)[: size - len(WORDS)]]


VOCABULARY = _vocabulary()
_WEIGHTS = [1.0 / (rank + 10) for rank in range(len(VOCABULARY))]


def _sentence(rng: random.Random, words: int = 12) -> str:
    return " ".join(rng.choices(VOCABULARY, _WEIGHTS, k=words)).capitalize() + "."


def _paragraphs(rng: random.Random, count: int) -> list[str]:
    return [" ".join(_sentence(rng) for _ in range(rng.randint(2, 6))) for _ in range(count)]


def write_mixed_corpus(folder: Path, megabytes: float, rng: random.Random) -> int:
    """Files of every kind until `megabytes` of file bytes; returns the bytes written."""
    from tests.support.documents import write_docx, write_pdf

    folder.mkdir(parents=True)
    target, written, index = int(megabytes * 1e6), 0, 0
    while written < target:
        kind = index % 20
        stem = folder / f"d{index // 100:03d}" / f"file{index:05d}"
        stem.parent.mkdir(exist_ok=True)
        paragraphs = _paragraphs(rng, rng.randint(5, 60))
        if kind == 0:
            path = write_pdf(
                stem.with_suffix(".pdf"), ["\n".join(paragraphs[i::3]) for i in range(3)]
            )
        elif kind == 1:
            path = write_docx(stem.with_suffix(".docx"), [(p, None) for p in paragraphs])
        elif kind < 8:
            body = "\n\n".join(f"## Part {i}\n\n{p}" for i, p in enumerate(paragraphs))
            path = stem.with_suffix(".md")
            path.write_text(f"# Notes {index}\n\n{body}\n")
        elif kind < 12:
            path = stem.with_suffix(".html")
            path.write_text(
                "<html><body>" + "".join(f"<p>{p}</p>\n" for p in paragraphs) + "</body></html>"
            )
        elif kind < 14:
            path = stem.with_suffix(".py")
            path.write_text(
                "\n\n".join(f"def f{i}():\n    return {p!r}\n" for i, p in enumerate(paragraphs))
            )
        else:
            path = stem.with_suffix(".txt")
            path.write_text("\n\n".join(paragraphs) + "\n")
        written += path.stat().st_size
        index += 1
    return written


def throughput(
    work: Path, embedder: EngineEmbedder, megabytes: float, embed_megabytes: float
) -> None:
    corpus = work / "mixed"
    size = write_mixed_corpus(corpus, megabytes, random.Random(1))
    database = Database(work / "throughput.sqlite3")
    store = DocumentStore(database)
    collection = store.create("mixed", [corpus], embedder=None)
    report = index_collection(store, collection, embedder=None, vectors_folder=work / "v")
    files = report.added
    print(
        f"index, words only: {size / 1e6:.1f} MB in {files} files -> {report.chunks_added} chunks "
        f"in {report.seconds:.1f} s: {size / 1e6 / report.seconds * 60:.0f} MB/min"
    )
    again = index_collection(store, store.get("mixed"), embedder=None, vectors_folder=work / "v")
    print(f"index again, nothing changed: {again.seconds * 1000:.0f} ms ({again.unchanged} files)")
    # Embedding is measured on a 1 MB part: the tiny model on a shared CPU needs minutes
    # for what the words index does in seconds.
    part = work / "embed-part"
    write_mixed_corpus(part, embed_megabytes, random.Random(3))
    collection = store.create("part", [part], embedder=embedder.path)
    index_collection(store, collection, embedder=None, vectors_folder=work / "v")
    started = time.perf_counter()
    embedded = index_collection(
        store, store.get("part"), embedder=embedder, vectors_folder=work / "v"
    )
    seconds = time.perf_counter() - started
    print(
        f"embed: {embedded.chunks_embedded} chunks in {seconds:.1f} s: "
        f"{embedded.chunks_embedded / seconds:.1f} chunks/s ({embedder.model_id})"
    )
    database.close()


def latency(work: Path, embedder: EngineEmbedder, files: int, runs: int) -> None:
    rng = random.Random(2)
    corpus = work / "many"
    for index in range(files):
        folder = corpus / f"{index // 500:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index:05d}.txt").write_text("\n\n".join(_paragraphs(rng, 2)) + "\n")
    database = Database(work / "latency.sqlite3")
    store = DocumentStore(database)
    collection = store.create("many", [corpus], embedder=embedder.path)
    report = index_collection(store, collection, embedder=None, vectors_folder=work / "v")
    ids = [row[0] for row in database.fetch_all("SELECT id FROM doc_chunks ORDER BY id")]
    width = embedder.embed(["width"]).shape[1]
    vectors = np.random.default_rng(3).standard_normal((len(ids), width)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store.set_vectors(ids, vectors)
    store.mark_indexed(collection, offline=False, vectors_of=embedder.model_id)
    collection = store.get("many")
    VectorIndex(store, collection, work / "v").rebuild()
    questions = [_sentence(rng, rng.randint(3, 9)) for _ in range(runs * 10)]
    retrieve(store, [collection], "warm up", embedder=embedder, vectors_folder=work / "v")
    # Wall time, and this thread's CPU time: on a shared machine the second is the work
    # itself, the first adds the wait for a core (the engine's embedding is in another
    # process, so only the wall time includes it).
    for label, used in (("fused", embedder), ("words only", None)):
        wall, cpu = [], []
        for question in questions:
            started, started_cpu = time.perf_counter(), time.thread_time()
            passages = retrieve(
                store, [collection], question, embedder=used, vectors_folder=work / "v"
            )
            wall.append(time.perf_counter() - started)
            cpu.append(time.thread_time() - started_cpu)
            assert passages
        print(
            f"{label} retrieval at {report.added:,} files / {len(ids):,} chunks: median "
            f"{statistics.median(wall) * 1000:.1f} ms wall, worst {max(wall) * 1000:.1f} ms; "
            f"{statistics.median(cpu) * 1000:.1f} ms CPU here ({len(wall)} questions)"
        )
    matrix = np.random.default_rng(4).standard_normal((len(ids), 768)).astype(np.float32)
    query = matrix[0] / np.linalg.norm(matrix[0])
    started = time.perf_counter()
    for _ in range(20):
        scores = matrix @ query
        np.argpartition(-scores, 50)[:50]
    each_ms = (time.perf_counter() - started) / 20 * 1000
    print(f"bare matrix search, {len(ids):,} x 768: {each_ms:.2f} ms")
    database.close()


def recall(work: Path, embedder: EngineEmbedder, distractors: int) -> None:
    rng = random.Random(5)
    corpus = work / "island"
    corpus.mkdir()
    for name, text in SECTIONS.items():
        (corpus / f"{name}.md").write_text(f"# {name.title()}\n\n{text}\n")
    for index in range(distractors):
        (corpus / f"other{index:04d}.txt").write_text("\n\n".join(_paragraphs(rng, 3)) + "\n")
    database = Database(work / "recall.sqlite3")
    store = DocumentStore(database)
    collection = store.create("island", [corpus], embedder=embedder.path)
    index_collection(store, collection, embedder=embedder, vectors_folder=work / "v")
    collection = store.get("island")
    for label, used in (("words only", None), ("fused", embedder)):
        hits = 0
        for question, section in QUESTIONS:
            passages = retrieve(
                store, [collection], question, embedder=used, vectors_folder=work / "v", limit=5
            )
            hits += any(Path(p.chunk.path).stem == section for p in passages)
        print(f"recall@5, {label}: {hits}/{len(QUESTIONS)} = {hits / len(QUESTIONS):.2f}")
    database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=10.0, help="mixed corpus size (10 MB)")
    parser.add_argument("--embed-mb", type=float, default=0.3, help="embedded part (0.3 MB)")
    parser.add_argument("--files", type=int, default=10_000, help="files for the latency run")
    parser.add_argument("--runs", type=int, default=5, help="x10 questions for the latency run")
    parser.add_argument("--distractors", type=int, default=500, help="files beside the corpus")
    parser.add_argument("--embedder", type=Path, help="an embedding GGUF (default: tiny)")
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["throughput", "latency", "recall"]
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        model = args.embedder or write_embedding_gguf(work / "tiny-embedder.gguf")
        embedder = EngineEmbedder(model)
        try:
            if "recall" not in args.skip:
                recall(work, embedder, args.distractors)
            if "latency" not in args.skip:
                latency(work, embedder, args.files, args.runs)
            if "throughput" not in args.skip:
                throughput(work, embedder, args.mb, args.embed_mb)
        finally:
            embedder.close()


if __name__ == "__main__":
    main()
