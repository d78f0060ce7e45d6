"""Discover's Files tab marks a vision model and its projector with an eye, and says which file
is the other half: the projector that downloads with the model; the Library's row of a model
that sees says so."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pytestqt.qtbot import QtBot

from app.library.catalog import LibraryEntry
from app.library.sniff import CheckpointFormat, ModelKind
from tests.gui.test_discover import GGUF_CARD
from tests.gui.test_discover_files import open_files
from tests.support.hub_server import HubServer
from ui.discover.files_view import FIT, NAME
from ui.discover.vision_mark import VisionRole
from ui.library_model import row_badges
from ui.main_window import MainWindow


def test_a_vision_model_and_its_projector_carry_the_eye(
    qtbot: QtBot, window: MainWindow, hub_server: HubServer
) -> None:
    hub_server.add_repo(
        "acme/Tiny-Vision-GGUF",
        {
            "tiny-vision-Q4_K_M.gguf": b"GGUF" + b"\0" * 2000,
            "mmproj-tiny-vision-F16.gguf": b"GGUF" + b"\1" * 500,
            "config.json": b"{}",
        },
        card=GGUF_CARD,
        library_name="gguf",
    )
    open_files(qtbot, window, "Tiny-Vision", "acme/Tiny-Vision-GGUF")
    model = window.discover.details.view.files.model
    assert model is not None
    rows = {model.item(r, NAME).text(): model.item(r, NAME) for r in range(model.rowCount())}
    vision, projector = rows["tiny-vision-Q4_K_M.gguf"], rows["mmproj-tiny-vision-F16.gguf"]
    assert vision.data(VisionRole) is True and not vision.icon().isNull()
    assert "its projector mmproj-tiny-vision-F16.gguf downloads with it" in vision.toolTip()
    assert projector.data(VisionRole) is True
    assert "Vision projector" in projector.toolTip()
    assert rows["config.json"].data(VisionRole) is None and rows["config.json"].icon().isNull()
    # The fit counts the projector that comes with the model.
    fit = model.item(vision.row(), FIT)
    assert "vision projector" in fit.toolTip()


def test_a_text_model_has_no_eye(qtbot: QtBot, window: MainWindow, hub_server: HubServer) -> None:
    hub_server.add_repo(
        "acme/Tiny-Text-GGUF",
        {"tiny-text-Q4_K_M.gguf": b"GGUF" + b"\0" * 2000},
        card=GGUF_CARD,
        library_name="gguf",
    )
    open_files(qtbot, window, "Tiny-Text", "acme/Tiny-Text-GGUF")
    model = window.discover.details.view.files.model
    assert model is not None
    assert model.item(0, NAME).data(VisionRole) is None


def test_a_library_model_that_sees_carries_a_badge(tmp_path: Path) -> None:
    entry = LibraryEntry(
        key="path:/models/Vision-Q8_0.gguf",
        name="Vision",
        kind=ModelKind.LLM_GGUF,
        format=CheckpointFormat.GGUF,
        architecture="llama",
        parameter_count=None,
        quantization="Q8_0",
        context_length=4096,
        size=1,
        license=None,
        sha256=None,
        locations=(),
    )
    assert "sees images" not in [badge.text for badge in row_badges(entry)]
    seeing = replace(entry, projector=tmp_path / "mmproj-Vision-F16.gguf")
    badge = next(badge for badge in row_badges(seeing) if badge.text == "sees images")
    assert "mmproj-Vision-F16.gguf" in badge.why
