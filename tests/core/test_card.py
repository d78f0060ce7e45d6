"""Model cards: splitting front matter from the body, and rendering them to safe HTML."""

from __future__ import annotations

import re

import pytest

from app.hub.card import parse_card
from app.hub.card_html import render_card_chunks, render_card_html
from app.hub.models import ModelCard

BASE = "https://hub.example/org/model/blob/main/"
HREF = re.compile(r"""href\s*=\s*["']?([^"' >]*)""", re.IGNORECASE)

# --- parse_card ------------------------------------------------------------------------------


def test_front_matter_and_body() -> None:
    card = parse_card("---\nlicense: mit\nbase_model: [a/b, c/d]\n---\n# Title\n\nText\n")

    assert card == ModelCard(
        body="# Title\n\nText\n", metadata={"license": "mit", "base_model": ["a/b", "c/d"]}
    )


def test_card_without_front_matter_is_all_body() -> None:
    text = "# Title\n\n---\n\nnot: metadata\n"

    assert parse_card(text) == ModelCard(body=text)


def test_empty_front_matter_is_empty_metadata() -> None:
    card = parse_card("---\n\n---\nBody\n")

    assert (card.body, dict(card.metadata), card.metadata_error) == ("Body\n", {}, None)


@pytest.mark.parametrize(
    "yaml_text",
    ["license: [mit\n", "key: value\n  bad indent: here\n", "a: b: c\n", "\tlicense: mit\n"],
)
def test_broken_yaml_keeps_body_and_reports(yaml_text: str) -> None:
    card = parse_card(f"---\n{yaml_text}---\n# Body survives\n")

    assert card.body == "# Body survives\n"
    assert card.metadata == {}
    assert card.metadata_error is not None
    assert card.metadata_error.startswith("The card's metadata is not valid YAML")
    assert "\n" not in card.metadata_error


