"""What a reply grammar costs: tokens/s of the same reply with and without one, through the app's
engine and through bare llama-cpp-python (`Llama.generate(grammar=...)`), in the same run.

The scripted "endless" GGUF repeats "Quick fox." until the token limit; the grammar used,
`root ::= [A-Za-z .]*`, accepts exactly that text, so both runs make the same tokens and the
difference is llama.cpp's grammar sampler (and whatever the app adds around it). Also the
time `app.llm.grammar` takes to turn a typical JSON schema into GBNF in the app process.
Medians of alternating runs.

    .venv/bin/python -m benchmarks.grammar [--runs 5] [--tokens 2000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from app.chat.local import LocalChatEngine
from app.engines.protocol import EventKind
from app.llm.grammar import grammar_for_schema
from app.llm.messages import Generated, LoadSettings
from app.llm.sampling import Sampling
from tests.support.gguf_builder import write_scripted_gguf

PROMPT = "<|im_start|>user\nTell me a story.<|im_end|>\n<|im_start|>assistant\n"
GRAMMAR = "root ::= [A-Za-z .]*"
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 8},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"pattern": "^[0-9]{5}$"}},
            "required": ["city"],
        },
    },
    "required": ["name", "age"],
}


def engine_rate(engine: LocalChatEngine, count: int, grammar: str | None) -> float:
    started = time.perf_counter()
    handle = engine.generate_from_prompt(
        PROMPT, Sampling(max_tokens=count, seed=1), grammar=grammar
    )
    for _event in handle.events(timeout=600):
        pass
    ended = time.perf_counter()
    assert handle.outcome is not None and handle.outcome.kind is EventKind.RESULT, handle.outcome
    produced = handle.outcome.expect(Generated).stats.generated_tokens or 0
    assert produced >= count, produced
    return produced / (ended - started)


def bare_rate(llm: Any, tokens: list[int], count: int, grammar: str | None) -> float:
    from llama_cpp.llama_grammar import LlamaGrammar

    compiled = LlamaGrammar.from_string(grammar, verbose=False) if grammar else None
    started = time.perf_counter()
    llm.set_seed(1)
    produced = 0
    for produced, token in enumerate(llm.generate(tokens, temp=0.8, grammar=compiled), start=1):
        llm.detokenize([token])
        if produced >= count:
            break
    return produced / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=2000)
    args = parser.parse_args()

    import llama_cpp

    started = time.perf_counter()
    for _ in range(100):
        grammar_for_schema(SCHEMA)
    convert_ms = (time.perf_counter() - started) * 10
    print(f"JSON schema -> GBNF in the app process: {convert_ms:.2f} ms a schema")

    with tempfile.TemporaryDirectory() as folder:
        path = write_scripted_gguf(Path(folder) / "endless.gguf", endless=True, context_length=8192)
        engine = LocalChatEngine()
        engine.load(LoadSettings(path=path, context_length=8192, threads=1))
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=8192, n_threads=1, verbose=False)
        tokens = llm.tokenize(PROMPT.encode(), add_bos=True, special=True)
        rates: dict[str, list[float]] = {
            key: [] for key in ("engine", "engine+grammar", "bare", "bare+grammar")
        }
        engine_rate(engine, 16, GRAMMAR)  # warm
        for _ in range(args.runs):
            rates["engine"].append(engine_rate(engine, args.tokens, None))
            rates["engine+grammar"].append(engine_rate(engine, args.tokens, GRAMMAR))
            rates["bare"].append(bare_rate(llm, tokens, args.tokens, None))
            rates["bare+grammar"].append(bare_rate(llm, tokens, args.tokens, GRAMMAR))
        engine.close()
        llm.close()
    median = {key: statistics.median(values) for key, values in rates.items()}
    print(f"tiny model, {args.tokens} tokens, median of {args.runs}:")
    for key, value in median.items():
        print(f"  {key:<16} {value:>9,.0f} tokens/s")
    print(f"  grammar / none, engine: {median['engine+grammar'] / median['engine']:.2f}")
    print(f"  grammar / none, bare:   {median['bare+grammar'] / median['bare']:.2f}")
    print(f"  engine / bare, with grammar: {median['engine+grammar'] / median['bare+grammar']:.2f}")


if __name__ == "__main__":
    main()
