"""Names and hashes a hub sends, checked before any of them becomes a path on disk.

A hub's answers are a stranger's data. In the HF cache a repository id becomes a folder name
(`models--{org}--{name}`), a commit id a folder (`snapshots/{commit}`), a file name a path
below it, a sha256 or git blob id a file name in `blobs/`, and a branch a file in `refs/`. So
each of them is checked here, in one place, before the download queue saves or writes anything:
a name that could leave its folder on any platform ModelDeck runs on (`..`, an absolute path, a
backslash, a drive letter, NUL, a Windows device name) is refused, and a hash must be hex of its
exact length. The checks return the value in its canonical form (hashes in lower case).
"""

from __future__ import annotations

import os
import re
from typing import Final

from huggingface_hub.errors import HFValidationError

# The documented home of validate_repo_id; its lazy __init__ hides the name from mypy.
from huggingface_hub.utils import validate_repo_id  # type: ignore[attr-defined]

from app.errors import HubResponseError

MAX_FILE_SIZE: Final = 1 << 45
"""32 TiB: no model file is near this; a larger declared size is a broken or hostile listing
(it would also overflow the queue's SQLite integers once summed)."""

MAX_PATH_BYTES: Final = 4096
"""A whole path in a repository, in UTF-8 bytes (Linux's PATH_MAX)."""

MAX_SEGMENT_BYTES: Final = 255
"""One file or folder name, in UTF-8 bytes (the limit of ext4, APFS and NTFS alike)."""

_SHOWN_CHARS = 80  # how much of a refused value an error message quotes

