"""The local API server against the in-app engine: generation speed through HTTP + SSE, and
many clients at once.

Same loaded model, same messages, same sampling and seed: the engine run calls
`LocalChatEngine.generate` and reads its events in this process; the server run asks the
`ModelServer` on 127.0.0.1 with the real `openai` client (streaming, as chat clients do) —
so the ratio holds every cost the server adds (FastAPI, SSE, JSON, the queue, the
thread-to-asyncio bridge, loopback TCP). Runs alternate (engine, server, engine, …) so drift
hits both; medians are printed.

Then N concurrent clients (threads, each its own openai client) ask for short completions on
the tiny model: every request must be answered; requests/s is printed, next to the same
requests made one after another.

Models as in `benchmarks.llm`: "tiny" (thousands of tokens/s: per-token overhead shows) and
"small" (8 blocks, embedding 1024: a real model's pace).

    .venv/bin/python -m benchmarks.serving [--runs 5] [--tokens 400] [--clients 8]
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
from app.engines.protocol import EventKind
from app.llm.messages import Generated, LoadSettings
from app.llm.sampling import Sampling
from app.serving import ModelServer
from benchmarks.llm import MODELS
from tests.support.gguf_builder import SCRIPTED_REPLY, write_scripted_gguf

MESSAGES = [{"role": "user", "content": "Tell me a story."}]


def engine_run(engine: LocalChatEngine, count: int) -> tuple[float, float]:
    """(seconds to the first text, seconds for all `count` tokens) straight from the engine."""
    started = time.perf_counter()
    handle = engine.generate(MESSAGES, Sampling(max_tokens=count, seed=1))
    first = None
    for event in handle.events(timeout=600):
        if event.kind is EventKind.CHUNK and first is None:
            first = time.perf_counter()
    ended = time.perf_counter()
    assert handle.outcome is not None and handle.outcome.kind is EventKind.RESULT, handle.outcome
    stats = handle.outcome.expect(Generated).stats
    assert stats.generated_tokens == count, stats
    assert first is not None
    return first - started, ended - started


def server_run(client: openai.OpenAI, model: str, count: int) -> tuple[float, float]:
    """The same through the server: a streamed chat completion, timed in the client."""
    started = time.perf_counter()
    first = None
    usage = None
    stream = client.chat.completions.create(
        model=model,
        messages=MESSAGES,
        max_tokens=count,
        seed=1,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content and first is None:
            first = time.perf_counter()
        if chunk.usage is not None:
            usage = chunk.usage
    ended = time.perf_counter()
    assert usage is not None and usage.completion_tokens == count, usage
    assert first is not None
    return first - started, ended - started


def bench_speed(name: str, path: Path, runs: int, count: int, threads: int) -> None:
    engine = LocalChatEngine()
    server = ModelServer(engine)
    url = server.start(port=0)
    server.load(LoadSettings(path=path, context_length=4096, threads=threads))
    model = server.model_id
    assert model is not None
    engine_ttft, engine_total, server_ttft, server_total = [], [], [], []
    with openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=600) as client:
        engine_run(engine, 8)  # warm both
        server_run(client, model, 8)
        for _ in range(runs):
            ttft, total = engine_run(engine, count)
            engine_ttft.append(ttft)
            engine_total.append(total)
            ttft, total = server_run(client, model, count)
            server_ttft.append(ttft)
            server_total.append(total)
    server.stop()
    engine.close()

    engine_speed = count / statistics.median(engine_total)
    server_speed = count / statistics.median(server_total)
    # After the first token: the streaming rate, without the per-request costs (HTTP, JSON
    # body, queue) that a short reply of the tiny model magnifies.
    engine_decode = (count - 1) / statistics.median(
        t - f for t, f in zip(engine_total, engine_ttft, strict=True)
    )
    server_decode = (count - 1) / statistics.median(
        t - f for t, f in zip(server_total, server_ttft, strict=True)
    )
    overhead_ms = (statistics.median(server_ttft) - statistics.median(engine_ttft)) * 1000
    size = path.stat().st_size / 1e6
    print(f"== {name} model ({size:.0f} MB), {count} tokens, {threads} threads, median of {runs}")
    print(f"  in-app engine            {engine_speed:9.1f} tokens/s")
    print(f"  through the server (SSE) {server_speed:9.1f} tokens/s")
    print(f"  ratio server / engine    {server_speed / engine_speed:9.3f}")
    print(
        f"  after the first token    engine {engine_decode:.1f}, server {server_decode:.1f} "
        f"tokens/s, ratio {server_decode / engine_decode:.3f}"
    )
    print(
        f"  first token              engine {statistics.median(engine_ttft) * 1000:.1f} ms, "
        f"server {statistics.median(server_ttft) * 1000:.1f} ms, overhead {overhead_ms:+.1f} ms"
    )


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
    return None if text == SCRIPTED_REPLY else repr(text)


def concurrent_round(
    clients: list[openai.OpenAI], model: str, server: ModelServer
) -> tuple[float, list[str | None], int]:
    """Every client asks at once: (requests/s, each one's failure or None, longest queue)."""
    results: list[str | None] = [None] * len(clients)
    peak = 0
    done = threading.Event()

    def watch_queue() -> None:
        nonlocal peak
        while not done.wait(0.005):
            peak = max(peak, server.queue_length)

    def worker(n: int) -> None:
        results[n] = ask(clients[n], model, n)

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(len(clients))]
    watcher = threading.Thread(target=watch_queue)
    watcher.start()
    started = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    rate = len(clients) / (time.perf_counter() - started)
    done.set()
    watcher.join()
    return rate, results, peak


