"""The size rules of the chat-template sandbox: how big a value is, and what an operation
would build, measured before it is built.

One C call can allocate gigabytes (`'{:>{w}}'.format('x', w='250000000')`, `'x' * 10**9`,
a list holding one long string a thousand times turned into text), and neither a time limit
nor a check of the result can stop an allocation that has already happened. So every
operation whose output size is set by a number (a width, a count, a precision) or by a
repetition (a separator per item, a replacement per match, a key used by many fields) is
estimated here first, and refused when the estimate passes the render's budget.

Operations whose output is at most a small constant times their inputs (`upper`, `escape`,
a slice) need no estimate: their inputs are values this module has already bounded, and
their results are checked afterwards. Splitting a string into one object per piece is the
one exception (a character as a Python object costs about 50 times its size in text), so
that is bounded by a count of pieces, `MAX_ITEMS`, as Jinja bounds `range()` by MAX_RANGE.
"""

from __future__ import annotations

import re
import sys
from collections.abc import ItemsView, Iterable, KeysView, Mapping, ValuesView
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.sandbox import MAX_RANGE
from jinja2.utils import Namespace

__all__ = [
    "BUDGET",
    "BUILT_FACTOR",
    "MAX_COUNT",
    "MAX_INT_BITS",
    "MAX_ITEMS",
    "Budget",
    "Shape",
    "check_binop",
    "check_counts",
    "check_estimate",
    "check_format_digits",
    "check_percent",
    "check_pieces",
    "check_result",
    "check_size",
    "check_str_call",
    "current_budget",
    "field_estimate",
    "formatted_size",
    "join_estimate",
    "join_items",
    "note_built",
    "refuse",
    "replace_estimate",
    "shape",
    "text_of",
    "text_size",
]

# The largest number a template may hand a filter or method as a count or a width: the same
# bound Jinja's sandbox puts on range().
MAX_COUNT = MAX_RANGE
# How many pieces a string may be split into in one step (a list of characters, of words).
MAX_ITEMS = MAX_RANGE
# Big integers are a way to burn time in one C call (10 ** (10 ** 9)); no template needs them.
MAX_INT_BITS = 4096
# Room for one formatted number: a float's 309 digits with thousands separators and a sign.
_NUMBER_CHARS = 450
_DIGIT_RUN = re.compile(r"\d+")
# A printf-style conversion: %[(key)][flags][width][.precision][length]type. A key holding
# parentheses is refused rather than parsed (Python nests them; no template needs it).
_PERCENT_FIELD = re.compile(
    r"%(?:\((?P<key>[^()]*)\))?[-#0 +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d*))?"
    r"[hlL]?(?P<kind>[\s\S]?)"
)
# Every character str.splitlines breaks at.
_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
# Every character str.split() without a separator splits at (those whose isspace() is true).
_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_REFUSED_STR_METHODS = frozenset({"encode", "maketrans", "translate"})


@dataclass(slots=True)
class Budget:
    """What one render may build: any one value at most `max_chars` characters, and all the
    values it builds, together, at most `max_built` (see `note_built`)."""

    max_chars: int
    max_built: int
    built: int = 0

    @classmethod
    def for_render(cls, max_chars: int) -> Budget:
        return cls(max_chars=max_chars, max_built=BUILT_FACTOR * max_chars)


# How much a render may build in all, as a multiple of its `max_chars`. A real template
# builds a few times its conversation (a trimmed copy of each message, the pieces of a
# split); `max_chars` is at least twice the conversation, so this leaves room to spare.
BUILT_FACTOR = 8
# The budget of the render in progress on this thread (or task); see `current_budget`.
BUDGET: ContextVar[Budget | None] = ContextVar("BUDGET", default=None)
# Outside a render (nothing renders there: Jinja folds constants while it compiles, inside
# one) each value is bounded as in a small render, and building in all is not.
_OUTSIDE_A_RENDER_CHARS = 1_000_000


