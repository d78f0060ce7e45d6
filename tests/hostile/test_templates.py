"""Hostile chat templates against the sandbox: each is refused before it builds anything big.

A GGUF's chat template is code from a stranger, rendered in the app's process. Every case
below once allocated hundreds of megabytes or gigabytes in one step (or one step per line),
where neither the time limit nor a check of the result could stop it. Each must now end in a
`ChatTemplateError` that says why, within a CPU and memory bound (`within_bounds`), with the
render budget the app uses (a million characters).
"""

from __future__ import annotations

import pytest

from app.chat.template_sandbox import render_sandboxed
from app.chat.templates import RENDER_TIME_LIMIT_S, TemplateSource, render_prompt
from app.errors import ChatTemplateError
from tests.hostile.bounds import within_bounds

MAX_CHARS = 1_000_000  # templates._OUTPUT_ALLOWANCE_CHARS: the budget of an empty chat
TIME_LIMIT_S = RENDER_TIME_LIMIT_S  # as in the app; a refusal must come long before it
MEGABYTES = 32


def render(template: str, **variables: object) -> str:
    return render_sandboxed(template, variables, max_chars=MAX_CHARS, time_limit_s=TIME_LIMIT_S)


def refused(template: str, **variables: object) -> str:
    """The reason the sandbox gives for refusing `template`, checked within bounds."""
    outcome = within_bounds(
        "chat template",
        lambda: render(template, **variables),
        errors=(ChatTemplateError,),
        seconds=TIME_LIMIT_S + 0.5,
        megabytes=MEGABYTES,
    )
    assert outcome.error is not None, f"rendered {str(outcome.value)[:80]!r}"
    return str(outcome.error)


def test_the_reported_format_width_is_refused_before_it_allocates() -> None:
    """Finding 3 as reported: the width is a string, so no check of numbers saw it, and the
    one C call that pads to it took the server from 57 MB to 1 GB."""
    reason = refused("{{ '{:X>{w}}'.format('x', w='250000000') }}")

    assert "a format string asks for a width of 250000000" in reason


BIG = "{% set s = 'x' * 900000 %}"  # a value the size of the budget, built within it
SHARED = "{% set s = 'x' * 90000 %}"  # one tenth of it, referred to many times below
# Nesting built in Python and handed to the template (as `deep`): 5,000 numbers 300 levels
# down, small as JSON or a repr, enormous once every line is indented by its depth.
DEEP: list[object] = list(range(5000))
for _ in range(300):
    DEEP = [DEEP]


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        # str.format and format_map: widths and precisions, written or nested, and fields.
        ("{{ '{:.{p}f}'.format(1.5, p='99999999') }}", "width of 99999999"),
        ("{{ '{a:>{w}}'.format_map({'a': 'x', 'w': '250000000'}) }}", "width of 250000000"),
        ("{{ ('{:>{w}}'|attr('format'))('x', w='250000000') }}", "width of 250000000"),
        (BIG + "{{ '{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}'.format(s) }}", "format string's result"),
        (SHARED + "{{ '{!r}'.format([s, s, s, s, s, s, s, s, s, s, s, s]) }}", "list or dict"),
        # %-formatting: a key named by many fields, a width from the arguments.
        (BIG + "{{ '%(a)s%(a)s%(a)s%(a)s%(a)s' % {'a': s} }}", "a % format"),
        ("{{ '%*s' % (250000000, 'x') }}", "250000000 is over the 100,000"),
        ("{{ '%(w)s%(w)s%(w)s%(w)s'|format(w='x' * 900000) }}", "a % format"),
        # Repetition, joins and the methods that pad or multiply.
        ("{{ ['x' * 1000] * 250000 }}", "repetition"),
        ("{{ ('x' * 900000).join(['a'] * 1000) }}", "join"),
        ("{{ ','.join('€' * 900000) }}", "into more than 100,000 pieces"),
        ("{{ 'x'.ljust(250000000) }}", "250000000 is over the 100,000"),
        ("{{ ('\\t' * 900000).expandtabs(99999) }}", "expandtabs"),
        ("{{ ('x' * 900000).replace('', 'yyyy') }}", "replace"),
        # Filters.
        ("{{ ('\\n' * 90000)|indent(99999) }}", "indent"),
        ("{{ ('a ' * 450000)|wordwrap(1, wrapstring='x' * 1000) }}", "wordwrap filter"),
        ("{{ ('€' * 900000)|list|length }}", "list filter would split"),
        ("{{ ('€' * 900000)|map('upper')|list|length }}", "map filter would split"),
        ("{{ (range(20000)|list) * 100 }}", "repetition"),
        ("{{ ('a.bc ' * 20000)|urlize(target='x' * 900000) }}", "urlize"),
        # Values that are small as lists and enormous as text: literals, output, tojson.
        (SHARED + "{{ [s, s, s, s, s, s, s, s, s, s, s, s] }}", "list or dict"),
        (SHARED + "{{ {" + ", ".join(f"'{k}': s" for k in "abcdefghijkl") + "} }}", "list or dict"),
        (BIG + "{% set ns = namespace(a=s) %}{% set ns.b = s %}{{ ns|string }}", "input"),
        (BIG + "{% set ns = namespace(a=s) %}{% set ns.b = s %}{{ ns }}", "output value"),
        ("{{ deep|tojson(indent=4) }}", "tojson"),
        ("{{ deep|pprint }}", "pprint"),
        # Building in steps: each step within the budget, the whole far past it.
        (
            "{% set ns = namespace(l=['x' * 1000]) %}{% for i in range(64) %}"
            "{% set ns.l = [ns.l, ns.l] %}{% endfor %}",
            "list or dict",
        ),
        # Many values alive at once: each one a copy, none too big.
        (BIG + "".join(f"{{% set a{i} = s ~ '{i}' %}}" for i in range(30)), "built more than"),
        (BIG + "".join(f"{{% set a{i} = s[{i}:] %}}" for i in range(30)), "built more than"),
        ("{% macro f(s) %}{{ f(s ~ 'x') }}{% endmacro %}{{ f('x' * 900000) }}", "built more than"),
        (
            "{{ self.b()|length }}{% block b %}{% for i in range(100000) %}"
            "{{ 'x' * 900000 }}{% endfor %}{% endblock %}",
            "block's output",
        ),
        # Numbers as sizes elsewhere.
        ("{{ (1).to_bytes(250000000, 'big') }}", "250000000 is over the 100,000"),
        ("{{ strftime_now('%c' * 100000) }}", "strftime_now"),
        ("{{ 'x'.encode('utf-32') }}", "not available"),
    ],
    ids=lambda value: value if len(value) < 40 else value[:40] + "…",
)
def test_every_way_to_build_a_huge_value_is_refused_first(template: str, reason: str) -> None:
    assert reason in refused(template, deep=DEEP)


