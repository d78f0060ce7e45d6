"""Hostile files dropped on the window: the GUI thread never waits on them.

A drop is handled on the GUI thread only as far as starting a task; the file is read on a
worker (`run_blocking`), within the bounds tests/hostile checks. Here the drop handler's own
CPU time is measured (well under 50 ms), and the page must answer in plain words and stay
usable for the next drop.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from tests.gui.test_images_page import drop
from tests.gui.test_library_page import drop_on
from tests.hostile.hostile_files import (
    LLAMA_SHAPE,
    gguf,
    itxt_chunk,
    kv_u64,
    png,
    text_chunk,
)
from tests.support.gguf_builder import write_gguf
from ui.main_window import MainWindow

GUI_THREAD_BUDGET_S = 0.05


def _timed_drop(target: QWidget, paths: list[Path]) -> float:
    """Drag `paths` onto `target` and drop them; returns the GUI thread's CPU seconds in the
    drop handler (`sendEvent` runs it synchronously). The events are built first: PySide6's
    first construction of an event type costs more than any handler."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    centre = target.rect().center()
    how = (
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    enter = QDragEnterEvent(QPoint(centre), *how)
    dropped = QDropEvent(QPointF(centre), *how)
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted()
    # The handler's own cost, not a collector pass over what the whole test run left behind
    # (late in the full suite one such pass took 0.5 s of this thread).
    gc.collect()
    gc.disable()
    try:
        start = time.thread_time()
        QApplication.sendEvent(target, dropped)
        spent = time.thread_time() - start
    finally:
        gc.enable()
    assert dropped.isAccepted()
    return spent


def test_a_hostile_png_dropped_on_the_images_page(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    images = window.images
    window.show_page(images)
    # 64 kB of A1111 "parameters" (36 s of regular expression before), a "modeldeck" chunk
    # nested 100,000 deep (a RecursionError before) and 10 gigapixels declared.
    hostile = tmp_path / "hostile.png"
    hostile.write_bytes(
        png(
            [
                text_chunk("parameters", "a" * 64_000),
                itxt_chunk("modeldeck", b"[" * 100_000 + b"]" * 100_000),
            ],
            width=100_000,
            height=100_000,
        )
    )

    with qtbot.waitSignal(images.said, timeout=10_000) as said:
        spent = _timed_drop(images, [hostile])

    assert spent < GUI_THREAD_BUDGET_S
    message = str(said.args[0])
    assert message == "This PNG has no generation settings.", message
    assert images.status.text() == message
    # Still usable: the next drop is answered too.
    good = tmp_path / "good.png"
    good.write_bytes(
        png([text_chunk("parameters", "a fox\nSteps: 9, Sampler: DDIM, CFG scale: 4, Seed: 7")])
    )
    with qtbot.waitSignal(images.settingsRestored, timeout=10_000):
        drop(images, good)
    assert images.form.prompt.toPlainText() == "a fox"


def test_a_hostile_gguf_dropped_on_the_window(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    library = window.library
    evil = tmp_path / "drop" / "evil.gguf"
    evil.parent.mkdir()
    evil.write_bytes(gguf(tensor_count=2**64 - 1))  # 2**64 tensors claimed in a few hundred bytes
    layers = tmp_path / "drop" / "layers-Q8_0.gguf"
    layers.write_bytes(gguf([*LLAMA_SHAPE, kv_u64("llama.block_count", 2**63)]))  # 5 s, 1.2 GB

    with qtbot.waitSignal(library.imported, timeout=20_000) as imported:
        spent = _timed_drop(window, [evil, layers])

    assert spent < GUI_THREAD_BUDGET_S
    assert imported.args == [1, 1]
    status = library.status.text()
    assert "Not imported: evil.gguf — evil.gguf: header claims" in status
    assert "the file is too small" in status
    names = [library.model.item(row).name for row in range(library.model.rowCount())]  # type: ignore[union-attr]
    assert any("layers" in name for name in names), names

    # Still usable: a good model dropped next is imported.
    good = write_gguf(tmp_path / "drop2" / "tiny-Q8_0.gguf")
    with qtbot.waitSignal(library.imported, timeout=20_000) as imported:
        drop_on(window, [good])
    assert imported.args == [1, 0]
    QApplication.processEvents()
