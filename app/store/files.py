"""The database file on disk: only ever a plain file of this user, private from its creation.

SQLite opens whatever is at the path: a link another user planted there (to read the
conversations, or to make SQLite write into a file of theirs), a folder, a file of another
user. So before SQLite opens anything, the file and the siblings SQLite keeps beside it
(`-wal`, `-shm`, `-journal`) are checked with `lstat`, and the file is created here, owner-only,
when it is missing. SQLite gives the siblings it creates the mode of the database file, so they
are private too.

Existing files are never opened here: closing any descriptor of a file drops every POSIX lock
this process holds on it, SQLite's included (another connection of this process may have the
database open).
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from app.store.errors import DatabaseUnusableError

SIBLING_SUFFIXES = ("-wal", "-shm", "-journal")
"""Files SQLite keeps beside a database (`<name>-wal`, …): they hold parts of its data."""

PRIVATE_MODE = 0o600
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)  # absent on Windows, where links need privileges
_MOVE_HINT = "Move it away, or set MODELDECK_DATA_DIR to another folder."


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """Which file was at a path (device and inode), to tell a replacement from the original."""

    device: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> FileIdentity | None:
        """The file at `path` (not following a link), or None when there is none."""
        try:
            info = path.lstat()
        except FileNotFoundError:
            return None
        return cls(info.st_dev, info.st_ino)


def prepare_database_file(path: Path) -> FileIdentity:
    """Make sure `path` and its SQLite siblings are plain private files of this user.

    Creates the folder (owner-only when new) and the empty database file (mode 600) when they
    are missing; tightens the mode of files an older version left readable by others.

    Returns:
        The identity of the database file now at `path`.

    Raises:
        DatabaseUnusableError: a link, a folder or another kind of non-file is at one of the
            paths, a file there belongs to another user or cannot be read and written, or the
            folder cannot be created.
    """
    ensure_folder(path)
    for suffix in SIBLING_SUFFIXES:
        _check_existing(path.with_name(path.name + suffix), database=path)
    _create_private(path)
    _check_existing(path, database=path)
    identity = FileIdentity.of(path)
    if identity is None:  # removed between the two calls: by whom is not ours to guess
        raise DatabaseUnusableError(f"The database {path} vanished while opening.", path=path)
    return identity


def ensure_folder(path: Path) -> None:
    """Create the folder of `path` (owner-only) when it is missing.

    Raises:
        DatabaseUnusableError: it cannot be created.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseUnusableError(
            f"Cannot create the data folder {path.parent}: {exc.strerror or exc}.",
            path=path,
            hint="Set MODELDECK_DATA_DIR to a folder you can write.",
        ) from exc


def move_aside(path: Path, identity: FileIdentity) -> Path | None:
    """Rename a damaged database (and its siblings) to `<name>.corrupt-<UTC time>`.

    Only the file that was found damaged is moved: when another process already replaced it
    (it found the damage too), nothing is moved and None is returned.

    Returns:
        Where the database went, or None.

    Raises:
        OSError: the rename failed (e.g. a read-only folder).
    """
    if FileIdentity.of(path) != identity:
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    number = 1
    while target.exists() or any(
        target.with_name(target.name + suffix).exists() for suffix in SIBLING_SUFFIXES
    ):
        number += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{number}")
    # The siblings go first: a -wal left behind would be replayed into the fresh database.
    # Named `<moved>-wal`, they stay the moved file's own, for whoever tries to rescue it.
    for suffix in SIBLING_SUFFIXES:
        with contextlib.suppress(FileNotFoundError):
            os.rename(path.with_name(path.name + suffix), target.with_name(target.name + suffix))
    os.rename(path, target)
    return target


def _create_private(path: Path) -> None:
    """Create `path` empty with mode 600 unless something is already there."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_FOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags, PRIVATE_MODE)
    except FileExistsError:
        return  # checked by the caller, without opening it
    except OSError as exc:
        raise DatabaseUnusableError(
            f"Cannot create the database {path}: {exc.strerror or exc}.",
            path=path,
            hint="Set MODELDECK_DATA_DIR to a folder you can write.",
        ) from exc
    os.close(descriptor)  # new and empty: no SQLite connection can have it open yet


def _check_existing(path: Path, *, database: Path) -> None:
    """Refuse anything at `path` but a plain file of this user; make such a file private."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise DatabaseUnusableError(
            f"{path} is a symbolic link; ModelDeck opens its database only as a plain file.",
            path=path,
            hint=f"Remove the link if you did not make it, or point MODELDECK_DATA_DIR at "
            f"the folder that really holds {database.name}.",
        )
    if stat.S_ISDIR(info.st_mode):
        raise DatabaseUnusableError(
            f"{path} is a folder, not ModelDeck's database file.", path=path, hint=_MOVE_HINT
        )
    if not stat.S_ISREG(info.st_mode):
        raise DatabaseUnusableError(
            f"{path} is not a plain file, so it cannot be ModelDeck's database.",
            path=path,
            hint=_MOVE_HINT,
        )
    owner = os.geteuid() if hasattr(os, "geteuid") else None
    if owner is not None and info.st_uid != owner:
        raise DatabaseUnusableError(
            f"{path} belongs to another user (uid {info.st_uid}); ModelDeck opens only "
            "its own database.",
            path=path,
            hint="Remove it if you did not put it there, or set MODELDECK_DATA_DIR to "
            "another folder.",
        )
    if not os.access(path, os.R_OK | os.W_OK) and path.exists():  # (gone: nothing to check)
        raise DatabaseUnusableError(
            f"Cannot read and write the database {path}: permission denied.",
            path=path,
            hint="Give your user read and write access to it (mode 600).",
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        # Left readable by others by a version that created it with the default umask.
        os.chmod(path, stat.S_IMODE(info.st_mode) & 0o700)