def bench_clients(path: Path, count: int, rounds: int, threads: int) -> None:
    """`count` clients ask at once for a short completion; then the same one by one."""
    engine = LocalChatEngine()
    server = ModelServer(engine)
    url = server.start(port=0)
    server.load(LoadSettings(path=path, context_length=2048, threads=threads))
    model = server.model_id
    assert model is not None
    clients = [
        openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=120)
        for _ in range(count)
    ]
    results: list[str | None] = []
    concurrent_rates, sequential_rates, peaks = [], [], []
    try:
        for n, client in enumerate(clients):  # connect and warm each
            ask(client, model, n)
        for _ in range(rounds):
            rate, answers, peak = concurrent_round(clients, model, server)
            concurrent_rates.append(rate)
            results += answers
            peaks.append(peak)
            started = time.perf_counter()
            results += [ask(clients[0], model, n) for n in range(count)]
            sequential_rates.append(count / (time.perf_counter() - started))
    finally:
        for client in clients:
            client.close()
        server.stop()
        engine.close()
    failures = [result for result in results if result is not None]
    print(f"== {count} concurrent clients, short chat completions (tiny model), {rounds} rounds")
    print(f"  answered right           {len(results) - len(failures)} of {len(results)}")
    print(f"  concurrent               {statistics.median(concurrent_rates):9.1f} requests/s")
    print(f"  one after another        {statistics.median(sequential_rates):9.1f} requests/s")
    print(f"  longest queue seen       {max(peaks):9d}")
    if failures:
        print(f"  first failure: {failures[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=400)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="llama.cpp threads (2, as benchmarks.llm; the server's own work needs a core too)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = {
            name: write_scripted_gguf(
                Path(folder) / f"{name}.gguf", endless=True, context_length=8192, **MODELS[name]
            )
            for name in args.models
        }
        for name, path in paths.items():
            count = args.tokens if name == "tiny" else max(40, args.tokens // 5)
            bench_speed(name, path, args.runs, count, args.threads)
        short = write_scripted_gguf(Path(folder) / "short.gguf")
        bench_clients(short, args.clients, rounds=args.runs, threads=args.threads)


if __name__ == "__main__":
    main()
