"""The Chat page while a reply streams at full speed: the GUI's longest main-thread stall, and
the GUI process's memory before and after a model loads.

The real MainWindow on the real qasync loop, the real llama.cpp engine (its child process),
and a scripted GGUF that repeats its text until the token limit: the tiny one streams
thousands of tokens a second — far faster than any real model — so it is the hardest case
for the transcript. A 5 ms QTimer heartbeat measures the stall (longest gap minus the
period). Memory: the "small" model (~270 MB of weights) is loaded through the page; the GUI
process's resident memory should not grow by the model's size (it lives in the engine).

    .venv/bin/python -m benchmarks.chat_stall [--runs 3] [--tokens 6000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")

import psutil
import qasync

from app.core import Core
from benchmarks.stall import Heartbeat, wait_until
from ui.application import create_application, open_main_window
from ui.chat.page import ChatPage
from ui.main_window import MainWindow

WRITE_MODELS = """
import sys
from pathlib import Path
from tests.support.gguf_builder import write_scripted_gguf
folder = Path(sys.argv[1])
write_scripted_gguf(folder / "tiny.gguf", endless=True, context_length=32768)
write_scripted_gguf(
    folder / "small.gguf", endless=True, embed=1024, ff=4096, block_count=8, context_length=8192
)
"""


async def load(page: ChatPage, path: Path, *, context: int, max_tokens: int) -> None:
    loaded: list[bool] = []
    page.panel.loadFinished.connect(loaded.append)
    page.pick_model(path)
    await asyncio.sleep(0.5)  # the picked model's saved settings are looked up first
    page.panel.load_form.context.setValue(context)
    page.panel.sampling.max_tokens.setValue(max_tokens)
    page.panel.load_button.click()
    await wait_until(lambda: bool(loaded), timeout=120)
    page.panel.loadFinished.disconnect(loaded.append)
    assert loaded == [True], page.panel.load_status.text()


async def one_reply(page: ChatPage) -> tuple[float, int, float]:
    """(longest stall in ms, characters streamed, seconds) for one reply."""
    # A new conversation each time: the last reply would not fit the context again.
    await page.conversations.create_now("Benchmark")
    await asyncio.sleep(0.2)
    finished: list[str] = []
    page.replyFinished.connect(finished.append)
    heartbeat = Heartbeat()
    page.composer.editor.setPlainText("Go on, at length.")
    started = time.perf_counter()
    heartbeat.start()
    assert page.composer.send_button.isEnabled(), "nothing to send to: no model loaded?"
    page.composer.send_button.click()
    await wait_until(lambda: bool(finished), timeout=300)
    stall = heartbeat.stop()
    seconds = time.perf_counter() - started
    page.replyFinished.disconnect(finished.append)
    assert finished == ["complete"], finished
    message = page.transcript.last_message()
    assert message is not None
    return stall, len(message.content), seconds


async def run(window: MainWindow, models: dict[str, Path], runs: int, tokens: int) -> None:
    page = window.chat
    window.show_page(page)
    await asyncio.sleep(1.0)  # the conversation list and the model list fill
    await load(page, models["tiny"], context=tokens + 512, max_tokens=tokens)
    measured = [await one_reply(page) for _ in range(runs)]
    stalls = [stall for stall, _, _ in measured]
    chars, seconds = measured[-1][1], measured[-1][2]
    print(f"== streaming {tokens} tokens (tiny model, {chars / seconds:,.0f} characters/s)")
    median, worst = statistics.median(stalls), max(stalls)
    print(f"  longest GUI stall      median {median:.1f} ms, worst {worst:.1f} ms")

    me = psutil.Process()
    before = me.memory_info().rss
    await load(page, models["small"], context=2048, max_tokens=32)
    after = me.memory_info().rss
    engine_pid = window.core.llm.pid if hasattr(window, "core") else None
    child = psutil.Process(engine_pid).memory_info().rss if engine_pid else None
    size = models["small"].stat().st_size
    print(f"== loading the small model ({size / 1e6:.0f} MB)")
    print(
        f"  GUI process RSS        {before / 1e6:.0f} MB before, {after / 1e6:.0f} MB after "
        f"({(after - before) / 1e6:+.0f} MB)"
    )
    if child is not None:
        print(f"  engine process RSS     {child / 1e6:.0f} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=6000)
    args = parser.parse_args()
    app = create_application(sys.argv)
    with tempfile.TemporaryDirectory() as folder:
        # Written by another process: numpy's 270 MB of weights would stay in this one's RSS.
        models = {"tiny": Path(folder) / "tiny.gguf", "small": Path(folder) / "small.gguf"}
        subprocess.run([sys.executable, "-c", WRITE_MODELS, folder], check=True)
        core = Core.open(data_dir=Path(folder) / "data", endpoint_override="http://127.0.0.1:9")
        window = open_main_window(core)
        window.core = core  # type: ignore[attr-defined]  # for the engine's pid
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)
        with loop:
            loop.run_until_complete(run(window, models, args.runs, args.tokens))
        window.close()
        core.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
