"""Split a model card (a repository's README.md) into its YAML front matter and Markdown body.

Front matter is YAML written by strangers, so it is read with its work bounded:
- at most `MAX_FRONT_MATTER` characters (libyaml takes ~4 s for 1 MB of mappings);
- no aliases: `&a [*b, *b, …]` nine deep is a "billion laughs" that PyYAML builds cheaply as
  shared lists, but that every later walk of the metadata (the offline copy's `json.dumps`,
  chips, `str()`) expands to billions of items;
- nesting within `MAX_FRONT_MATTER_DEPTH`, so no later walk can overflow the stack.
"""

from __future__ import annotations

from typing import Any

import yaml
from huggingface_hub.repocard import REGEX_YAML_BLOCK

from app.hub.models import ModelCard
from app.text import first_line

__all__ = ["MAX_FRONT_MATTER", "MAX_FRONT_MATTER_DEPTH", "load_front_matter", "parse_card"]

MAX_FRONT_MATTER = 64 * 1024  # real cards' front matter, eval results included, is a few kB
MAX_FRONT_MATTER_DEPTH = 32
# The C loader is ~10x faster and stops at 1000 levels of nesting by itself; the pure-Python
# one (no libyaml) raises RecursionError instead, caught below.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_card(text: str) -> ModelCard:
    """Parse a README into a `ModelCard`.

    Broken front matter never raises: the body is kept, the metadata is empty, and
    `metadata_error` says what was wrong, so the card still shows.
    """
    match = REGEX_YAML_BLOCK.search(text)
    if match is None:
        return ModelCard(body=text)
    body = text[match.end() :]
    metadata, error = load_front_matter(match.group(2))
    if error is not None:
        return ModelCard(body=body, metadata_error=error)
    return ModelCard(body=body, metadata=metadata)


def load_front_matter(front: str) -> tuple[dict[str, Any], str | None]:
    """The mapping in a card's YAML front matter (without its `---` lines), bounded.

    Returns the metadata and None, or an empty mapping and one sentence saying why it could
    not be read (too large, not YAML, aliases, nested too deep, not a mapping).
    """
    if len(front) > MAX_FRONT_MATTER:
        return {}, (
            f"The card's metadata is too large to read ({len(front) // 1024} kB; "
            f"the limit is {MAX_FRONT_MATTER // 1024} kB)."
        )
    try:
        data = yaml.load(front, Loader=_LOADER)  # a safe loader: plain data only
    except yaml.YAMLError as exc:
        return {}, f"The card's metadata is not valid YAML: {first_line(exc, limit=200)}"
    except RecursionError:
        return {}, "The card's metadata is nested too deep to read."
    except ValueError as exc:  # a value YAML cannot build: an int of 60,000 digits, a bad date
        return (
            {},
            f"The card's metadata has a value that cannot be read: {first_line(exc, limit=200)}",
        )
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        return {}, "The card's metadata is not a mapping of keys to values."
    problem = _shape_problem(data)
    if problem is not None:
        return {}, f"The card's metadata {problem}."
    return {str(key): value for key, value in data.items()}, None


def _shape_problem(data: dict[Any, Any]) -> str | None:
    """Why the loaded tree is unsafe to walk (an alias, deep nesting), or None; linear."""
    seen: set[int] = set()
    stack: list[tuple[object, int]] = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list):
            continue
        if id(item) in seen:  # only an alias makes PyYAML return one container twice
            return "uses YAML aliases, which model cards have no need of"
        seen.add(id(item))
        if depth > MAX_FRONT_MATTER_DEPTH:
            return "is nested too deep to read"
        children = item.values() if isinstance(item, dict) else item  # keys are scalars
        stack.extend((child, depth + 1) for child in children)
    return None
