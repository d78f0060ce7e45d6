"""Rich text that loads nothing: the one guard for every HTML view of hub, file or model text.

A QTextDocument asks `loadResource` for each image, style sheet or page its HTML names.
Answering None (a null QVariant) does not refuse: Qt then decodes `data:` URLs and reads
`file:` URLs and relative names from disk itself (QTextDocument::loadResource). An empty
QByteArray does not refuse an image either: QTextImageHandler then loads the name as a file
path. What ends the lookup is an empty value of the resource's own type — a null QImage for
an image (it then takes no room), an empty string for a style sheet or a page.

`InertDocument` answers every request that way and records the names asked for (tests read
them; nothing is ever fetched). `InertTextBrowser` is a read-only QTextBrowser that always
holds an InertDocument, never follows links itself, and answers its own `loadResource` the
same way in case a plain document is ever set on it. Card viewers, the license panel, chat
messages and the image details all build on it; a document made apart from a view (to be
inserted into one) is an InertDocument too, since the HTML parser fetches style sheets as
soon as it reads them.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QObject, QUrl
from PySide6.QtGui import QImage, QTextDocument
from PySide6.QtWidgets import QTextBrowser, QWidget

MAX_RECORDED = 1_000  # names kept in `resource_requests`; Qt asks again on every layout

_TEXT_RESOURCES = frozenset(
    kind.value
    for kind in (
        QTextDocument.ResourceType.HtmlResource,
        QTextDocument.ResourceType.StyleSheetResource,
        QTextDocument.ResourceType.MarkdownResource,
    )
)


def empty_resource(kind: int) -> QImage | QByteArray | str:
    """The answer to a resource request of `kind` that makes Qt load nothing itself.

    A null QImage for images, an empty string for pages and style sheets, an empty
    QByteArray for anything else (user resource types).
    """
    if kind == QTextDocument.ResourceType.ImageResource.value:
        return QImage()
    if kind in _TEXT_RESOURCES:
        return ""
    return QByteArray()


class ResourceLog:
    """The distinct resource names a document asked for, in order, up to `MAX_RECORDED`."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._seen: set[str] = set()

    def record(self, name: QUrl | str) -> None:
        text = name.toString() if isinstance(name, QUrl) else name
        if text not in self._seen and len(self.names) < MAX_RECORDED:
            self._seen.add(text)
            self.names.append(text)


class InertDocument(QTextDocument):
    """A QTextDocument that never loads a resource (see the module docstring).

    Args:
        parent: the owner, as for any QObject.
        log: where to record requests; a view shares one log among the documents it shows.
    """

    def __init__(self, parent: QObject | None = None, *, log: ResourceLog | None = None) -> None:
        super().__init__(parent)
        self.log = log if log is not None else ResourceLog()

    @property
    def resource_requests(self) -> list[str]:
        """Every distinct resource the HTML asked for (none of them was loaded)."""
        return self.log.names

    def loadResource(self, type: int, name: QUrl | str) -> object:
        self.log.record(name)
        return empty_resource(type)


class InertTextBrowser(QTextBrowser):
    """A read-only rich-text view that loads no resource and opens no link by itself.

    Links arrive through `anchorClicked`; subclasses decide what, if anything, to open.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self._log = ResourceLog()  # shared by every document this view shows
        self.setDocument(self.new_document())

    def new_document(self) -> InertDocument:
        """An empty InertDocument owned by this view, recording into its log."""
        return InertDocument(self, log=self._log)

    def scratch_document(self) -> InertDocument:
        """An InertDocument without an owner (Python frees it) that records into this view's
        log: for HTML parsed apart and then inserted here as a fragment."""
        return InertDocument(log=self._log)

    @property
    def resource_requests(self) -> list[str]:
        """Every distinct resource the HTML shown here asked for (none of them was loaded)."""
        return self._log.names

    def loadResource(self, type: int, name: QUrl | str) -> object:
        self._log.record(name)
        return empty_resource(type)
