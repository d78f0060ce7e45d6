"""Chat with your documents: collections of files indexed in place, searched by words and
by vectors, quoted into a prompt as numbered sources.

    extract     a file's text as blocks with page and line spans (pypdf, python-docx,
                markdown-it-py, html.parser); bad input is a `DocumentError`
    chunking    blocks gathered into chunks that keep to one section and a bounded size
    walk        which files a collection holds (links followed once, size limits)
    store       collections, files, chunks and vectors in the app's SQLite (FTS5)
    embedder    vectors from an embedding GGUF in the LLM engine's child process
    vectors     a collection's vectors as a memory-mapped numpy matrix
    indexer     incremental indexing (new, changed, deleted), with pause and cancel
    retrieval   BM25 + vectors, fused by reciprocal rank
    prompt      the question with numbered sources, within the context's budget
    citation    a reply's sources as kept with it, and where each opens
    embedders   which library models can embed, and the one to suggest
    collections the service the CLI and the window use
"""
