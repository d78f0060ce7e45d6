"""`ModelPool`: every chat model of the library on the local API, each loaded when asked for.

A request naming a model that is not loaded loads it just in time, in an engine process of its
own (each loaded model is one `LocalChatEngine` child). What stays loaded is decided by
`PoolLimits.max_loaded` and by the memory fit — the load is planned the way the Chat page
plans it (`plan_load`: the one estimate, `app.llm.fit`, over the memory free now). When there
is no room, the least recently used idle model is unloaded first. A model that is generating
(or has requests waiting, or is being handed to a request) is never unloaded: a request for
another model then waits up to `busy_wait_s` for one to finish, and is refused with
`ModelsBusyError` (503 with Retry-After) after that. `idle_unload_s` unloads models that have
answered nothing for that long.

One engine process is kept started ahead with no model (`keep_spare`), so that a load skips
starting a process and importing llama.cpp (seconds of the time to the first token).

Everything but `snapshot` and the counters runs on the server's event loop; blocking work
(resolving a name, planning, loading, stopping a child) runs on worker threads, and loads run
one at a time so that each plan sees the memory the previous one took.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.chat.load_plan import LoadPlan, ModelTooLargeError, plan_load
from app.chat.local import LocalChatEngine
from app.chat.model_choice import ModelChoiceError
from app.errors import AppError
from app.hardware import MachineMemory, read_machine_memory
from app.library.projectors import projector_beside
from app.llm import KvCacheType
from app.llm.engine import LoadedModel
from app.serving.engine_queue import EngineQueue
from app.serving.library_models import LibraryModels, ServableModel
from app.serving.served_models import (
    ListedModel,
    ModelLease,
    ModelLoadError,
    ModelNotServedError,
    ModelRequiredError,
    ModelsBusyError,
    ServedModelError,
    ServerStoppingError,
)

# How often a request waiting for room looks again. A generation's end is noticed at once
# (`EngineQueue(on_done=…)` marks the time), but room can also come from a lease ending.
ROOM_POLL_S = 0.05
# How often the idle timer looks: an idle model is unloaded at most this late.
IDLE_TICK_S = 0.25
DEFAULT_BUSY_WAIT_S = 30.0
RETRY_AFTER_BUSY_S = 10


@dataclass(frozen=True, kw_only=True)
class PoolLimits:
    """What decides how many models stay loaded, and for how long.

    Attributes:
        max_loaded: the most models loaded at once (None: as many as the memory fits).
        idle_unload_s: unload a model after this many seconds without a request (None: keep).
        busy_wait_s: how long a request waits for room while every loaded model generates,
            before it is answered 503 with Retry-After.
    """

    max_loaded: int | None = None
    idle_unload_s: float | None = None
    busy_wait_s: float = DEFAULT_BUSY_WAIT_S

    def __post_init__(self) -> None:
        if self.max_loaded is not None and self.max_loaded < 1:
            raise ValueError("At least one model must be allowed to load (max_loaded ≥ 1).")
        if self.idle_unload_s is not None and self.idle_unload_s <= 0:
            raise ValueError("The idle time before unloading must be positive.")
        if self.busy_wait_s < 0:
            raise ValueError("The wait for a busy model cannot be negative.")


@dataclass(frozen=True, kw_only=True)
class PoolLoadOptions:
    """How each model is loaded (`plan_load` clamps the context to what the model knows)."""

    context_length: int = 4096
    gpu_layers: int | None = None  # None: as many as fit
    threads: int | None = None
    kv_cache_type: KvCacheType = KvCacheType.F16
    flash_attention: bool = False


class PooledState(enum.StrEnum):
    LOADING = "loading"
    GENERATING = "generating"
    IDLE = "idle"


@dataclass(frozen=True, kw_only=True)
class PooledModel:
    """A loaded (or loading) model, as the Chat page's server panel shows it."""

    model_id: str
    path: Path
    state: PooledState
    pid: int | None
    estimate_bytes: int | None  # RAM + GPU memory, by the fit estimate
    resident_bytes: int | None  # the engine process's resident memory now
    idle_s: float | None  # None unless idle
    context_length: int | None
    waiting: int