def current_budget() -> Budget:
    """The budget of the render in progress (outside one, a fresh unbounded-in-all one)."""
    budget = BUDGET.get()
    if budget is None:
        return Budget(max_chars=_OUTSIDE_A_RENDER_CHARS, max_built=sys.maxsize)
    return budget


def refuse(what: str) -> SecurityError:
    """The error for an operation the sandbox will not run (raise it)."""
    return SecurityError(what)


def _limit() -> int:
    return current_budget().max_chars


# -- measuring values ----------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """About how big a value is as text: its characters (a container's items count one each,
    for their separators), how many items it holds in all, and how deeply it nests."""

    chars: int
    items: int
    depth: int


def shape(value: object, limit: int) -> Shape:
    """Measure `value` as its text (str, repr, JSON) would be, counting a string that a list
    holds many times once per time, as the text would. Stops once past `limit` characters,
    so a value that refers to itself, or doubles at every level, is measured quickly.

    It runs under the render's tracer, which Python calls at every call of a Python
    function: so it walks level by level with no call per item (no generator, no helper,
    and concrete types before the abstract ones, whose isinstance is Python code)."""
    chars = items = depth = 0
    level: list[object] = [value]
    while level and chars <= limit:
        below: list[object] = []
        for item in level:
            if isinstance(item, str):
                chars += len(item)
            elif isinstance(item, int):  # its decimal digits, from its bits, and a sign
                chars += item.bit_length() * 3 // 10 + 2
            elif isinstance(item, (list, tuple, set, frozenset)):
                below.extend(item)
                chars += len(item)
                items += len(item)
            elif isinstance(item, dict):
                below.extend(item.keys())
                below.extend(item.values())
                chars += len(item)
                items += len(item)
            elif item is None or isinstance(item, float):
                chars += 4
            elif isinstance(item, (bytes, bytearray)):
                chars += 4 * len(item)  # repr writes most bytes as \\xNN
            else:
                children = _children(item)
                if children is None:
                    chars += 1  # an Undefined, a macro, a loop: short as text
                else:
                    below.extend(children)
                    chars += len(children)
                    items += len(children)
            if chars > limit:
                break
        if below:
            depth += 1
        level = below
    return Shape(chars=chars, items=items, depth=depth)


def _children(item: object) -> list[object] | None:
    """What the rarer containers hold (a namespace's attributes, a mapping's keys and
    values, a dict view's items); None for anything that is not a container."""
    if isinstance(item, Namespace):  # {% set ns.x = … %} attributes, shown by its repr
        item = object.__getattribute__(item, "_Namespace__attrs")
    if isinstance(item, Mapping):
        return [*item.keys(), *item.values()]
    if isinstance(item, (KeysView, ValuesView, ItemsView)):
        return list(item)
    return None


def text_size(value: object, limit: int) -> int:
    """About how many characters `value` is as text (see `shape`); stops once past `limit`."""
    if isinstance(value, str):  # the common case, without the walk
        return len(value)
    return shape(value, limit).chars


def formatted_size(value: object, limit: int) -> int:
    """The most characters one format field or %-conversion can write for `value`, before
    its width and precision: a string its length, a number its longest form (binary with
    separators, a float's 309 digits)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, int):
        return value.bit_length() * 5 // 4 + 8
    if isinstance(value, float):
        return _NUMBER_CHARS
    return text_size(value, limit)


# -- checks --------------------------------------------------------------------------------


def check_estimate(estimate: int, what: str) -> None:
    """Refuse an operation whose output would be about `estimate` characters, over budget."""
    limit = _limit()
    if estimate > limit:
        raise refuse(f"{what} would be over {limit:,} characters")


def check_size(value: object, what: str) -> None:
    """Refuse `value` (a result, or an input about to become text) if it is over budget."""
    limit = _limit()
    if text_size(value, limit) > limit:
        raise refuse(f"{what} would be over {limit:,} characters")


def note_built(value: object, *, as_text: bool = False) -> None:
    """Count a value the template has just built against the render's `max_built`.

    Each value is bounded by `max_chars`, but a template can keep many of them alive at
    once (a `{% set %}` per line, one argument per level of a recursive macro), and every
    copy is a new allocation, however fast: so the render's whole building is bounded. A
    string counts its length; a new list, tuple or dict eight per slot (a pointer) plus the
    strings directly in it (the pieces of a split are new; a list of existing strings is
    counted generously). `as_text`: the value is about to be turned into a new string.
    """
    budget = current_budget()
    if isinstance(value, str):
        budget.built += len(value)
    elif as_text:
        budget.built += text_size(value, budget.max_chars)
    elif isinstance(value, (list, tuple, set, frozenset)):
        budget.built += 8 * len(value)
        for item in value:
            if isinstance(item, str):
                budget.built += len(item)
    elif isinstance(value, dict):
        budget.built += 16 * len(value)
    if budget.built > budget.max_built:
        raise refuse(f"the template built more than {budget.max_built:,} characters in all")


def check_result(value: object, what: str) -> None:
    """Check a value the template has just built: on its own (`check_size`), and counted
    with everything else it built (`note_built`)."""
    check_size(value, what)
    note_built(value)


def check_counts(args: Iterable[object]) -> None:
    """Refuse numbers too big to be a count or a width (center(10**9), '%*s' % (10**9, x)).

    Only applied where a number is a size: elsewhere a big number is just a number."""
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_COUNT:
            raise refuse(f"the number {arg} is over the {MAX_COUNT:,} allowed as an argument")


def check_pieces(text: str, pieces: int, what: str) -> None:
    """Refuse splitting `text` into more than `MAX_ITEMS` pieces (one object each)."""
    if pieces > MAX_ITEMS:
        raise refuse(
            f"{what} would split {len(text):,} characters into more than {MAX_ITEMS:,} pieces"
        )


def check_format_digits(text: str) -> int:
    """Refuse a format string or spec with a width or precision over `MAX_COUNT`
    ('%999999999s', '{:>999999999}'); returns the sum of its numbers (the most they add)."""
    total = 0
    for run in _DIGIT_RUN.findall(text):
        if len(run) > len(str(MAX_COUNT)) or int(run) > MAX_COUNT:
            raise refuse(f"a format string asks for a width of {run[:12]}")
        total += int(run)
    return total


def field_estimate(value: object, spec: str) -> int:
    """The most characters `format(value, spec)` can write, `spec` fully resolved (nested
    fields like '{:>{w}}' filled in): the value's longest form plus every number in the
    spec (a width pads to it, a precision writes that many digits)."""
    return check_format_digits(spec) + formatted_size(value, _limit())


def check_percent(template: str, values: object) -> None:
    """Refuse `template % values` when its result would be over budget: each conversion's
    width and precision, and the value it writes (a mapping's value once per key that
    names it, so '%(a)s%(a)s…' counts `a` every time)."""
    limit = _limit()
    mapping = values if isinstance(values, Mapping) else None
    positional = values if isinstance(values, tuple) else (values,)
    position = 0
    total = len(template)
    for field in _PERCENT_FIELD.finditer(template):
        kind = field["kind"]
        if kind == "(":
            raise refuse("a %-format key holds parentheses")
        size = 0
        for part in (field["width"], field["precision"]):
            if part == "*":  # taken from the values
                number = positional[position] if position < len(positional) else 0
                position += 1
                check_counts((number,))
                size += abs(number) if isinstance(number, int) else 0
            elif part:
                size += check_format_digits(part)
        if kind == "%":
            total += size + 1
            continue
        key = field["key"]
        if key is not None and mapping is not None:
            value = mapping.get(key)
        else:
            value = positional[position] if position < len(positional) else None
            position += 1
        total += size + formatted_size(value, limit)
        if total > limit:
            break
    check_estimate(total, "a % format")


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse `left <operator> right` when its result would be enormous."""
    if operator == "**":
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and right > 0
            and left.bit_length() * right > MAX_INT_BITS
            and abs(left) > 1
        ):
            raise refuse("a power would be an enormous number")
    elif operator == "*":
        limit = _limit()
        if isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise refuse("a product would be an enormous number")
        elif isinstance(left, (str, list, tuple)) and isinstance(right, int):
            check_estimate(text_size(left, limit) * max(right, 0), "a repetition")
        elif isinstance(right, (str, list, tuple)) and isinstance(left, int):
            check_estimate(text_size(right, limit) * max(left, 0), "a repetition")
    elif operator == "+":
        if not isinstance(left, (int, float)):
            limit = _limit()
            check_estimate(text_size(left, limit) + text_size(right, limit), "a sum")
    elif operator == "%" and isinstance(left, str):
        check_percent(left, right)


