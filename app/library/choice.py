"""Choosing one library entry for what a person typed: the shared steps behind "which model".

Chat (`app.chat.model_choice`) and Images (`app.images.choice`) both find the entries that
match, keep those of the kinds they can run, keep those with a copy on disk, and refuse when
none or several are left. They word their refusals themselves: this module hands them what
was found (`ChoiceMiss`, or the several entries) and raises what they build.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from app.library.catalog import LibraryEntry
from app.library.library import Library
from app.library.sniff import ModelKind

__all__ = ["ChoiceMiss", "choose_entry", "list_options"]


@dataclass(frozen=True, kw_only=True)
class ChoiceMiss:
    """What the library held for a query that chose nothing."""

    matches: tuple[LibraryEntry, ...]  # every entry the query names, of any kind
    wanted: tuple[LibraryEntry, ...]  # those of the wanted kinds (and filter); none present

    @property
    def absent(self) -> bool:
        """Wanted entries exist, but no copy is on disk now (a drive or folder is gone)."""
        return bool(self.wanted)

    @property
    def other_kinds(self) -> list[ModelKind]:
        """The kinds the query names instead, when it names only entries of other kinds."""
        if self.wanted:
            return []
        return sorted({entry.kind for entry in self.matches}, key=lambda kind: kind.value)


def choose_entry(
    library: Library,
    query: str,
    *,
    kinds: Collection[ModelKind],
    keep: Callable[[LibraryEntry], bool] | None = None,
    none_left: Callable[[ChoiceMiss], Exception],
    several_left: Callable[[Sequence[LibraryEntry]], Exception],
) -> LibraryEntry:
    """The one entry `query` names among `kinds` (and `keep`), with a copy on disk.

    The library scans on first use: blocking.

    Raises:
        Exception: `none_left(miss)` when no such entry is present, `several_left(entries)`
            when more than one is.
    """
    matches = library.find(query)
    wanted = [entry for entry in matches if entry.kind in kinds and (keep is None or keep(entry))]
    present = [entry for entry in wanted if entry.present]
    if not present:
        raise none_left(ChoiceMiss(matches=tuple(matches), wanted=tuple(wanted)))
    if len(present) > 1:
        raise several_left(present)
    return present[0]


def list_options(
    entries: Iterable[LibraryEntry], describe: Callable[[LibraryEntry], str], *, most: int = 8
) -> str:
    """The first `most` of `entries`, described and sorted, for a "matches several" message."""
    return ", ".join(sorted(describe(entry) for entry in entries)[:most])
