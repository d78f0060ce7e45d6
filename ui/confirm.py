"""Asking before something that cannot be undone: a message box whose default is No.

Enter and Esc both keep things as they are: the destructive button must be clicked (or
reached with Tab and pressed). The text is shown as plain text, never rich text: it quotes
model and file names that come from hubs and other apps.

`ask` opens the box window-modal and awaits the answer, so the asyncio loop on the Qt loop
keeps running (a nested `exec()` inside a task would re-enter it).
"""

from __future__ import annotations

import asyncio

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from ui.widgets import LONG_CHARS, clip


def confirmation_box(
    parent: QWidget | None,
    title: str,
    text: str,
    *,
    action: str,
    keep: str = "Cancel",
    icon: QMessageBox.Icon = QMessageBox.Icon.Warning,
) -> QMessageBox:
    """A box asking `text`, with `action` (the destructive choice) and `keep` (the default).

    Args:
        parent: the window the box belongs to.
        title: the box's title.
        text: the question, plain text (file names are shown literally).
        action: the destructive button's label ("Delete", "Cancel download").
        keep: the label of the button that changes nothing; Enter and Esc choose it.
        icon: the box's icon.
    """
    box = QMessageBox(parent)
    box.setIcon(icon)
    box.setWindowTitle(title)
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setText(clip(text, LONG_CHARS))
    yes = box.addButton(QMessageBox.StandardButton.Yes)
    no = box.addButton(QMessageBox.StandardButton.No)
    yes.setText(action)
    no.setText(keep)
    yes.setAccessibleName(action)
    no.setAccessibleName(keep)
    box.setDefaultButton(no)
    box.setEscapeButton(no)
    box.setAccessibleName(title)
    return box


async def ask(box: QMessageBox) -> bool:
    """Show `box` (from `confirmation_box`) and return whether its destructive button was
    chosen. The box is deleted afterwards."""
    answered: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    yes = box.button(QMessageBox.StandardButton.Yes)

    def finished(_result: int) -> None:
        if not answered.done():
            answered.set_result(box.clickedButton() is yes)

    box.finished.connect(finished)
    box.open()
    try:
        return await answered
    finally:
        box.deleteLater()
