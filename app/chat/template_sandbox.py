"""Render an untrusted Jinja template without letting it run code or exhaust the app.

A GGUF file carries its chat template as Jinja source, and ModelDeck renders it in the app's
own process, so a template from a file off the internet is untrusted code. It is rendered the
way transformers and llama-cpp-python do (an `ImmutableSandboxedEnvironment` with
`trim_blocks`, `lstrip_blocks`, `loopcontrols`, `raise_exception`, `strftime_now` and a plain
`tojson`), so templates written for them render the same here, with three guards on top:

- Nothing runs. The sandbox refuses private attributes (`__class__`, `__globals__`, …) and the
  methods that change lists and dicts; that is what keeps a template from reaching Python
  itself. Jinja before 3.1.6 had sandbox escapes through `str.format`, hence the floor in
  pyproject.toml.
- Sizes are bounded. Every string or list a template builds (`+`, `*`, `**`, `%`, `~`, filter and
  function results, `{% set %}` and macro output) and the output itself must stay within
  `max_chars`; numbers used as counts or widths must stay within `MAX_RANGE`; and the filters
  and string methods that can multiply a size in one step (`join`, `replace`, `indent`, …) are
  checked before they run.
- Time is bounded. A trace function on the rendering thread stops the template at its
  deadline, however it loops.

Any failure — a syntax error, an undefined name, `raise_exception`, a refused operation, a
limit — comes out as one `ChatTemplateError` whose message says why, for a person.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from types import FrameType
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError
from jinja2.ext import Extension, loopcontrols
from jinja2.nodes import EvalContext
from jinja2.parser import Parser
from jinja2.runtime import Context
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum, pass_environment, pass_eval_context

from app.errors import ChatTemplateError

__all__ = ["MAX_TEMPLATE_CHARS", "render_sandboxed"]

# Real chat templates are a few kB, the largest tens of kB; parsing more is wasted time.
MAX_TEMPLATE_CHARS = 256_000
# The largest number a template may hand a filter or function as a count or a width: the same
# bound the sandbox puts on range().
_MAX_COUNT = MAX_RANGE
# Big integers are a way to burn time in one C call (10 ** (10 ** 9)); no template needs them.
_MAX_INT_BITS = 4096
# tojson's indent: templates use 2 or 4; deep nesting multiplies it.
_MAX_JSON_INDENT = 16
# A failure's reason goes into a note; the template chooses the text of raise_exception().
_MAX_REASON_CHARS = 200
# What Jinja names the code it compiles from a string.
_TEMPLATE_FILENAME = "<template>"
_DIGIT_RUN = re.compile(r"\d+")
# Jinja's filters whose numeric arguments are sizes (widths, lengths, counts).
_SIZED_FILTERS = frozenset({"batch", "center", "format", "indent", "slice", "truncate", "wordwrap"})


class _OutOfTime(BaseException):
    """Raised into the template at its deadline; a BaseException so no `except Exception` in a
    filter can swallow it."""


class _TooLong(BaseException):
    """The rendered output passed `max_chars`."""


@dataclass(frozen=True)
class _Budget:
    max_chars: int
    deadline: float  # time.monotonic()


# The budget of the render in progress on this thread (or task); the hooks of the shared
# environment read it. Outside a render (compile-time constant folding) the default applies.
_OUTSIDE_A_RENDER = _Budget(max_chars=1_000_000, deadline=float("inf"))
_BUDGET: ContextVar[_Budget] = ContextVar("_BUDGET", default=_OUTSIDE_A_RENDER)


def render_sandboxed(
    source: str, variables: Mapping[str, Any], *, max_chars: int, time_limit_s: float
) -> str:
    """Render the Jinja template `source` with `variables`, within the guards above.

    Raises:
        ChatTemplateError: the template could not be parsed, failed while rendering, tried
            something the sandbox refuses, or passed `max_chars` or `time_limit_s`. The
            message says which, in words for a person.
    """
    if len(source) > MAX_TEMPLATE_CHARS:
        raise ChatTemplateError(
            f"it is {len(source):,} characters long, over the {MAX_TEMPLATE_CHARS:,} allowed"
        )
    try:
        return _render_traced(source, variables, max_chars=max_chars, time_limit_s=time_limit_s)
    except _OutOfTime:
        raise ChatTemplateError(f"it ran for more than {time_limit_s:g} s") from None
    except _TooLong:
        raise ChatTemplateError(f"its output passed {max_chars:,} characters") from None
    except RecursionError:
        raise ChatTemplateError("it recursed too deeply") from None
    except Exception as exc:
        raise ChatTemplateError(_describe(exc)) from exc


def _render_traced(
    source: str, variables: Mapping[str, Any], *, max_chars: int, time_limit_s: float
) -> str:
    """Compile and render under the budget and the tracer.

    The tracer is taken off before anything else runs here after the render (building the
    error, closing a half-read template), so nothing outside the template meets the deadline.
    """
    budget = _Budget(max_chars=max_chars, deadline=time.monotonic() + time_limit_s)
    token = _BUDGET.set(budget)
    previous_trace = sys.gettrace()
    sys.settrace(_make_tracer(budget.deadline))
    stream: Generator[str, None, None] | None = None
    try:
        stream = _compile(source).generate(**variables)
        pieces: list[str] = []
        total = 0
        for piece in stream:
            total += len(piece)
            if total > max_chars:
                raise _TooLong
            pieces.append(piece)
        return "".join(pieces)
    finally:
        sys.settrace(previous_trace)
        if stream is not None:
            stream.close()
        _BUDGET.reset(token)


def _make_tracer(deadline: float) -> Callable[[FrameType, str, Any], Any]:
    """A trace function that raises `_OutOfTime` into whatever runs past `deadline`.

    Python calls it at every call of a Python function, and it asks for every line of the
    template's own compiled code too, so a loop with no calls in its body is stopped as
    surely as one full of them (lines elsewhere are not traced: that would cost three times
    the render). A debugger's tracer on this thread is set aside for the render.
    """

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise _OutOfTime
        return trace if frame.f_code.co_filename == _TEMPLATE_FILENAME else None

    return trace


def _describe(exc: Exception) -> str:
    """Why a template failed, in a short phrase that fits in parentheses."""
    if isinstance(exc, TemplateSyntaxError):
        text = f"syntax error on line {exc.lineno}: {exc.message}"
    elif isinstance(exc, SecurityError):
        text = f"the sandbox refused it: {exc}"
    elif type(exc) is TemplateError:  # raise_exception() in the template
        text = f"it raised an error: {exc}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = text.rstrip(". ")
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 1] + "…"


# -- size checks --------------------------------------------------------------------------


def _refuse(what: str) -> SecurityError:
    return SecurityError(what)


def _size(value: object, limit: int) -> int:
    """About how many characters `value` holds: a string its length, a container one per item
    plus its items' sizes (a list holding one long string many times counts it each time, as a
    join or a repr would); anything else 1. Stops counting once past `limit`."""
    total = 0
    pending = [value]
    while pending and total <= limit:
        item = pending.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += len(item)
            pending.extend(item)
        elif isinstance(item, dict):
            total += len(item)
            pending.extend(item.keys())
            pending.extend(item.values())
        else:
            total += 1
    return total


def _check_size(value: object, what: str) -> None:
    limit = _BUDGET.get().max_chars
    if _size(value, limit) > limit:
        raise _refuse(f"{what} would be over {limit:,} characters")


def _check_estimate(estimate: int, what: str) -> None:
    limit = _BUDGET.get().max_chars
    if estimate > limit:
        raise _refuse(f"{what} would be over {limit:,} characters")


def _check_counts(args: Iterable[object]) -> None:
    """Refuse numbers too big to be a count or a width (center(10**9), '%*s' % (10**9, x)).

    Only applied where a number is a size: elsewhere a big number is just a number."""
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > _MAX_COUNT:
            raise _refuse(f"the number {arg} is over the {_MAX_COUNT:,} allowed as an argument")


def _check_format_string(text: str) -> None:
    """Refuse a format string with a width or precision over `_MAX_COUNT` ('%999999999s')."""
    for run in _DIGIT_RUN.findall(text):
        if len(run) > len(str(_MAX_COUNT)) or int(run) > _MAX_COUNT:
            raise _refuse(f"a format string asks for a width of {run[:12]}")


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "**":
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and right > 0
            and left.bit_length() * right > _MAX_INT_BITS
            and abs(left) > 1
        ):
            raise _refuse("a power would be an enormous number")
    elif operator == "*":
        if isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > _MAX_INT_BITS:
                raise _refuse("a product would be an enormous number")
        elif isinstance(left, (str, list, tuple)) and isinstance(right, int):
            _check_estimate(_size(left, _BUDGET.get().max_chars) * max(right, 0), "a repetition")
        elif isinstance(right, (str, list, tuple)) and isinstance(left, int):
            _check_estimate(_size(right, _BUDGET.get().max_chars) * max(left, 0), "a repetition")
    elif operator == "+":
        if not isinstance(left, (int, float)):
            limit = _BUDGET.get().max_chars
            _check_estimate(_size(left, limit) + _size(right, limit), "a sum")
    elif operator == "%" and isinstance(left, str):
        _check_format_string(left)
        if "*" in left:  # a width taken from the arguments
            _check_counts(right if isinstance(right, tuple) else (right,))


def _check_str_method(owner: str, name: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Check a call of a `str` method, before it runs, for a result that would be too big.

    Returns the arguments to call it with: `join` gets its iterable as a list, so that it can
    be measured first.
    """
    limit = _BUDGET.get().max_chars
    if name in ("format", "format_map"):
        _check_format_string(owner)
    elif name == "join" and args:
        items = list(args[0])
        _check_estimate(_size(items, limit) + len(owner) * len(items), "a join")
        return (items, *args[1:])
    elif name == "replace" and len(args) >= 2:
        _check_estimate(_replace_estimate(owner, args[0], args[1]), "a replace")
    elif name == "expandtabs":
        tab = args[0] if args and isinstance(args[0], int) else 8
        _check_estimate(len(owner) + owner.count("\t") * tab, "expandtabs")
    elif name in ("translate", "maketrans"):
        raise _refuse(f"str.{name} is not available to chat templates")
    return args


