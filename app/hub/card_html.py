"""Model card Markdown → safe HTML, in chunks small enough to show without freezing a window.

A card is text written by strangers. The HTML produced here never makes anything load or run:
- raw HTML blocks become their plain text (the contents of script, style, iframe, … dropped),
  inline HTML tags are dropped;
- images are not embedded: each becomes a link "[image: alt]" the user may click;
- links keep only http(s) and mailto targets; relative links resolve against the repository
  page; anything else (javascript:, data:, file:) is shown as plain text.
The viewer must still refuse to load resources (defence in depth); see ui/discover/card_view.py.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from html.parser import HTMLParser
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from app.hub.links import safe_link

# Elements whose text is code or styling, never prose a person should read.
_HIDDEN_ELEMENTS = frozenset({"script", "style", "iframe", "noscript", "template", "object"})
# ~5 kB of HTML lays out in well under 50 ms in a QTextDocument on a slow machine.
DEFAULT_CHUNK_CHARS = 5_000
DEFAULT_SEGMENT_CHARS = 20_000


class _TextOnly(HTMLParser):
    """Collects the human-readable text of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN_ELEMENTS:
            self._hidden_depth += 1
        elif tag in ("br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_ELEMENTS and self._hidden_depth:
            self._hidden_depth -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            self.parts.append(data)


def html_to_text(fragment: str) -> str:
    """The visible text of an HTML fragment, whitespace collapsed."""
    parser = _TextOnly()
    parser.feed(fragment)
    parser.close()
    return " ".join("".join(parser.parts).split())


class _SafeRenderer(RendererHTML):
    """markdown-it's HTML renderer with the unsafe token kinds rewritten."""

    def html_block(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        text = html_to_text(tokens[idx].content)
        return f"<p>{html.escape(text)}</p>\n" if text else ""

    def html_inline(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        return ""

    def image(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        token = tokens[idx]
        alt = self.renderInlineAsText(token.children or [], options, env) or "image"
        target = safe_link(str(token.attrGet("src") or ""), env.get("base_url"))
        label = html.escape(f"[image: {alt}]")
        return f'<a href="{html.escape(target)}">{label}</a>' if target else label

    def link_open(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        target = safe_link(str(tokens[idx].attrGet("href") or ""), env.get("base_url"))
        env.setdefault("_link_stack", []).append(target is not None)
        return f'<a href="{html.escape(target)}">' if target else ""

    def link_close(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        stack: list[bool] = env.get("_link_stack", [])
        return "</a>" if stack and stack.pop() else ""


def _markdown() -> MarkdownIt:
    # html=True so raw HTML is tokenised (and then neutralised above) instead of shown as
    # literal tags; validateLink stays on as a second filter for link targets.
    parser = MarkdownIt("commonmark", {"html": True}, renderer_cls=_SafeRenderer)
    return parser.enable(["table", "strikethrough"])


def split_markdown(markdown: str, *, segment_chars: int = DEFAULT_SEGMENT_CHARS) -> list[str]:
    """Cut Markdown into segments of about `segment_chars` that parse the same apart as together.

    Cuts are made only before an ATX heading ("# …") that follows a blank line outside a fenced
    code block: a heading always starts a new top-level block, so nothing spans the cut (link
    reference definitions used across a cut are the one known loss, and rare in cards).
    Parsing a 1 MB card in one call holds the GIL in long C regex passes and stalls the
    window; segment by segment, every pass is short.
    """
    segments: list[str] = []
    current: list[str] = []
    size = 0
    fence: str | None = None
    previous_blank = True
    for line in markdown.splitlines(keepends=True):
        stripped = line.lstrip()
        if fence is None and previous_blank and stripped.startswith("#") and size >= segment_chars:
            segments.append("".join(current))
            current, size = [], 0
        if stripped.startswith(("```", "~~~")):
            marker = stripped[:3]
            fence = marker if fence is None else (None if marker == fence else fence)
        current.append(line)
        size += len(line)
        previous_blank = not stripped
    if current:
        segments.append("".join(current))
    return segments


def render_card_chunks(
    markdown: str, *, base_url: str | None = None, chunk_chars: int = DEFAULT_CHUNK_CHARS
) -> list[str]:
    """Render Markdown to safe HTML, split at top-level block boundaries into ~`chunk_chars`.

    Joining the chunks gives the whole card; each chunk is well-formed on its own, so a
    viewer can append them one by one and stay responsive with a 1 MB card.
    """
    parser = _markdown()
    env: dict[str, Any] = {"base_url": base_url}
    chunks: list[str] = []
    pending: list[str] = []
    pending_size = 0
    for segment in split_markdown(markdown):
        tokens = parser.parse(segment, env)
        block_start = 0
        for index, token in enumerate(tokens):
            if token.level != 0 or token.nesting == 1:
                continue  # still inside a top-level block
            piece = parser.renderer.render(tokens[block_start : index + 1], parser.options, env)
            block_start = index + 1
            pending.append(piece)
            pending_size += len(piece)
            if pending_size >= chunk_chars:
                chunks.append("".join(pending))
                pending, pending_size = [], 0
    if pending:
        chunks.append("".join(pending))
    return chunks


def render_card_html(markdown: str, *, base_url: str | None = None) -> str:
    """The whole card as one safe HTML string."""
    return "".join(render_card_chunks(markdown, base_url=base_url))
