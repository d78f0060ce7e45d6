"""A document's text as blocks (paragraphs, headings), each knowing its page and line span.

One kept library per format: pypdf (PDF), python-docx (Word), markdown-it-py (Markdown), the
standard library's HTML parser; plain text and code are decoded here. Every input is
untrusted: a damaged, encrypted or disguised file ends in a `DocumentError` that says why,
never in another exception. A PDF's lines are lines of its page's text; a Word file has no
lines, so its "lines" are paragraph numbers.
"""

from __future__ import annotations

import io
import re
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from html.parser import HTMLParser
from pathlib import PurePath

from app.errors import AppError


class DocumentError(AppError, ValueError):
    """A file could not be read as a document (encrypted, damaged, binary, too big…)."""


class DocumentKind(StrEnum):
    TEXT = "text"
    MARKDOWN = "markdown"
    HTML = "html"
    PDF = "pdf"
    DOCX = "docx"
    CODE = "code"


_CODE_SUFFIXES = [
    ".py",
    ".js",
    ".ts",
    ".tsx",
    ".jsx",
    ".java",
    ".c",
    ".h",
    ".cc",
    ".cpp",
    ".hpp",
    ".cs",
    ".go",
    ".rs",
    ".rb",
    ".php",
    ".swift",
    ".kt",
    ".scala",
    ".sh",
    ".bash",
    ".zsh",
    ".ps1",
    ".sql",
    ".r",
    ".lua",
    ".pl",
    ".m",
    ".toml",
    ".yaml",
    ".yml",
    ".ini",
    ".cfg",
    ".json",
    ".xml",
    ".css",
]
KINDS_BY_SUFFIX: dict[str, DocumentKind] = {
    ".txt": DocumentKind.TEXT,
    ".text": DocumentKind.TEXT,
    ".log": DocumentKind.TEXT,
    ".rst": DocumentKind.TEXT,
    ".csv": DocumentKind.TEXT,
    ".md": DocumentKind.MARKDOWN,
    ".markdown": DocumentKind.MARKDOWN,
    ".html": DocumentKind.HTML,
    ".htm": DocumentKind.HTML,
    ".pdf": DocumentKind.PDF,
    ".docx": DocumentKind.DOCX,
    **dict.fromkeys(_CODE_SUFFIXES, DocumentKind.CODE),
}

# A .docx is a zip: past this much unpacked XML it is a zip bomb, not a document.
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
_BINARY_SAMPLE = 8192


def kind_of(path: PurePath) -> DocumentKind | None:
    """The document kind a file's name says, or None for a file this feature does not read."""
    return KINDS_BY_SUFFIX.get(path.suffix.lower())


@dataclass(frozen=True)
class Block:
    """A paragraph-sized piece of a document, where it came from and under which heading."""

    text: str
    line_start: int  # 1-based, inclusive
    line_end: int
    page: int | None = None  # 1-based; PDFs only
    heading: str = ""  # the headings above it, "Intro > Setup"
    is_heading: bool = False


def extract_blocks(kind: DocumentKind, data: bytes, *, name: str = "the file") -> list[Block]:
    """The blocks of a document's bytes.

    Raises:
        DocumentError: the bytes are not a readable document of that kind (the reason says
            why: encrypted, damaged, binary...).
    """
    if kind is DocumentKind.PDF:
        return _pdf_blocks(data, name)
    if kind is DocumentKind.DOCX:
        return _docx_blocks(data, name)
    text = decode_text(data, name)
    if kind is DocumentKind.MARKDOWN:
        return _markdown_blocks(text)
    if kind is DocumentKind.HTML:
        return _html_blocks(text)
    return list(paragraph_blocks(text.splitlines()))


