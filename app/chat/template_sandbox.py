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
- Sizes are bounded before anything is built (`template_limits`). Every place a template
  makes a value passes through one of these hooks, and each measures what it would build
  against `max_chars` first: operators (`+ * ** %` and `~`), list and dict literals, calls
  (`str` methods by a table of what each can build; `str.format` field by field, after its
  nested fields are filled in), filters (their size arguments, their input when they turn it
  into text or pieces, and an estimate for those that multiply), slices, the output of
  `{{ … }}`, and every buffer a macro, block or `{% set %}` collects. Results are checked
  too, and counted: all the values one render builds may add up to `BUILT_FACTOR` (8) times
  `max_chars`, so a template cannot keep hundreds of large values alive at once.
- Time is bounded. A trace function on the rendering thread stops the template at its
  deadline, however it loops.

Any failure — a syntax error, an undefined name, `raise_exception`, a refused operation, a
limit — comes out as one `ChatTemplateError` whose message says why, for a person.
"""

from __future__ import annotations

import functools
import json
import sys
import time
import types
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from datetime import datetime
from types import FrameType
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError
from jinja2.ext import Extension, loopcontrols
from jinja2.nodes import EvalContext
from jinja2.parser import Parser
from jinja2.runtime import Context, LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import generate_lorem_ipsum, pass_environment, pass_eval_context, pformat
from markupsafe import EscapeFormatter, Markup

from app.chat.template_limits import (
    BUDGET,
    Budget,
    check_binop,
    check_counts,
    check_estimate,
    check_format_digits,
    check_percent,
    check_pieces,
    check_result,
    check_size,
    check_str_call,
    current_budget,
    field_estimate,
    join_estimate,
    join_items,
    note_built,
    refuse,
    replace_estimate,
    shape,
    text_of,
    text_size,
)
from app.errors import ChatTemplateError

__all__ = ["MAX_TEMPLATE_CHARS", "render_sandboxed"]

# Real chat templates are a few kB, the largest tens of kB; parsing more is wasted time.
MAX_TEMPLATE_CHARS = 256_000
# tojson's indent: templates use 2 or 4; deep nesting multiplies it.
_MAX_JSON_INDENT = 16
# urlize's target and rel are written into every link: short words, never whole texts.
_MAX_LINK_ATTRIBUTE_CHARS = 100
# A date format is a few directives; strftime grows its buffer up to 256 times the format.
_MAX_DATE_FORMAT_CHARS = 200
# A failure's reason goes into a note; the template chooses the text of raise_exception().
_MAX_REASON_CHARS = 200
# What Jinja names the code it compiles from a string.
_TEMPLATE_FILENAME = "<template>"
# Jinja's filters whose numeric arguments are sizes (widths, lengths, counts).
_SIZED_FILTERS = frozenset({"batch", "center", "indent", "slice", "truncate", "urlize", "wordwrap"})
# Filters that make one object per character or word of a string they are given (a list of
# characters, a sorted list, words to wrap): the string's length is their count of pieces.
_SPLITTING_FILTERS = frozenset(
    {
        "batch", "groupby", "join", "list", "map", "reject", "rejectattr", "select",
        "selectattr", "slice", "sort", "striptags", "title", "unique", "urlize", "wordcount",
        "wordwrap",
    }
)  # fmt: skip
# Filters that never turn their whole input into text (they count, pick or reorder it), or
# that estimate their own output: the others get their input measured first, since a list
# holding one long string many times is small as a list and enormous as text.
_STRUCTURAL_FILTERS = frozenset(
    {
        "abs", "attr", "batch", "count", "d", "default", "dictsort", "first", "float",
        "groupby", "int", "items", "join", "last", "length", "list", "map", "max", "min",
        "pprint", "random", "reject", "rejectattr", "reverse", "round", "select",
        "selectattr", "slice", "sort", "sum", "tojson", "unique",
    }
)  # fmt: skip


class _OutOfTime(BaseException):
    """Raised into the template at its deadline; a BaseException so no `except Exception` in a
    filter can swallow it."""


class _TooLong(BaseException):
    """The rendered output passed `max_chars`."""


def render_sandboxed(
    source: str, variables: Mapping[str, Any], *, max_chars: int, time_limit_s: float
) -> str:
    """Render the Jinja template `source` with `variables`, within the guards above.

    Args:
        max_chars: the most characters the output, or any one value the template builds,
            may hold (and, times `BUILT_FACTOR`, all the values it builds together).
        time_limit_s: the most seconds the template may take to compile and render.

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
    token = BUDGET.set(Budget.for_render(max_chars))
    previous_trace = sys.gettrace()
    sys.settrace(_make_tracer(time.monotonic() + time_limit_s))
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
        BUDGET.reset(token)


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


