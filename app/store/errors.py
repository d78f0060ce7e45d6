"""Why the app database could not be opened: one line a person can act on, per cause."""

from __future__ import annotations

from pathlib import Path

from app.errors import AppError


class DatabaseError(AppError):
    """The app database cannot be used; nothing was written to it.

    Args:
        message: one line saying what is wrong with which file.
        path: the database file (or the thing found where it should be).
        hint: what to do about it.
    """

    def __init__(self, message: str, *, path: Path, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path


class DatabaseUnusableError(DatabaseError, OSError):
    """The file can't be ModelDeck's database: a folder, a link, another user's, unreadable."""


class DatabaseTooNewError(DatabaseError, ValueError):
    """A newer ModelDeck wrote the database: this build refuses it rather than half-use it."""

    def __init__(self, message: str, *, path: Path, version: int, known: int) -> None:
        super().__init__(
            message,
            path=path,
            hint="Update ModelDeck, or move the file away to start with a fresh database.",
        )
        self.version = version
        self.known = known


class DatabaseCorruptError(DatabaseError, OSError):
    """The database is damaged and could not be moved aside to start a fresh one."""


class DatabaseBusyError(DatabaseError, TimeoutError):
    """Another program kept the database locked for longer than start-up waits."""
