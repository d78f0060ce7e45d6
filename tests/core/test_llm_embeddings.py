"""The LLM engine's embedding mode, for real: llama.cpp in its child on tiny embedding GGUFs."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engines.errors import EngineError, EngineErrorKind
from app.llm.engine import LlmEngine, result_of
from app.llm.messages import Generated, LoadSettings
from app.llm.sampling import Sampling
from tests.support.gguf_builder import ScriptedGgufs
from tests.support.waiting import wait_until

TEXTS = ("the quick brown fox", "a lazy dog sleeps", "tokens and vectors", "x")


@pytest.fixture(scope="module")
def engine() -> Iterator[LlmEngine]:
    engine = LlmEngine()
    yield engine
    engine.close()


def _load(engine: LlmEngine, path: Path) -> None:
    engine.load(LoadSettings(path=path, context_length=256, embedding=True))


def _close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    if len(a) != len(b):
        return False
    return all(math.isclose(x, y, abs_tol=1e-4) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("model", ["embedder", "embedder_unpooled"])
def test_same_text_same_vector_and_different_texts_differ(
    engine: LlmEngine, ggufs: ScriptedGgufs, model: str
) -> None:
    _load(engine, getattr(ggufs, model))
    first = engine.embed([TEXTS[0]]).vectors[0]
    again = engine.embed([TEXTS[0]]).vectors[0]
    assert len(first) == 64  # the model's embedding width: one pooled vector, not per token
    assert _close(first, again)
    others = engine.embed(TEXTS[1:]).vectors
    assert all(not _close(first, other) for other in others)


@pytest.mark.parametrize("model", ["embedder", "embedder_unpooled"])
def test_a_batch_gives_what_single_texts_give(
    engine: LlmEngine, ggufs: ScriptedGgufs, model: str
) -> None:
    _load(engine, getattr(ggufs, model))
    batch = engine.embed(TEXTS)
    singles = [engine.embed([text]).vectors[0] for text in TEXTS]
    assert len(batch.vectors) == len(TEXTS)
    assert all(_close(b, s) for b, s in zip(batch.vectors, singles, strict=True))
    assert batch.prompt_tokens == sum(engine.embed([text]).prompt_tokens for text in TEXTS)
    assert batch.prompt_tokens >= len(TEXTS)


def test_normalized_vectors_have_length_one(engine: LlmEngine, ggufs: ScriptedGgufs) -> None:
    _load(engine, ggufs.embedder)
    normalized = engine.embed(TEXTS).vectors
    raw = engine.embed(TEXTS, normalize=False).vectors
    for vector in normalized:
        assert math.isclose(math.hypot(*vector), 1.0, rel_tol=1e-4)
    assert any(not math.isclose(math.hypot(*vector), 1.0, rel_tol=1e-2) for vector in raw)
    # The same direction: normalizing the raw vector gives the normalized one.
    length = math.hypot(*raw[0])
    assert _close(tuple(value / length for value in raw[0]), normalized[0])


def test_bad_requests_are_clear_errors(engine: LlmEngine, ggufs: ScriptedGgufs) -> None:
    _load(engine, ggufs.embedder)
    with pytest.raises(EngineError) as empty:
        engine.embed(["fine", ""])
    assert empty.value.kind is EngineErrorKind.BAD_INPUT and "Text 2 is empty" in str(empty.value)
    with pytest.raises(EngineError) as generate:
        result_of(engine.generate_from_prompt("hello", Sampling(max_tokens=4)).wait(30), Generated)
    assert generate.value.kind is EngineErrorKind.UNSUPPORTED
    engine.load(LoadSettings(path=ggufs.scripted, context_length=256))
    with pytest.raises(EngineError) as chat_model:
        engine.embed(["hello"])
    assert chat_model.value.kind is EngineErrorKind.UNSUPPORTED
    # Still usable: loading for embeddings again works.
    _load(engine, ggufs.embedder)
    assert len(engine.embed(["hello"]).vectors) == 1


def test_an_embedding_survives_an_engine_crash(engine: LlmEngine, ggufs: ScriptedGgufs) -> None:
    _load(engine, ggufs.embedder)
    before = engine.embed([TEXTS[0]]).vectors[0]
    old_pid = engine.pid
    engine.kill()
    wait_until(lambda: engine.last_exit is not None, message="the kill was not noticed")
    after = engine.embed([TEXTS[0]]).vectors[0]  # a fresh child, the model loaded again
    assert _close(before, after)
    assert engine.pid not in (None, old_pid)