# -- where a template builds values ---------------------------------------------------------


class _BoundedBuffer(list[str]):
    """The list a macro, a call block or a `{% set %}` block collects its output in, bounded
    like the output itself (the compiled template appends to it and joins it)."""

    def __init__(self) -> None:
        super().__init__()
        self._chars = 0

    def append(self, piece: str) -> None:
        self._add(piece)
        super().append(piece)

    def extend(self, pieces: Iterable[str]) -> None:
        pieces = tuple(pieces)
        for piece in pieces:
            self._add(piece)
        super().extend(pieces)

    def _add(self, piece: str) -> None:
        self._chars += len(piece)
        check_estimate(self._chars, "a block's output")


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with capture buffers, `~`, slices and list, tuple and dict
    literals routed through size checks (a literal is cheap to build however big the
    strings it refers to: `[s, s, s, …]` only becomes enormous once it is turned into
    text)."""

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.new_buffer()")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat_checked((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self.write("environment.checked_literal(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # a target: `{% for a, b in … %}`, `{% set a, b = … %}`
            super().visit_Tuple(node, frame)
            return
        self.write("environment.checked_literal(")
        super().visit_Tuple(node, frame)
        self.write(")")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self.write("environment.checked_literal(")
        super().visit_Dict(node, frame)
        self.write(")")

    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if not isinstance(node.arg, nodes.Slice):  # Jinja sends these through getitem
            super().visit_Getitem(node, frame)
            return
        # Jinja writes a slice as Python's own `x[a:b]`; a slice is a copy, so count it.
        self.write("environment.checked_slice(")
        self.visit(node.node, frame)
        for part in (node.arg.start, node.arg.stop, node.arg.step):
            self.write(", ")
            if part is None:
                self.write("None")
            else:
                self.visit(part, frame)
        self.write(")")


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


class _BoundedFormatter(SandboxedFormatter):
    """The sandbox's `str.format`, measuring each field before it is formatted.

    Python's Formatter fills in nested fields (`{:>{w}}`) before it formats the outer one,
    so `format_field` sees the width a template asked for, whether written in the format
    string or passed as an argument (a number or a string of digits). The fields of one
    call add up, so a format string that names one long value many times is refused too.
    """

    _chars = 0

    def vformat(self, format_string: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        self._chars = len(format_string)
        return super().vformat(format_string, args, kwargs)

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion is not None:  # !r, !s, !a: the value as text
            check_size(value, "a format field")
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        self._chars += field_estimate(value, format_spec)
        check_estimate(self._chars, "a format string's result")
        return super().format_field(value, format_spec)


class _BoundedEscapeFormatter(_BoundedFormatter, EscapeFormatter):
    """`_BoundedFormatter` for a `Markup` format string (it escapes each field)."""


class _ChatTemplateEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox transformers renders chat templates in, with the size checks wired in."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self) -> None:
        super().__init__(
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=[_IgnoreGenerationTags, loopcontrols],
            finalize=_checked_output,
        )
        self.filters.update(_checked_filters(self.filters))
        self.filters = {name: _guard_filter(name, func) for name, func in self.filters.items()}
        self.globals["lipsum"] = _lipsum
        self.globals["raise_exception"] = _raise_exception
        self.globals["strftime_now"] = _strftime_now

    def new_buffer(self) -> _BoundedBuffer:
        return _BoundedBuffer()

    def concat(self, pieces: Iterable[str]) -> str:
        """Join a macro's, a block's (`self.name()`, `super()`) or a capture's pieces,
        counting them as they come: a block's generator is joined whole otherwise."""
        buffer = _BoundedBuffer()
        for piece in pieces:
            buffer.append(piece)
        result = "".join(buffer)
        note_built(result)
        return result

    def checked_literal(self, value: Any) -> Any:
        check_result(value, "a list or dict")
        return value

    def concat_checked(self, values: tuple[Any, ...]) -> str:
        limit = current_budget().max_chars
        check_estimate(sum(text_size(value, limit) for value in values), "a ~ concatenation")
        result = "".join([str(value) for value in values])
        note_built(result)
        return result

    def checked_slice(self, value: Any, start: Any, stop: Any, step: Any) -> Any:
        result = value[start:stop:step]
        note_built(result)  # a slice is a copy
        return result

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        check_binop(operator, left, right)
        result = super().call_binop(context, operator, left, right)
        check_result(result, f"the result of {operator}")
        return result

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        target = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format
        owner = getattr(target, "__self__", None)
        name = getattr(target, "__name__", "")
        if isinstance(owner, str) and name not in ("format", "format_map"):
            args = check_str_call(owner, name, args, kwargs)
        elif isinstance(owner, (int, float)):  # (1).to_bytes(10**9)
            check_counts((*args, *kwargs.values()))
        result = super().call(context, obj, *args, **kwargs)
        if isinstance(obj, (Macro, LoopContext)):  # its output was counted as it was joined
            check_size(result, "a call's result")
        else:
            check_result(result, "a call's result")
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja's wrapper for `str.format` / `format_map`, with `_BoundedFormatter` in
        place of its formatter (Jinja builds the formatter inside, so this is its code with
        that one change)."""
        if not isinstance(value, (types.MethodType, types.BuiltinMethodType)) or (
            value.__name__ not in ("format", "format_map")
        ):
            return None
        owner = value.__self__
        if not isinstance(owner, str):
            return None
        formatter: _BoundedFormatter
        if isinstance(owner, Markup):
            formatter = _BoundedEscapeFormatter(self, escape=owner.escape)
        else:
            formatter = _BoundedFormatter(self)
        is_format_map = value.__name__ == "format_map"
        text_type = type(owner)

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs, args = args[0], ()
            return text_type(formatter.vformat(owner, args, kwargs))

        return functools.update_wrapper(wrapper, value)


def _checked_output(value: Any) -> Any:
    """Jinja's `finalize`: every `{{ … }}` value, measured before it becomes text; a value
    that is not a string yet is a new string once it is (kept in a macro's buffer, say)."""
    check_size(value, "an output value")
    if not isinstance(value, str):
        note_built(value, as_text=True)
    return value


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """`func`, refusing before it runs a huge size among its arguments (for the filters that
    take one), a string it would split into too many pieces, or an input too big as text;
    and refusing a result that is too big."""
    # The value being filtered comes after the context or environment Jinja passes first.
    value_at = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
    takes_size = name in _SIZED_FILTERS
    splits = name in _SPLITTING_FILTERS
    keeps_structure = name in _STRUCTURAL_FILTERS

    @functools.wraps(func)  # keeps Jinja's pass_context / pass_environment marks
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if takes_size:
            check_counts((*args[value_at + 1 :], *kwargs.values()))
        if len(args) > value_at:
            value = args[value_at]
            if isinstance(value, str):
                if splits:
                    check_pieces(value, len(value), f"the {name} filter")
            elif not keeps_structure:
                check_size(value, f"the {name} filter's input")
        result = func(*args, **kwargs)
        check_result(result, "a filter's result")
        return result

    return guarded


def _checked_filters(originals: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Jinja's filters that can multiply a size in one step, estimated before they run."""
    join, replace, indent = originals["join"], originals["replace"], originals["indent"]
    wordwrap, sum_, format_ = originals["wordwrap"], originals["sum"], originals["format"]
    urlize = originals["urlize"]

    @pass_eval_context
    def checked_join(
        eval_ctx: EvalContext, value: Iterable[Any], d: str = "", attribute: Any = None
    ) -> str:
        items = join_items(value, "a join")
        check_estimate(join_estimate(items, d), "a join")
        return str(join(eval_ctx, items, d, attribute))

    @pass_eval_context
    def checked_replace(
        eval_ctx: EvalContext, s: str, old: str, new: str, count: int | None = None
    ) -> str:
        check_estimate(replace_estimate(s, old, new, -1 if count is None else count), "a replace")
        return str(replace(eval_ctx, s, old, new, count))

    def checked_indent(
        s: str, width: int | str = 4, first: bool = False, blank: bool = False
    ) -> str:
        text = text_of(s, "an indent")
        lines = text.count("\n") + 1
        check_pieces(text, lines, "an indent")
        step = len(width) if isinstance(width, str) else int(width)
        check_estimate(len(text) + lines * step, "an indent")
        return str(indent(s, width, first, blank))

    @pass_environment
    def checked_wordwrap(environment: Any, s: str, *args: Any, **kwargs: Any) -> str:
        wrapstring = kwargs.get("wrapstring", args[2] if len(args) > 2 else None)
        limit = current_budget().max_chars
        breaks = text_size(wrapstring, limit) if wrapstring is not None else 2
        check_estimate(text_size(s, limit) * (1 + breaks), "a wordwrap")
        return str(wordwrap(environment, s, *args, **kwargs))

    @pass_environment
    def checked_sum(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
        if isinstance(start, bool) or not isinstance(start, (int, float)):
            raise refuse("the sum filter only adds numbers here")
        return sum_(environment, iterable, attribute, start)

    def checked_format(value: str, *args: Any, **kwargs: Any) -> str:
        # The filter is `value % (kwargs or args)`.
        check_percent(text_of(value, "a format"), kwargs or args)
        return str(format_(value, *args, **kwargs))

    @pass_eval_context
    def checked_urlize(eval_ctx: EvalContext, value: str, *args: Any, **kwargs: Any) -> str:
        # target and rel (and extra schemes) are repeated in every link it makes.
        for option in (*args[1:], *kwargs.values()):
            if text_size(option, _MAX_LINK_ATTRIBUTE_CHARS) > _MAX_LINK_ATTRIBUTE_CHARS:
                raise refuse("urlize was given a target, rel or scheme that long")
        return str(urlize(eval_ctx, value, *args, **kwargs))

    return {
        "join": checked_join,
        "replace": checked_replace,
        "indent": checked_indent,
        "wordwrap": checked_wordwrap,
        "sum": checked_sum,
        "format": checked_format,
        "urlize": checked_urlize,
        "tojson": _tojson,
        "pprint": _pprint,
    }


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | str | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """JSON as transformers' templates expect it: not HTML-escaped like Jinja's own filter."""
    width = len(indent) if isinstance(indent, str) else max(int(indent or 0), 0)
    separating = sum(map(len, separators)) if separators else 3
    if width > _MAX_JSON_INDENT or separating > 8:
        raise refuse("tojson was asked for an indent or separators that large")
    measured = shape(value, current_budget().max_chars)
    # Each item: its quotes and separators, and with an indent a new line as deep as it is.
    per_item = 2 + separating + (width * measured.depth + 1 if indent is not None else 0)
    check_estimate(measured.chars + measured.items * per_item, "tojson")
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _pprint(value: Any) -> str:
    """Jinja's pprint, measured first: pformat indents each item by its depth."""
    measured = shape(value, current_budget().max_chars)
    check_estimate(measured.chars + measured.items * (measured.depth + 4), "pprint")
    return pformat(value)


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """Jinja's placeholder text, with its counts bounded."""
    if n > 100 or max > 1000:
        raise refuse("lipsum was asked for that much text")
    return str(generate_lorem_ipsum(n=n, html=html, min=min, max=max))


def _raise_exception(message: str) -> None:
    """How a chat template says a conversation does not fit it (e.g. roles out of order)."""
    raise TemplateError(message)


def _strftime_now(format_string: str = "%Y-%m-%d %H:%M:%S") -> str:
    """Today's date for templates that write it into the system prompt (Llama 3.1, …)."""
    if len(format_string) > _MAX_DATE_FORMAT_CHARS:
        raise refuse(f"strftime_now was given a format of {len(format_string):,} characters")
    check_format_digits(format_string)
    return datetime.now().strftime(format_string)


_ENVIRONMENT = _ChatTemplateEnvironment()


@functools.lru_cache(maxsize=32)
def _compile(source: str) -> Any:
    """The compiled template; a conversation renders the same template at every turn."""
    return _ENVIRONMENT.from_string(source)
