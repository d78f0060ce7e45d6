"""The LLM engine's child process: llama.cpp through llama-cpp-python, one model at a time.

Only this module imports `llama_cpp`, and only in the child. The app renders the chat template
itself and sends a finished prompt; the child tokenizes it once, checks it against the context,
and streams the completion. Chunks are coalesced (`FLUSH_INTERVAL_S`) and a cancel is noticed
at each flush, so the loop costs one clock read per token beyond llama-cpp-python's own.

llama.cpp's log is captured (not printed) so a failed load can say why ("unknown model
architecture: 'foo'") and a successful one can report how the layers were split.
"""

from __future__ import annotations

import codecs
import ctypes
import os
import random
import re
import signal
import time
from collections import deque
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from app.engines.protocol import (
    FLUSH_INTERVAL_S,
    EngineFailure,
    EventKind,
    Handler,
    Op,
    RequestCancelled,
    RequestContext,
    TextChunk,
    serve,
)
from app.llm.messages import (
    Embed,
    Embedded,
    Generate,
    Generated,
    LayerSplit,
    Loaded,
    LoadSettings,
    TokenCount,
    Tokenize,
)
from app.llm.projector import Projector
from app.llm.sampling import MAX_SEED
from app.llm.stats import GenerationStats
from app.llm.stop_strings import StopStrings

# ggml type ids for the KV cache (ggml.h: GGML_TYPE_F32 = 0, F16 = 1, Q4_0 = 2, Q8_0 = 8).
KV_CACHE_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 8}

_OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
_BUFFER = re.compile(r"(\S+) model buffer size\s*=\s*([\d.]+) MiB")
_LOG_LINES = 400
_EMBED_GROUP = 64  # texts embedded between two cancel checks


