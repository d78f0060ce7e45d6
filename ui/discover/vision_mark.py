"""The "sees images" mark in Discover's Files tab: an eye on vision models and their projectors.

A GGUF model sees when its repository ships a projector that goes with it (the one the
download plan brings along, `app.hub.projector_files.matching_projector`); the projector's
own row gets the eye too, and each says which file is the other half.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QStandardItem

from app.hub.projector_files import matching_projector
from app.hub.repo_files import GgufModel
from ui.icons import themed_icon
from ui.widgets import tooltip_html

VISION_ICON = "eye"
# Column 0 of a row: True when the model sees images (or is a vision projector).
VisionRole = Qt.ItemDataRole.UserRole + 41


def vision_note(model: GgufModel, models: Sequence[GgufModel]) -> str | None:
    """What the row of `model` should say about images; None for a text model."""
    if model.is_projector:
        return f"Vision projector ({model.path}): downloads and loads with its model."
    projector = matching_projector(model, models)
    if projector is None:
        return None
    return f"Sees images: its projector {projector.path} downloads with it."


def mark_vision(cell: QStandardItem, model: GgufModel, models: Sequence[GgufModel]) -> None:
    """Give a Files-tab name cell the eye and say why, when `model` is half of a vision pair."""
    note = vision_note(model, models)
    if note is None:
        return
    cell.setIcon(themed_icon(VISION_ICON))
    cell.setData(True, VisionRole)
    cell.setToolTip(tooltip_html(f"{cell.text()}\n{note}"))
