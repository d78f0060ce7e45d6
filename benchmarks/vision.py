"""A prompt with an image: ModelDeck's LLM engine (child process, Pillow decode, libmtmd through
`app.llm.projector`) against bare llama-cpp-python + libmtmd in this process.

Same GGUF and projector (written on the spot: an 8-block llama of width 512 and a 4-block ViT
on 224 x 224 images in 14 x 14 patches, 256 image tokens), same 640 x 480 PNG, same prompt.
Timed: from the request to the first generated token (image decoded, encoded and evaluated,
the prompt's text evaluated). Runs alternate (bare, engine, bare, …); medians are printed,
and the ratio engine / bare.

    .venv/bin/python -m benchmarks.vision [--runs 5]
"""

from __future__ import annotations

import argparse
import ctypes
import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

from app.chat.local import LocalChatEngine
from app.engines.protocol import EventKind
from app.llm.messages import LoadSettings
from app.llm.sampling import Sampling
from app.llm.vision import IMAGE_MARKER, PromptImage, image_offsets
from app.tiny_gguf import write_projector
from tests.support.gguf_builder import write_scripted_gguf

PROMPT = (
    f"<|im_start|>user\n{IMAGE_MARKER}\nWhat is in the picture?<|im_end|>\n<|im_start|>assistant\n"
)
CONTEXT = 2048


def picture() -> bytes:
    buffer = io.BytesIO()
    Image.radial_gradient("L").resize((640, 480)).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def bare_run(llm: Any, mtmd: Any, context: Any, image: bytes) -> float:
    """Seconds to the first token with llama-cpp-python and libmtmd in this process."""
    import llama_cpp

    started = time.perf_counter()
    rgb = Image.open(io.BytesIO(image)).convert("RGB")
    pixels = rgb.tobytes()
    buffer = (ctypes.c_uint8 * len(pixels)).from_buffer_copy(pixels)
    bitmap = mtmd.mtmd_bitmap_init(rgb.width, rgb.height, buffer)
    text = mtmd.mtmd_input_text()
    data = PROMPT.encode()
    text.text, text.text_len, text.add_special, text.parse_special = data, len(data), True, True
    chunks = mtmd.mtmd_input_chunks_init()
    status = mtmd.mtmd_tokenize(
        context, chunks, ctypes.byref(text), (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap), 1
    )
    assert status == 0, status
    llm.reset()
    llm._ctx.kv_cache_clear()
    past = llama_cpp.llama_pos(0)
    status = mtmd.mtmd_helper_eval_chunks(
        context, llm._ctx.ctx, chunks, 0, 0, llm.n_batch, True, ctypes.byref(past)
    )
    assert status == 0, status
    llm.n_tokens = past.value
    llm.sample(temp=0.8)  # the first token, from the last position's logits
    elapsed = time.perf_counter() - started
    mtmd.mtmd_input_chunks_free(chunks)
    mtmd.mtmd_bitmap_free(bitmap)
    return elapsed


def engine_run(engine: LocalChatEngine, image: bytes) -> float:
    """Seconds to the first token through the app's engine, timed in this (the parent) process."""
    (offset,) = image_offsets(PROMPT)
    started = time.perf_counter()
    handle = engine.generate_from_prompt(
        PROMPT, Sampling(max_tokens=1, seed=1), images=(PromptImage(offset, image),)
    )
    first = None
    for event in handle.events():
        if event.kind is EventKind.CHUNK and first is None:
            first = time.perf_counter()
    handle.wait()
    return (first or time.perf_counter()) - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    import llama_cpp
    import llama_cpp.mtmd_cpp as mtmd

    with tempfile.TemporaryDirectory() as folder:
        model = write_scripted_gguf(
            Path(folder) / "model.gguf", embed=512, ff=2048, block_count=8, context_length=CONTEXT
        )
        projector = write_projector(
            Path(folder) / "mmproj.gguf",
            text_embedding=512,
            vision_embedding=256,
            image_size=224,
            patch_size=14,
            block_count=4,
        )
        image = picture()
        llm = llama_cpp.Llama(model_path=str(model), n_ctx=CONTEXT, verbose=False)
        params = mtmd.mtmd_context_params_default()
        params.use_gpu, params.print_timings, params.warmup = False, False, False
        params.n_threads = llm.n_threads
        context = mtmd.mtmd_init_from_file(str(projector).encode(), llm.model, params)
        engine = LocalChatEngine()
        try:
            engine.load(LoadSettings(path=model, context_length=CONTEXT, projector=projector))
            bare_run(llm, mtmd, context, image)  # warm both (first-image graph allocation)
            engine_run(engine, image)
            bare, ours = [], []
            for _ in range(args.runs):
                bare.append(bare_run(llm, mtmd, context, image))
                ours.append(engine_run(engine, image))
        finally:
            engine.close()
            mtmd.mtmd_free(context)
            llm.close()
    bare_s, ours_s = statistics.median(bare), statistics.median(ours)
    print(f"image prompt, time to first token (median of {args.runs}):")
    print(f"  bare llama-cpp-python + libmtmd  {bare_s * 1000:8.1f} ms")
    print(
        f"  ModelDeck engine                 {ours_s * 1000:8.1f} ms   ratio {ours_s / bare_s:.2f}"
    )


if __name__ == "__main__":
    main()
