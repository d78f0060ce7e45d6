"""A reply's citations: kept with the message, exported, and opened at the right place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.chat.conversations import ConversationStore, MessageState
from app.chat.export import export_json, export_markdown
from app.docs.citation import (
    Citation,
    Opener,
    cited_numbers,
    opener_for,
    read_source_lines,
)
from app.docs.extract import DocumentError
from app.docs.prompt import compose_prompt
from app.docs.retrieval import Passage
from app.docs.store import StoredChunk
from app.store import Database

REPORT = Citation(1, "/notes/report.pdf", 3, 10, 24, "Results", 0.0328)
RECIPE = Citation(2, "/notes/dish3.md", None, 4, 6, "Stew", 0.0161)


def test_a_citation_reads_back_from_its_json() -> None:
    for citation in (REPORT, RECIPE):
        assert Citation.from_json(json.loads(json.dumps(citation.to_json()))) == citation
    assert REPORT.label() == "[1] report.pdf, page 3, lines 10-24"
    assert RECIPE.label() == "[2] dish3.md, lines 4-6"


@pytest.mark.parametrize(
    "value",
    [
        None,
        [],
        "x",
        {"number": 1},
        {**REPORT.to_json(), "number": 0},
        {**REPORT.to_json(), "number": True},
        {**REPORT.to_json(), "file": ""},
        {**REPORT.to_json(), "page": "3"},
        {**REPORT.to_json(), "line_start": -1},
        {**REPORT.to_json(), "score": "high"},
        {**REPORT.to_json(), "score": float("nan")},
        {**REPORT.to_json(), "heading": 7},
    ],
)
def test_a_malformed_stored_citation_is_left_out(value: object) -> None:
    assert Citation.from_json(value) is None


@settings(max_examples=200, deadline=2000)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(["number", "file", "page", "line_start", "line_end", "score"]),
                inner,
                max_size=6,
            )
        ),
        max_leaves=12,
    )
)
def test_any_stored_value_gives_a_citation_or_none(value: object) -> None:
    citation = Citation.from_json(value)
    assert citation is None or (citation.number >= 1 and citation.line_end >= citation.line_start)


def test_a_reply_cites_numbers_in_brackets_but_not_links() -> None:
    text = "Stir three times [2]. See [1, 3] and [4][5]; not [a] nor [6](http://x)."
    assert list(cited_numbers(text)) == [2, 1, 3, 4, 5]


def test_pdf_and_word_open_in_the_system_app_at_the_page() -> None:
    assert opener_for(Path("a.pdf")) is Opener.SYSTEM
    assert opener_for(Path("a.DOCX")) is Opener.SYSTEM
    for name in ("a.md", "a.txt", "a.py", "a.html"):
        assert opener_for(Path(name)) is Opener.VIEWER
    assert REPORT.opener is Opener.SYSTEM and REPORT.page_fragment == "page=3"
    assert RECIPE.opener is Opener.VIEWER and RECIPE.page_fragment is None


def test_a_source_reads_as_the_lines_its_citations_count(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_bytes("\ufeff# Stew\r\n\r\nStir the pot.\nServe hot.\n".encode())
    assert read_source_lines(path) == ["# Stew", "", "Stir the pot.", "Serve hot."]
    binary = tmp_path / "image.txt"
    binary.write_bytes(b"\x89PNG\x00\x00\x00")
    with pytest.raises(DocumentError, match="binary"):
        read_source_lines(binary)
    with pytest.raises(DocumentError, match="no longer there"):
        read_source_lines(tmp_path / "gone.md")


def test_a_composed_source_becomes_the_citation_kept() -> None:
    chunk = StoredChunk(7, "/notes/dish3.md", "Stir the pot 3 times.", "Stew", None, 4, 6)
    passage = Passage(chunk, 0.0161, words_rank=1, vector_rank=None, similarity=None)
    prompt = compose_prompt("How often?", [passage], budget_tokens=10_000, count_tokens=len)
    (source,) = prompt.sources
    assert source.citation == Citation(1, "/notes/dish3.md", None, 4, 6, "Stew", 0.0161)


def test_a_reply_keeps_its_sources_and_exports_them(database: Database) -> None:
    store = ConversationStore(database)
    conversation = store.create("Recipes")
    store.append_message(conversation.id, "user", "Hello")  # an earlier turn: not cited
    store.append_message(conversation.id, "assistant", "Hi [1]")
    store.append_message(conversation.id, "user", "How often do I stir? (with sources)")
    reply = store.append_message(conversation.id, "assistant", "", state=MessageState.STREAMING)
    store.set_turn_sources(reply.id, (REPORT, RECIPE))
    store.finish_message(reply.id, content="Three times [2].", state=MessageState.COMPLETE)
    hello, hi, question, answer = store.messages(conversation.id)
    assert hello.sources == hi.sources == ()
    assert question.sources == answer.sources == (REPORT, RECIPE)  # the question quotes them
    # A regenerated reply answers from the same sources.
    store.new_version(reply.id)
    assert store.messages(conversation.id)[3].sources == (REPORT, RECIPE)
    store.finish_message(reply.id, content="Thrice [2].", state=MessageState.COMPLETE)

    messages = store.messages(conversation.id)
    document = json.loads(export_json(store.get(conversation.id), messages))
    assert "sources" not in document["messages"][1]
    assert (
        document["messages"][2]["sources"]
        == document["messages"][3]["sources"]
        == [
            {
                "number": 1,
                "file": "/notes/report.pdf",
                "page": 3,
                "line_start": 10,
                "line_end": 24,
                "heading": "Results",
                "score": 0.0328,
            },
            {
                "number": 2,
                "file": "/notes/dish3.md",
                "page": None,
                "line_start": 4,
                "line_end": 6,
                "heading": "Stew",
                "score": 0.0161,
            },
        ]
    )
    markdown = export_markdown(store.get(conversation.id), messages)
    assert "**Sources:**\n\n- [1] `/notes/report.pdf`, page 3, lines 10-24 (score 0.0328)\n" in (
        markdown
    )
    assert "- [2] `/notes/dish3.md`, lines 4-6 (score 0.0161)" in markdown
    assert markdown.count("**Sources:**") == 1  # under the reply; the question quotes them


def test_a_malformed_stored_source_list_is_no_sources(database: Database) -> None:
    store = ConversationStore(database)
    conversation = store.create("Recipes")
    reply = store.append_message(conversation.id, "assistant", "Hi [1]")
    for stored in ("not json", '{"number": 1}', json.dumps([REPORT.to_json(), {"x": 1}])):
        database.execute("UPDATE messages SET sources = ? WHERE id = ?", (stored, reply.id))
        expected = (REPORT,) if stored.startswith("[") else ()
        assert store.messages(conversation.id)[0].sources == expected


def test_sources_for_a_deleted_reply_are_refused(database: Database) -> None:
    from app.chat.conversations import MessageNotFoundError

    with pytest.raises(MessageNotFoundError):
        ConversationStore(database).set_turn_sources(12345, (REPORT,))