@dataclass(eq=False)
class _Slot:
    """One model's engine and queue in the pool."""

    model: ServableModel
    engine: LocalChatEngine
    queue: EngineQueue
    last_used: float
    ready: asyncio.Future[LoadedModel] | None = None
    plan: LoadPlan | None = None
    leases: int = 0  # requests holding the model (see `ModelLease`)
    pending: int = 0  # requests waiting for its load to finish
    embedding: bool = False  # loaded for vectors (`LoadSettings.embedding`), not for chat
    keep_alive_s: float | None = None  # idle seconds before unloading; None: the pool's

    @property
    def key(self) -> tuple[Path, bool]:
        return (self.model.path, self.embedding)

    @property
    def loaded(self) -> LoadedModel | None:
        ready = self.ready
        if ready is None or not ready.done() or ready.cancelled() or ready.exception():
            return None
        return ready.result()

    @property
    def loading(self) -> bool:
        return self.ready is None or not self.ready.done()

    @property
    def generating(self) -> bool:
        return self.queue.busy or self.queue.waiting > 0

    @property
    def in_use(self) -> bool:
        """Whether unloading it now would cut someone off."""
        return self.loading or self.generating or self.leases > 0 or self.pending > 0


class ModelPool:
    """The library's chat models, loaded on request (see the module's docstring).

    Implements `ModelSource`: routers call `acquire`. A pool can be opened again after it
    was closed and shut down (the Chat page's switch turns a server off and on).

    Args:
        models: what may be served, and how a requested name resolves.
        limits: `--max-loaded`, `--idle-unload` and the wait for room.
        options: how each model is loaded.
        read_memory: the machine's memory now (tests give a smaller machine).
        engine_factory: a new engine for a model (one child process each).
        keep_spare: keep one engine process started ahead, with no model, so that a
            just-in-time load skips starting a process and importing llama.cpp (seconds).
        clock: seconds, for idle times.
    """

    def __init__(
        self,
        models: LibraryModels,
        *,
        limits: PoolLimits | None = None,
        options: PoolLoadOptions | None = None,
        read_memory: Callable[[], MachineMemory] = read_machine_memory,
        engine_factory: Callable[[], LocalChatEngine] = LocalChatEngine,
        keep_spare: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.models = models
        self.limits = limits or PoolLimits()
        self.options = options or PoolLoadOptions()
        self._read_memory = read_memory
        self._engine_factory = engine_factory
        self._clock = clock
        self._slots: dict[tuple[Path, bool], _Slot] = {}  # (file, for embeddings) -> slot
        self._lock = threading.Lock()  # guards `_slots` for readers on other threads
        self._load_turn: asyncio.Lock | None = None
        self._idle_task: asyncio.Task[None] | None = None
        self._closing = False
        self._retired: list[LocalChatEngine] = []  # engines of unloads cut short by a close
        self._keep_spare = keep_spare
        self._spare: LocalChatEngine | None = None  # started ahead (see `keep_spare`)
        self._spare_ready = False

    # -- ModelSource ---------------------------------------------------------------------

    @property
    def loading(self) -> bool:
        return any(slot.loading for slot in self._slot_list())

    @property
    def busy(self) -> bool:
        return any(slot.queue.busy for slot in self._slot_list())

    @property
    def waiting(self) -> int:
        return sum(slot.queue.waiting for slot in self._slot_list())

    def listing(self) -> list[ListedModel]:
        """Every servable model of the library, loaded or not, then any loaded by path."""
        loaded: dict[Path, _Slot] = {}
        for slot in sorted(self._slot_list(), key=lambda s: s.embedding):  # chat first
            loaded.setdefault(slot.model.path, slot)
        listed = []
        for model in self.models.models():
            listed.append(_listed(model, loaded.pop(model.path, None)))
        listed += [_listed(other.model, other) for other in loaded.values()]
        return listed

    @contextlib.asynccontextmanager
    async def acquire(
        self, requested: str | None, *, embedding: bool = False
    ) -> AsyncIterator[ModelLease]:
        """The model `requested` names, loaded (just in time if need be), held until the block
        ends; its queue keeps it loaded while a generation started inside runs on.

        `embedding`: the model is wanted for `engine.embed`; it is loaded with
        `LoadSettings.embedding` (in an engine of its own if it also serves chats).

        Raises (on entering):
            ModelNotServedError: no library model or GGUF file matches (404).
            ModelRequiredError: `requested` is None and no model is loaded to default to.
            ModelsBusyError: no room, and every loaded model stayed busy for `busy_wait_s`.
            ModelLoadError: the model could not be loaded (too large, damaged…).
            ServerStoppingError: the server is stopping.
        """
        slot = await self._hold(requested, embedding=embedding)
        try:
            loaded = slot.loaded
            assert loaded is not None
            yield ModelLease(slot.model.model_id, slot.engine, slot.queue, loaded)
        finally:
            slot.leases -= 1
            slot.last_used = self._clock()

    async def open(self) -> None:
        """Start the idle timer (on the server's loop)."""
        self._closing = False
        self._load_turn = asyncio.Lock()
        self._idle_task = asyncio.create_task(self._unload_idle_models())
        self._start_spare()

    def close(self) -> None:
        """Refuse new requests and cancel running generations (on the loop, as it stops)."""
        self._closing = True
        if self._idle_task is not None:
            self._idle_task.cancel()
            self._idle_task = None
        for slot in self._slot_list():
            slot.queue.close()

    def shutdown(self) -> None:
        """End every engine process (blocking; after the server's loop has ended)."""
        with self._lock:
            slots, self._slots = list(self._slots.values()), {}
            retired, self._retired = self._retired, []
            spare, self._spare, self._spare_ready = self._spare, None, False
        if spare is not None:
            retired.append(spare)
        for engine in [*(slot.engine for slot in slots), *retired]:
            engine.close()

    # -- for the panel -------------------------------------------------------------------

    @property
    def spare_pid(self) -> int | None:
        """The process id of the spare engine once it has started (see `keep_spare`)."""
        with self._lock:
            spare, ready = self._spare, self._spare_ready
        return spare.pid if spare is not None and ready else None

    def snapshot(self) -> list[PooledModel]:
        """The models loaded or loading now, most recently used first (any thread)."""
        now = self._clock()
        pooled = []
        for slot in sorted(self._slot_list(), key=lambda s: s.last_used, reverse=True):
            loaded = slot.loaded
            state = (
                PooledState.LOADING
                if slot.loading
                else PooledState.GENERATING
                if slot.in_use
                else PooledState.IDLE
            )
            estimate = slot.plan.estimate if slot.plan is not None else None
            pid = slot.engine.pid
            pooled.append(
                PooledModel(
                    model_id=slot.model.model_id,
                    path=slot.model.path,
                    state=state,
                    pid=pid,
                    estimate_bytes=estimate.total_bytes if estimate is not None else None,
                    resident_bytes=_resident_bytes(pid),
                    idle_s=now - slot.last_used if state is PooledState.IDLE else None,
                    context_length=loaded.context_length if loaded is not None else None,
                    waiting=slot.queue.waiting,
                )
            )
        return pooled

    def keep_alive(self, model_id: str, seconds: float | None) -> None:
        """How long `model_id` stays loaded once idle, from now on (Ollama's `keep_alive`):
        seconds (0: unload as soon as it is idle; `math.inf` or negative: never); None: back
        to `idle_unload_s`. Applies to the model while it stays loaded (on the loop)."""
        keep = math.inf if seconds is not None and seconds < 0 else seconds
        for slot in self._slot_list():
            if slot.model.model_id == model_id:
                slot.keep_alive_s = keep

    async def unload(self, model_id: str) -> bool:
        """Unload a model now unless it is in use; whether it was (on the loop)."""
        for slot in self._slot_list():
            if slot.model.model_id == model_id and not slot.in_use:
                await self._unload(slot)
                return True
        return False

    # -- holding a model -----------------------------------------------------------------

    async def _hold(self, requested: str | None, *, embedding: bool) -> _Slot:
        """A loaded slot with a lease taken on it."""
        self._check_open()
        model = await self._resolve(requested)
        key = (model.path, embedding)
        deadline = self._clock() + self.limits.busy_wait_s
        while True:
            slot = self._slots.get(key)
            if slot is None:
                slot = await self._reserve(model, deadline, embedding=embedding)
            if slot.ready is not None and slot.ready.done():
                if slot.loaded is None or self._slots.get(key) is not slot:
                    continue  # its load failed (retried below) or it was unloaded
                slot.leases += 1  # no await since the check: it cannot be unloaded between
                return slot
            slot.pending += 1
            try:
                if slot.ready is None:
                    slot.ready = asyncio.ensure_future(self._load(slot, deadline))
                    await asyncio.shield(slot.ready)
                else:
                    with contextlib.suppress(ServedModelError):  # the loader reports it
                        await asyncio.shield(slot.ready)
            finally:
                slot.pending -= 1
            if slot.loaded is None:  # another request's load failed: say why
                error = slot.ready.exception()
                assert isinstance(error, ServedModelError)
                raise error

    async def _resolve(self, requested: str | None) -> ServableModel:
        if requested is None:
            slots = sorted(self._slot_list(), key=lambda s: s.last_used, reverse=True)
            if slots:
                return slots[0].model
            models = await asyncio.to_thread(self.models.models)
            if len(models) == 1:
                return models[0]
            raise ModelRequiredError(
                "Name a model: this server serves every model in the library.",
                hint="GET /v1/models lists their ids.",
            )
        try:
            return await asyncio.to_thread(self.models.resolve, requested)
        except ModelChoiceError as exc:
            raise ModelNotServedError(exc.message, hint="GET /v1/models lists the ids.") from None
        except AppError as exc:  # a path to a damaged or foreign file
            raise ModelNotServedError(str(exc)) from None

    async def _reserve(self, model: ServableModel, deadline: float, *, embedding: bool) -> _Slot:
        """A new slot for `model`, counted from now on, once `max_loaded` leaves room."""
        key = (model.path, embedding)
        while True:
            self._check_open()
            existing = self._slots.get(key)
            if existing is not None:
                return existing
            limit = self.limits.max_loaded
            victim = None
            if limit is not None and len(self._slots) >= limit:
                victim = self._least_recently_used_idle()
                if victim is None:
                    await self._wait_for_room(deadline, model)
                    continue
            slot = _Slot(
                model=model,
                engine=self._take_engine(),
                queue=EngineQueue(on_done=self._touch_on_done(key)),
                last_used=self._clock(),
                embedding=embedding,
            )
            with self._lock:  # the victim leaves and the new slot enters in one step
                if victim is not None:
                    self._slots.pop(victim.key, None)
                self._slots[key] = slot
            if victim is not None:
                await self._stop_engine(victim)
            return slot

    async def _load(self, slot: _Slot, deadline: float) -> LoadedModel:
        """Plan and load `slot`'s model (one load at a time), making room in memory first by
        unloading idle models while the estimate says it will not fit. Failing, the slot
        leaves the pool."""
        assert self._load_turn is not None, "open() the pool on the server's loop first"
        try:
            async with self._load_turn:
                while True:
                    try:
                        slot.plan = await asyncio.to_thread(self._plan, slot)
                        break
                    except ModelTooLargeError as exc:
                        victim = self._least_recently_used_idle(besides=slot)
                        if victim is not None:
                            await self._unload(victim)
                        elif any(s is not slot for s in self._slot_list()):
                            await self._wait_for_room(deadline, slot.model, cause=exc)
                        else:
                            raise ModelLoadError(
                                f"{slot.model.model_id} does not fit in this machine's memory: "
                                f"{exc.estimate.explanation}",
                                hint="Pick a smaller quantization, or serve a shorter context.",
                            ) from None
                self._check_open()
                return await asyncio.to_thread(slot.engine.load, slot.plan.settings)
        except ServedModelError:
            await self._drop(slot)
            raise
        except AppError as exc:
            await self._drop(slot)
            raise ModelLoadError(f"{slot.model.model_id} could not be loaded: {exc}") from None
        except BaseException:
            await self._drop(slot)
            raise

    def _plan(self, slot: _Slot) -> LoadPlan:
        options = self.options
        plan = plan_load(
            slot.model.path,
            context_length=options.context_length,
            gpu_layers=options.gpu_layers,
            threads=options.threads,
            kv_cache_type=options.kv_cache_type,
            flash_attention=options.flash_attention,
            capabilities=slot.engine.capabilities(),
            machine=self._read_memory(),
            # A vision model sees when served; vectors need no projector.
            projector=None if slot.embedding else projector_beside(slot.model.path),
        )
        if not slot.embedding:
            return plan
        settings = dataclasses.replace(plan.settings, embedding=True)
        return dataclasses.replace(plan, settings=settings)

    async def _wait_for_room(
        self, deadline: float, model: ServableModel, *, cause: Exception | None = None
    ) -> None:
        """Wait a moment for a model to go idle; past `deadline`, refuse with 503."""
        if self._clock() >= deadline:
            busy = ", ".join(sorted(s.model.model_id for s in self._slot_list() if s.in_use))
            why = "memory" if cause is not None else "room"
            raise ModelsBusyError(
                f"No {why} to load {model.model_id} now: {busy or 'other models'} "
                "are answering other requests, and a model is never unloaded mid-generation.",
                hint="Try again shortly.",
                retry_after_s=RETRY_AFTER_BUSY_S,
            )
        await asyncio.sleep(ROOM_POLL_S)

    def _least_recently_used_idle(self, *, besides: _Slot | None = None) -> _Slot | None:
        idle = [s for s in self._slot_list() if not s.in_use and s is not besides]
        return min(idle, key=lambda s: s.last_used, default=None)

    def _touch_on_done(self, key: tuple[Path, bool]) -> Callable[[], None]:
        def touch() -> None:
            slot = self._slots.get(key)
            if slot is not None:
                slot.last_used = self._clock()
            # The spare taken by a load is replaced once a reply is done, not during the
            # load and first reply, which it would slow down on a machine with few cores.
            self._start_spare()

        return touch

    # -- the spare engine ----------------------------------------------------------------

    def _take_engine(self) -> LocalChatEngine:
        """An engine for a new slot: the spare when it has started, else a new one."""
        with self._lock:
            if self._spare is not None and self._spare_ready:
                engine, self._spare, self._spare_ready = self._spare, None, False
                return engine
        return self._engine_factory()

    def _start_spare(self) -> None:
        """Start a spare engine process in the background, unless one is there (on the loop)."""
        if not self._keep_spare or self._closing:
            return
        with self._lock:
            if self._spare is not None:
                return
            engine = self._spare = self._engine_factory()

        def started(task: asyncio.Future[Any]) -> None:
            with self._lock:
                if self._spare is not engine:
                    return  # taken or shut down meanwhile
                if not task.cancelled() and task.exception() is None:
                    self._spare_ready = True
                else:  # it failed to start: loads start their own; shutdown ends it
                    self._spare = None
                    self._retired.append(engine)

        task = asyncio.ensure_future(asyncio.to_thread(engine.capabilities))
        task.add_done_callback(started)

    def _check_open(self) -> None:
        if self._closing:
            raise ServerStoppingError("The server is stopping.")

    # -- unloading -----------------------------------------------------------------------

    async def _unload_idle_models(self) -> None:
        """The idle timer: unload models idle for longer than their keep-alive (the pool's
        `idle_unload_s`, or what `keep_alive` set for the model)."""
        while True:
            await asyncio.sleep(IDLE_TICK_S)
            now = self._clock()
            for slot in self._slot_list():
                keep = slot.keep_alive_s
                idle_s = keep if keep is not None else self.limits.idle_unload_s
                if slot.in_use:
                    slot.last_used = now  # idle time counts from the end of the last use
                elif idle_s is not None and now - slot.last_used >= idle_s:
                    await self._unload(slot)

    async def _unload(self, slot: _Slot) -> None:
        with self._lock:
            if self._slots.get(slot.key) is slot:
                del self._slots[slot.key]
        await self._stop_engine(slot)

    async def _drop(self, slot: _Slot) -> None:
        """A slot whose load failed leaves the pool, and its engine ends."""
        await asyncio.shield(self._unload(slot))

    async def _stop_engine(self, slot: _Slot) -> None:
        with self._lock:
            self._retired.append(slot.engine)
        await asyncio.to_thread(slot.engine.close)
        with self._lock, contextlib.suppress(ValueError):
            self._retired.remove(slot.engine)

    def _slot_list(self) -> list[_Slot]:
        with self._lock:
            return list(self._slots.values())


def _listed(model: ServableModel, slot: _Slot | None) -> ListedModel:
    loaded = slot.loaded if slot is not None else None
    return ListedModel(
        model_id=model.model_id,
        path=model.path,
        created=model.created,
        size=model.size,
        loaded=loaded is not None,
        context_length=loaded.context_length if loaded is not None else None,
    )


def _resident_bytes(pid: int | None) -> int | None:
    """The process's resident memory (None when it is gone or cannot be read)."""
    if pid is None:
        return None
    import psutil

    try:
        return int(psutil.Process(pid).memory_info().rss)
    except (psutil.Error, OSError):
        return None


__all__ = [
    "ModelPool",
    "PoolLimits",
    "PoolLoadOptions",
    "PooledModel",
    "PooledState",
]
