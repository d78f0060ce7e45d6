"""The library's errors: part of the app's one tree (`AppError`), each also a built-in."""

from __future__ import annotations

from app.errors import AppError


class LibraryError(AppError):
    """Something the library could not do."""


class EntryNotFoundError(LibraryError, LookupError):
    """No model in the library matches the key, repository or path given."""

    def __init__(self, message: str, *, query: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.query = query


class FolderNotFoundError(LibraryError, FileNotFoundError):
    """A folder to add to the library is not there (or is not a folder)."""


class DeleteRefusedError(LibraryError, PermissionError):
    """A delete plan touches another app's files and that was not confirmed a second time."""


class DeleteFailedError(LibraryError, OSError):
    """The system refused to delete a file (permissions, a file in use, …)."""
