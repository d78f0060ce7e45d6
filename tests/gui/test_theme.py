"""The look follows the colour scheme: the palette, the sidebar and its icons, live."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QGuiApplication, QIcon, QPalette
from pytestqt.qtbot import QtBot

from ui import theme
from ui.icons import themed_icon
from ui.main_window import ICONS, TITLES, MainWindow


@pytest.fixture(autouse=True)
def follow_the_os_afterwards() -> Iterator[None]:
    yield
    theme.set_scheme(None)  # offscreen has no OS scheme: light again for the next tests


def ink(icon: QIcon, mode: QIcon.Mode = QIcon.Mode.Normal) -> str:
    """The colour of an icon's strokes: its most opaque pixel."""
    image = icon.pixmap(QSize(24, 24), mode).toImage()
    pixels = (image.pixelColor(x, y) for x in range(image.width()) for y in range(image.height()))
    return max(pixels, key=lambda colour: colour.alpha()).name()


def window_colour(window: MainWindow, role: QPalette.ColorRole) -> str:
    return window.palette().color(role).name()


def wait_for_window(qtbot: QtBot, window: MainWindow, colours: theme.Colours) -> None:
    """Qt hands a new application palette to the widgets from the event loop."""
    qtbot.waitUntil(lambda: window_colour(window, QPalette.ColorRole.Window) == colours.window)


def test_switching_the_scheme_repaints_the_window_and_the_sidebar_icons(
    qtbot: QtBot, window: MainWindow
) -> None:
    theme.set_scheme(theme.Scheme.LIGHT)
    wait_for_window(qtbot, window, theme.LIGHT)
    assert window.sidebar.palette().color(QPalette.ColorRole.Base).name() == theme.LIGHT.sidebar
    icons = [window.sidebar.item(row).icon() for row in range(len(TITLES))]
    assert all(ink(icon) == theme.LIGHT.text for icon in icons)

    with qtbot.waitSignal(theme.install(window_app()).changed):
        theme.set_scheme(theme.Scheme.DARK)

    wait_for_window(qtbot, window, theme.DARK)
    assert window_colour(window, QPalette.ColorRole.WindowText) == theme.DARK.text
    assert window.sidebar.palette().color(QPalette.ColorRole.Base).name() == theme.DARK.sidebar
    assert all(ink(icon) == theme.DARK.text for icon in icons)  # the same icons, recoloured
    # The current page's icon is drawn on the accent, in its text colour.
    assert ink(icons[0], QIcon.Mode.Selected) == theme.DARK.on_accent


def test_the_theme_follows_the_os_until_a_scheme_is_forced(
    qtbot: QtBot, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    theme.set_scheme(None)
    app_theme = theme.install(window_app())
    hints = QGuiApplication.styleHints()

    monkeypatch.setattr(theme, "os_scheme", lambda: theme.Scheme.DARK)
    with qtbot.waitSignal(app_theme.changed):
        hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)  # what Qt sends when the OS switches
    wait_for_window(qtbot, window, theme.DARK)

    theme.set_scheme(theme.Scheme.LIGHT)  # forced: the OS switching back is ignored
    with qtbot.assertNotEmitted(app_theme.changed):
        hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    wait_for_window(qtbot, window, theme.LIGHT)


def test_icons_are_drawn_at_the_screen_resolution_and_every_page_has_one() -> None:
    for name in ICONS:
        icon = themed_icon(name)
        assert not icon.isNull(), name
        sharp = icon.pixmap(QSize(20, 20), 2.0)
        assert (sharp.width(), sharp.height()) == (40, 40)
        assert sharp.devicePixelRatio() == 2.0
    assert themed_icon("no-such-icon").isNull()


def window_app() -> QGuiApplication:
    app = QGuiApplication.instance()
    assert app is not None
    return app  # type: ignore[return-value]  # the QApplication pytest-qt made
