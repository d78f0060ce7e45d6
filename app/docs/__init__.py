"""Chat with your documents: collections of files indexed in place, searched by words and vectors."""