class _LlamaLog:
    """llama.cpp's log lines, kept instead of printed (the GUI has no console to read)."""

    def __init__(self, llama_cpp: Any) -> None:
        self.lines: deque[str] = deque(maxlen=_LOG_LINES)
        self._partial = ""

        def receive(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            self._partial += text.decode("utf-8", errors="replace")
            *complete, self._partial = self._partial.split("\n")
            self.lines.extend(line for line in complete if line.strip())

        # Keep a reference: llama.cpp holds only the C pointer. libmtmd takes the same one.
        self.callback = llama_cpp.llama_log_callback(receive)
        llama_cpp.llama_log_set(self.callback, ctypes.c_void_p(0))

    def mark(self) -> int:
        return len(self.lines)

    def since(self, mark: int) -> list[str]:
        return list(self.lines)[mark:] if mark <= len(self.lines) else list(self.lines)

    @staticmethod
    def load_error(lines: list[str]) -> str | None:
        """The line of a failed load that says why, if llama.cpp said."""
        for line in reversed(lines):
            if "unknown model architecture" in line:
                return line.split(":", 1)[-1].strip() if ": " in line else line.strip()
        for line in reversed(lines):
            lowered = line.lower()
            if "error" in lowered or "failed" in lowered:
                return line.strip()
        return None


class LlamaWorker:
    """The handlers of the child's requests, around one `llama_cpp.Llama` at a time."""

    def __init__(self, llama_cpp: Any) -> None:
        self._llama_cpp = llama_cpp
        self._log = _LlamaLog(llama_cpp)
        self._model: Any = None
        self._path: str | None = None
        self._embedding = False  # the model was loaded for EMBED
        self._projector: Projector | None = None  # a vision projector beside the model
        self._images_in_cache = False  # the last prompt's images are in the KV cache

    def capabilities(self) -> dict[str, Any]:
        lib = self._llama_cpp
        supports_offload = bool(lib.llama_supports_gpu_offload())
        system_info = lib.llama_print_system_info()
        if isinstance(system_info, bytes):
            system_info = system_info.decode("utf-8", errors="replace")
        return {
            "engine": "llama.cpp",
            "version": getattr(lib, "__version__", "unknown"),
            "supports_gpu_offload": supports_offload,
            "devices": _devices(lib),
            "system_info": system_info,
            "cpu_count": os.cpu_count() or 1,
        }

    def handlers(self) -> dict[Op, Handler]:
        return {
            Op.LOAD: self.load,
            Op.GENERATE: self.generate,
            Op.TOKENIZE: self.tokenize,
            Op.EMBED: self.embed,
            Op.UNLOAD: self.unload,
        }

    # -- requests ------------------------------------------------------------------------

    def load(self, context: RequestContext) -> Loaded:
        settings = context.request.expect(LoadSettings)
        path = str(settings.path)
        if not Path(path).is_file():
            raise EngineFailure("not-found", f"No model file at {path}")
        self.unload(context)
        kv_type = KV_CACHE_TYPES.get(settings.kv_cache_type)
        if kv_type is None:
            raise EngineFailure("bad-settings", f"Unknown KV cache type {settings.kv_cache_type}")
        mark = self._log.mark()
        started = time.perf_counter()
        try:
            model = self._open(settings, kv_type)
        except (ValueError, RuntimeError, OSError) as error:
            lines = self._log.since(mark)
            reason = _LlamaLog.load_error(lines) or str(error)
            message = f"llama.cpp could not load the model: {reason}"
            raise EngineFailure("load-failed", message, log=tuple(lines)) from error
        self._model, self._path, self._embedding = model, path, settings.embedding
        lines = self._log.since(mark)  # the model's own log, before the projector's
        if settings.projector is not None:
            self._load_projector(context, settings)
        metadata: Mapping[str, str] = model.metadata or {}
        return Loaded(
            path=path,
            seconds=time.perf_counter() - started,
            context_length=model.n_ctx(),
            trained_context_length=model._model.n_ctx_train(),  # not on the public Llama
            architecture=metadata.get("general.architecture"),
            name=metadata.get("general.name"),
            chat_template=metadata.get("tokenizer.chat_template"),
            # A vocabulary without a BOS id still answers token_bos() with a guess.
            bos_token=(
                _token_text(model, model.token_bos())
                if "tokenizer.ggml.bos_token_id" in metadata
                else ""
            ),
            eos_token=_token_text(model, model.token_eos()),
            threads=model.n_threads,
            split=_split_from_log(lines),
            vision=self._projector is not None,
        )

    def _load_projector(self, context: RequestContext, settings: LoadSettings) -> None:
        """Load `settings.projector` beside the model just loaded; on failure unload both."""
        assert settings.projector is not None
        try:
            import llama_cpp.mtmd_cpp as mtmd
        except (ImportError, OSError) as error:
            self.unload(context)
            raise EngineFailure(
                "unsupported", f"This llama-cpp-python has no multimodal library ({error})"
            ) from None
        # libmtmd and its helpers log on their own (to stderr by default): keep their lines too.
        mtmd.mtmd_log_set(self._log.callback, ctypes.c_void_p(0))
        mtmd.mtmd_helper_log_set(self._log.callback, ctypes.c_void_p(0))
        mark = self._log.mark()
        try:
            self._projector = Projector.load(
                self._llama_cpp,
                mtmd,
                self._model,
                settings.projector,
                use_gpu=settings.gpu_layers != 0,
                threads=self._model.n_threads,
                log_since=lambda: self._log.since(mark),
            )
        except EngineFailure:
            self.unload(context)
            raise

    def _open(self, settings: LoadSettings, kv_type: int) -> Any:
        """A `Llama` for `settings`; in embedding mode with pooled sequence vectors."""
        lib = self._llama_cpp
        arguments: dict[str, Any] = {
            "model_path": str(settings.path),
            "n_ctx": settings.context_length,
            "n_gpu_layers": settings.gpu_layers,
            "n_threads": settings.threads,
            # The prompt's threads too, as llama.cpp's own -t sets both: left alone,
            # llama-cpp-python uses every core for them, and two engines side by side (the
            # server's model pool) then spin against each other.
            "n_threads_batch": settings.threads,
            "flash_attn": settings.flash_attention,
            "type_k": kv_type,
            "type_v": kv_type,
            "verbose": False,
        }
        if not settings.embedding:
            return lib.Llama(**arguments)
        # A non-causal encoder (BERT-like) must see a whole text in one micro-batch, so a
        # batch is the whole context; llama-cpp-python truncates each text to it.
        arguments |= {
            "embedding": True,
            "n_batch": settings.context_length,
            "n_ubatch": settings.context_length,
        }
        model = lib.Llama(**arguments)
        if model.pooling_type() != lib.LLAMA_POOLING_TYPE_NONE:
            return model
        # The file names no pooling (a generative model used as an embedder): llama.cpp says
        # so only once loaded, so load again with mean pooling. Per-token vectors would also
        # meet llama-cpp-python 0.3.36's NONE path, which misreads every sequence but the first.
        model.close()
        return lib.Llama(**arguments, pooling_type=lib.LLAMA_POOLING_TYPE_MEAN)

    def embed(self, context: RequestContext) -> Embedded:
        model = self._require_model()
        if not self._embedding:
            raise EngineFailure(
                "unsupported", "The model is loaded for chat; load it for embeddings to embed"
            )
        request = context.request.expect(Embed)
        for index, text in enumerate(request.texts):
            if not text:
                raise EngineFailure("bad-input", f"Text {index + 1} is empty: nothing to embed")
        vectors: list[tuple[float, ...]] = []
        tokens = 0
        # Groups of texts between cancel checks; llama-cpp-python batches inside each group.
        for start in range(0, len(request.texts), _EMBED_GROUP):
            if context.cancelled():
                raise RequestCancelled
            group = list(request.texts[start : start + _EMBED_GROUP])
            data, count = model.embed(group, normalize=request.normalize, return_count=True)
            vectors += [tuple(float(value) for value in vector) for vector in data]
            tokens += count
        return Embedded(tuple(vectors), tokens)

    def tokenize(self, context: RequestContext) -> TokenCount:
        model = self._require_model()
        tokens = self._tokens(model, context.request.expect(Tokenize).text, [])
        return TokenCount(len(tokens))

    def generate(self, context: RequestContext) -> Generated:
        model = self._require_model()
        if self._embedding:
            raise EngineFailure(
                "unsupported", "The model is loaded for embeddings; load it for chat to generate"
            )
        request = context.request.expect(Generate)
        sampling = request.sampling
        seed = sampling.seed if sampling.seed is not None else random.randrange(MAX_SEED)
        if request.images:
            tokens = self._prompt_with_images(model, request)
        else:
            if self._images_in_cache:  # image positions hold a filler no prefix may match
                model.reset()
                self._images_in_cache = False
            tokens = self._tokens(model, request.prompt, request.literal_spans)
        max_tokens = sampling.max_tokens
        room = model.n_ctx() - len(tokens)
        if room < 1:
            raise EngineFailure(
                "context-full",
                f"The prompt is {len(tokens):,} tokens; the context holds {model.n_ctx():,}.",
            )
        limit = min(max_tokens, room)
        reply = _ReplyText(context, StopStrings(sampling.stop))
        is_end_of_generation = self._llama_cpp.llama_vocab_is_eog
        vocab = model._model.vocab  # not on the public Llama
        grammar = self._grammar(vocab, request.grammar)
        model.set_seed(seed)
        started = time.perf_counter()
        first_token_at: float | None = None
        finish_reason = "length" if limit == max_tokens else "context-full"
        # llama-cpp-python's own sampler and eval loop; the text is decoded incrementally.
        tokens_out = model.generate(
            tokens,
            temp=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            min_p=sampling.min_p,
            repeat_penalty=sampling.repeat_penalty,
            grammar=grammar,
        )
        try:
            for token in tokens_out:
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                if is_end_of_generation(vocab, token):
                    finish_reason = "stop"
                    break
                if reply.add(model.detokenize([token])):
                    finish_reason = "stop"
                    break
                if reply.tokens >= limit:
                    break
                if reply.flush_due() and context.cancelled():
                    raise RequestCancelled
        finally:
            tokens_out.close()
            ended = time.perf_counter()
            reply.finish()
        decode_seconds = ended - first_token_at if first_token_at is not None else 0.0
        generated = reply.tokens
        stats = GenerationStats(
            prompt_tokens=len(tokens),
            generated_tokens=generated,
            time_to_first_token_s=(first_token_at - started) if first_token_at else None,
            tokens_per_second=(
                (generated - 1) / decode_seconds if generated > 1 and decode_seconds > 0 else None
            ),
            finish_reason=finish_reason,
            stop_string=reply.stop_string,
            seed=seed,
        )
        return Generated(stats)

    def unload(self, context: RequestContext) -> None:
        if self._projector is not None:
            self._projector.close()
            self._projector = None
        if self._model is not None:
            self._model.close()
            self._model, self._path = None, None

    # -- helpers -------------------------------------------------------------------------

    def _grammar(self, vocab: Any, gbnf: str | None) -> Any:
        """`gbnf` as llama-cpp-python's grammar, or None for none.

        llama-cpp-python builds its grammar sampler without checking it, and a grammar that
        llama.cpp cannot parse then crashes the process (a NULL sampler); so it is parsed here
        first, once, and refused as a request error.
        """
        if gbnf is None:
            return None
        lib = self._llama_cpp
        mark = self._log.mark()
        sampler = lib.llama_sampler_init_grammar(vocab, gbnf.encode("utf-8"), b"root")
        if not sampler:
            lines = self._log.since(mark)
            reason = next((line for line in lines if "error" in line.lower()), "it does not parse")
            raise EngineFailure("bad-grammar", f"llama.cpp refused the grammar: {reason.strip()}")
        lib.llama_sampler_free(sampler)
        return lib.LlamaGrammar.from_string(gbnf, verbose=False)

    def _prompt_with_images(self, model: Any, request: Generate) -> list[int]:
        """Evaluate a prompt with images (all but its last token); its token ids."""
        if self._projector is None:
            raise EngineFailure(
                "no-vision", "This model can't see images: it was loaded without a projector."
            )
        self._images_in_cache = True  # from the first image evaluated on
        return self._projector.evaluate(
            model,
            request.prompt,
            request.literal_spans,
            request.images,
            lambda text, spans, add_bos: self._tokens(model, text, spans, add_bos),
        )

    def _require_model(self) -> Any:
        if self._model is None:
            raise EngineFailure("not-loaded", "No model is loaded")
        return self._model

    @staticmethod
    def _tokens(
        model: Any, text: str, literal_spans: Sequence[Sequence[int]], add_bos: bool = True
    ) -> list[int]:
        """The prompt's tokens: the template's special tokens parsed, a person's text not.

        Only spans whose text would parse into control tokens are tokenized apart (as plain
        text); everything else is tokenized in one piece, exactly as llama.cpp would.
        """
        pieces: list[tuple[str, bool]] = []  # (text, parse special tokens)
        cursor = 0
        for start, end in literal_spans:
            literal = text[start:end]
            if _has_special_tokens(model, literal):
                pieces += [(text[cursor:start], True), (literal, False)]
                cursor = end
        pieces.append((text[cursor:], True))
        tokens: list[int] = []
        for index, (piece, special) in enumerate(pieces):
            if piece:
                tokens += model.tokenize(
                    piece.encode("utf-8"), add_bos=add_bos and index == 0, special=special
                )
        bos = model.token_bos()
        # Templates that write the BOS token themselves would otherwise get it twice.
        if len(tokens) > 1 and tokens[0] == bos and tokens[1] == bos:
            tokens = tokens[1:]
        return tokens


def _has_special_tokens(model: Any, text: str) -> bool:
    data = text.encode("utf-8")
    parsed: list[int] = model.tokenize(data, add_bos=False, special=True)
    plain: list[int] = model.tokenize(data, add_bos=False, special=False)
    return parsed != plain


class _ReplyText:
    """A reply's text as tokens come: UTF-8 decoded across token boundaries, stop strings
    held back, and sent to the app at most every `FLUSH_INTERVAL_S` (the first piece at once,
    so time to first token is not delayed)."""

    def __init__(self, context: RequestContext, stops: StopStrings) -> None:
        self._context = context
        self._stops = stops
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending: list[str] = []
        self._last_flush = 0.0
        self._stopped = False
        self.tokens = 0

    @property
    def stop_string(self) -> str | None:
        """The stop string that ended the reply, if one did."""
        return self._stops.matched

    def add(self, piece: bytes) -> bool:
        """Add one token's bytes; True when a stop string ended the reply."""
        self.tokens += 1
        text, self._stopped = self._stops.feed(self._decoder.decode(piece))
        self._pending.append(text)
        return self._stopped

    def flush_due(self) -> bool:
        """Send the pending text if it is time; True when it was sent."""
        now = time.perf_counter()
        if now - self._last_flush < FLUSH_INTERVAL_S:
            return False
        self._send()
        self._last_flush = now
        return True

    def finish(self) -> None:
        """Send what is left (held-back text that did not become a stop string)."""
        if not self._stopped:
            text, _ = self._stops.feed(self._decoder.decode(b"", final=True))
            self._pending += [text, self._stops.flush()]
        self._send()

    def _send(self) -> None:
        text = "".join(self._pending)
        self._pending.clear()
        if text:
            self._context.emit(EventKind.CHUNK, TextChunk(text))


def _token_text(model: Any, token: int) -> str:
    if token < 0:
        return ""
    piece: bytes = model.detokenize([token], special=True)
    return piece.decode("utf-8", errors="replace")


def _split_from_log(lines: list[str]) -> LayerSplit:
    """How llama.cpp placed the model, from its load log: layers on GPU and buffer sizes."""
    gpu_layers, layers = 0, None
    buffers_mib: dict[str, float] = {}
    for line in lines:
        if match := _OFFLOADED.search(line):
            gpu_layers, layers = int(match[1]), int(match[2])
        elif match := _BUFFER.search(line):
            buffers_mib[match[1]] = float(match[2])
    return LayerSplit(gpu_layers=gpu_layers, layers=layers, buffers_mib=buffers_mib)


# ggml_backend_dev_type: CPU = 0, GPU = 1, IGPU = 2 (integrated), ACCEL = 3 (e.g. BLAS).
_GPU_DEVICE_TYPES = frozenset({1, 2})


def _devices(lib: Any) -> list[dict[str, Any]]:
    """The GPU devices this build of llama.cpp sees, with free memory (empty on a CPU build).

    llama-cpp-python does not bind ggml's device registry, but libllama exports it; the
    prototypes below are ggml-backend.h's.
    """
    native = getattr(getattr(lib, "llama_cpp", None), "_lib", None)
    if native is None or not hasattr(native, "ggml_backend_dev_count"):
        return []
    pointer, size_t, text = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p
    for name, restype, argtypes in (
        ("ggml_backend_dev_count", size_t, []),
        ("ggml_backend_dev_get", pointer, [size_t]),
        ("ggml_backend_dev_type", ctypes.c_int, [pointer]),
        ("ggml_backend_dev_name", text, [pointer]),
        ("ggml_backend_dev_description", text, [pointer]),
        (
            "ggml_backend_dev_memory",
            None,
            [pointer, ctypes.POINTER(size_t), ctypes.POINTER(size_t)],
        ),
        ("ggml_backend_dev_backend_reg", pointer, [pointer]),
        ("ggml_backend_reg_name", text, [pointer]),
    ):
        function = getattr(native, name)
        function.restype, function.argtypes = restype, argtypes
    devices: list[dict[str, Any]] = []
    for index in range(native.ggml_backend_dev_count()):
        device = native.ggml_backend_dev_get(index)
        device_type = native.ggml_backend_dev_type(device)
        if device_type not in _GPU_DEVICE_TYPES:
            continue
        free, total = size_t(), size_t()
        native.ggml_backend_dev_memory(device, ctypes.byref(free), ctypes.byref(total))
        backend = native.ggml_backend_reg_name(native.ggml_backend_dev_backend_reg(device))
        devices.append(
            {
                "name": (native.ggml_backend_dev_name(device) or b"").decode(errors="replace"),
                "description": (native.ggml_backend_dev_description(device) or b"").decode(
                    errors="replace"
                ),
                "backend": (backend or b"").decode(errors="replace"),
                "type": device_type,  # 2: an integrated GPU, sharing RAM
                "free_bytes": free.value,
                "total_bytes": total.value,
            }
        )
    return devices


def main(connection: Connection) -> None:
    """The child's entry point (spawned by `app.llm.engine.LlmEngine`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # before the slow import, too
    try:
        import llama_cpp
    except ImportError as error:
        serve(
            connection,
            {},
            ready={
                "unavailable": (
                    f"The LLM runtime is not installed ({error}). Install it with "
                    "`pip install 'modeldeck[llm]'` (see README: GPU builds)."
                )
            },
        )
        return
    worker = LlamaWorker(llama_cpp)
    serve(connection, worker.handlers(), ready=worker.capabilities())
