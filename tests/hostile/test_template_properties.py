"""Property: any chat template ends in a result or a `ChatTemplateError`, in bounded time and
memory — never another exception, never a gigabyte.

Hypothesis writes the templates out of the operations that can build large values (formats
with widths written, nested or passed as strings; %-formats; repetition; joins; padding;
replacing; the sized filters; literals that refer to one long string many times; building in
loops and macros), fed with numbers and strings chosen to be on either side of the limits.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.chat.template_sandbox import render_sandboxed
from app.errors import ChatTemplateError
from tests.hostile.bounds import within_bounds

MAX_CHARS = 1_000_000
TIME_LIMIT_S = 0.5
SECONDS = 1.5  # CPU, with tracemalloc's overhead on top of the render's own time limit
MEGABYTES = 48

# Sizes: ordinary ones, ones at the limits, far past them; as numbers and as digit strings.
numbers = st.one_of(
    st.integers(-3, 80),
    st.sampled_from([99_999, 100_000, 100_001, 999_999, 1_000_001, 250_000_000, 10**18]),
)
sizes = st.one_of(numbers.map(str), numbers.map(lambda n: repr(str(n))))
# Values: short text, the long strings `big` and `wide` (non-Latin-1: 4 bytes a character),
# a list referring to `big` many times, numbers.
values = st.sampled_from(
    ["'x'", "'€'", "big", "wide", "[big, big, big]", "range(1000)|list", "42", "1.5", "ns.s"]
)
format_specs = st.lists(
    st.sampled_from(["", "x", ">", "<", "^", "=", "0", ",", "_", ".", "{w}", "{p}", "f", "e", "s"])
    | numbers.map(str),
    max_size=5,
).map("".join)
percent_specs = st.lists(
    st.sampled_from(["%", "(a)", "-", "0", "*", ".", "s", "r", "d", "f", "c", "%%"])
    | numbers.map(str),
    min_size=1,
    max_size=6,
).map("".join)


@st.composite
def expressions(draw: st.DrawFn) -> str:
    """One expression that may build a large value."""
    v, w, n = draw(values), draw(values), draw(sizes)
    spec = draw(format_specs).replace("'", "")
    return draw(
        st.sampled_from(
            [
                f"'{{:{spec}}}'.format({v}, w={n}, p={n})",
                f"'{{0}}{{0}}{{0:{spec}}}'.format({v}, w={n}, p={n})",
                f"'{{a!r:{spec}}}'.format_map({{'a': {v}, 'w': {n}, 'p': {n}}})",
                f"'{draw(percent_specs)}' % ({v}, {n}, {w})",
                f"'{draw(percent_specs)}' % {{'a': {v}}}",
                f"'{draw(percent_specs)}'|format({v}, {w})",
                f"{v} * {n}",
                f"[{v}, {w}] * {n}",
                f"{v} ~ {w} ~ {v}",
                f"{v} + {w}",
                f"{v}|join({w})",
                f"{w}.join({v})",
                f"({v}|string).center({n})",
                f"({v}|string).zfill({n})",
                f"({v}|string).expandtabs({n})",
                f"({v}|string).replace('', {w}|string)",
                f"({v}|string).split()",
                f"{v}|indent({n})",
                f"{v}|wordwrap({n})",
                f"{v}|center({n})",
                f"{v}|replace('x', {w}|string)",
                f"{v}|list",
                f"{v}|tojson(indent={draw(st.integers(-1, 20))})",
                f"{v}|pprint",
                f"{v}|batch({n}, {w})|list",
                f"range({n})|list",
                f"{v}[::-1]",
                f"[{v}, {w}, {v}, {w}, {v}, {w}, {v}, {w}]",
                f"{{'a': {v}, 'b': {w}, 'c': {v}}}",
            ]
        )
    )


@st.composite
def templates(draw: st.DrawFn) -> str:
    """A template: a few statements that evaluate, output, accumulate or recurse."""
    prelude = (
        "{% set big = 'x' * 900000 %}{% set wide = '€' * 200000 %}"
        "{% set ns = namespace(s='x', l=[]) %}"
        "{% macro m(s, n) %}{% if n > 0 %}{{ m(s ~ s, n - 1) }}{% endif %}{{ s }}{% endmacro %}"
    )
    statements = []
    for _ in range(draw(st.integers(1, 4))):
        expression = draw(expressions())
        statements.append(
            draw(
                st.sampled_from(
                    [
                        f"{{{{ {expression} }}}}",
                        f"{{% set x = {expression} %}}{{{{ x|length }}}}",
                        f"{{% for i in range(20) %}}{{% set ns.s = ns.s ~ ({expression}) %}}"
                        "{% endfor %}",
                        f"{{% for i in range(20) %}}{{% set ns.l = ns.l + [{expression}] %}}"
                        "{% endfor %}",
                        f"{{{{ m({expression}, 30) }}}}",
                    ]
                )
            )
        )
    return prelude + "".join(statements)


def _bounded(template: str) -> None:
    within_bounds(
        "chat template (generated)",
        lambda: render_sandboxed(template, {}, max_chars=MAX_CHARS, time_limit_s=TIME_LIMIT_S),
        errors=(ChatTemplateError,),
        seconds=SECONDS,
        megabytes=MEGABYTES,
    )


@given(templates())
def test_any_template_ends_in_a_result_or_a_clear_error_within_bounds(template: str) -> None:
    _bounded(template)


@given(format_specs, sizes, values)
def test_any_format_spec_is_measured_before_it_is_formatted(spec: str, n: str, v: str) -> None:
    spec = spec.replace("'", "")
    _bounded(
        "{% set big = 'x' * 900000 %}{% set wide = '€' * 200000 %}{% set ns = namespace(s='') %}"
        f"{{{{ '{{:{spec}}}{{:{spec}}}'.format({v}, {v}, w={n}, p={n}) }}}}"
    )


@given(percent_specs, st.lists(values, max_size=4), sizes)
def test_any_percent_format_is_measured_before_it_is_formatted(
    spec: str, arguments: list[str], n: str
) -> None:
    _bounded(
        "{% set big = 'x' * 900000 %}{% set wide = '€' * 200000 %}{% set ns = namespace(s='') %}"
        f"{{{{ '{spec}' % ({', '.join([*arguments, n])},) }}}}"
        f"{{{{ '{spec}' % {{'a': {arguments[0] if arguments else n}}} }}}}"
    )