def decode_text(data: bytes, name: str) -> str:
    """Text from bytes: UTF-8 (or UTF-16 with its BOM); binary bytes are a `DocumentError`."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as error:
            raise DocumentError(f"{name} is not valid UTF-16 text") from error
    sample = data[:_BINARY_SAMPLE]
    if b"\x00" in sample:
        raise DocumentError(f"{name} is binary, not text (it holds NUL bytes)")
    text = data.decode("utf-8", errors="replace")
    # A few bad bytes are a damaged text; many are a binary file (or a legacy encoding).
    if text.count("\ufffd") > max(8, len(text) // 20):
        raise DocumentError(f"{name} is not UTF-8 text")
    return text.removeprefix("\ufeff")


def paragraph_blocks(
    lines: list[str], *, first_line: int = 1, page: int | None = None, heading: str = ""
) -> Iterator[Block]:
    """Paragraphs: runs of non-blank lines, with their line span."""
    start: int | None = None
    for index, line in enumerate([*lines, ""]):
        if line.strip():
            if start is None:
                start = index
        elif start is not None:
            text = "\n".join(lines[start:index]).strip()
            yield Block(text, first_line + start, first_line + index - 1, page, heading)
            start = None


def _markdown_blocks(text: str) -> list[Block]:
    from markdown_it import MarkdownIt

    lines = text.splitlines()
    tokens = MarkdownIt("commonmark").parse(text)
    headings: list[str] = []
    blocks: list[Block] = []
    for index, token in enumerate(tokens):
        if token.level != 0 or token.map is None or token.nesting == -1:
            continue
        start, end = token.map
        source = "\n".join(lines[start:end]).strip()
        if not source:
            continue
        if token.type == "heading_open":
            depth = int(token.tag[1])
            title = tokens[index + 1].content.strip() if index + 1 < len(tokens) else source
            headings[depth - 1 :] = [title]
            blocks.append(Block(source, start + 1, end, None, _path(headings), is_heading=True))
        else:
            blocks.append(Block(source, start + 1, end, None, _path(headings)))
    return blocks


def _path(headings: list[str]) -> str:
    return " > ".join(title for title in headings if title)


class _HtmlText(HTMLParser):
    """Text of an HTML page by block element, with the source line each block starts on."""

    _BLOCKS = frozenset(
        [
            "p",
            "div",
            "li",
            "td",
            "th",
            "tr",
            "br",
            "pre",
            "blockquote",
            "section",
            "article",
            "header",
            "footer",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "dt",
            "dd",
            "figcaption",
            "caption",
            "title",
        ]
    )
    _SKIPPED = frozenset({"script", "style", "noscript", "template", "head"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self._headings: list[str] = []
        self._parts: list[str] = []
        self._line = 1
        self._skip_depth = 0
        self._heading_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIPPED and tag != "head":
            self._skip_depth += 1
        elif tag in self._BLOCKS:
            self._flush()
            if len(tag) == 2 and tag[0] == "h" and tag[1].isdigit():
                self._heading_depth = int(tag[1])

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIPPED and tag != "head":
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in self._BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if not self._parts:
            self._line = self.getpos()[0]
        self._parts.append(data)

    def close(self) -> None:
        super().close()
        self._flush()

    def _flush(self) -> None:
        text = re.sub(r"\s+", " ", "".join(self._parts)).strip()
        self._parts.clear()
        depth, self._heading_depth = self._heading_depth, 0
        if not text:
            return
        line_end = self._line + max(0, self.getpos()[0] - self._line)
        if depth:
            self._headings[depth - 1 :] = [text]
        self.blocks.append(
            Block(text, self._line, line_end, None, _path(self._headings), is_heading=bool(depth))
        )


def _html_blocks(text: str) -> list[Block]:
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    return parser.blocks


def _pdf_blocks(data: bytes, name: str) -> list[Block]:
    # pypdf warns about every repair it makes to a damaged file; the outcome is what counts.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _read_pdf(data, name)


def _read_pdf(data: bytes, name: str) -> list[Block]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not _decrypts_without_password(reader):
            raise DocumentError(f"{name} is an encrypted PDF (it needs a password)")
        blocks: list[Block] = []
        for number, page in enumerate(reader.pages, start=1):
            lines = (page.extract_text() or "").splitlines()
            blocks += paragraph_blocks(lines, page=number)
    except DocumentError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
        raise DocumentError(f"{name} is a damaged PDF ({type(error).__name__}: {error})") from error
    except (RecursionError, NotImplementedError, AssertionError, ZeroDivisionError) as error:
        raise DocumentError(f"{name} is a PDF this app cannot read ({error!r})") from error
    if not blocks:
        raise DocumentError(f"{name} has no text (a scanned PDF needs OCR first)")
    return blocks


def _decrypts_without_password(reader: object) -> bool:
    """Many PDFs are "encrypted" with an empty user password only to restrict printing."""
    try:
        return bool(reader.decrypt(""))  # type: ignore[attr-defined]
    except Exception:  # pypdf raises several kinds for unsupported ciphers
        return False


def _docx_blocks(data: bytes, name: str) -> list[Block]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise DocumentError(f"{name} is not a Word document (not a zip file)") from error
    if unpacked > MAX_UNPACKED_BYTES:
        raise DocumentError(f"{name} unpacks to {unpacked:,} bytes: too big to read")
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
        paragraphs = [
            (p.text, p.style.name if p.style is not None else "") for p in document.paragraphs
        ]
    except (
        PackageNotFoundError,
        KeyError,
        ValueError,
        zipfile.BadZipFile,
        AttributeError,
    ) as error:
        raise DocumentError(f"{name} is a damaged Word document ({error})") from error
    except Exception as error:  # lxml's XMLSyntaxError and friends
        raise DocumentError(
            f"{name} is a damaged Word document ({type(error).__name__})"
        ) from error
    headings: list[str] = []
    blocks: list[Block] = []
    for number, (raw, style) in enumerate(paragraphs, start=1):
        text = raw.strip()
        if not text:
            continue
        level = _heading_level(style)
        if level:
            headings[level - 1 :] = [text]
        blocks.append(Block(text, number, number, None, _path(headings), is_heading=bool(level)))
    return blocks


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    match = re.fullmatch(r"Heading (\d)", style)
    return int(match[1]) if match else 0
