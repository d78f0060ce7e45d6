"""Chat templates: the model's own, an override, or a fallback; and hostile templates."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from app.chat import templates
from app.chat.templates import (
    FALLBACK_FORMATS,
    RenderedPrompt,
    TemplateSource,
    fallback_for,
    render_prompt,
)
from app.errors import ChatTemplateError

# As in tests/support/gguf_builder.py (the template the test GGUFs carry).
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Meta-Llama-3-8B-Instruct's template, with a role check of the kind many GGUF templates add.
LLAMA_3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('Only system, user and assistant roles are supported!') }}{% endif %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)

# Mistral-7B-Instruct-v0.1's template: no system role, and it says so.
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}"
    "{% endfor %}"
)

# Qwen2.5-Instruct's template, tool calling included (the tools branch uses tojson).
QWEN_2_5 = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n\
You are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and \
arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \
\\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. \
You are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) \
or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Bye"},
]
CHATML_CONVERSATION = (
    "<|im_start|>system\nBe brief.<|im_end|>\n"
    "<|im_start|>user\nHi<|im_end|>\n"
    "<|im_start|>assistant\nHello!<|im_end|>\n"
    "<|im_start|>user\nBye<|im_end|>\n"
)
LLAMA_3_TOKENS = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}


def render(template: str | None, **options: Any) -> RenderedPrompt:
    options.setdefault("architecture", "qwen2")
    return render_prompt(options.pop("messages", CONVERSATION), template=template, **options)


# -- the model's template -------------------------------------------------------------------


def test_chatml_renders_a_multi_turn_conversation_with_the_assistant_header() -> None:
    prompt = render(CHATML, eos_token="<|endoftext|>")

    assert prompt.text == CHATML_CONVERSATION + "<|im_start|>assistant\n"
    assert prompt.source is TemplateSource.MODEL
    assert prompt.format_name == "the model's template"
    assert prompt.note is None
    assert prompt.stop == ("<|im_end|>",)  # the EOS is <|endoftext|>: the turn end must stop it


def test_without_generation_prompt_the_conversation_ends_after_the_last_turn() -> None:
    prompt = render(CHATML, add_generation_prompt=False, eos_token="<|im_end|>")

    assert prompt.text == CHATML_CONVERSATION
    assert prompt.stop == ()  # the EOS already stops there


def test_llama_3_template_writes_bos_and_headers() -> None:
    prompt = render(LLAMA_3, architecture="llama", **LLAMA_3_TOKENS)

    assert prompt.source is TemplateSource.MODEL
    assert prompt.text == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert prompt.stop == ()


def test_llama_3_template_raising_for_a_role_falls_back_to_llama_3() -> None:
    messages = [{"role": "tool", "content": "42"}]

    prompt = render(LLAMA_3, messages=messages, architecture="llama", **LLAMA_3_TOKENS)

    assert prompt.source is TemplateSource.FALLBACK
    assert prompt.format_name == "Llama 3"
    assert prompt.note == (
        "The model's chat template failed (it raised an error: Only system, user and assistant "
        "roles are supported!); using Llama 3, chosen for architecture llama."
    )
    assert prompt.text.startswith("<|begin_of_text|><|start_header_id|>tool<|end_header_id|>")


def test_mistral_template_renders_alternating_turns() -> None:
    prompt = render(
        MISTRAL, messages=CONVERSATION[1:], architecture="llama", bos_token="<s>", eos_token="</s>"
    )

    assert prompt.source is TemplateSource.MODEL
    assert prompt.text == "<s>[INST] Hi [/INST]Hello!</s> [INST] Bye [/INST]"


def test_mistral_template_refusing_a_system_prompt_falls_back_with_its_reason() -> None:
    prompt = render(MISTRAL, architecture="llama", bos_token="<s>", eos_token="</s>")

    assert prompt.source is TemplateSource.FALLBACK
    assert prompt.format_name == "Llama 2"
    assert prompt.note is not None
    assert "Conversation roles must alternate" in prompt.note
    assert prompt.text == (
        "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]"
    )


def test_qwen_2_5_template_without_tools_adds_its_default_system_prompt() -> None:
    prompt = render(QWEN_2_5, messages=CONVERSATION[1:2], eos_token="<|im_end|>")

    assert prompt.source is TemplateSource.MODEL
    assert prompt.text == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
        "assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_qwen_2_5_template_with_a_system_prompt_is_chatml() -> None:
    prompt = render(QWEN_2_5, eos_token="<|im_end|>")

    assert prompt.text == CHATML_CONVERSATION + "<|im_start|>assistant\n"


def test_transformers_extras_work() -> None:
    """tojson writes plain JSON (Jinja's own escapes <, >, &), strftime_now, loop controls and
    {% generation %} blocks, as transformers provides them."""
    template = (
        "{{ {'a': '<b> & é'} | tojson }}|{{ strftime_now('%Y') }}|"
        "{% for m in messages %}{% if loop.index > 2 %}{% break %}{% endif %}"
        "{% generation %}{{ m.content }};{% endgeneration %}{% endfor %}"
    )

    prompt = render(template)

    assert prompt.source is TemplateSource.MODEL
    assert prompt.text == f'{{"a": "<b> & é"}}|{time.strftime("%Y")}|Be brief.;Hi;'


def test_a_long_conversation_is_not_mistaken_for_a_runaway_template() -> None:
    messages = [{"role": "user", "content": "x" * 1_500_000}]

    prompt = render(CHATML, messages=messages)

    assert prompt.source is TemplateSource.MODEL
    assert len(prompt.text) > 1_500_000


# -- fallbacks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("architecture", "bos", "eos", "expected"),
    [
        ("llama", "<|begin_of_text|>", "<|eot_id|>", "Llama 3"),
        ("llama", "<|begin_of_text|>", "<|end_of_text|>", "Llama 3"),
        ("llama", "<s>", "</s>", "Llama 2"),
        ("mistral", "<s>", "</s>", "Mistral"),
        ("qwen2", "", "<|im_end|>", "ChatML"),
        ("qwen3", "", "<|im_end|>", "ChatML"),
        ("qwen2moe", "", "<|endoftext|>", "ChatML"),
        ("gemma", "<bos>", "<eos>", "Gemma"),
        ("gemma2", "<bos>", "<eos>", "Gemma"),
        ("gemma3", "<bos>", "<eos>", "Gemma"),
        ("phi3", "<s>", "<|endoftext|>", "Phi-3"),
        ("falcon", "", "", "ChatML"),
        (None, "", "", "ChatML"),
    ],
)
def test_fallback_is_chosen_by_architecture(
    architecture: str | None, bos: str, eos: str, expected: str
) -> None:
    assert fallback_for(architecture, bos, eos) == expected

    prompt = render(None, architecture=architecture, bos_token=bos, eos_token=eos)

    assert prompt.source is TemplateSource.FALLBACK
    assert prompt.format_name == expected
    assert prompt.note is not None
    assert prompt.note.startswith(f"The model has no chat template; using {expected}, ")


def test_missing_template_note_names_the_architecture() -> None:
    prompt = render(None, architecture="qwen2", eos_token="<|im_end|>")

    assert prompt.note == (
        "The model has no chat template; using ChatML, chosen for architecture qwen2."
    )
    assert prompt.text == CHATML_CONVERSATION + "<|im_start|>assistant\n"
    assert render("  \n", architecture="qwen2").note == prompt.note
    assert "the default" in (render(None, architecture="falcon").note or "")


def test_syntax_error_falls_back_with_a_note_naming_the_error() -> None:
    prompt = render("{% for message in messages %}{{ message.content }}")

    assert prompt.source is TemplateSource.FALLBACK
    assert prompt.format_name == "ChatML"
    assert prompt.note is not None
    assert prompt.note.startswith("The model's chat template failed (syntax error on line 1: ")
    assert prompt.note.endswith("); using ChatML, chosen for architecture qwen2.")


def test_undefined_name_falls_back() -> None:
    prompt = render("{{ conversation.turns }}")

    assert prompt.source is TemplateSource.FALLBACK
    assert "UndefinedError" in (prompt.note or "")


def test_template_that_renders_nothing_falls_back() -> None:
    prompt = render("{% for turn in conversation %}{{ turn }}{% endfor %}")

    assert prompt.source is TemplateSource.FALLBACK
    assert "rendered nothing" in (prompt.note or "")


def test_gemma_fallback_merges_the_system_prompt_into_the_first_user_turn() -> None:
    prompt = render(None, architecture="gemma2", bos_token="<bos>", eos_token="<eos>")

    assert prompt.text == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    assert prompt.stop == ("<end_of_turn>",)


def test_llama_3_fallback_text_and_stop() -> None:
    prompt = render(
        None, architecture="llama", bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>"
    )

    assert prompt.text == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert prompt.stop == ("<|eot_id|>",)


@pytest.mark.parametrize("name", list(FALLBACK_FORMATS))
@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "system", "content": "Only a system prompt."}],
        [{"role": "user", "content": "Just a question?"}],
        [{"role": "assistant", "content": "I speak first."}, {"role": "user", "content": "Ok"}],
        CONVERSATION,
    ],
    ids=["empty", "system-only", "user-only", "assistant-first", "multi-turn"],
)
def test_every_fallback_renders_any_conversation(name: str, messages: list[dict[str, str]]) -> None:
    prompt = render(FALLBACK_FORMATS[name], override=None, messages=messages)
    assert prompt.source is TemplateSource.MODEL  # a fallback never fails as a template
    for message in messages:
        assert message["content"] in prompt.text


# -- overrides ------------------------------------------------------------------------------


def test_override_is_used_instead_of_the_model_template() -> None:
    prompt = render(QWEN_2_5, override="{% for m in messages %}{{ m.content }}|{% endfor %}")

    assert prompt.source is TemplateSource.OVERRIDE
    assert prompt.format_name == "a custom template"
    assert prompt.text == "Be brief.|Hi|Hello!|Bye|"
    assert prompt.note is None


def test_override_picked_from_the_fallback_list_goes_by_its_name() -> None:
    prompt = render(None, override=FALLBACK_FORMATS["Gemma"], bos_token="<bos>")

    assert prompt.source is TemplateSource.OVERRIDE
    assert prompt.format_name == "Gemma"
    assert prompt.stop == ("<end_of_turn>",)


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ("{% if %}", "syntax error on line 1"),
        ("{{ raise_exception('no system prompts') }}", "no system prompts"),
        ("{{ ''.__class__.__mro__ }}", "the sandbox refused it"),
        ("{{ nothing_here }}", "rendered nothing"),
    ],
)
def test_failing_override_raises_instead_of_falling_back(override: str, reason: str) -> None:
    with pytest.raises(ChatTemplateError) as caught:
        render(CHATML, override=override)

    assert isinstance(caught.value, ValueError)
    assert caught.value.message.startswith("The chat template override failed: ")
    assert reason in caught.value.message
    assert caught.value.hint is not None


# -- hostile templates ----------------------------------------------------------------------

SANDBOX_ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('touch MARKER').read() }}",
    "{{ joiner.__init__.__globals__.os.system('touch MARKER') }}",
    "{{ namespace.__init__.__globals__.__builtins__.__import__('os').system('touch MARKER') }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__.__builtins__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ lipsum.__globals__['os'].system('touch MARKER') }}",
    "{% set x = [].append(1) %}",
    "{% set d = {} %}{% set x = d.update({'a': 1}) %}",
    "{{ '{0.__class__.__init__.__globals__}'.format(cycler) }}",
    "{{ '{0.__init__.__globals__[os]}'|attr('format')(cycler) }}",
    "{{ ''|attr('__class__')|attr('__mro__') }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}"
    "{% if c.__name__ == 'Popen' %}{{ c(['touch', 'MARKER']) }}{% endif %}{% endfor %}",
    "{{ range(10**9)|list }}",
]


@pytest.mark.parametrize("payload", SANDBOX_ESCAPES)
def test_sandbox_escapes_run_nothing(payload: str, tmp_path: Path) -> None:
    """Each payload, put in front of a working template, either renders as nothing or makes
    the template fail (and ChatML stand in); in no case does the command it carries run."""
    marker = tmp_path / "escaped"
    template = payload.replace("MARKER", str(marker)) + CHATML

    prompt = render(template, eos_token="<|im_end|>")

    assert not marker.exists()
    if prompt.source is TemplateSource.MODEL:
        assert prompt.text == CHATML_CONVERSATION + "<|im_start|>assistant\n"
    else:
        assert prompt.source is TemplateSource.FALLBACK
        assert prompt.note is not None
        assert prompt.note.startswith("The model's chat template failed (")
        assert prompt.text == CHATML_CONVERSATION + "<|im_start|>assistant\n"


def test_huge_range_is_refused_at_once() -> None:
    started = time.monotonic()

    prompt = render("{% for i in range(100000000) %}x{% endfor %}")

    assert time.monotonic() - started < 0.5
    assert prompt.source is TemplateSource.FALLBACK
    assert "MAX_RANGE" in (prompt.note or "")  # Jinja's sandbox: ranges of at most 100,000


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        # Output past the limit, 1,000 characters at a time.
        ("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", "output passed"),
        # One step that would build a gigabyte.
        ("{{ 'x' * 1000000000 }}", "repetition"),
        ("{{ 10 ** (10 ** 9) }}", "enormous number"),
        ("{{ 'x'|center(1000000000) }}", "100,000 allowed"),
        ("{{ 'x'.zfill(1000000000) }}", "100,000 allowed"),
        ("{{ '%999999999s' % 'x' }}", "width"),
        ("{{ '{:>999999999}'.format('x') }}", "width"),
        # Doubling a string in a namespace (each step a single C copy).
        (
            "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "concatenation",
        ),
        # A macro's output collected in memory before it is returned.
        (
            "{% macro a() %}{{ 'x' * 900000 }}{% endmacro %}"
            "{% macro b() %}{% for i in range(100000) %}{{ a() }}{% endfor %}{% endmacro %}"
            "{{ b() }}",
            "block's output",
        ),
        ("{{ range(100000)|join('x' * 900000) }}", "join"),
        ("{{ ('x' * 900000)|replace('', 'yyyy') }}", "replace"),
        ("{{ ('\n' * 900000)|indent(1000) }}", "indent"),
        ("{{ ([[1] * 500] * 500)|sum(start=[]) }}", "sum"),
    ],
)
def test_runaway_output_is_refused_fast(template: str, reason: str) -> None:
    started = time.monotonic()

    prompt = render(template)

    assert time.monotonic() - started < 0.5
    assert prompt.source is TemplateSource.FALLBACK
    assert reason in (prompt.note or "")


def test_a_template_that_runs_too_long_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(templates, "RENDER_TIME_LIMIT_S", 0.1)
    started = time.monotonic()

    # Ten billion turns of a loop that writes nothing and calls nothing.
    prompt = render(
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
    )

    assert time.monotonic() - started < 0.5
    assert prompt.source is TemplateSource.FALLBACK
    assert "it ran for more than 0.1 s" in (prompt.note or "")
    assert prompt.text == CHATML_CONVERSATION + "<|im_start|>assistant\n"


def test_recursion_falls_back() -> None:
    prompt = render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}")

    assert prompt.source is TemplateSource.FALLBACK
    assert "recursed" in (prompt.note or "")


def test_rendering_puts_back_the_thread_tracer() -> None:
    """A debugger's tracer is set aside while a template renders, and put back after."""

    def tracer(frame: Any, event: str, arg: Any) -> None:
        return None

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        render(CHATML)
        render("{{ raise_exception('fail') }}")
        assert sys.gettrace() is tracer
    finally:
        sys.settrace(previous)


def test_a_long_reason_is_cut_short_in_the_note() -> None:
    prompt = render("{{ raise_exception('why ' * 10000) }}")

    assert prompt.note is not None
    assert len(prompt.note) < 400
    assert "…); using ChatML" in prompt.note


def test_an_oversized_template_is_not_parsed() -> None:
    prompt = render("{# " + "x" * 300_000 + " #}" + CHATML)

    assert prompt.source is TemplateSource.FALLBACK
    assert "characters long" in (prompt.note or "")
