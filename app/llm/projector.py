"""A vision projector in the LLM engine's child: libmtmd (llama.cpp's multimodal library)
through llama-cpp-python's `mtmd_cpp` bindings, beside the loaded `Llama`.

Runs only in the child (`app.llm.llama_worker` passes the `llama_cpp` and `mtmd_cpp` modules
in, so this module imports neither). A prompt with images is evaluated piece by piece: the
text between images as the worker tokenizes it (a person's text never parsed for special
tokens), each image through the projector into the language model's context. What is left
is one text token, which `Llama.generate` evaluates and samples from as usual.

A projector that does not belong is refused with the reason in plain words, read from the
file's header first and from libmtmd's log after ("mismatch between text model (n_embd = 64)
and mmproj (n_embd = 96)").
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.engines.protocol import EngineFailure
from app.errors import CheckpointError
from app.library.sniff import sniff_projector
from app.llm.vision import IMAGE_MARKER, ImageInputError, PromptImage, decode_image

_WIDTH_MISMATCH = re.compile(
    r"mismatch between text model \(n_embd = (\d+)\) and mmproj \(n_embd = (\d+)\)"
)
# Positions an image fills in `Llama.input_ids` hold this token id: any valid id would do,
# since the worker clears the cache before the next prompt rather than match a prefix there.
_IMAGE_FILLER_TOKEN = 0

Tokenizer = Callable[[str, Sequence[tuple[int, int]], bool], list[int]]
"""(text, literal spans in it, add BOS) -> tokens: the worker's tokenization of prompt text."""


def explain_load_failure(path: Path, log: Sequence[str]) -> str:
    """A sentence saying why libmtmd could not load the projector at `path`."""
    text = "\n".join(log)
    if match := _WIDTH_MISMATCH.search(text):
        model_width, projector_width = int(match[1]), int(match[2])
        return (
            f"The projector {path.name} makes {projector_width}-wide embeddings, but the "
            f"model takes {model_width}-wide ones: they don't belong together. Use the "
            "projector (mmproj) from the model's own repository."
        )
    reason = next(
        (
            line.strip()
            for line in reversed(log)
            if "error" in line.lower() or "fail" in line.lower()
        ),
        "libmtmd gave no reason",
    )
    return f"llama.cpp could not load the projector {path.name}: {reason}"