@pytest.mark.parametrize("yaml_text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_yaml_that_is_not_a_mapping(yaml_text: str) -> None:
    card = parse_card(f"---\n{yaml_text}---\nBody\n")

    assert card.body == "Body\n"
    assert card.metadata == {}
    assert card.metadata_error == "The card's metadata is not a mapping of keys to values."


def test_non_string_keys_become_strings_and_unsafe_tags_are_refused() -> None:
    card = parse_card("---\n1: one\n2.5: yes\n---\n")
    assert card.metadata == {"1": "one", "2.5": True}

    # yaml.safe_load refuses Python object tags: an error, never an object.
    hostile = parse_card("---\nx: !!python/object/apply:os.system ['echo hi']\n---\nBody\n")
    assert hostile.metadata == {}
    assert hostile.metadata_error is not None
    assert hostile.body == "Body\n"


def test_windows_line_endings() -> None:
    card = parse_card("---\r\nlicense: mit\r\n---\r\n# Title\r\n")

    assert card.metadata == {"license": "mit"}
    assert card.body.strip() == "# Title"


# --- render_card_chunks: nothing loads or runs ----------------------------------------------


def all_hrefs(html_text: str) -> list[str]:
    return HREF.findall(html_text)


def assert_inert(html_text: str) -> None:
    lowered = html_text.lower()
    for tag in ("<script", "<iframe", "<img", "<style", "<object", "<embed", "<link", "<meta"):
        assert tag not in lowered, tag
    assert "src=" not in lowered
    assert " on" not in re.sub(r">[^<]*<", "><", lowered)  # no event handler attributes
    for href in all_hrefs(html_text):
        assert href.startswith(("http://", "https://", "mailto:")), href


@pytest.mark.parametrize(
    "markdown",
    [
        "<script>alert('x')</script>\n",
        "Text <script>alert('x')</script> more text\n",
        '<iframe src="https://evil.example/"></iframe>\n',
        'Inline <iframe src="https://evil.example/"></iframe> frame\n',
        '<img src="https://evil.example/pixel.png" onerror="alert(1)">\n',
        'Inline <img src="https://evil.example/pixel.png"> image\n',
        "<style>body { display: none }</style>\n",
        '<div onclick="alert(1)" style="x">Hello <b>there</b></div>\n',
        '<a href="javascript:alert(1)">click</a>\n',
        "[click](javascript:alert(1))\n",
        "[click](JaVaScRiPt:alert(1))\n",
        "[data](data:text/html;base64,PHNjcmlwdD4=)\n",
        "[file](file:///etc/passwd)\n",
        "![alt](javascript:alert(1))\n",
        "<javascript:alert(1)>\n",
        '<object data="x.swf"></object><embed src="x.swf">\n',
        '<link rel="stylesheet" href="https://evil.example/x.css">\n',
        "[ref]\n\n[ref]: javascript:alert(1)\n",
    ],
)
def test_active_content_is_neutralised(markdown: str) -> None:
    assert_inert(render_card_html(markdown, base_url=BASE))


def test_script_style_and_iframe_blocks_lose_their_contents() -> None:
    html_text = render_card_html(
        "<script>stealCookies()</script>\n\n<style>.x{color:red}</style>\n\n"
        "<iframe>frame text</iframe>\n\nVisible prose.\n"
    )

    assert "stealCookies" not in html_text
    assert "color:red" not in html_text
    assert "frame text" not in html_text
    assert "Visible prose." in html_text


def test_html_blocks_keep_their_readable_text() -> None:
    html_text = render_card_html('<div align="center">\n<h1>Big <i>Model</i></h1>\n</div>\n')

    assert "Big Model" in html_text
    assert "<div" not in html_text
    assert "<h1" not in html_text  # raw HTML headings become text, not markup


def test_markdown_images_become_links() -> None:
    html_text = render_card_html(
        "![A chart](https://cdn.example/chart.png)\n\n![](figures/loss.png)\n", base_url=BASE
    )

    assert '<a href="https://cdn.example/chart.png">[image: A chart]</a>' in html_text
    assert f'<a href="{BASE}figures/loss.png">[image: image]</a>' in html_text
    assert_inert(html_text)


def test_links_resolve_against_the_repository() -> None:
    html_text = render_card_html(
        "[license](LICENSE) [root](/org/other) [up](../main/config.json) "
        "[web](https://example.com/a?b=1&c=2) [mail](mailto:me@example.com) [frag](#usage)",
        base_url=BASE,
    )

    assert all_hrefs(html_text) == [
        f"{BASE}LICENSE",
        "https://hub.example/org/other",
        "https://hub.example/org/model/blob/main/config.json",
        "https://example.com/a?b=1&amp;c=2",
        "mailto:me@example.com",
        f"{BASE}#usage",
    ]


def test_relative_links_without_a_base_are_plain_text() -> None:
    html_text = render_card_html("[license](LICENSE) and [web](https://example.com/)")

    assert all_hrefs(html_text) == ["https://example.com/"]
    assert "license" in html_text


def test_text_is_escaped() -> None:
    html_text = render_card_html("5 < 6 & `<b>code</b>`\n\n```\n<script>x()</script>\n```\n")

    assert "5 &lt; 6 &amp;" in html_text
    assert "&lt;b&gt;code&lt;/b&gt;" in html_text
    assert "&lt;script&gt;x()&lt;/script&gt;" in html_text
    assert_inert(html_text)


def test_tables_and_strikethrough_render() -> None:
    html_text = render_card_html("| a | b |\n|---|---|\n| 1 | 2 |\n\n~~old~~\n")

    assert "<table>" in html_text
    assert "<td>2</td>" in html_text
    assert "<s>old</s>" in html_text


# --- render_card_chunks: big and deep cards ----------------------------------------------


def test_a_one_megabyte_card_is_split_into_small_chunks_that_join_to_the_whole() -> None:
    paragraph = "Some **bold** text, a [link](LICENSE) and `code` <b>inline</b>.\n\n"
    count = 1_000_000 // len(paragraph)
    markdown = "# Title\n\n" + paragraph * count
    chunk_chars = 20_000

    # No CPU budget: this checks the chunking of a whole formatted card (formatting 1 MB takes
    # longer than the default budget; tests/hostile/test_card_html.py checks the budget).
    chunks = render_card_chunks(
        markdown, base_url=BASE, chunk_chars=chunk_chars, budget_seconds=None
    )

    one_paragraph = render_card_html(paragraph, base_url=BASE)
    expected = render_card_html("# Title\n", base_url=BASE) + one_paragraph * count
    assert "".join(chunks) == expected
    assert len(chunks) >= len(expected) // (chunk_chars + len(one_paragraph))
    # Each chunk closes as soon as it reaches the size, so it overshoots by at most one block.
    assert all(len(chunk) < chunk_chars + len(one_paragraph) for chunk in chunks)
    # Chunks split between top-level blocks: each is well-formed on its own.
    for chunk in chunks:
        assert chunk.count("<p>") == chunk.count("</p>")


def test_chunks_never_split_a_list_or_table() -> None:
    items = "".join(f"- item {n}\n" for n in range(2000))
    # No CPU budget: formatting 2,000 items can outlast it on a loaded machine, and this
    # checks where chunks split, not the budget (tests/hostile/test_card_html.py does).
    chunks = render_card_chunks(items + "\nafter\n", chunk_chars=100, budget_seconds=None)

    assert len(chunks) == 2
    assert chunks[0].startswith("<ul>")
    assert chunks[0].rstrip().endswith("</ul>")
    assert chunks[1] == "<p>after</p>\n"


def test_empty_card_has_no_chunks() -> None:
    assert render_card_chunks("") == []
    assert render_card_chunks("\n\n   \n") == []


@pytest.mark.parametrize(
    "markdown",
    [
        "".join("  " * depth + "- item\n" for depth in range(1000)),
        ">" * 10_000 + " deep quote\n",
        "- " * 10_000 + "x\n",
        "*" * 10_000 + "x" + "*" * 10_000 + "\n",
        "[" * 10_000 + "x" + "]" * 10_000 + "\n",
        "<div>" * 5_000 + "x" + "</div>" * 5_000 + "\n",
    ],
    ids=["indented-list", "blockquotes", "dash-list", "emphasis", "brackets", "divs"],
)
def test_pathologically_deep_cards_do_not_crash(markdown: str) -> None:
    chunks = render_card_chunks(markdown, base_url=BASE)

    html_text = "".join(chunks)
    assert html_text  # something is shown
    assert_inert(html_text)
