"""Hostile model cards: Markdown and HTML that burn CPU, YAML front matter that explodes.

A card is rendered on a worker thread that holds the GIL while it works, so a card a
stranger wrote must cost little whatever it holds: any 1 MB card renders in under a second of
CPU (formatting stops at a budget; the rest is shown as plain text), and its front matter is
read within bounds too. All output stays inert.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser

import pytest

from app.hub.card import MAX_FRONT_MATTER, parse_card
from app.hub.card_html import (
    PLAIN_TEXT_NOTE,
    html_to_text,
    render_card_chunks,
    render_card_html,
)
from app.hub.models import ModelCard
from tests.hostile.bounds import within_bounds

BASE = "https://hub.example/org/model/blob/main/"
_SAFE_TAGS = frozenset(
    {
        "p",
        "em",
        "strong",
        "code",
        "pre",
        "a",
        "br",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "ul",
        "ol",
        "li",
        "blockquote",
        "hr",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "s",
    }
)


# Formatting attributes markdown-it writes: list numbering, table alignment, a code language.
_SAFE_ATTRIBUTES = frozenset({("ol", "start"), ("th", "style"), ("td", "style"), ("code", "class")})


@contextmanager
def long_lived_objects_frozen() -> Iterator[None]:
    """Collections scan only what the input makes, as in the app (ui/application.py freezes
    what startup made, the details pane pauses the collector while a card renders).

    Without this, a session that has imported PySide6 and torch holds ~200,000 objects, and
    each full collection triggered by the renderer's garbage rescans them: seconds of CPU
    that belong to the test session, not to the card.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class _Tags(HTMLParser):
    """The tags and attributes a viewer would see in rendered output (ours is well formed)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def assert_inert(html_text: str) -> None:
    """No tag but formatting, no attribute but a safe link's href (text may quote anything).

    Parsed, not pattern-matched (as tests/core/test_card.py may, on its own inputs): a card
    cut short shows escaped markup such as `&lt;a href=&#x27;javas`, which is text.
    """
    tags = _Tags()
    tags.feed(html_text)
    tags.close()
    for tag, attrs in tags.found:
        assert tag in _SAFE_TAGS, tag
        for name, value in attrs:
            if tag == "a" and name == "href":
                assert (value or "").startswith(("http://", "https://", "mailto:")), value
            elif (tag, name) not in _SAFE_ATTRIBUTES:
                raise AssertionError(f"<{tag} {name}={value!r}>")


MB = 1_000_000


def _one_megabyte(piece: str) -> str:
    return piece * (MB // len(piece))


# The finding: "<!--" x 50,000 took 32 s in html_to_text (CPython's HTMLParser).
HTML_FRAGMENTS = {
    "unclosed-comments": "<!--" * 50_000,
    "lone-angle-brackets": "<" * 200_000,
    "unclosed-tags": "<a" * 100_000,
    "end-tags": "</" * 100_000,
    "declarations": "<!" * 100_000,
    "hidden-elements": "<object>" * 50_000,
    "scripts-never-closed": "<script>" * 50_000,
    "entities": "&#x" * 100_000,
}


@pytest.mark.parametrize("fragment", HTML_FRAGMENTS.values(), ids=HTML_FRAGMENTS.keys())
def test_html_to_text_is_linear(fragment: str) -> None:
    outcome = within_bounds("card html", lambda: html_to_text(fragment), errors=(), seconds=0.5)
    assert outcome.value is not None
    assert "<script" not in outcome.value.lower() or fragment.startswith("<")


# Every 1 MB card renders in under a second of CPU, Markdown and HTML paths both.
PATHOLOGICAL_CARDS = {
    "unclosed-comments-block": "<div>\n" + "<!--" * 250_000,
    "comment-blocks": _one_megabyte("<!--\n\n"),
    "quote-nesting": ">" * MB,
    "open-brackets": "[" * MB,
    "image-openers": "![" * (MB // 2),
    "link-openers": _one_megabyte("[a]("),
    "stars": "*" * MB,
    "star-words": _one_megabyte("**a"),
    "underscores": _one_megabyte("a_"),
    "emphasis-mix": _one_megabyte("*_"),
    "backticks": _one_megabyte("`a"),
    "reference-definitions": _one_megabyte("[x]: /y\n"),
    "references": _one_megabyte("[x]\n") + "[x]: /y\n",
    "inline-html": _one_megabyte("<a "),
    "nested-lists": _one_megabyte("- "),
    "table": "| a | b |\n|---|---|\n" + _one_megabyte("| ![ | [ |\n"),
    "fences": _one_megabyte("```\n"),
    "newlines": "\n" * MB,
    "headings": _one_megabyte("#\n\n"),
    "ordinary-card": _one_megabyte(
        "## Usage\n\nSome *text*, a [link](LICENSE) and `code`.\n\n- one\n- two\n\n"
    ),
}


@pytest.mark.parametrize("markdown", PATHOLOGICAL_CARDS.values(), ids=PATHOLOGICAL_CARDS.keys())
def test_any_one_megabyte_card_renders_in_under_a_second(markdown: str) -> None:
    with long_lived_objects_frozen():
        outcome = within_bounds(
            "card markdown",
            lambda: render_card_chunks(markdown, base_url=BASE),
            errors=(),
            seconds=1.0,
            megabytes=256,
        )
    assert outcome.value is not None
    html_text = "".join(outcome.value)
    assert_inert(html_text)
    if markdown.strip() and "<!--" not in markdown:  # comments show nothing
        assert html_text  # something is shown


def test_a_card_over_the_budget_says_so_and_shows_the_rest_as_plain_text() -> None:
    # The title's segment is formatted (30 kB of prose first); the "![" run exhausts the budget.
    markdown = (
        "# Title\n\n"
        + "First paragraph.\n\n" * 2_000
        + "![" * (MB // 2)
        + "\n\n<b>the end</b> & more\n"
    )

    html_text = render_card_html(markdown, base_url=BASE)

    assert "<h1>Title</h1>" in html_text  # formatted while the budget lasted
    assert PLAIN_TEXT_NOTE in html_text
    assert "&lt;b&gt;the end&lt;/b&gt; &amp; more" in html_text  # the rest, escaped
    assert_inert(html_text)


def test_a_card_within_the_budget_is_fully_formatted() -> None:
    html_text = render_card_html("# Title\n\nSome *text*.\n")
    assert PLAIN_TEXT_NOTE not in html_text
    assert "<em>text</em>" in html_text


# --- YAML front matter -------------------------------------------------------------------------


def _laughs(levels: int = 10) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    return "\n".join(lines)


FRONT_MATTER = {
    "billion-laughs": (_laughs(), "aliases"),
    "one-alias": ("base: &b {x: 1}\nother: *b\n", "aliases"),
    "merge-key": ("base: &b {x: 1}\nother:\n  <<: *b\n", None),  # a copy: nothing shared
    "flow-nested-30000": ("k: " + "[" * 30_000 + "]" * 30_000, "not valid YAML"),
    "block-nested-40": (
        "".join("  " * i + f"k{i}:\n" for i in range(40)) + "  " * 40 + "v\n",
        "nested too deep",
    ),
    "too-large": ("k: [" + "1, " * (MAX_FRONT_MATTER // 3) + "1]\n", "too large"),
    "huge-number": ("n: 1" + "0" * 60_000 + "\n", "cannot be read"),
    "bad-date": ("released: 2024-13-45\n", "cannot be read"),
}


@pytest.mark.parametrize(("front", "problem"), FRONT_MATTER.values(), ids=FRONT_MATTER.keys())
def test_hostile_front_matter_keeps_the_body_and_says_why(front: str, problem: str | None) -> None:
    text = f"---\n{front}\n---\n# The card\n"

    outcome = within_bounds("card front matter", lambda: parse_card(text), errors=())

    card = outcome.value
    assert isinstance(card, ModelCard)
    assert card.body.strip() == "# The card"
    if problem is None:
        assert card.metadata_error is None
    else:
        assert card.metadata_error is not None and problem in card.metadata_error
        assert card.metadata == {}
    # What the offline copy does with it: cheap whatever the card held.
    within_bounds(
        "card front matter", lambda: json.dumps(dict(card.metadata), default=str), errors=()
    )
