"""The Qt binding itself: a release that leaks or over-frees references takes the app down."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot


def test_qt_calls_that_return_nothing_keep_none_alive(qtbot: QtBot) -> None:
    label = QLabel()
    qtbot.addWidget(label)
    before = sys.getrefcount(None)
    for number in range(2000):
        label.setText(str(number))
        label.setFixedHeight(20)
    # PySide6 6.12.0 took one reference from None per call: Python 3.11 then aborts
    # ("none_dealloc") once a streaming reply has made a few thousand updates.
    assert abs(sys.getrefcount(None) - before) < 100
