"""Grammars that constrain a reply: JSON Schema (or "any JSON object") to llama.cpp's GBNF.

llama.cpp samples under a GBNF grammar (`Generate.grammar`), so even a tiny model returns
text the grammar accepts. This module turns what a person or a client asks for — OpenAI's
`response_format` `json_object`, a JSON Schema — into that GBNF text, in the app process.

Why here and not in the engine child: an invalid schema must be refused at once (a 400 before
a stream starts, a message under the Chat page's schema box) rather than after the request has
waited its turn in the engine's queue; and a schema is composed with others (a forced tool
call is a schema over every tool's parameters) before it becomes one grammar. The converter is
llama-cpp-python's own (`llama_cpp/llama_grammar.py`, a port of llama.cpp's
json_schema_to_grammar.py): that file is plain Python with only standard-library imports, so
it is loaded here by its path, *without* importing the `llama_cpp` package, whose
`__init__` loads the native library (which stays in the engine child). The child still checks
the GBNF before it samples (`llama_worker`): a grammar llama.cpp cannot parse would crash it.

A schema comes from a client, so it is bounded before it is converted: its depth, and the
repetition counts (`minLength`, `maxItems`, `{n,m}` in a pattern…) that the converter writes
out one copy at a time.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from app.errors import AppError

__all__ = [
    "JSON_OBJECT_SCHEMA",
    "MAX_GRAMMAR_CHARS",
    "GrammarError",
    "GrammarUnavailableError",
    "grammar_for_json_object",
    "grammar_for_schema",
    "grammar_for_schema_text",
    "parse_schema",
]

# "Any JSON object": OpenAI's json_object mode, as a schema the converter knows.
JSON_OBJECT_SCHEMA: Mapping[str, Any] = {"type": "object"}

MAX_SCHEMA_DEPTH = 32  # real schemas nest a handful of levels
MAX_REPETITION = 1_000  # the converter writes `{0,n}` as n nested copies of a rule
MAX_GRAMMAR_CHARS = 1_000_000  # a grammar llama.cpp parses in well under a second
_COUNT_KEYWORDS = frozenset(
    {"minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"}
)
_LOOSE_CHAR = r'char ::= [^"\\] |'
_JSON_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'
_PATTERN_COUNT = re.compile(r"\{\s*(\d+)\s*(?:,\s*(\d*)\s*)?\}")


class GrammarError(AppError, ValueError):
    """A schema that cannot become a grammar (invalid, unsupported, or too large)."""


class GrammarUnavailableError(GrammarError):
    """llama-cpp-python, whose schema converter this uses, is not installed."""


def parse_schema(text: str) -> Mapping[str, Any]:
    """A JSON Schema typed by a person (the Chat page's box, `--json-schema FILE`), checked
    to be one the grammar can express.

    Raises:
        GrammarError: the text is not a JSON object, or not a schema the converter takes.
    """
    schema = _schema_of(text)
    grammar_for_schema(schema)  # refuse now what the engine would refuse later
    return schema


def grammar_for_schema_text(text: str) -> str:
    """`grammar_for_schema` of a schema given as JSON text (`Sampling.json_schema`).

    Raises:
        GrammarError: as `parse_schema`.
    """
    return grammar_for_schema(_schema_of(text))


def _schema_of(text: str) -> Mapping[str, Any]:
    try:
        schema = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise GrammarError(f"The JSON schema is not valid JSON ({exc}).") from None
    if not isinstance(schema, dict):
        raise GrammarError("The JSON schema must be a JSON object ({...}).")
    return schema


def grammar_for_json_object() -> str:
    """GBNF for "any JSON object" (OpenAI's `response_format: {"type": "json_object"}`)."""
    return grammar_for_schema(JSON_OBJECT_SCHEMA)


def grammar_for_schema(schema: Mapping[str, Any]) -> str:
    """GBNF text whose every sentence is JSON valid against `schema`.

    Local `$ref`s (`#/$defs/...`) are followed; remote ones are refused.

    Raises:
        GrammarError: the schema is not an object, nests deeper than `MAX_SCHEMA_DEPTH`, asks
            for more than `MAX_REPETITION` repeats, or the converter refuses it (an unknown
            type, a broken `$ref`, a pattern without ^…$).
        GrammarUnavailableError: llama-cpp-python is not installed.
    """
    if not isinstance(schema, Mapping):
        raise GrammarError("A JSON schema must be a JSON object.")
    _check_bounds(schema, depth=0)
    converter = _converter_module()
    try:
        text = json.dumps(schema)
        grammar: str = converter.json_schema_to_gbnf(text)
    except RecursionError:
        raise GrammarError("The JSON schema nests too deeply.") from None
    except Exception as exc:  # the converter asserts, indexes and iterates freely
        raise GrammarError(f"The JSON schema is not supported: {_reason(exc)}.") from None
    # The converter lets a string hold raw control characters, which JSON forbids (a reply
    # would not parse); llama.cpp's own converter has since excluded them the same way.
    grammar = grammar.replace(_LOOSE_CHAR, _JSON_CHAR)
    if len(grammar) > MAX_GRAMMAR_CHARS:
        raise GrammarError("The JSON schema makes a grammar too large to sample with.")
    if re.search(r"^root ::=\s*$", grammar, flags=re.MULTILINE):
        # e.g. {"enum": []}: nothing can match, and llama.cpp would refuse the grammar.
        raise GrammarError("The JSON schema matches nothing (an empty enum?).")
    return grammar


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "…"


def _check_bounds(node: Any, *, depth: int) -> None:
    """Refuse a schema whose grammar would be enormous before building it."""
    if depth > MAX_SCHEMA_DEPTH:
        raise GrammarError(f"The JSON schema nests more than {MAX_SCHEMA_DEPTH} levels deep.")
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key in _COUNT_KEYWORDS and isinstance(value, int) and value > MAX_REPETITION:
                raise GrammarError(
                    f"The JSON schema's {key} of {value:,} is over the {MAX_REPETITION:,} "
                    "a grammar can spell out."
                )
            if key == "pattern" and isinstance(value, str):
                for match in _PATTERN_COUNT.finditer(value):
                    counts = [int(group) for group in match.groups() if group]
                    if any(count > MAX_REPETITION for count in counts):
                        raise GrammarError(
                            f"The JSON schema's pattern repeats more than {MAX_REPETITION:,} times."
                        )
            _check_bounds(value, depth=depth + 1)
    elif isinstance(node, list):
        for item in node:
            _check_bounds(item, depth=depth + 1)


@functools.cache
def _converter_module() -> ModuleType:
    """llama-cpp-python's `llama_grammar.py`, loaded by path under a private name, so that
    `llama_cpp` itself (and its native library) is not imported into this process."""
    spec = importlib.util.find_spec("llama_cpp")  # finds the package; runs none of it
    locations = spec.submodule_search_locations if spec is not None else None
    if not locations:
        raise GrammarUnavailableError(
            "JSON output needs the LLM runtime (llama-cpp-python), which is not installed.",
            hint="Install it with `pip install 'modeldeck[llm]'`.",
        )
    path = Path(next(iter(locations))) / "llama_grammar.py"
    module_spec = importlib.util.spec_from_file_location("modeldeck_llama_grammar", path)
    if module_spec is None or module_spec.loader is None or not path.is_file():
        raise GrammarUnavailableError(f"llama-cpp-python has no grammar converter at {path}.")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module
