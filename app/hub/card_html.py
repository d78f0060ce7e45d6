"""Model card Markdown → safe HTML, in chunks small enough to show without freezing a window.

A card is text written by strangers. The HTML produced here never makes anything load or run:
- raw HTML blocks become their plain text (the contents of script, style, iframe, … dropped),
  inline HTML tags are dropped;
- images are not embedded: each becomes a link "[image: alt]" the user may click;
- links keep only http(s) and mailto targets; relative links resolve against the repository
  page; anything else (javascript:, data:, file:) is shown as plain text.
The viewer must still refuse to load resources (defence in depth); see ui/discover/card_view.py.

The work per card is bounded too, because rendering holds the GIL on its worker thread and
a stranger chooses the input: raw HTML is reduced to text in one linear pass (CPython's
HTMLParser is quadratic on unclosed comments: "<!--" x 50,000 took 32 s), and Markdown is
formatted within a CPU budget (`DEFAULT_BUDGET_SECONDS`), checked inside markdown-it's own
rule loops; what is left when it is spent is shown as plain, escaped text after a note.
markdown-it-py formats ordinary Markdown at about 0.5 MB/s here, and some inputs (a run of
"![" or "[") at 20 kB/s, so without the budget a 1 MB card costs seconds to minutes.
"""

from __future__ import annotations

import bisect
import html
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_block import StateBlock
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from app.hub.links import safe_link

# Elements whose text is code or styling, never prose a person should read.
_HIDDEN_ELEMENTS = frozenset({"script", "style", "iframe", "noscript", "template", "object"})
# Their contents are raw text in HTML: no tag inside them is a tag, until their end tag.
_RAW_TEXT_ELEMENTS = frozenset({"script", "style"})
_BREAKING_ELEMENTS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4"})
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)")
_MARKUP = re.compile(r"<(?:[!?A-Za-z]|/[A-Za-z])")
# ~5 kB of HTML lays out in well under 50 ms in a QTextDocument on a slow machine.
DEFAULT_CHUNK_CHARS = 5_000
DEFAULT_SEGMENT_CHARS = 20_000
# The longest segment markdown-it is given: some of its passes over a segment (or one line of
# it) run in one Python call that no budget check interrupts; ~80 ms here at most.
_MAX_SEGMENT_CHARS = 64_000
# CPU seconds of formatting per card; the rest is shown as plain text. Leaves room for the
# plain text and the last check's overshoot within one second for any 1 MB card.
DEFAULT_BUDGET_SECONDS = 0.4
_CHECK_EVERY = 64  # rule calls between two looks at the clock (each look is a system call)
PLAIN_TEXT_NOTE = (
    "The rest of this card is shown as plain text: it is too long or too intricate to format "
    "quickly."
)


class _OutOfTime(Exception):
    """The card's formatting budget is spent (raised from inside markdown-it's rule loops)."""


class _Deadline:
    """A CPU deadline that markdown-it's rule loops look at, every `_CHECK_EVERY` calls."""

    def __init__(self, seconds: float | None) -> None:
        self._at = None if seconds is None else time.thread_time() + seconds
        self._calls = 0

    def passed(self) -> bool:
        return self._at is not None and time.thread_time() > self._at

    def check(self) -> None:
        """Raise `_OutOfTime` once the deadline has passed (looks at the clock now and then)."""
        if self._at is None:
            return
        self._calls += 1
        if self._calls % _CHECK_EVERY == 0 and time.thread_time() > self._at:
            raise _OutOfTime


def html_to_text(fragment: str) -> str:
    """The visible text of an HTML fragment, whitespace collapsed; linear in its length.

    Tags are dropped, comments and the contents of script, style, iframe, … too; character
    references are decoded. Every search moves forward from where the last one ended, so no
    character is looked at twice (an unclosed "<!--" or "<a" hides the rest, as in HTML).
    """
    return _visible_text(fragment, None)


