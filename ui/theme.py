"""ModelDeck's look: the Fusion style, a light and a dark palette, and a small type scale.

The scheme follows the operating system (`QStyleHints.colorScheme`) and changes live when the
OS switches. `MODELDECK_COLOR_SCHEME=light|dark` (or `set_scheme`) forces one instead: a
virtual display has no OS scheme, and screenshots and tests need both.

Colours are set through palettes, never an application style sheet: a style sheet makes Qt
polish every widget through its style-sheet engine, which doubled the main window's
construction time. Widgets that paint a colour of their own (`status_colour`, `colours()`)
read it when they paint, or listen to `Theme.changed`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

SCHEME_ENV = "MODELDECK_COLOR_SCHEME"

# The type scale, as point deltas over the platform's body font (which follows the user's
# accessibility settings, so sizes stay relative to it).
TITLE_POINTS = 6.0  # a page's title
HEADING_POINTS = 3.0  # a section or an empty page's message
LARGE_POINTS = 1.5  # the sidebar and the search field
SMALL_POINTS = -1.0  # secondary facts
# The spacing scale, in device-independent pixels.
SPACING = 8
PAGE_MARGIN = 14


class Scheme(StrEnum):
    LIGHT = "light"
    DARK = "dark"


@dataclass(frozen=True, slots=True)
class Colours:
    """One scheme's colours; the palette is built from these and nothing else."""

    window: str
    text: str
    muted: str  # placeholder and disabled text
    base: str  # text fields and lists
    alternate: str  # alternate rows
    button: str
    accent: str  # selection, links, the current sidebar page
    on_accent: str
    sidebar: str
    border: str
    error: str
    notice_background: str
    notice_text: str
    good: str
    warning: str
    bad: str
    info: str
    special: str
    neutral: str


LIGHT = Colours(
    window="#f4f5f7",
    text="#1d2129",
    muted="#6b7280",
    base="#ffffff",
    alternate="#f3f4f7",
    button="#e9ebf0",
    accent="#3f51b5",  # the indigo of the app icon
    on_accent="#ffffff",
    sidebar="#e6e8ee",
    border="#c9cdd6",
    error="#c62828",
    notice_background="#fff3e0",
    notice_text="#5d4037",
    good="#2e7d32",
    warning="#b45309",
    bad="#c62828",
    info="#1565c0",
    special="#6a1b9a",
    neutral="#616161",
)

DARK = Colours(
    window="#1f2125",
    text="#e4e6eb",
    muted="#8b919c",
    base="#17181b",
    alternate="#1d1f23",
    button="#2c2f35",
    accent="#7986cb",
    on_accent="#0d0f1a",
    sidebar="#18191c",
    border="#3a3e46",
    error="#ef7070",
    notice_background="#3b2f1e",
    notice_text="#f3d9b1",
    good="#6fcf73",
    warning="#f0a04b",
    bad="#ef7070",
    info="#74b3f0",
    special="#c792ea",
    neutral="#a0a4ab",
)

_COLOURS = {Scheme.LIGHT: LIGHT, Scheme.DARK: DARK}


def colours_for(scheme: Scheme) -> Colours:
    return _COLOURS[scheme]


