"""Serving the whole library: time to the first token for a model loaded just in time vs one
already loaded, the cost of switching models under `--max-loaded 1`, and 8 concurrent clients
spread over 2 models.

Two scripted GGUFs are imported into a throwaway library: "small" (8 blocks, 1024 wide,
~270 MB: a load takes a noticeable moment) and "tiny". Every request goes through the real
`openai` client, streamed, to a `ModelServer` serving a `ModelPool` on 127.0.0.1.

- just in time: a fresh server per run; the first request names "small" (the pool plans and
  loads it in its spare engine process — started ahead, as it is a moment after the server
  starts — then answers); the second names it again (loaded). Then the same without the
  spare (`keep_spare=False`: the load starts its process and imports llama.cpp first).
- switching: `--max-loaded 1`, requests alternating between the two models: each one unloads
  the other model and loads its own.
- concurrent: N clients (threads, each its own openai client) ask at once, client i naming
  model i % 2 of two tiny models (so the figure is the server's, not llama.cpp's); every
  request must be answered right (no `--max-loaded`, then `--max-loaded 1`, where half the
  clients wait for the other model's requests to end before a switch).

    .venv/bin/python -m benchmarks.serve_pool [--runs 5] [--clients 8]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import openai

from app.chat.local import LocalChatEngine
from app.library import Library
from app.library.other_apps import AppFolders
from app.serving import ModelServer
from app.serving.library_models import LibraryModels
from app.serving.model_pool import ModelPool, PoolLimits, PoolLoadOptions
from app.store import Database
from app.tiny_gguf import SCRIPTED_REPLY, write_scripted_gguf
from benchmarks.llm import MODELS

# One llama.cpp thread per model: two engines share two cores without spinning on each other.
OPTIONS = PoolLoadOptions(context_length=2048, threads=1)
MESSAGES = [{"role": "user", "content": "Hello"}]


def first_token(client: openai.OpenAI, model: str) -> float:
    """Seconds from the request to the first text of a streamed chat completion."""
    started = time.perf_counter()
    stream = client.chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=8, seed=1, stream=True
    )
    first = None
    text = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            first = first or time.perf_counter()
            text.append(chunk.choices[0].delta.content)
    assert "".join(text) == SCRIPTED_REPLY[:8], text
    assert first is not None
    return first - started


def serve(
    library: Library, limits: PoolLimits, *, keep_spare: bool = True
) -> tuple[ModelServer, ModelPool, str]:
    entries = tuple(library.scan())  # scanned once, as `modeldeck serve` and the app do
    models = LibraryModels(lambda: entries, lambda: library)
    pool = ModelPool(models, limits=limits, options=OPTIONS, keep_spare=keep_spare)
    server = ModelServer(LocalChatEngine())  # never started: the pool's models have their own
    server.serve_library(pool)
    return server, pool, server.start(port=0)


def client_for(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=300)


def bench_just_in_time(library: Library, runs: int) -> None:
    cold, warm, no_spare = [], [], []
    for keep_spare, into in ((True, cold), (False, no_spare)):
        for _ in range(runs):
            server, pool, url = serve(library, PoolLimits(), keep_spare=keep_spare)
            try:
                while keep_spare and pool.spare_pid is None:
                    time.sleep(0.05)
                with client_for(url) as client:
                    client.models.list()  # the connection is open: only the load is timed
                    into.append(first_token(client, "small"))
                    if keep_spare:
                        warm.append(first_token(client, "small"))
            finally:
                server.stop()
    print(f"== time to first token, 'small' (~270 MB), median of {runs} fresh servers")
    print(f"  loaded just in time      {statistics.median(cold) * 1000:9.0f} ms")
    print(f"  already loaded           {statistics.median(warm) * 1000:9.1f} ms")
    print(f"  just in time, no spare   {statistics.median(no_spare) * 1000:9.0f} ms")


def bench_switching(library: Library, runs: int) -> None:
    server, pool, url = serve(library, PoolLimits(max_loaded=1))
    switches = []
    try:
        with client_for(url) as client:
            first_token(client, "tiny")
            for _ in range(runs):
                switches.append(first_token(client, "small"))
                first_token(client, "tiny")
                assert len(pool.snapshot()) == 1
    finally:
        server.stop()
    print("== --max-loaded 1: tiny loaded, a request names 'small' (unload tiny, load small)")
    print(f"  first token              {statistics.median(switches) * 1000:9.0f} ms")


def ask(client: openai.OpenAI, model: str, n: int) -> str | None:
    """One short chat completion; None when it was answered right, else what went wrong."""
    try:
        answer = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": f"Question {n}"}],
            max_tokens=16,
            seed=n,
        )
    except openai.OpenAIError as exc:
        return repr(exc)
    text = answer.choices[0].message.content
    return None if text == SCRIPTED_REPLY and answer.model == model else repr(text)


def bench_concurrent(library: Library, clients: int, rounds: int, limits: PoolLimits) -> None:
    server, pool, url = serve(library, limits)
    models = ["tiny", "tiny-b"]
    results: list[str | None] = []
    rates = []
    connections = [client_for(url) for _ in range(clients)]
    try:
        for model in models:  # both loaded (or, with one allowed, the last one) before timing
            ask(connections[0], model, 0)
        for _ in range(rounds):
            answers: list[str | None] = [None] * clients

            def worker(n: int, into: list[str | None] = answers) -> None:
                into[n] = ask(connections[n], models[n % 2], n)

            threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            rates.append(clients / (time.perf_counter() - started))
            results += answers
        loaded = len(pool.snapshot())
    finally:
        for connection in connections:
            connection.close()
        server.stop()
    failures = [result for result in results if result is not None]
    most = limits.max_loaded or "as many as fit"
    print(f"== {clients} concurrent clients over 2 models, max loaded: {most}, {rounds} rounds")
    print(f"  answered right           {len(results) - len(failures)} of {len(results)}")
    print(f"  requests/s               {statistics.median(rates):9.1f}")
    print(f"  models loaded at the end {loaded:9d}")
    if failures:
        print(f"  first failure: {failures[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        small = write_scripted_gguf(root / "small.gguf", context_length=2048, **MODELS["small"])
        tiny = write_scripted_gguf(root / "tiny.gguf", context_length=2048, **MODELS["tiny"])
        # Another context length: other bytes, so the library holds two models, not two copies.
        tiny_b = write_scripted_gguf(root / "tiny-b.gguf", context_length=1024, **MODELS["tiny"])
        database = Database(root / "app.sqlite3")
        try:
            library = Library(database, hf_cache_dir=root / "hub", app_folders=AppFolders())
            assert not library.import_paths([small, tiny, tiny_b]).rejected
            bench_just_in_time(library, args.runs)
            bench_switching(library, args.runs)
            bench_concurrent(library, args.clients, args.runs, PoolLimits())
            bench_concurrent(library, args.clients, args.runs, PoolLimits(max_loaded=1))
        finally:
            database.close()


if __name__ == "__main__":
    main()