def _visible_text(fragment: str, deadline: _Deadline | None) -> str:
    """`html_to_text`, raising `_OutOfTime` once `deadline` (if any) has passed."""
    parts: list[str] = []
    hidden_depth = 0
    lowered = fragment.lower()  # same length: ASCII tag names are searched case-blind
    # Past the last end tag of a hidden element, hidden text stays hidden to the end.
    last_hidden_end = max(lowered.rfind(f"</{name}") for name in _HIDDEN_ELEMENTS)
    position, end = 0, len(fragment)
    while position < end:
        if deadline is not None:
            deadline.check()
        if hidden_depth and position > last_hidden_end:
            break
        markup = _MARKUP.search(fragment, position)  # a "<" that opens nothing is text
        opening = end if markup is None else markup.start()
        if not hidden_depth:
            parts.append(fragment[position:opening])
        if opening >= end:
            break
        if fragment.startswith("<!--", opening):
            closing = fragment.find("-->", opening + 4)
            position = end if closing < 0 else closing + 3
            continue
        if fragment.startswith(("<!", "<?"), opening):  # a declaration or an instruction
            closing = fragment.find(">", opening + 2)
            position = end if closing < 0 else closing + 1
            continue
        tag = _TAG.match(fragment, opening)
        assert tag is not None  # _MARKUP found a tag's start
        closing = fragment.find(">", tag.end())
        if closing < 0:
            break  # an unclosed tag: the rest is inside it
        name = tag.group(2).lower()
        position = closing + 1
        if tag.group(1):  # an end tag
            if name in _HIDDEN_ELEMENTS and hidden_depth:
                hidden_depth -= 1
        elif name in _RAW_TEXT_ELEMENTS:
            end_tag = lowered.find(f"</{name}", position)
            if end_tag < 0:
                break
            after = fragment.find(">", end_tag)
            position = end if after < 0 else after + 1
        elif name in _HIDDEN_ELEMENTS:
            hidden_depth += 1
        elif name in _BREAKING_ELEMENTS and not hidden_depth:
            parts.append(" ")
    return " ".join(html.unescape("".join(parts)).split())


