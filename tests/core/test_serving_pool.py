"""Serving the whole library, for real: the scripted GGUFs imported into a test library, one
engine child per loaded model, uvicorn on 127.0.0.1 and the real `openai` client."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx2
import ollama
import openai
import psutil
import pytest

from app.chat.local import LocalChatEngine
from app.core import Core
from app.hardware import MachineMemory, machine_memory_from
from app.library import Library
from app.library.other_apps import AppFolders
from app.serving import ModelServer
from app.serving.library_models import LibraryModels, servable_models
from app.serving.model_pool import ModelPool, PooledState, PoolLimits, PoolLoadOptions
from app.store import Database
from tests.core.test_serving import _serve
from tests.support.cli_process import killed_if_left, stopped_by
from tests.support.gguf_builder import SCRIPTED_REPLY, ScriptedGgufs
from tests.support.llama_server import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Hello"}]
SCRIPTED, ENDLESS = "Scripted-Q8_0", "endless"  # their library names: the ids served
# The scripted model is clamped to the 512 tokens it knows; the endless one keeps 32,768, so
# its generations last seconds.
OPTIONS = PoolLoadOptions(context_length=32_768, threads=1)
LONG = 30_000  # max_tokens of a generation that outlasts what a test does meanwhile


@pytest.fixture
def library(tmp_path: Path, database: Database, ggufs: ScriptedGgufs) -> Library:
    """A library holding the scripted and the endless GGUF (imported, used in place)."""
    library = Library(database, hf_cache_dir=tmp_path / "hub", app_folders=AppFolders())
    result = library.import_paths([ggufs.scripted, ggufs.endless])
    assert not result.rejected, result.rejected
    return library


def serve_pool(
    library: Library,
    limits: PoolLimits,
    *,
    read_memory: Callable[[], MachineMemory] | None = None,
) -> tuple[ModelServer, ModelPool]:
    models = LibraryModels(library.scan, lambda: library)
    pool = (
        ModelPool(models, limits=limits, options=OPTIONS, read_memory=read_memory)
        if read_memory is not None
        else ModelPool(models, limits=limits, options=OPTIONS)
    )
    # The shared engine stays unstarted: the library's models have engines of their own.
    server = ModelServer(LocalChatEngine())
    server.serve_library(pool)
    server.start(port=0)
    return server, pool


@pytest.fixture
def running() -> Iterator[list[ModelServer]]:
    """Servers a test started, stopped at its end (their engine processes with them)."""
    servers: list[ModelServer] = []
    yield servers
    for server in servers:
        server.stop()


def client_of(server: ModelServer) -> openai.OpenAI:
    assert server.url is not None
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=60)


def chat(client: openai.OpenAI, model: str, **options: object) -> str:
    answer = client.chat.completions.create(model=model, messages=HELLO, **options)  # type: ignore[call-overload]
    assert answer.model == model
    content: str = answer.choices[0].message.content
    return content


def pids(pool: ModelPool) -> dict[str, int | None]:
    return {model.model_id: model.pid for model in pool.snapshot()}


def gone(pid: int | None) -> bool:
    assert pid is not None
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


# -- ids -------------------------------------------------------------------------------------


def test_the_library_names_are_the_ids_and_only_chat_models_are_offered(
    library: Library, tmp_path: Path
) -> None:
    models = servable_models(library.scan())
    assert sorted(model.model_id for model in models) == sorted([SCRIPTED, ENDLESS])
    assert {model.path.name for model in models} == {"Scripted-Q8_0.gguf", "endless.gguf"}
    not_a_model = tmp_path / "notes.gguf"
    not_a_model.write_bytes(b"GGUF" + b"\0" * 10)
    library.import_paths([not_a_model])
    assert sorted(m.model_id for m in servable_models(library.scan())) == sorted(
        [SCRIPTED, ENDLESS]
    )


# -- just in time ------------------------------------------------------------------------------


def test_two_library_models_load_just_in_time_when_named(
    library: Library, ggufs: ScriptedGgufs, running: list[ModelServer]
) -> None:
    server, pool = serve_pool(library, PoolLimits())
    running.append(server)
    with client_of(server) as client:
        listed = client.models.list().data
        assert sorted(model.id for model in listed) == sorted([SCRIPTED, ENDLESS])
        assert not any(model.model_extra and model.model_extra["loaded"] for model in listed)
        assert pool.snapshot() == []  # nothing loads before a request names it

        assert chat(client, SCRIPTED, seed=1) == SCRIPTED_REPLY
        assert chat(client, ENDLESS, max_tokens=5) == SCRIPTED_REPLY[:5]
        loaded = pids(pool)
        assert set(loaded) == {SCRIPTED, ENDLESS}
        assert len(set(loaded.values())) == 2  # each its own engine process
        assert all(pid is not None and psutil.pid_exists(pid) for pid in loaded.values())

        listed = client.models.list().data
        assert all(model.model_extra and model.model_extra["loaded"] for model in listed)

        # A path, and NAME:QUANT (as `modeldeck chat` takes them), answer from the same
        # loaded engine, under the library's name.
        by_path = client.chat.completions.create(model=str(ggufs.scripted), messages=HELLO)
        assert by_path.model == SCRIPTED
        assert by_path.choices[0].message.content == SCRIPTED_REPLY
        (entry,) = [e for e in library.scan() if e.name == SCRIPTED]
        assert entry.quantization
        with_quant = f"{SCRIPTED}:{entry.quantization.lower()}"
        by_quant = client.chat.completions.create(model=with_quant, messages=HELLO)
        assert by_quant.model == SCRIPTED
        assert pids(pool) == loaded

        with pytest.raises(openai.NotFoundError) as missing:
            chat(client, "gpt-4o")
        assert missing.value.code == "model_not_found"


def test_a_spare_engine_started_ahead_takes_the_next_model(
    library: Library, running: list[ModelServer]
) -> None:
    server, pool = serve_pool(library, PoolLimits())
    running.append(server)
    spare = wait_until(lambda: pool.spare_pid, timeout=30)
    with client_of(server) as client:
        assert chat(client, SCRIPTED) == SCRIPTED_REPLY
        assert pids(pool)[SCRIPTED] == spare  # no process was started for the load
        replacement = wait_until(lambda: pool.spare_pid, timeout=30)  # after the reply
        assert replacement != spare
        assert chat(client, ENDLESS, max_tokens=2) == SCRIPTED_REPLY[:2]
        assert pids(pool)[ENDLESS] == replacement
    server.stop()
    assert gone(spare) and gone(replacement)
    assert pool.spare_pid is None


def test_max_loaded_one_switches_models(library: Library, running: list[ModelServer]) -> None:
    server, pool = serve_pool(library, PoolLimits(max_loaded=1))
    running.append(server)
    with client_of(server) as client:
        assert chat(client, SCRIPTED) == SCRIPTED_REPLY
        first = pids(pool)[SCRIPTED]
        assert chat(client, ENDLESS, max_tokens=4) == SCRIPTED_REPLY[:4]
        assert list(pids(pool)) == [ENDLESS]
        assert gone(first)  # the least recently used model's process ended
        assert chat(client, SCRIPTED) == SCRIPTED_REPLY
        assert list(pids(pool)) == [SCRIPTED]


def test_the_memory_fit_unloads_an_idle_model_to_make_room(
    library: Library, running: list[ModelServer]
) -> None:
    holder: list[ModelPool] = []
    one_model = 0

    def machine() -> MachineMemory:
        """A machine with room for one of these models: what the loaded ones take is gone."""
        used = sum(m.estimate_bytes or 0 for m in holder[0].snapshot() if m.estimate_bytes)
        total = one_model * 3 // 2 if one_model else 64 << 30
        return machine_memory_from(ram_total=total, ram_available=max(0, total - used))

    server, pool = serve_pool(library, PoolLimits(), read_memory=machine)
    holder.append(pool)
    running.append(server)
    with client_of(server) as client:
        assert chat(client, SCRIPTED) == SCRIPTED_REPLY
        (scripted,) = pool.snapshot()
        assert scripted.estimate_bytes
        one_model = scripted.estimate_bytes  # from now on two of them do not fit
        assert chat(client, ENDLESS, max_tokens=3) == SCRIPTED_REPLY[:3]
        assert list(pids(pool)) == [ENDLESS]
        assert gone(scripted.pid)


def test_what_cannot_be_served_is_a_clear_error_and_the_server_goes_on(
    library: Library, tmp_path: Path, running: list[ModelServer]
) -> None:
    server, pool = serve_pool(
        library,
        PoolLimits(),
        # A machine with 64 MiB free: no model fits, not even these.
        read_memory=lambda: machine_memory_from(ram_total=64 << 20, ram_available=64 << 20),
    )
    running.append(server)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    assert server.url is not None
    with httpx2.Client(base_url=server.url, timeout=60) as http:
        too_large = http.post("/chat/completions", json={"model": SCRIPTED, "messages": HELLO})
        assert too_large.status_code == 500
        error = too_large.json()["error"]
        assert error["code"] == "model_load_failed" and "does not fit" in error["message"]
        assert pool.snapshot() == []  # the engine it started for the plan is gone

        not_a_model = http.post("/chat/completions", json={"model": str(notes), "messages": HELLO})
        assert not_a_model.status_code == 404
        assert not_a_model.json()["error"]["code"] == "model_not_found"

        unnamed = http.post("/chat/completions", json={"messages": HELLO})
        assert unnamed.status_code == 400
        assert unnamed.json()["error"]["param"] == "model"

        assert http.get("/models").status_code == 200  # still serving


# -- never evicted mid-generation ------------------------------------------------------------


def test_a_generating_model_is_not_evicted_the_other_request_gets_503(
    library: Library, running: list[ModelServer]
) -> None:
    server, pool = serve_pool(library, PoolLimits(max_loaded=1, busy_wait_s=0.5))
    running.append(server)
    assert server.url is not None
    with (
        client_of(server) as client,
        httpx2.Client(base_url=server.url, timeout=60) as http,
    ):
        stream = client.chat.completions.create(
            model=ENDLESS, messages=HELLO, stream=True, max_tokens=LONG
        )
        chunks = iter(stream)
        received = [next(chunks) for _ in range(5)]
        generating = pids(pool)[ENDLESS]

        refused = http.post("/chat/completions", json={"model": SCRIPTED, "messages": HELLO})
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) > 0
        error = refused.json()["error"]
        assert error["code"] == "models_busy" and error["type"] == "server_error"
        assert "never unloaded mid-generation" in error["message"]

        # The stream goes on in the same process, uncut.
        received += [next(chunks) for _ in range(10)]  # the child sends one per 50 ms
        assert all(chunk.choices[0].finish_reason is None for chunk in received[1:])
        assert pids(pool) == {ENDLESS: generating} and not gone(generating)
        stream.close()

        # Once it is idle, the other model takes its place.
        wait_until(lambda: pool.snapshot()[0].state is PooledState.IDLE)
        assert chat(client, SCRIPTED) == SCRIPTED_REPLY
        assert gone(generating)


def test_a_request_for_another_model_waits_for_the_generation_to_end(
    library: Library, running: list[ModelServer]
) -> None:
    server, pool = serve_pool(library, PoolLimits(max_loaded=1, busy_wait_s=60))
    running.append(server)
    with client_of(server) as client, ThreadPoolExecutor(max_workers=1) as other:
        stream = client.chat.completions.create(
            model=ENDLESS, messages=HELLO, stream=True, max_tokens=LONG
        )
        chunks = iter(stream)
        first = [next(chunks) for _ in range(5)]
        generating = pids(pool)[ENDLESS]
        waiting: Future[str] = other.submit(chat, client_of(server), SCRIPTED)

        # While the stream runs on (a second or more: one chunk per 50 ms), the other
        # request waits its turn.
        later = [next(chunks) for _ in range(30)]
        assert not waiting.done()
        assert "".join(c.choices[0].delta.content or "" for c in [*first, *later])
        assert pids(pool) == {ENDLESS: generating}
        stream.close()  # the client leaves: the generation ends, the model goes idle

        assert waiting.result(timeout=60) == SCRIPTED_REPLY
        assert list(pids(pool)) == [SCRIPTED] and gone(generating)


# -- idle unload ------------------------------------------------------------------------------


def test_idle_unload_ends_the_engine_process(library: Library, running: list[ModelServer]) -> None:
    server, pool = serve_pool(library, PoolLimits(idle_unload_s=0.5))
    running.append(server)
    with client_of(server) as client:
        assert chat(client, SCRIPTED) == SCRIPTED_REPLY
        pid = pids(pool)[SCRIPTED]
        wait_until(lambda: not pool.snapshot() and gone(pid), timeout=15)
        (listed,) = [m for m in client.models.list().data if m.id == SCRIPTED]
        assert listed.model_extra is not None and listed.model_extra["loaded"] is False
        assert chat(client, SCRIPTED) == SCRIPTED_REPLY  # and it loads again when asked


def test_keep_alive_zero_unloads_a_model_once_idle(
    library: Library, running: list[ModelServer]
) -> None:
    server, pool = serve_pool(library, PoolLimits())  # no idle unload of its own
    running.append(server)
    with client_of(server) as client:
        assert chat(client, SCRIPTED) == SCRIPTED_REPLY
        assert chat(client, ENDLESS, max_tokens=2) == SCRIPTED_REPLY[:2]
        kept, dropped = pids(pool)[ENDLESS], pids(pool)[SCRIPTED]
        loop = server._loop  # keep_alive runs on the server's loop, as a router calls it
        assert loop is not None
        loop.call_soon_threadsafe(pool.keep_alive, SCRIPTED, 0)
        wait_until(lambda: gone(dropped), timeout=15)
        assert list(pids(pool)) == [ENDLESS] and not gone(kept)


def test_a_model_acquired_for_embeddings_loads_in_embedding_mode(
    tmp_path: Path, database: Database, ggufs: ScriptedGgufs
) -> None:
    library = Library(database, hf_cache_dir=tmp_path / "hub", app_folders=AppFolders())
    assert not library.import_paths([ggufs.embedder]).rejected
    pool = ModelPool(LibraryModels(library.scan, lambda: library), options=OPTIONS)

    async def embed() -> tuple[str, int, bool]:
        await pool.open()
        try:
            async with pool.acquire(str(ggufs.embedder), embedding=True) as lease:
                vectors = await asyncio.to_thread(lease.engine.embed, ["hello", "world"])
                return lease.model_id, len(vectors.vectors), lease.loaded.settings.embedding
        finally:
            pool.close()

    try:
        model_id, count, embedding = asyncio.run(embed())
    finally:
        pool.shutdown()
    assert (count, embedding) == (2, True)
    assert model_id == "Tiny-Embedder-F16"  # its library name, though asked for by path
    assert pool.snapshot() == []


def test_stopping_the_server_ends_every_engine_process(
    library: Library, running: list[ModelServer]
) -> None:
    server, pool = serve_pool(library, PoolLimits())
    with client_of(server) as client:
        chat(client, SCRIPTED)
        chat(client, ENDLESS, max_tokens=2)
    started = list(pids(pool).values())
    server.stop()
    assert all(gone(pid) for pid in started)
    assert pool.snapshot() == []


# -- the command line --------------------------------------------------------------------------


def test_modeldeck_serve_without_a_model_serves_the_library(
    data_dir: Path, hf_home: Path, ggufs: ScriptedGgufs
) -> None:
    core = Core.open(data_dir=data_dir)
    try:
        assert not core.library.import_paths([ggufs.scripted, ggufs.endless]).rejected
    finally:
        core.close()
    port = free_port()
    process = _serve(data_dir, hf_home, "--port", str(port), "--ctx", "512", "--max-loaded", "1")
    with killed_if_left(process):
        assert process.stdout is not None
        printed = process.stdout.readline()
        assert printed.startswith("Serving ") and f"at http://127.0.0.1:{port}/v1" in printed
        url = f"http://127.0.0.1:{port}/v1"
        urls = [process.stdout.readline().split() for _ in range(3)]
        root = f"http://127.0.0.1:{port}"
        assert urls == [["OpenAI", url], ["Ollama", root], ["Anthropic", root]]
        with ollama.Client(host=root, timeout=60) as ollama_client:  # the URL printed works
            assert ollama_client.chat(model=SCRIPTED, messages=HELLO).message.content
        with openai.OpenAI(base_url=url, api_key="unused", max_retries=0) as client:
            ids = {model.id for model in client.models.list().data}
            assert {SCRIPTED, ENDLESS} <= ids
            assert chat(client, SCRIPTED) == SCRIPTED_REPLY
            assert chat(client, ENDLESS, max_tokens=3) == SCRIPTED_REPLY[:3]
        stderr = stopped_by(process, signal.SIGINT)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    children = [p for p in psutil.process_iter(["ppid"]) if p.info["ppid"] == process.pid]
    assert children == []


def test_pool_flags_need_the_library_mode(
    data_dir: Path, hf_home: Path, ggufs: ScriptedGgufs
) -> None:
    process = _serve(data_dir, hf_home, str(ggufs.scripted), "--max-loaded", "2")
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "without MODEL" in stderr and "Traceback" not in stderr
    bad = _serve(data_dir, hf_home, "--max-loaded", "0")
    _, stderr = bad.communicate(timeout=30)
    assert bad.returncode == 2 and "At least one model" in stderr


def test_an_embedding_model_named_in_a_request_loads_for_vectors(
    tmp_path: Path, database: Database, ggufs: ScriptedGgufs, running: list[ModelServer]
) -> None:
    library = Library(database, hf_cache_dir=tmp_path / "hub", app_folders=AppFolders())
    assert not library.import_paths([ggufs.scripted, ggufs.embedder]).rejected
    server, pool = serve_pool(library, PoolLimits())
    running.append(server)
    assert server.url is not None
    with client_of(server) as client:
        answer = client.embeddings.create(model="Tiny-Embedder-F16", input=["hello", "world"])
        assert answer.model == "Tiny-Embedder-F16"
        assert [len(item.embedding) for item in answer.data] == [64, 64]
        assert chat(client, SCRIPTED) == SCRIPTED_REPLY  # a chat model beside it
    with ollama.Client(host=server.url.removesuffix("/v1"), timeout=60) as ollama_client:
        embedded = ollama_client.embed(model="Tiny-Embedder-F16", input="hello")
        assert len(embedded.embeddings) == 1 and len(embedded.embeddings[0]) == 64
    assert "Tiny-Embedder-F16" in pids(pool)
