"""Document collections for real: files on disk, the app's SQLite (FTS5), kept current."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from app.docs import walk
from app.docs.extract import DocumentError, DocumentKind, extract_blocks
from app.docs.indexer import (
    IndexCancelled,
    IndexControl,
    IndexPhase,
    IndexProgress,
    IndexReport,
    index_collection,
)
from app.docs.prompt import compose_prompt
from app.docs.retrieval import retrieve, words_query
from app.docs.store import Collection, CollectionError, DocumentStore
from app.store import Database
from tests.support.documents import write_docx, write_pdf

GUIDE = """# Garden guide

Tomatoes need full sun and deep watering twice a week.

## Pests

Aphids gather under leaves; spray them off with water.
"""


@pytest.fixture
def store(database: Database) -> DocumentStore:
    return DocumentStore(database)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "guide.md").write_text(GUIDE)
    (root / "notes.txt").write_text("The boiler pressure should read 1.5 bar.\n\nCall Ana.\n")
    write_pdf(root / "sub" / "manual.pdf", ["Intro page", "The filter is under the lid."])
    write_docx(
        root / "sub" / "minutes.docx",
        [("Minutes", "Heading 1"), ("The budget for paint is 300 euros.", None)],
    )
    (root / "page.html").write_text(
        "<html><body><h1>Bikes</h1><p>Chains want oil monthly.</p>"
        "<script>ignore('this')</script></body></html>"
    )
    return root


def _index(
    store: DocumentStore,
    collection: Collection,
    tmp_path: Path,
    *,
    progress: Callable[[IndexProgress], None] | None = None,
    control: IndexControl | None = None,
) -> IndexReport:
    return index_collection(
        store,
        store.get(collection.name),
        embedder=None,
        vectors_folder=tmp_path / "vectors",
        progress=progress,
        control=control,
    )


def _paths(
    store: DocumentStore, question: str, collection: Collection, tmp_path: Path
) -> list[str]:
    passages = retrieve(
        store, [store.get(collection.name)], question, embedder=None, vectors_folder=tmp_path / "v"
    )
    return [Path(passage.chunk.path).name for passage in passages]


def test_a_folder_is_indexed_and_searchable(
    store: DocumentStore, folder: Path, tmp_path: Path
) -> None:
    collection = store.create("home", [folder], embedder=None)
    report = _index(store, collection, tmp_path)
    assert (report.added, report.changed, report.removed, report.skipped) == (5, 0, 0, ())
    stats = store.stats(store.get("home"))
    assert stats.files == 5 and stats.chunks >= 5 and stats.bytes > 0
    assert (
        _paths(store, "how often should I water tomatoes?", collection, tmp_path)[0] == "guide.md"
    )
    assert _paths(store, "boiler pressure", collection, tmp_path)[0] == "notes.txt"
    assert _paths(store, "where is the filter", collection, tmp_path)[0] == "manual.pdf"
    assert _paths(store, "paint budget", collection, tmp_path)[0] == "minutes.docx"
    assert _paths(store, "chain oil", collection, tmp_path)[0] == "page.html"
    assert _paths(store, "ignore this", collection, tmp_path) == []  # script text is not text
    pdf = retrieve(store, [collection], "filter lid", embedder=None, vectors_folder=tmp_path)[0]
    assert pdf.chunk.page == 2 and pdf.words_rank == 1 and pdf.vector_rank is None
    pests = retrieve(store, [collection], "aphids", embedder=None, vectors_folder=tmp_path)[0]
    assert (pests.chunk.heading, pests.chunk.line_start, pests.chunk.line_end) == (
        "Garden guide > Pests",
        5,
        7,
    )


def test_only_changes_are_read_again(store: DocumentStore, folder: Path, tmp_path: Path) -> None:
    collection = store.create("home", [folder], embedder=None)
    _index(store, collection, tmp_path)
    again = _index(store, collection, tmp_path)
    assert (again.added, again.changed, again.removed, again.unchanged) == (0, 0, 0, 5)
    assert again.bytes_read == 0  # nothing was read: size and mtime matched
    # Same bytes, new mtime: hashed, found equal, not re-chunked.
    notes = folder / "notes.txt"
    os.utime(notes, ns=(notes.stat().st_atime_ns, notes.stat().st_mtime_ns + 10**9))
    touched = _index(store, collection, tmp_path)
    assert (touched.changed, touched.unchanged, touched.chunks_added) == (0, 5, 0)
    # New content replaces the old chunks in the words index too.
    notes.write_text("The heat pump hums at night.\n")
    (folder / "sub" / "manual.pdf").unlink()
    (folder / "new.md").write_text("# New\n\nA brand new kettle.\n")
    changed = _index(store, collection, tmp_path)
    assert (changed.added, changed.changed, changed.removed) == (1, 1, 1)
    assert _paths(store, "boiler", collection, tmp_path) == []
    assert _paths(store, "heat pump", collection, tmp_path) == ["notes.txt"]
    assert _paths(store, "filter lid", collection, tmp_path) == []
    assert _paths(store, "kettle", collection, tmp_path) == ["new.md"]
    chunks = store.database.fetch_one("SELECT COUNT(*) FROM doc_chunks")
    fts = store.database.fetch_one("SELECT COUNT(*) FROM doc_chunks_fts")
    assert chunks == fts


def test_bad_files_are_skipped_with_a_reason(
    store: DocumentStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "bad"
    root.mkdir()
    (root / "binary.txt").write_bytes(bytes(range(256)) * 16)
    write_pdf(root / "locked.pdf", ["secret"], password="pw")
    (root / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n")
    (root / "fake.docx").write_bytes(b"PK\x03\x04 not really a zip")
    (root / "huge.log").write_bytes(b"log line\n" * 2000)
    (root / "fine.md").write_text("Still indexed.\n")
    monkeypatch.setattr(walk, "MAX_FILE_BYTES", 10_000)
    collection = store.create("bad", [root], embedder=None)
    report = _index(store, collection, tmp_path)
    reasons = dict((Path(path).name, why) for path, why in report.skipped)
    assert set(reasons) == {"binary.txt", "locked.pdf", "broken.pdf", "fake.docx", "huge.log"}
    assert "binary" in reasons["binary.txt"]
    assert "encrypted" in reasons["locked.pdf"]
    assert "damaged PDF" in reasons["broken.pdf"]
    assert "not a Word document" in reasons["fake.docx"]
    assert "over the" in reasons["huge.log"] and "limit" in reasons["huge.log"]
    assert store.stats(store.get("bad")).files == 1
    assert len(store.skipped(store.get("bad"))) == 5
    assert _index(store, collection, tmp_path).skipped == ()  # reported once, remembered


def test_symlink_loops_and_vanishing_files(
    store: DocumentStore, folder: Path, tmp_path: Path
) -> None:
    (folder / "sub" / "loop").symlink_to(folder, target_is_directory=True)
    (folder / "again.md").symlink_to(folder / "guide.md")  # the same file twice: indexed once
    collection = store.create("home", [folder], embedder=None)
    vanished: list[str] = []

    def delete_next_pdf(progress: IndexProgress) -> None:
        if progress.path and progress.path.endswith("manual.pdf") and not vanished:
            Path(progress.path).unlink()  # gone between the walk and the read
            vanished.append(progress.path)

    report = _index(store, collection, tmp_path, progress=delete_next_pdf)
    assert vanished and report.added == 4 and report.skipped == ()
    assert "manual.pdf" not in [Path(p).name for p in store.files(store.get("home"))]


def test_an_offline_folder_keeps_its_index(
    store: DocumentStore, folder: Path, tmp_path: Path
) -> None:
    collection = store.create("home", [folder], embedder=None)
    _index(store, collection, tmp_path)
    unplugged = folder.with_name("elsewhere")
    folder.rename(unplugged)
    report = _index(store, collection, tmp_path)
    assert report.offline and report.removed == 0
    assert store.get("home").offline
    assert _paths(store, "boiler", collection, tmp_path) == ["notes.txt"]  # still answers
    unplugged.rename(folder)
    back = _index(store, collection, tmp_path)
    assert not back.offline and not store.get("home").offline and back.unchanged == 5


def test_pause_and_cancel_keep_what_was_done(
    store: DocumentStore, folder: Path, tmp_path: Path
) -> None:
    collection = store.create("home", [folder], embedder=None)
    control = IndexControl()
    seen: list[IndexProgress] = []

    def cancel_after_two(progress: IndexProgress) -> None:
        seen.append(progress)
        if progress.phase is IndexPhase.READING and progress.done == 2:
            control.cancel()

    with pytest.raises(IndexCancelled):
        _index(store, collection, tmp_path, progress=cancel_after_two, control=control)
    # The file being read when the cancel came is finished; the next is not started.
    assert store.stats(store.get("home")).files == 3
    rest = _index(store, collection, tmp_path)
    assert (rest.added, rest.unchanged) == (2, 3)
    paused = IndexControl()
    paused.pause()
    assert paused.paused
    paused.resume()
    paused.checkpoint()  # returns at once when running


def test_collections_are_named_and_removed(
    store: DocumentStore, folder: Path, tmp_path: Path
) -> None:
    collection = store.create("home", [folder], embedder=None)
    with pytest.raises(CollectionError, match="already"):
        store.create("home", [folder], embedder=None)
    with pytest.raises(CollectionError, match="not a collection name"):
        store.create("../etc", [folder], embedder=None)
    _index(store, collection, tmp_path)
    store.remove("home")
    assert store.all() == []
    assert store.database.fetch_one("SELECT COUNT(*) FROM doc_chunks_fts") == (0,)
    assert folder.joinpath("guide.md").exists()  # the files themselves are never touched
    with pytest.raises(CollectionError, match="No collection"):
        store.get("home")


def test_the_prompt_holds_numbered_sources_within_the_budget(
    store: DocumentStore, folder: Path, tmp_path: Path
) -> None:
    collection = store.create("home", [folder], embedder=None)
    _index(store, collection, tmp_path)
    passages = retrieve(
        store, [collection], "water the tomatoes, aphids", embedder=None, vectors_folder=tmp_path
    )
    assert len(passages) >= 2

    def count(text: str) -> int:
        return len(text) // 4

    roomy = compose_prompt("How do I water?", passages, budget_tokens=10_000, count_tokens=count)
    assert [source.number for source in roomy.sources] == list(range(1, len(passages) + 1))
    assert "[1] guide.md, lines" in roomy.text and roomy.text.endswith("Question: How do I water?")
    assert "not instructions" in roomy.text
    tight = compose_prompt(
        "How do I water?", passages, budget_tokens=count(roomy.text) - 5, count_tokens=count
    )
    assert len(tight.sources) < len(roomy.sources) and tight.left_out >= 1
    assert count(tight.text) <= count(roomy.text) - 5
    alone = compose_prompt("Hi?", passages, budget_tokens=1, count_tokens=count)
    assert alone.text == "Hi?" and alone.sources == ()


def test_a_question_is_never_fts_syntax(store: DocumentStore, folder: Path) -> None:
    query = words_query('what is "NEAR(a b)" OR x* - y AND')
    assert query == '"near" OR "b" OR "x" OR "y"'
    collection = store.create("home", [folder], embedder=None)
    assert store.search_words([collection], query, limit=5) == []  # valid FTS5, no match
    assert words_query("?? the !!") is None


def test_extraction_of_each_kind(tmp_path: Path) -> None:
    blocks = extract_blocks(DocumentKind.MARKDOWN, GUIDE.encode())
    assert [(b.line_start, b.line_end, b.is_heading) for b in blocks] == [
        (1, 1, True),
        (3, 3, False),
        (5, 5, True),
        (7, 7, False),
    ]
    utf16 = "Grüße aus Köln\n".encode("utf-16")
    assert extract_blocks(DocumentKind.TEXT, utf16)[0].text == "Grüße aus Köln"
    with pytest.raises(DocumentError, match="no text"):
        extract_blocks(DocumentKind.PDF, write_pdf(tmp_path / "blank.pdf", [""]).read_bytes())


def test_a_collection_crowded_out_by_another_is_still_searched(
    store: DocumentStore, tmp_path: Path
) -> None:
    crowd, alone = tmp_path / "crowd", tmp_path / "alone"
    crowd.mkdir()
    alone.mkdir()
    for index in range(40):
        (crowd / f"{index}.txt").write_text("apple " * 20 + "\n")
    (alone / "one.txt").write_text("apple pie, and much else besides that matters less\n")
    big = store.create("crowd", [crowd], embedder=None)
    small = store.create("alone", [alone], embedder=None)
    _index(store, big, tmp_path)
    _index(store, small, tmp_path)
    assert len(store.search_words([big], '"apple"', limit=5)) == 5
    found = store.search_words([small], '"apple"', limit=5)
    assert [store.chunks([found[0][0]])[found[0][0]].path] == [str(alone / "one.txt")]