class _SafeRenderer(RendererHTML):
    """markdown-it's HTML renderer with the unsafe token kinds rewritten."""

    def html_block(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        text = _visible_text(tokens[idx].content, env.get(_DEADLINE_KEY))
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


_DEADLINE_KEY = "_deadline"


def _inline_deadline(state: StateInline, silent: bool) -> bool:
    # First of the inline rules: runs at every position, in validation passes too (the
    # link-label scans behind "[" x 10,000), and never matches anything itself.
    deadline: _Deadline | None = state.env.get(_DEADLINE_KEY)
    if deadline is not None:
        deadline.check()
    return False


def _block_deadline(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    deadline: _Deadline | None = state.env.get(_DEADLINE_KEY)
    if deadline is not None:
        deadline.check()
    return False


def _markdown() -> MarkdownIt:
    # html=True so raw HTML is tokenised (and then neutralised above) instead of shown as
    # literal tags; validateLink stays on as a second filter for link targets.
    parser = MarkdownIt("commonmark", {"html": True}, renderer_cls=_SafeRenderer)
    parser.enable(["table", "strikethrough"])
    parser.inline.ruler.before("text", "deadline", _inline_deadline)
    # Also among the rules that may end a paragraph, quote or list ("alt"): a block that runs
    # for 100,000 lines asks those at every line, and nothing else.
    parser.block.ruler.before(
        "table",
        "deadline",
        _block_deadline,
        {"alt": ["paragraph", "reference", "blockquote", "list"]},
    )
    return parser


# A blank line (cut after it), and one followed by an ATX heading (the preferred cut).
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")
_BLANK_BEFORE_HEADING = re.compile(r"\n[ \t\r\f\v]*\n(?=[ \t]*#)")
_FENCE_LINE = re.compile(r"^[ \t]*(`{3,}|~{3,})", re.MULTILINE)


def split_markdown(
    markdown: str,
    *,
    segment_chars: int = DEFAULT_SEGMENT_CHARS,
    max_segment_chars: int | None = None,
) -> list[str]:
    """Cut Markdown into segments of about `segment_chars` that parse the same apart as together.

    Cuts are made after a blank line outside a fenced code block, once a segment has
    `segment_chars`: before an ATX heading ("# …") when one comes within `max_segment_chars`
    (default: 4 x `segment_chars`), else at the first blank line. A heading always starts a new
    top-level block, so nothing spans such a cut; a blank line ends every block but a loose
    list or an indented code block, which a cut there shows as two. Link reference
    definitions used across a cut are lost (rare in cards).

    No segment grows past `max_segment_chars`: without a blank line by then (a table, a
    paragraph or a single line of that size), the cut is at the last line break before it,
    or within the line; a fenced code block cut so is closed and opened again. markdown-it
    walks a segment, and some rules a line, character by character in one Python call that
    no budget can interrupt, so this bounds each such pass.
    """
    limit = max_segment_chars or 4 * segment_chars
    return [segment.text for segment in _segments(markdown, segment_chars, limit, None)]


@dataclass(frozen=True)
class _Segment:
    text: str  # what markdown-it parses (a fence line added where a cut fell inside a fence)
    end: int  # where in the card the next segment starts


def _segments(
    markdown: str, segment_chars: int, limit: int, deadline: _Deadline | None
) -> Iterator[_Segment]:
    """The segments of `split_markdown`, made one at a time (a spent budget stops the rest).

    Every search looks only within the next `limit` characters, so each segment costs time
    in proportion to its own length, and the fences that matter are those inside it.
    """
    start = 0
    opened = ""  # the fence line the segment starts inside of, after a cut within a fence
    while len(markdown) - start > segment_chars:
        window_end = min(start + limit, len(markdown))
        fences = _fences_in(markdown, start, window_end, opened, deadline)
        earliest = start + segment_chars
        cut = _cut_between(_BLANK_BEFORE_HEADING, markdown, earliest, window_end, fences)
        if cut is None:
            cut = _cut_between(_BLANK_LINE, markdown, earliest, window_end, fences)
        close, next_opened = "", ""
        if cut is None:
            cut = _hard_cut(markdown, start, limit)
            inside = _fence_at(fences, cut - 1)
            if (
                inside is not None and inside.start < cut
            ):  # shown as two code blocks, not as code read as Markdown
                close = f"\n{inside.marker}\n"
                next_opened = inside.opening_line
        yield _Segment(opened + markdown[start:cut] + close, cut)
        start, opened = cut, next_opened
    if start < len(markdown):
        yield _Segment(opened + markdown[start:], len(markdown))


def _hard_cut(markdown: str, start: int, limit: int) -> int:
    """A cut `limit` characters after `start` at most: after the last line break before
    there, else there."""
    line_break = markdown.rfind("\n", start + 1, start + limit)
    return line_break + 1 if line_break >= 0 else start + limit


@dataclass(frozen=True)
class _Fence:
    """A fenced code block: where it starts and ends, the run of ` or ~ that opens it."""

    start: int
    end: int
    marker: str
    opening_line: str


def _fences_in(
    markdown: str, start: int, end: int, opened: str, deadline: _Deadline | None
) -> list[_Fence]:
    """The fenced code blocks between `start` and `end` (one already open if `opened`)."""
    spans: list[_Fence] = []
    current: tuple[int, str, str] | None = None
    if opened:
        current = (start, _FENCE_LINE.match(opened).group(1), opened)  # type: ignore[union-attr]
    for fence in _FENCE_LINE.finditer(markdown, start, end):
        if deadline is not None:
            deadline.check()
        marker = fence.group(1)
        if current is None:
            line_end = markdown.find("\n", fence.start())
            line = markdown[fence.start() : len(markdown) if line_end < 0 else line_end + 1]
            current = (fence.start(), marker, line)
        elif marker[0] == current[1][0] and len(marker) >= len(current[1]):
            spans.append(_Fence(current[0], fence.end(), current[1], current[2]))
            current = None
    if current is not None:
        spans.append(_Fence(current[0], len(markdown), current[1], current[2]))
    return spans


def _fence_at(fences: list[_Fence], position: int) -> _Fence | None:
    """The fence (sorted, not overlapping) that holds `position`, if any."""
    index = bisect.bisect_right(fences, position, key=lambda fence: fence.start) - 1
    return fences[index] if index >= 0 and position < fences[index].end else None


def _cut_between(
    pattern: re.Pattern[str], markdown: str, start: int, end: int, fences: list[_Fence]
) -> int | None:
    """Where the first match of `pattern` between `start` and `end`, outside fences, ends."""
    position = start
    while True:
        found = pattern.search(markdown, position, end)
        if found is None:
            return None
        inside = _fence_at(fences, found.start())
        if inside is None:
            return found.end()
        position = inside.end  # look after the fence


def render_card_chunks(
    markdown: str,
    *,
    base_url: str | None = None,
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    budget_seconds: float | None = DEFAULT_BUDGET_SECONDS,
) -> list[str]:
    """Render Markdown to safe HTML, split at top-level block boundaries into ~`chunk_chars`.

    Joining the chunks gives the whole card; each chunk is well-formed on its own, so a
    viewer can append them one by one and stay responsive with a 1 MB card.

    Formatting stops once it has used `budget_seconds` of this thread's CPU (None: no
    limit), checked inside markdown-it's rule loops and between rendered blocks: the text
    from the first block not formatted on follows as plain, escaped paragraphs after a note
    (`PLAIN_TEXT_NOTE`), so any card costs about the budget plus a linear pass.
    """
    parser = _markdown()
    deadline = _Deadline(budget_seconds)
    env: dict[str, Any] = {"base_url": base_url, _DEADLINE_KEY: deadline}
    chunks: list[str] = []
    pending: list[str] = []
    pending_size = 0
    # markdown-it's own normalisation, first: line numbers in its tokens then match the text.
    text = _NULL.sub("\ufffd", _NEWLINES.sub("\n", markdown))
    rest: str | None = None  # what is left unformatted once the budget is spent
    segments = _segments(text, DEFAULT_SEGMENT_CHARS, _MAX_SEGMENT_CHARS, deadline)
    start = 0  # where the segment being formatted starts in `text`
    while rest is None:
        try:
            if deadline.passed():
                raise _OutOfTime
            segment = next(segments, None)
            if segment is None:
                break
            tokens = parser.parse(segment.text, env)
        except _OutOfTime:
            rest = text[start:]
            break
        block_start = 0
        for index, token in enumerate(tokens):
            if token.level != 0 or token.nesting == 1:
                continue  # still inside a top-level block
            first = tokens[block_start]
            try:
                if index % _CHECK_EVERY == 0 and deadline.passed():
                    raise _OutOfTime
                piece = parser.renderer.render(tokens[block_start : index + 1], parser.options, env)
            except _OutOfTime:
                line = first.map[0] if first.map else 0
                rest = _from_line(segment.text, line) + text[segment.end :]
                break
            block_start = index + 1
            pending.append(piece)
            pending_size += len(piece)
            if pending_size >= chunk_chars:
                chunks.append("".join(pending))
                pending, pending_size = [], 0
        start = segment.end
    if pending:
        chunks.append("".join(pending))
    if rest is not None:
        chunks += _plain_text_chunks(rest, chunk_chars)
    return chunks


_NEWLINES = re.compile(r"\r\n?")
_NULL = re.compile(r"\0")
_PARAGRAPH_BREAK = "</p><p>"  # no line break in it: single line breaks become <br> after


def _from_line(text: str, line: int) -> str:
    """`text` from the start of its line `line` (0-based) on."""
    position = 0
    for _ in range(line):
        position = text.find("\n", position) + 1
        if position == 0:
            return ""
    return text[position:]


def _plain_text_chunks(text: str, chunk_chars: int) -> list[str]:
    """`text` as escaped paragraphs after `PLAIN_TEXT_NOTE`, in chunks of ~`chunk_chars`.

    Whole-string operations only (no Python loop, no regular expression per paragraph or
    line): a card of a million blank-line-separated characters costs milliseconds here. A run
    of blank lines shows as empty paragraphs.
    """
    body = html.escape(text.strip())
    if not body:
        return []
    body = "<p>" + body.replace("\n\n", _PARAGRAPH_BREAK).replace("\n", "<br>") + "</p>\n"
    chunks = [f"<p><em>{html.escape(PLAIN_TEXT_NOTE)}</em></p>\n"]
    start = 0
    while start < len(body):
        cut = body.find(_PARAGRAPH_BREAK, start + chunk_chars)
        end = len(body) if cut < 0 else cut + len("</p>")
        chunks.append(body[start:end])
        start = end
    return chunks


def render_card_html(
    markdown: str,
    *,
    base_url: str | None = None,
    budget_seconds: float | None = DEFAULT_BUDGET_SECONDS,
) -> str:
    """The whole card as one safe HTML string (formatted within `budget_seconds`)."""
    return "".join(render_card_chunks(markdown, base_url=base_url, budget_seconds=budget_seconds))