def test_a_refusal_falls_back_to_a_known_format_with_the_reason() -> None:
    """What a person sees: the model's template failed, a known format stood in, and the
    note says which operation the sandbox refused."""
    prompt = render_prompt(
        [{"role": "user", "content": "Hi"}],
        template="{{ '{:X>{w}}'.format('x', w='250000000') }}",
        architecture="qwen2",
    )

    assert prompt.source is TemplateSource.FALLBACK
    assert prompt.note is not None and "width of 250000000" in prompt.note
    assert prompt.text.endswith("<|im_start|>assistant\n")


def test_formatting_within_the_limits_still_formats() -> None:
    template = (
        "{{ '{:>{w}}|{:.{p}f}'.format('x', 3.14159, w=4, p='2') }} "
        "{{ '{a}-{b!r}'.format_map({'a': 1, 'b': 'q'}) }} "
        "{{ '%(n)05d %s' % {'n': 42} if false else '%05d %-3s|' % (42, 'ab') }} "
        "{{ '%s and %s'|format('x', 'y') }} {{ 'ab'.center(6, '*') }} "
        "{{ ', '.join(['a', 'b']) }} {{ [1, {'k': 'v'}]|tojson }} {{ 'a b  c'.split() }}"
    )

    assert render(template) == (
        "   x|3.14 1-'q' 00042 ab | x and y **ab** a, b [1, {\"k\": \"v\"}] ['a', 'b', 'c']"
    )


# A Qwen3-style template: it walks the conversation backwards for the last question, splits
# reasoning out of assistant turns and rebuilds each turn with `+`, so it copies every
# message several times; the budget must leave room for that on a long conversation.
QWEN3_STYLE = """\
{%- set ns = namespace(last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
  {%- if message.role == "user" and not message.content.startswith('<tool_response>') %}
    {%- set ns.last_query_index = (messages|length - 1) - loop.index0 %}
  {%- endif %}
{%- endfor %}
{%- for message in messages %}
  {%- set content = message.content %}
  {%- if message.role == "assistant" and '</think>' in content %}
    {%- set reasoning = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}
    {%- set content = content.split('</think>')[-1].lstrip('\\n') %}
    {%- if loop.index0 > ns.last_query_index %}
      {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning + '\\n</think>\\n\\n' + content + '<|im_end|>\\n' }}
    {%- else %}
      {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' }}
    {%- endif %}
  {%- else %}
    {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' }}
  {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}
"""  # noqa: E501


def test_a_real_template_over_a_long_conversation_is_not_refused() -> None:
    messages = []
    for turn in range(200):
        messages.append({"role": "user", "content": f"Question {turn}: " + "why? " * 400})
        messages.append(
            {"role": "assistant", "content": "<think>\n" + "hmm " * 500 + "\n</think>\n\nBecause."}
        )

    outcome = within_bounds(
        "chat template",
        lambda: render_prompt(messages, template=QWEN3_STYLE, architecture="qwen3"),
        errors=(ChatTemplateError,),
        seconds=1.0,
        megabytes=MEGABYTES,
    )

    assert outcome.error is None and outcome.value is not None
    assert outcome.value.source is TemplateSource.MODEL, outcome.value.note
    assert outcome.value.text.count("<|im_start|>") == 401
