"""ModelDeck's LLM engine against bare `llama_cpp.Llama`: generation speed, first-token time, and
the app process's memory while a model is loaded.

Same GGUF, same settings, same prompt tokens, same seed: the bare run calls
`Llama.create_completion(stream=True)` in this process; the engine run goes through
`LocalChatEngine` (a child process, events over a pipe) and is timed here in the parent, from the
request to the last event — so the ratio includes every cost the app adds. Runs alternate
(bare, engine, bare, …) so drift hits both; medians are printed.

Two models, both written on the spot: "tiny" (the 2-block test model: thousands of tokens/s,
so any per-token overhead shows), and "small" (8 blocks, embedding 1024: ~270 MB, ~60
tokens/s on two cores — a real model's pace). A long tiny reply (4,000 tokens) shows the
cost of `create_completion(stream=True)`, which detokenizes the whole reply again for every
token; `Llama.generate` (llama-cpp-python's own token loop) is printed as the floor.

    .venv/bin/python -m benchmarks.llm [--runs 5] [--tokens 400]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from app.chat.local import LocalChatEngine
from app.engines.protocol import EventKind
from app.llm.messages import Generated, LoadSettings
from app.llm.sampling import Sampling
from tests.support.gguf_builder import write_scripted_gguf

PROMPT = "<|im_start|>user\nTell me a story.<|im_end|>\n<|im_start|>assistant\n"
MODELS: dict[str, dict[str, int]] = {
    "tiny": {"embed": 64, "ff": 128, "block_count": 2},
    "small": {"embed": 1024, "ff": 4096, "block_count": 8},
}


def bare_run(llm: Any, tokens: list[int], count: int) -> tuple[float, float]:
    """(seconds to the first token, seconds for all `count` tokens) in this process."""
    started = time.perf_counter()
    first = None
    produced = 0
    for _chunk in llm.create_completion(
        tokens, max_tokens=count, stream=True, seed=1, temperature=0.8
    ):
        if first is None:
            first = time.perf_counter()
        produced += 1
    ended = time.perf_counter()
    assert produced >= count, produced
    assert first is not None
    return first - started, ended - started


def generate_run(llm: Any, tokens: list[int], count: int) -> tuple[float, float]:
    """llama-cpp-python's token loop (`Llama.generate`) with per-token detokenizing: the
    fastest a Python caller of llama-cpp-python gets."""
    started = time.perf_counter()
    first = None
    llm.set_seed(1)
    for produced, token in enumerate(llm.generate(tokens, temp=0.8), start=1):
        if first is None:
            first = time.perf_counter()
        llm.detokenize([token])
        if produced >= count:
            break
    ended = time.perf_counter()
    assert first is not None
    return first - started, ended - started


def engine_run(engine: LocalChatEngine, count: int) -> tuple[float, float]:
    started = time.perf_counter()
    handle = engine.generate_from_prompt(PROMPT, Sampling(max_tokens=count, seed=1))
    first = None
    for event in handle.events(timeout=600):
        if event.kind is EventKind.CHUNK and first is None:
            first = time.perf_counter()
    ended = time.perf_counter()
    assert handle.outcome is not None and handle.outcome.kind is EventKind.RESULT, handle.outcome
    assert (handle.outcome.expect(Generated).stats.generated_tokens or 0) >= count
    assert first is not None
    return first - started, ended - started


def bench_model(name: str, path: Path, runs: int, count: int) -> None:
    import llama_cpp

    settings = LoadSettings(path=path, context_length=4096, threads=2)
    engine = LocalChatEngine()
    # Measured before the bare model maps the same file into this process.
    app_rss_before = psutil.Process().memory_info().rss
    engine.load(settings)
    app_rss_after = psutil.Process().memory_info().rss
    child_rss = psutil.Process(engine.pid).memory_info().rss if engine.pid else 0
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=4096, n_threads=2, verbose=False)
    tokens = llm.tokenize(PROMPT.encode(), add_bos=True, special=True)
    bare_ttft, bare_total, engine_ttft, engine_total = [], [], [], []
    raw_ttft, raw_total = [], []
    bare_run(llm, tokens, 8)  # warm all three
    generate_run(llm, tokens, 8)
    engine_run(engine, 8)
    for _ in range(runs):
        ttft, total = bare_run(llm, tokens, count)
        bare_ttft.append(ttft)
        bare_total.append(total)
        ttft, total = generate_run(llm, tokens, count)
        raw_ttft.append(ttft)
        raw_total.append(total)
        ttft, total = engine_run(engine, count)
        engine_ttft.append(ttft)
        engine_total.append(total)
    engine.close()
    llm.close()

    def rate(totals: list[float], ttfts: list[float] | None = None) -> float:
        """Generation tokens/s: after the first token (whole run when `ttfts` is None)."""
        if ttfts is None:
            return count / statistics.median(totals)
        return (count - 1) / statistics.median(t - f for t, f in zip(totals, ttfts, strict=True))

    bare_speed, raw_speed, engine_speed = rate(bare_total), rate(raw_total), rate(engine_total)
    bare_gen, raw_gen = rate(bare_total, bare_ttft), rate(raw_total, raw_ttft)
    engine_gen = rate(engine_total, engine_ttft)
    ttft_overhead_ms = (statistics.median(engine_ttft) - statistics.median(bare_ttft)) * 1000
    size_mb = path.stat().st_size / 1e6
    print(f"== {name} model ({size_mb:.0f} MB), {count} tokens, median of {runs}")
    print("  tokens/s                      whole reply   after the first token")
    print(f"  bare create_completion        {bare_speed:11.1f}   {bare_gen:11.1f}")
    print(f"  bare Llama.generate           {raw_speed:11.1f}   {raw_gen:11.1f}")
    print(f"  ModelDeck engine              {engine_speed:11.1f}   {engine_gen:11.1f}")
    print(
        f"  ratio engine / create_completion {engine_speed / bare_speed:8.3f}   "
        f"{engine_gen / bare_gen:11.3f}"
    )
    print(
        f"  ratio engine / Llama.generate    {engine_speed / raw_speed:8.3f}   "
        f"{engine_gen / raw_gen:11.3f}"
    )
    print(
        f"  first token            bare {statistics.median(bare_ttft) * 1000:.1f} ms, "
        f"engine {statistics.median(engine_ttft) * 1000:.1f} ms, "
        f"overhead {ttft_overhead_ms:+.1f} ms"
    )
    print(
        f"  app process RSS        {app_rss_before / 1e6:.0f} MB before load, "
        f"{app_rss_after / 1e6:.0f} MB after (engine child: {child_rss / 1e6:.0f} MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=400)
    parser.add_argument("--long", type=int, default=4000, help="tokens of the long-reply run")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            path = write_scripted_gguf(
                Path(folder) / f"{name}.gguf", endless=True, context_length=8192, **MODELS[name]
            )
            count = args.tokens if name == "tiny" else max(40, args.tokens // 5)
            bench_model(name, path, args.runs, count)
            if name == "tiny" and args.long:
                bench_model("tiny, long reply", path, max(1, args.runs // 2), args.long)


if __name__ == "__main__":
    main()
