"""Chat messages as safe HTML: prose through the card renderer, fenced code with a Copy link.

A reply is text from a model, so it gets the same treatment as a model card
(`app.hub.card_html`: no raw HTML, no images, only safe links); the viewer refuses resources
as well. Fenced code blocks are cut out first and shown as monospace blocks, each headed by a
"Copy" link (`copy_code_url(n)`) that the message view turns into a clipboard copy.

While a reply streams, `stable_end` says where the last finished top-level block ends, so the
view renders finished blocks once and re-renders only the short unfinished tail.
"""

from __future__ import annotations

import html
import re
from collections.abc import Set
from dataclasses import dataclass

from app.hub.card_html import render_card_html

COPY_CODE_PREFIX = "modeldeck:copy-code/"
CITATION_PREFIX = "modeldeck:cite/"  # a reply's [n]: opens source n
_CITES = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
_TAG = re.compile(r"(<[^>]*>)")
_LITERAL_TAGS = frozenset(["a", "pre", "code"])  # text in these is never a citation


@dataclass(frozen=True)
class Segment:
    """Prose (Markdown) or the body of one fenced code block."""

    text: str
    code: bool = False
    language: str = ""


@dataclass(frozen=True)
class _Fence:
    char: str
    length: int
    indent: int


def _opening_fence(line: str) -> tuple[_Fence, str] | None:
    """The fence a line opens and its info string ("python"), or None."""
    stripped = line.lstrip(" ")
    indent = len(line) - len(stripped)
    if indent > 3 or not stripped.startswith(("```", "~~~")):
        return None
    char = stripped[0]
    length = len(stripped) - len(stripped.lstrip(char))
    info = stripped[length:].strip()
    if char == "`" and "`" in info:
        return None  # "```foo`" is inline code, not a fence (CommonMark)
    return _Fence(char, length, indent), info


def _closes(line: str, fence: _Fence) -> bool:
    stripped = line.lstrip(" ")
    if len(line) - len(stripped) > 3:
        return False
    body = stripped.rstrip()
    return len(body) >= fence.length and body == fence.char * len(body)


def split_segments(text: str) -> list[Segment]:
    """Cut `text` into prose and fenced code; an unclosed fence runs to the end (streaming)."""
    segments: list[Segment] = []
    prose: list[str] = []
    code: list[str] = []
    fence: _Fence | None = None
    language = ""
    for line in text.splitlines(keepends=True):
        content = line.rstrip("\r\n")
        if fence is None:
            opening = _opening_fence(content)
            if opening is None:
                prose.append(line)
                continue
            if prose:
                segments.append(Segment("".join(prose)))
                prose = []
            fence, language = opening[0], opening[1].split(" ")[0]
        elif _closes(content, fence):
            segments.append(Segment(_strip_last_newline("".join(code)), True, language))
            code, fence = [], None
        else:
            # Lines are indented as far as the fence was, at most (CommonMark).
            code.append(line[min(fence.indent, len(line) - len(line.lstrip(" "))) :])
    if fence is not None:
        segments.append(Segment(_strip_last_newline("".join(code)), True, language))
    elif prose:
        segments.append(Segment("".join(prose)))
    return segments


def _strip_last_newline(text: str) -> str:
    return text[:-1] if text.endswith("\n") else text


def code_blocks(text: str) -> list[str]:
    """The bodies of the fenced code blocks in `text`, in order."""
    return [segment.text for segment in split_segments(text) if segment.code]


def copy_code_url(index: int) -> str:
    return f"{COPY_CODE_PREFIX}{index}"


def render_html(
    text: str, *, first_code: int = 0, citations: Set[int] = frozenset()
) -> tuple[str, int]:
    """Safe HTML for `text`, and how many code blocks it holds.

    Code blocks are numbered from `first_code` in their Copy links, so a message rendered in
    pieces keeps one numbering. Each [n] of prose whose n is in `citations` links to source n.
    """
    parts: list[str] = []
    index = first_code
    for segment in split_segments(text):
        if segment.code:
            parts.append(_code_html(segment, index))
            index += 1
        elif segment.text.strip():
            prose = render_card_html(segment.text)
            parts.append(link_citations(prose, citations) if citations else prose)
    return "".join(parts), index - first_code


def citation_url(number: int) -> str:
    return f"{CITATION_PREFIX}{number}"


def link_citations(fragment: str, citations: Set[int]) -> str:
    """`fragment` (safe HTML) with each [n] of its text, n in `citations`, a link to source n.

    Only text between tags changes (brackets are never escaped, digits never are), and text
    inside links and code stays as it is.
    """

    def link(match: re.Match[str]) -> str:
        numbers = [part.strip() for part in match.group(1).split(",")]
        if not all(int(number) in citations for number in numbers):
            return match.group(0)
        links = ", ".join(f'<a href="{citation_url(int(n))}">{n}</a>' for n in numbers)
        return f"[{links}]"

    pieces = _TAG.split(fragment)
    literal = 0  # how deep inside <a>, <pre> or <code> the text is
    for index, piece in enumerate(pieces):
        if index % 2:  # a tag
            name = piece.strip("</>").split(maxsplit=1)[0].lower() if piece.strip("</>") else ""
            if name in _LITERAL_TAGS and not piece.endswith("/>"):
                literal = max(0, literal + (-1 if piece.startswith("</") else 1))
        elif not literal and "[" in piece:
            pieces[index] = _CITES.sub(link, piece)
    return "".join(pieces)


def _code_html(segment: Segment, index: int) -> str:
    label = html.escape(segment.language) + " · " if segment.language else ""
    return (
        f'<p class="code-head">{label}<a href="{copy_code_url(index)}">Copy code</a></p>'
        f"<pre>{html.escape(segment.text)}</pre>"
    )


def stable_end(text: str, start: int = 0) -> int:
    """Where the last finished top-level block of `text[start:]` ends (an index into `text`).

    A block is finished after a blank line outside a code fence, or after a closing fence;
    `start` must be such a boundary (or 0). Returns `start` when nothing finished since.
    Only whole lines count: the last line may still be growing.
    """
    end = start
    position = start
    fence: _Fence | None = None
    while True:
        newline = text.find("\n", position)
        if newline < 0:
            return end
        line = text[position:newline].rstrip("\r")
        position = newline + 1
        if fence is not None:
            if _closes(line, fence):
                fence = None
                end = position
        elif (opening := _opening_fence(line)) is not None:
            fence = opening[0]
        elif not line.strip():
            end = position