_HEX40 = re.compile(r"[0-9a-fA-F]{40}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"[A-Za-z]:")
# Characters Windows refuses in a name; ":" also opens an NTFS alternate data stream.
_WINDOWS_FORBIDDEN = frozenset('<>:"|?*')
# Device names: `NUL.txt` or `com1` opens the device, in any folder, on Windows.
_WINDOWS_DEVICES = re.compile(r"(?:CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|(?:COM|LPT)[0-9¹²³])", re.I)
# git check-ref-format: what a branch or tag may not contain.
_REF_FORBIDDEN = frozenset(" ~^:?*[\\")

ON_WINDOWS: Final = os.name == "nt"


class UnsafeHubDataError(HubResponseError):
    """The hub sent a name or hash that ModelDeck refuses to use (it could leave the cache).

    `field` says what it was ("file name", "commit", "sha256", ...), `value` what was sent.
    """

    def __init__(self, message: str, *, repo_id: str, field: str, value: object) -> None:
        super().__init__(
            message,
            hint="Nothing was downloaded. The repository or the hub is broken or hostile.",
        )
        self.repo_id = repo_id
        self.field = field
        self.value = value


def check_repo_id(value: object) -> str:
    """`value` if it is a repository id that names one cache folder, like `org/name`.

    The rule is huggingface_hub's own (`validate_repo_id`): letters, digits, `-`, `_` and
    `.`, one optional `/`, no `--` or `..`, at most 96 characters per part, no `.git` ending.

    Raises:
        UnsafeHubDataError: for anything else.
    """
    if not isinstance(value, str):
        raise _refused("", "repository id", value, "it is not text")
    try:
        validate_repo_id(value)
    except HFValidationError:
        raise _refused("", "repository id", value, "not of the form org/name") from None
    return value


def check_file_path(value: object, *, repo_id: str = "", windows: bool = ON_WINDOWS) -> str:
    """`value` if it is a relative path that stays inside the folder it is joined to.

    Refused everywhere: empty names, absolute paths, `.` and `..` segments, empty segments,
    backslashes, drive letters (`C:x`), control characters and NUL, text that is not valid
    Unicode, and names too long for a file system. With `windows` (default: on Windows), also
    the characters `<>:"|?*`, names ending in a dot or a space, and device names (`CON`,
    `NUL.txt`, `COM1`, ...).

    Raises:
        UnsafeHubDataError: with the reason, for a refused name.
    """
    what = "file name"
    if not isinstance(value, str):
        raise _refused(repo_id, what, value, "it is not text")
    reason = _path_problem(value, windows=windows)
    if reason is not None:
        raise _refused(repo_id, what, value, reason)
    return value


def check_ref(value: object, *, repo_id: str = "") -> str:
    """`value` if it is a branch or tag name that can be a file under `refs/`.

    A file path (see `check_file_path`, with Windows' rules everywhere) that git would also
    accept as a ref: no segment starting with `.` or ending in `.lock`, none of ` ~^:?*[\\`,
    no `@{`.

    Raises:
        UnsafeHubDataError: for anything else.
    """
    what = "branch or tag"
    if not isinstance(value, str):
        raise _refused(repo_id, what, value, "it is not text")
    reason = _path_problem(value, windows=True)
    if reason is None and _git_refuses_ref(value):
        reason = "git does not allow it in a branch or tag name"
    if reason is not None:
        raise _refused(repo_id, what, value, reason)
    return value


def check_commit(value: object, *, repo_id: str = "") -> str:
    """A commit id as 40 lower-case hex digits. Raises `UnsafeHubDataError` for anything else."""
    return _hex(value, _HEX40, repo_id=repo_id, what="commit id", length=40)


def check_sha256(value: object, *, repo_id: str = "") -> str:
    """A sha256 as 64 lower-case hex digits. Raises `UnsafeHubDataError` for anything else."""
    return _hex(value, _HEX64, repo_id=repo_id, what="sha256", length=64)


def check_git_oid(value: object, *, repo_id: str = "") -> str:
    """A git blob id as 40 lower-case hex digits. Raises `UnsafeHubDataError` otherwise."""
    return _hex(value, _HEX40, repo_id=repo_id, what="git blob id", length=40)


def check_size(value: object, *, repo_id: str = "", path: str = "") -> int:
    """A file size: an int from 0 to `MAX_FILE_SIZE`. Raises `UnsafeHubDataError` otherwise."""
    what = f"size of {path}" if path else "file size"
    if not isinstance(value, int) or isinstance(value, bool):
        raise _refused(repo_id, what, value, "it is not a whole number")
    if value < 0:
        raise _refused(repo_id, what, value, "it is negative")
    if value > MAX_FILE_SIZE:
        raise _refused(repo_id, what, value, "no model file is that large")
    return value


def shown(value: object) -> str:
    """`value` quoted for an error message: escaped, on one line, at most ~80 characters."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


# -- internals ----------------------------------------------------------------------------------


def _path_problem(value: str, *, windows: bool) -> str | None:
    """Why `value` is not a safe relative path, or None when it is."""
    if not value:
        return "it is empty"
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid Unicode"
    if len(encoded) > MAX_PATH_BYTES:
        return f"longer than {MAX_PATH_BYTES} bytes"
    if _CONTROL.search(value):
        return "it contains a control character or NUL"
    if "\\" in value:
        return "it contains a backslash (a folder separator on Windows)"
    if value.startswith("/"):
        return "it is an absolute path"
    if _DRIVE.match(value):
        return "it starts with a drive letter"
    for segment in value.split("/"):
        if segment in ("", ".", ".."):
            return "it has an empty, '.' or '..' part"
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            return f"a part is longer than {MAX_SEGMENT_BYTES} bytes"
        if windows:
            problem = _windows_segment_problem(segment)
            if problem is not None:
                return problem
    return None


def _git_refuses_ref(value: str) -> bool:
    if _REF_FORBIDDEN & set(value) or "@{" in value or value == "@":
        return True
    return any(s.startswith(".") or s.endswith(".lock") for s in value.split("/"))


def _windows_segment_problem(segment: str) -> str | None:
    if _WINDOWS_FORBIDDEN & set(segment):
        return 'it contains one of <>:"|?* (not allowed on Windows)'
    if segment.endswith((".", " ")):
        return "a part ends in a dot or a space (Windows drops them)"
    stem = segment.split(".", 1)[0].rstrip(" ")
    if _WINDOWS_DEVICES.fullmatch(stem):
        return "it names a Windows device"
    return None


def _hex(value: object, pattern: re.Pattern[str], *, repo_id: str, what: str, length: int) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _refused(repo_id, what, value, f"not {length} hex digits")
    return value.lower()


def _refused(repo_id: str, what: str, value: object, reason: str) -> UnsafeHubDataError:
    where = f"{repo_id}: " if repo_id else ""
    return UnsafeHubDataError(
        f"{where}the hub sent the {what} {shown(value)}, which ModelDeck refuses: {reason}.",
        repo_id=repo_id,
        field=what,
        value=value,
    )