def _replace_estimate(text: object, old: object, new: object) -> int:
    text, old, new = str(text), str(old), str(new)
    hits = text.count(old) if old else len(text) + 1
    return len(text) + hits * len(new)


# -- the environment ------------------------------------------------------------------------


class _BoundedBuffer(list[str]):
    """The list a macro, a call block or a `{% set %}` block collects its output in, bounded
    like the output itself (the compiled template appends to it and joins it)."""

    def __init__(self) -> None:
        super().__init__()
        self._chars = 0

    def append(self, piece: str) -> None:
        self._add(len(piece))
        super().append(piece)

    def extend(self, pieces: Iterable[str]) -> None:
        pieces = tuple(pieces)
        self._add(sum(len(piece) for piece in pieces))
        super().extend(pieces)

    def _add(self, chars: int) -> None:
        self._chars += chars
        limit = _BUDGET.get().max_chars
        if self._chars > limit:
            raise _refuse(f"a block's output would be over {limit:,} characters")


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with capture buffers and `~` routed through size checks."""

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.new_buffer()")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat_checked((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _IgnoreGenerationTags(Extension):
    """Accept transformers' `{% generation %}…{% endgeneration %}` and render its body as is:
    transformers uses it to mark the assistant's tokens for training, which a prompt does not
    need."""

    tags = {"generation"}  # noqa: RUF012 - Jinja's own class attribute

    def parse(self, parser: Parser) -> list[nodes.Node]:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        for node in body:
            node.set_lineno(lineno)
        return body


class _ChatTemplateEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox transformers renders chat templates in, with the size checks wired in."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self) -> None:
        super().__init__(
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=[_IgnoreGenerationTags, loopcontrols],
        )
        self.filters.update(_checked_filters(self.filters))
        self.filters["tojson"] = _tojson
        self.filters = {name: _guard_filter(name, func) for name, func in self.filters.items()}
        self.globals["lipsum"] = _lipsum
        self.globals["raise_exception"] = _raise_exception
        self.globals["strftime_now"] = _strftime_now

    def new_buffer(self) -> _BoundedBuffer:
        return _BoundedBuffer()

    def concat_checked(self, values: tuple[Any, ...]) -> str:
        pieces = [str(value) for value in values]
        _check_estimate(sum(len(piece) for piece in pieces), "a ~ concatenation")
        return "".join(pieces)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        result = super().call_binop(context, operator, left, right)
        _check_size(result, f"the result of {operator}")
        return result

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        target = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format
        owner = getattr(target, "__self__", None)
        if isinstance(owner, str):  # center(10**9), zfill(10**9), …
            _check_counts((*args, *kwargs.values()))
            args = _check_str_method(owner, getattr(target, "__name__", ""), args)
        result = super().call(context, obj, *args, **kwargs)
        _check_size(result, "a call's result")
        return result


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """`func`, refusing a result that is too big and, for the filters that take a size, a huge
    size among its arguments."""
    # The value being filtered comes after the context or environment Jinja passes first.
    first_option = 2 if getattr(func, "jinja_pass_arg", None) is not None else 1
    takes_size = name in _SIZED_FILTERS

    @functools.wraps(func)  # keeps Jinja's pass_context / pass_environment marks
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if takes_size:
            _check_counts((*args[first_option:], *kwargs.values()))
        result = func(*args, **kwargs)
        _check_size(result, "a filter's result")
        return result

    return guarded


def _checked_filters(originals: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Jinja's filters that can multiply a size in one step, checked before they run."""
    join, replace, indent = originals["join"], originals["replace"], originals["indent"]
    wordwrap, sum_, format_ = originals["wordwrap"], originals["sum"], originals["format"]

    @pass_eval_context
    def checked_join(
        eval_ctx: EvalContext, value: Iterable[Any], d: str = "", attribute: Any = None
    ) -> str:
        items = list(value)
        limit = _BUDGET.get().max_chars
        _check_estimate(_size(items, limit) + len(str(d)) * len(items), "a join")
        return str(join(eval_ctx, items, d, attribute))

    @pass_eval_context
    def checked_replace(
        eval_ctx: EvalContext, s: str, old: str, new: str, count: int | None = None
    ) -> str:
        _check_estimate(_replace_estimate(s, old, new), "a replace")
        return str(replace(eval_ctx, s, old, new, count))

    def checked_indent(
        s: str, width: int | str = 4, first: bool = False, blank: bool = False
    ) -> str:
        step = len(width) if isinstance(width, str) else int(width)
        _check_estimate(len(str(s)) + (str(s).count("\n") + 1) * step, "an indent")
        return str(indent(s, width, first, blank))

    @pass_environment
    def checked_wordwrap(environment: Any, s: str, *args: Any, **kwargs: Any) -> str:
        wrapstring = kwargs.get("wrapstring", args[2] if len(args) > 2 else None)
        breaks = len(str(wrapstring)) if wrapstring is not None else 2
        _check_estimate(len(str(s)) * (1 + breaks), "a wordwrap")
        return str(wordwrap(environment, s, *args, **kwargs))

    @pass_environment
    def checked_sum(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
        if isinstance(start, bool) or not isinstance(start, (int, float)):
            raise _refuse("the sum filter only adds numbers here")
        return sum_(environment, iterable, attribute, start)

    def checked_format(value: str, *args: Any, **kwargs: Any) -> str:
        _check_format_string(str(value))
        return str(format_(value, *args, **kwargs))

    return {
        "join": checked_join,
        "replace": checked_replace,
        "indent": checked_indent,
        "wordwrap": checked_wordwrap,
        "sum": checked_sum,
        "format": checked_format,
    }


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | str | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """JSON as transformers' templates expect it: not HTML-escaped like Jinja's own filter."""
    width = len(indent) if isinstance(indent, str) else (indent or 0)
    if width > _MAX_JSON_INDENT or (separators and sum(map(len, separators)) > 8):
        raise _refuse("tojson was asked for an indent or separators that large")
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """Jinja's placeholder text, with its counts bounded."""
    if n > 100 or max > 1000:
        raise _refuse("lipsum was asked for that much text")
    return str(generate_lorem_ipsum(n=n, html=html, min=min, max=max))


def _raise_exception(message: str) -> None:
    """How a chat template says a conversation does not fit it (e.g. roles out of order)."""
    raise TemplateError(message)


def _strftime_now(format_string: str = "%Y-%m-%d %H:%M:%S") -> str:
    """Today's date for templates that write it into the system prompt (Llama 3.1, …)."""
    _check_format_string(format_string)
    return datetime.now().strftime(format_string)


_ENVIRONMENT = _ChatTemplateEnvironment()


@functools.lru_cache(maxsize=32)
def _compile(source: str) -> Any:
    """The compiled template; a conversation renders the same template at every turn."""
    return _ENVIRONMENT.from_string(source)