class Projector:
    """A loaded projector (an `mtmd_context`) tied to one `Llama`; `close` frees it."""

    def __init__(self, llama_cpp: Any, mtmd: Any, context: Any, path: Path) -> None:
        self._llama_cpp = llama_cpp
        self._mtmd = mtmd
        self._context = context
        self.path = path

    @classmethod
    def load(
        cls,
        llama_cpp: Any,
        mtmd: Any,
        model: Any,
        path: Path,
        *,
        use_gpu: bool,
        threads: int,
        log_since: Callable[[], list[str]],
    ) -> Projector:
        """Load the projector at `path` for the loaded `model`.

        Raises:
            EngineFailure: "not-found" (no file), "bad-projector" (not a projector, truncated,
                a width the model does not take).
        """
        if not path.is_file():
            raise EngineFailure("not-found", f"No projector file at {path}")
        try:
            sniff_projector(path)
        except CheckpointError as error:
            raise EngineFailure("bad-projector", str(error)) from None
        if mtmd.mtmd_default_marker().decode("utf-8") != IMAGE_MARKER:
            raise EngineFailure("internal", "libmtmd's media marker is not the one the app uses")
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = use_gpu
        params.print_timings = False
        params.n_threads = threads
        params.warmup = False  # the first image pays for it instead of every load
        context = mtmd.mtmd_init_from_file(str(path).encode("utf-8"), model.model, params)
        if not context:
            lines = log_since()
            raise EngineFailure(
                "bad-projector", explain_load_failure(path, lines), log=tuple(lines)
            )
        if not mtmd.mtmd_support_vision(context):
            mtmd.mtmd_free(context)
            raise EngineFailure(
                "bad-projector", f"The projector {path.name} has no vision encoder (audio only?)."
            )
        return cls(llama_cpp, mtmd, context, path)

    def close(self) -> None:
        if self._context is not None:
            self._mtmd.mtmd_free(self._context)
            self._context = None

    def evaluate(
        self,
        model: Any,
        prompt: str,
        literal_spans: Sequence[tuple[int, int]],
        images: Sequence[PromptImage],
        tokenize: Tokenizer,
    ) -> list[int]:
        """Evaluate `prompt` with `images` at their markers into `model`'s context, all but
        its last token; returns the prompt's token ids (image positions hold a filler) for
        `Llama.generate`, which evaluates the last one and samples.

        Raises:
            EngineFailure: "bad-input" (a bad image, a marker that is not where an image says),
                "context-full" (the prompt with its images does not fit).
        """
        segments = _text_segments(prompt, literal_spans, images)
        texts = [tokenize(text, spans, index == 0) for index, (text, spans) in enumerate(segments)]
        if not texts[-1]:
            raise EngineFailure("bad-input", "A prompt cannot end with an image.")
        with self._image_chunks(images) as chunks:
            image_tokens = [self._mtmd.mtmd_helper_get_n_tokens(c) for c in chunks]
            total = sum(map(len, texts)) + sum(image_tokens)
            if total >= model.n_ctx():
                raise EngineFailure(
                    "context-full",
                    f"The prompt is {total:,} tokens with its images "
                    f"({sum(image_tokens):,} for {len(images)} image(s)); the context "
                    f"holds {model.n_ctx():,}.",
                )
            model.reset()
            for index, text in enumerate(texts):
                model.eval(text if index < len(chunks) else text[:-1])
                if index < len(chunks):
                    self._eval_image(model, chunks[index], images[index].name)
            return [*model.input_ids[: model.n_tokens].tolist(), texts[-1][-1]]

    # -- helpers -------------------------------------------------------------------------

    @contextmanager
    def _image_chunks(self, images: Sequence[PromptImage]) -> Iterator[list[Any]]:
        """Each image decoded and tokenized by the projector (its `mtmd_input_chunks`)."""
        mtmd = self._mtmd
        chunks_list: list[Any] = []
        try:
            for image in images:
                try:
                    pixels = decode_image(image.data, name=image.name)
                except ImageInputError as error:
                    raise EngineFailure("bad-input", str(error)) from None
                buffer = (ctypes.c_uint8 * len(pixels.data)).from_buffer_copy(pixels.data)
                bitmap = mtmd.mtmd_bitmap_init(pixels.width, pixels.height, buffer)
                if not bitmap:
                    raise EngineFailure("bad-input", f"libmtmd refused {image.name}")
                chunks = mtmd.mtmd_input_chunks_init()
                chunks_list.append(chunks)
                try:
                    marker = IMAGE_MARKER.encode("utf-8")
                    text = mtmd.mtmd_input_text()
                    text.text, text.text_len = marker, len(marker)
                    text.add_special, text.parse_special = False, True
                    bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
                    status = mtmd.mtmd_tokenize(
                        self._context, chunks, ctypes.byref(text), bitmaps, 1
                    )
                finally:
                    mtmd.mtmd_bitmap_free(bitmap)
                if status != 0:
                    raise EngineFailure(
                        "bad-input", f"The projector could not take {image.name} (status {status})."
                    )
            yield chunks_list
        finally:
            for chunks in chunks_list:
                mtmd.mtmd_input_chunks_free(chunks)

    def _eval_image(self, model: Any, chunks: Any, name: str) -> None:
        lib = self._llama_cpp
        start = model.n_tokens
        model._ctx.kv_cache_seq_rm(-1, start, -1)  # as Llama.eval does before a decode
        new_past = lib.llama_pos(0)
        status = self._mtmd.mtmd_helper_eval_chunks(
            self._context,
            model._ctx.ctx,
            chunks,
            lib.llama_pos(start),
            lib.llama_seq_id(0),
            model.n_batch,
            False,  # logits of the last position: the next text token gives them
            ctypes.byref(new_past),
        )
        if status != 0:
            raise EngineFailure(
                "bad-input", f"llama.cpp could not evaluate {name} (status {status})."
            )
        end = new_past.value
        model.input_ids[start:end] = _IMAGE_FILLER_TOKEN
        model.n_tokens = end


def _text_segments(
    prompt: str, literal_spans: Sequence[tuple[int, int]], images: Sequence[PromptImage]
) -> list[tuple[str, list[tuple[int, int]]]]:
    """The prompt's text around the images' markers, each piece with its literal spans
    (clipped and made relative to the piece)."""
    bounds: list[tuple[int, int]] = []
    cursor = 0
    for image in images:
        end = image.offset + len(IMAGE_MARKER)
        if image.offset < cursor or prompt[image.offset : end] != IMAGE_MARKER:
            raise EngineFailure(
                "bad-input", f"{image.name} has no image marker at offset {image.offset}"
            )
        bounds.append((cursor, image.offset))
        cursor = end
    bounds.append((cursor, len(prompt)))
    segments: list[tuple[str, list[tuple[int, int]]]] = []
    for start, end in bounds:
        spans = [
            (max(a, start) - start, min(b, end) - start)
            for a, b in literal_spans
            if min(b, end) > max(a, start)
        ]
        segments.append((prompt[start:end], spans))
    return segments