def build_palette(scheme: Scheme) -> QPalette:
    """The application palette for `scheme`, every role Fusion paints with set."""
    c = colours_for(scheme)
    window, text, base, button = (
        QColor(c.window),
        QColor(c.text),
        QColor(c.base),
        QColor(c.button),
    )
    darker = scheme is Scheme.LIGHT  # bevels go darker on light, lighter on dark
    role = QPalette.ColorRole
    palette = QPalette()
    palette.setColor(role.Window, window)
    palette.setColor(role.WindowText, text)
    palette.setColor(role.Base, base)
    palette.setColor(role.AlternateBase, QColor(c.alternate))
    palette.setColor(role.Text, text)
    palette.setColor(role.Button, button)
    palette.setColor(role.ButtonText, text)
    palette.setColor(role.BrightText, QColor(c.error))
    palette.setColor(role.Highlight, QColor(c.accent))
    palette.setColor(role.HighlightedText, QColor(c.on_accent))
    palette.setColor(role.Accent, QColor(c.accent))
    palette.setColor(role.Link, QColor(c.accent if darker else c.info))
    palette.setColor(role.LinkVisited, QColor(c.special))
    palette.setColor(role.PlaceholderText, QColor(c.muted))
    palette.setColor(role.ToolTipBase, base)
    palette.setColor(role.ToolTipText, text)
    palette.setColor(role.Light, button.lighter(130) if darker else button.lighter(140))
    palette.setColor(role.Midlight, button.darker(105) if darker else button.lighter(120))
    palette.setColor(role.Mid, QColor(c.border))
    palette.setColor(role.Dark, button.darker(150) if darker else window.darker(130))
    palette.setColor(role.Shadow, QColor("#000000"))
    disabled = QPalette.ColorGroup.Disabled
    for muted_role in (role.WindowText, role.Text, role.ButtonText):
        palette.setColor(disabled, muted_role, QColor(c.muted))
    palette.setColor(disabled, role.Highlight, QColor(c.border))
    palette.setColor(disabled, role.Button, window)
    return palette


def os_scheme() -> Scheme:
    """The scheme the operating system asks for (light when it says nothing)."""
    hints = QGuiApplication.styleHints()
    return Scheme.DARK if hints.colorScheme() == Qt.ColorScheme.Dark else Scheme.LIGHT


def _forced_from_environment() -> Scheme | None:
    value = os.environ.get(SCHEME_ENV, "").strip().lower()
    return Scheme(value) if value in (Scheme.LIGHT, Scheme.DARK) else None


class Theme(QObject):
    """Applies a scheme to the application and follows the OS's until one is forced."""

    changed = Signal(str)  # the new Scheme's value

    def __init__(self, app: QApplication, forced: Scheme | None = None) -> None:
        super().__init__(app)
        self._app = app
        self._forced = forced
        self.scheme = os_scheme() if forced is None else forced
        # Fusion looks the same on every OS and paints with the palette alone. (Set only when
        # another style is in use: making a style costs ~15 ms of startup.)
        if app.style().name().lower() != "fusion":
            app.setStyle("Fusion")
        app.setPalette(build_palette(self.scheme))
        app.styleHints().colorSchemeChanged.connect(self._os_changed)

    def set_scheme(self, scheme: Scheme | None) -> None:
        """Force `scheme`, or follow the OS again with None."""
        self._forced = scheme
        self._apply(os_scheme() if scheme is None else scheme)

    def _os_changed(self, _scheme: Qt.ColorScheme) -> None:
        if self._forced is None:
            self._apply(os_scheme())

    def _apply(self, scheme: Scheme) -> None:
        if scheme is self.scheme:
            return
        self.scheme = scheme
        # Widgets repaint on the palette change; the icon engine reads the new colours then.
        self._app.setPalette(build_palette(scheme))
        self.changed.emit(scheme.value)


_theme: Theme | None = None


def install(app: QApplication) -> Theme:
    """Give `app` the Fusion style and the scheme's palette (once; later calls return it)."""
    global _theme  # noqa: PLW0603 - one theme per QApplication, which is itself a singleton
    if _theme is None or _theme.parent() is not app:
        _theme = Theme(app, _forced_from_environment())
    return _theme


def current() -> Theme | None:
    """The installed theme, or None before `install` (e.g. a widget built in a bare test)."""
    return _theme


def scheme() -> Scheme:
    """The scheme on screen (the OS's when no theme is installed)."""
    return _theme.scheme if _theme is not None else Scheme.LIGHT


def set_scheme(value: Scheme | None) -> None:
    """Force a scheme (None: follow the OS), installing the theme on the app if needed."""
    app = QApplication.instance()
    assert isinstance(app, QApplication), "set_scheme needs a QApplication"
    install(app).set_scheme(value)


def colours() -> Colours:
    """The colours of the scheme on screen."""
    return colours_for(scheme())


def status_colour(kind: str) -> QColor:
    """A readable colour for a status word: "good", "warning", "bad", "info", "special" or
    "neutral", in the scheme on screen (call it when painting, so it follows a switch)."""
    return QColor(getattr(colours(), kind))
