"""Who has the database open: a shared lock every open `Database` holds on `<name>.lock`.

A damaged database may only be moved aside when no other ModelDeck has it open: SQLite
deletes `<name>-wal` and `<name>-shm` by name when its last connection closes, so a process
still holding the old file would delete the logs of the fresh one that replaced it. Moving it
aside therefore takes this lock exclusively, which succeeds only when no other process (or
other `Database` of this process) holds it.

`flock` locks belong to the open file, not to the process, so two `Database` objects of one
process are two holders, as two processes are. On Windows there is no `flock`: the lock is a
no-op there, and moving aside an open file fails by itself (the rename is refused).
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from app.store.errors import DatabaseBusyError, DatabaseUnusableError
from app.store.files import PRIVATE_MODE

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

_POLL_S = 0.02


class OpenersLock:
    """The lock file beside the database: shared while open, exclusive to move the file aside.

    Args:
        database: the database file; the lock is `<database>.lock`, created mode 600.

    Raises:
        DatabaseUnusableError: the lock path is a link, not a plain file, or another user's.
    """

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".lock")
        self._descriptor: int | None = None
        if fcntl is None:
            return
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC
        try:
            descriptor = os.open(self.path, flags, PRIVATE_MODE)
        except OSError as exc:
            raise DatabaseUnusableError(
                f"Cannot open the lock file {self.path}: {exc.strerror or exc} (a link, or "
                "not yours?).",
                path=self.path,
                hint="Remove it if you did not put it there.",
            ) from exc
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            os.close(descriptor)
            raise DatabaseUnusableError(
                f"The lock file {self.path} is not a plain file of yours.",
                path=self.path,
                hint="Remove it if you did not put it there.",
            )
        self._descriptor = descriptor

    def share(self, *, deadline: float) -> None:
        """Hold the lock shared (waiting while another process moves a damaged file aside).

        Raises:
            DatabaseBusyError: the exclusive holder kept it past `deadline` (monotonic).
        """
        while not self._try(fcntl.LOCK_SH if fcntl else 0):
            if time.monotonic() > deadline:
                raise DatabaseBusyError(
                    f"Another ModelDeck kept {self.path} locked while repairing the database.",
                    path=self.path,
                    hint="Close other ModelDeck windows or commands, then start again.",
                )
            time.sleep(_POLL_S)

    def try_exclusive(self) -> bool:
        """Hold it exclusively if no one else holds it at all; True if so."""
        return self._try(fcntl.LOCK_EX if fcntl else 0)

    def unlock(self) -> None:
        """Hold it no more (but keep the file open, to lock again)."""
        if fcntl is not None and self._descriptor is not None:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)

    def close(self) -> None:
        """Release it for good (the file stays: waiters share its inode)."""
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def _try(self, operation: int) -> bool:
        if fcntl is None or self._descriptor is None:
            return True
        try:
            fcntl.flock(self._descriptor, operation | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
