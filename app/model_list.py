"""`ModelList`: the one shared list of the library's models that every front end shows.

The Library page, the Chat picker and the Images picker are views of this list, so a model
downloaded, imported or deleted shows up (or goes) in all of them at once. The list is
refreshed by whoever changed the disk: `import_paths`, `add_folder` and `delete` refresh it
themselves; after a download or a settings change the caller (or `Core.update_settings`)
calls `refresh`.

Methods block (a scan reads the disk): call them on a worker thread. Subscribers are called
on the thread that refreshed, in the order of the refreshes.

It lives outside `app.library` so that the core can build it at once: importing the library
package costs ~0.25 s (huggingface_hub), which the window should not wait for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from app.subscribers import Subscribers

if TYPE_CHECKING:
    from app.library.catalog import ImportResult, LibraryEntry
    from app.library.deletion import DeletePlan
    from app.library.library import Library

ModelListCallback = Callable[[tuple["LibraryEntry", ...]], None]


class ModelList:
    """The entries of the last library scan, and who wants to hear of the next one.

    Args:
        library: returns the library to scan; called on each refresh, since the core
            rebuilds its library when the cache folder moves.
    """

    def __init__(self, library: Callable[[], Library]) -> None:
        self._library = library
        # Held through a scan and its notifications: subscribers hear refreshes in order.
        self._refreshing = threading.RLock()
        self._lock = threading.Lock()
        self._entries: tuple[LibraryEntry, ...] = ()
        self._version = 0  # counts refreshes
        self._subscribers: Subscribers[tuple[LibraryEntry, ...]] = Subscribers("model list")
        self._closed = False

    @property
    def entries(self) -> tuple[LibraryEntry, ...]:
        """The entries of the last refresh."""
        with self._lock:
            return self._entries

    @property
    def version(self) -> int:
        """How many refreshes the list has had (0: never scanned)."""
        with self._lock:
            return self._version

    @property
    def scanned(self) -> bool:
        """Whether the list was refreshed at least once."""
        return self.version > 0

    def snapshot(self) -> tuple[int, tuple[LibraryEntry, ...]]:
        """`version` and `entries`, read together."""
        with self._lock:
            return self._version, self._entries

    def subscribe(self, callback: ModelListCallback) -> Callable[[], None]:
        """Call `callback(entries)` after each refresh, on the thread that refreshed.

        Returns a function that unsubscribes. Exceptions in callbacks are logged and ignored.
        """
        return self._subscribers.add(callback)

    def refresh(self) -> tuple[LibraryEntry, ...]:
        """Scan the library again and tell every subscriber (blocking). Once closed, the last
        entries, unscanned."""
        with self._refreshing:
            if self._closed:
                return self.entries
            entries = tuple(self._library().scan())
            with self._lock:
                self._entries = entries
                self._version += 1
            self._subscribers.notify(entries)
            return entries

    def close(self) -> None:
        """No more scans: the database is closing. Waits for a scan under way to end (a
        refresh a page asked for just before quitting must not read a closed database)."""
        with self._refreshing:
            self._closed = True

    def import_paths(self, paths: Sequence[Path]) -> ImportResult:
        """`Library.import_paths`, then a refresh."""
        with self._refreshing:
            result = self._library().import_paths(paths)
            self.refresh()
            return result

    def add_folder(self, path: Path) -> None:
        """`Library.add_folder`, then a refresh.

        Raises:
            FolderNotFoundError: `path` is not an existing folder.
        """
        with self._refreshing:
            self._library().add_folder(path)
            self.refresh()

    def mark_used(self, path: Path) -> None:
        """`Library.mark_used` (a model was loaded), then a refresh so "Last used" shows it."""
        with self._refreshing:
            self._library().mark_used(path)
            self.refresh()

    def delete(self, plan: DeletePlan, *, confirm_other_apps: bool = False) -> int:
        """`Library.execute` (returns the bytes freed), then a refresh, also after a failure
        (part of the plan may have been carried out).

        Raises:
            DeleteRefusedError, DeleteFailedError: as `Library.execute`.
        """
        with self._refreshing:
            try:
                return self._library().execute(plan, confirm_other_apps=confirm_other_apps)
            finally:
                self.refresh()
