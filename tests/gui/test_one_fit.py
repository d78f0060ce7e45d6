"""One fit estimate: Discover's files view, `modeldeck info --json` and the Load planner agree.

The GGUF is written by the tests' builder with the shape the hub-side guess assumes for a
file of its size (24 layers, K/V 128 wide: `_TYPICAL_SHAPES`' smallest row), so the guess
before a download and the header at load time describe the same model. The report is
`describe_model`, which `info --json` prints as it is (the child process would read this
machine's free RAM, which changes between calls).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.chat.load_plan import ModelTooLargeError, plan_load
from app.hardware import MIB, MachineMemory
from app.hub.models import AccessStatus, ModelDetails, RepoFile
from app.library.sniff import sniff
from app.llm import Fit, FitEstimate, KvCacheType, guess_gguf_shape
from app.model_report import describe_model
from app.units import format_bytes
from tests.support.gguf_builder import write_scripted_gguf
from ui.discover.files_view import build_files_model
from ui.widgets import tooltip_html

GIB = 1024 * MIB
CONTEXT = 2048
NAME = "tiny-F16.gguf"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = write_scripted_gguf(
        tmp_path_factory.mktemp("fit") / NAME, embed=128, block_count=24, context_length=8192
    )
    shape = sniff(path).gguf_shape
    assert shape is not None
    guess = guess_gguf_shape(path.stat().st_size, "F16")
    assert (shape.block_count, shape.kv_elements_per_token()) == (
        guess.block_count,
        guess.kv_elements_per_token(),
    )
    return path


def ram(available: int) -> MachineMemory:
    return MachineMemory(ram_total=16 * GIB, ram_available=available, gpus=(), unified_memory=False)


def at_load(model: Path, memory: MachineMemory) -> FitEstimate:
    try:
        plan = plan_load(
            model,
            context_length=CONTEXT,
            gpu_layers=None,
            threads=None,
            kv_cache_type=KvCacheType.F16,
            flash_attention=False,
            capabilities={"supports_gpu_offload": False, "devices": []},
            machine=memory,
        )
    except ModelTooLargeError as refused:
        return refused.estimate
    assert plan.estimate is not None
    return plan.estimate


@pytest.mark.parametrize(
    ("share", "verdict"), [(0.5, Fit.FITS), (0.95, Fit.TIGHT), (1.01, Fit.WONT_FIT)]
)
def test_discover_info_and_load_give_one_verdict_and_explanation(
    qtbot: QtBot, model: Path, share: float, verdict: Fit
) -> None:
    needed = at_load(model, ram(8 * GIB)).ram_bytes
    memory = ram(int(needed / share))
    load = at_load(model, memory)
    files = (RepoFile(path=NAME, size=model.stat().st_size),)

    view = build_files_model(files, memory, context_length=CONTEXT)
    report = describe_model(
        ModelDetails(repo_id="org/tiny", files=files),
        AccessStatus.GRANTED,
        memory,
        context_length=CONTEXT,
    )

    assert load.fit is verdict
    fit_cell = view.item(0, 3)
    # The badge reads "fits · 346 MB of 691 MB": the verdict, then the figures it came from.
    shown_verdict, _, figures = fit_cell.text().partition(" · ")
    assert (shown_verdict, fit_cell.toolTip()) == (load.fit.value, tooltip_html(load.explanation))
    assert figures.startswith(format_bytes(load.ram_bytes))
    (file,) = report["files"]
    assert (file["fit"], file["fit_detail"]) == (load.fit.value, load.explanation)