def check_str_call(
    owner: str, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[Any, ...]:
    """Check a call of the `str` method `name` on `owner`, before it runs, for a result that
    would be too big or too many pieces.

    Returns the positional arguments to call it with: `join` gets its iterable as a list, so
    that it can be measured first.
    """
    check_counts((*args, *kwargs.values()))
    if name in _REFUSED_STR_METHODS:
        raise refuse(f"str.{name} is not available to chat templates")

    def argument(index: int, keyword: str, default: Any = None) -> Any:
        return args[index] if len(args) > index else kwargs.get(keyword, default)

    if name in ("center", "ljust", "rjust", "zfill"):
        width = argument(0, "width", 0)
        if isinstance(width, int):
            check_estimate(max(len(owner), width), f"str.{name}")
    elif name == "expandtabs":
        tab = argument(0, "tabsize", 8)
        if isinstance(tab, int):
            check_estimate(len(owner) + owner.count("\t") * max(tab, 0), "expandtabs")
    elif name == "replace" and len(args) >= 2:
        count = argument(2, "count", -1)
        count = count if isinstance(count, int) else -1
        check_estimate(replace_estimate(owner, args[0], args[1], count), "a replace")
    elif name == "join" and args:
        items = join_items(args[0], "a join")
        check_estimate(join_estimate(items, owner), "a join")
        return (items, *args[1:])
    elif name in ("split", "rsplit"):
        pieces = _split_pieces(owner, argument(0, "sep"), argument(1, "maxsplit", -1))
        check_pieces(owner, pieces, f"str.{name}")
    elif name == "splitlines":
        check_pieces(owner, sum(owner.count(mark) for mark in _LINE_BREAKS) + 1, "splitlines")
    return args


def _split_pieces(text: str, separator: object, most: object) -> int:
    """The most pieces `text.split(separator, most)` makes, counted without splitting."""
    if isinstance(separator, str) and separator:
        pieces = text.count(separator) + 1
    elif len(text) // 2 + 1 <= MAX_ITEMS:  # words need a space between them
        pieces = len(text) // 2 + 1
    else:
        pieces = sum(text.count(space) for space in _WHITESPACE) + 1
    if isinstance(most, int) and not isinstance(most, bool) and most >= 0:
        pieces = min(pieces, most + 1)
    return pieces


def join_items(iterable: Any, what: str) -> list[Any]:
    """The items a join will write, as a list it can measure; a string is refused once it
    has more characters than `MAX_ITEMS` (each would become an object)."""
    if isinstance(iterable, str):
        check_pieces(iterable, len(iterable), what)
    items: list[Any] = list(iterable)  # list() says so when it is not iterable
    return items


def text_of(value: object, what: str) -> str:
    """`value` as text (a filter's argument it writes out: a separator, a replacement), once
    its size is known to be within budget."""
    if isinstance(value, str):
        return value
    check_size(value, what)
    return str(value)


def join_estimate(items: list[Any], separator: object) -> int:
    """The size of `separator.join(items)` (items as text)."""
    limit = _limit()
    return text_size(items, limit) + text_size(separator, limit) * max(len(items) - 1, 0)


def replace_estimate(text: object, old: object, new: object, count: int = -1) -> int:
    """The size of `text.replace(old, new, count)`: every match (an empty `old` matches
    between every two characters) gains `new`."""
    text, old = text_of(text, "a replace"), text_of(old, "a replace")
    hits = text.count(old) if old else len(text) + 1
    if count >= 0:
        hits = min(hits, count)
    return len(text) + hits * text_size(new, _limit())
