"""Turn a conversation into the prompt text a local GGUF model expects.

A GGUF file carries its chat template (`tokenizer.chat_template`, Hugging Face-style Jinja).
`render_prompt` renders it in the app process, in a sandbox (`template_sandbox`), and the
engine sends the text to llama.cpp. The template comes from a file off the internet, so it may
be missing, broken or hostile: then a known format chosen by the model's architecture stands
in for it (`template_formats`), and the result carries a note saying so. A template the person
chose as an override is different: if it fails, they must hear about it, so it raises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app.chat.template_formats import (
    DEFAULT_FORMAT,
    FALLBACK_FORMATS,
    fallback_for,
    fallback_reason,
)
from app.chat.template_sandbox import render_sandboxed
from app.errors import ChatTemplateError

__all__ = [
    "CUSTOM_TEMPLATE_NAME",
    "DEFAULT_FORMAT",
    "FALLBACK_FORMATS",
    "MODEL_TEMPLATE_NAME",
    "RENDER_TIME_LIMIT_S",
    "RenderedPrompt",
    "TemplateSource",
    "fallback_for",
    "render_prompt",
]

MODEL_TEMPLATE_NAME = "the model's template"
CUSTOM_TEMPLATE_NAME = "a custom template"

# The output may be this much longer than the conversation's own text (twice over, for
# templates that repeat a system prompt); more than that is a template amplifying something.
_OUTPUT_ALLOWANCE_CHARS = 1_000_000
RENDER_TIME_LIMIT_S = 1.0

# End-of-turn markers a format needs as stop strings when the model's EOS is something else
# (e.g. a ChatML model whose EOS is <|endoftext|>): a template that writes one uses it.
_TURN_END_MARKERS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")


class TemplateSource(StrEnum):
    """Which template made a prompt."""

    MODEL = "model"  # the GGUF's own tokenizer.chat_template
    OVERRIDE = "override"  # a template the person set for this model
    FALLBACK = "fallback"  # a known format, because the model's was missing or failed


@dataclass(frozen=True, kw_only=True)
class RenderedPrompt:
    """A conversation rendered for a model, and how."""

    text: str
    source: TemplateSource
    format_name: str  # MODEL_TEMPLATE_NAME, a FALLBACK_FORMATS name, or CUSTOM_TEMPLATE_NAME
    note: str | None = None  # for a person: why a fallback was used
    stop: tuple[str, ...] = ()  # stop strings the format needs beyond the model's EOS


def render_prompt(
    messages: Sequence[Mapping[str, Any]],
    *,
    template: str | None,
    architecture: str | None,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    override: str | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> RenderedPrompt:
    """Render `messages` with the model's chat template, an override, or a fallback format.

    Args:
        messages: the conversation: mappings with "role" ("system", "user" or "assistant")
            and "content" (the text).
        template: the GGUF's `tokenizer.chat_template`; None or blank when it has none.
        architecture: GGUF `general.architecture`, to choose a fallback format.
        bos_token, eos_token: the model's BOS/EOS token text, which templates write out.
        add_generation_prompt: end with the header of an assistant turn for the model to
            complete.
        override: a template the person chose for this model; used instead of `template`.
        tools: tool definitions (OpenAI's shape) for a template that renders them; None
            for none (see `app.chat.tools` for templates that do not).

    A missing or failing model template (syntax error, `raise_exception`, a refused
    operation, output or time over the limits) is not an error: a fallback renders the
    prompt and `note` says why.

    Raises:
        ChatTemplateError: the override failed to render; or the fallback did, which only a
            conversation past the size or time limits makes it do.
    """
    variables = {
        "messages": [dict(message) for message in messages],
        "add_generation_prompt": add_generation_prompt,
        "bos_token": bos_token,
        "eos_token": eos_token,
        # transformers passes these; templates test them ("{% if tools %}").
        "tools": [dict(tool) for tool in tools] if tools else None,
        "documents": None,
    }
    if override is not None:
        try:
            text = _render(override, variables)
        except ChatTemplateError as exc:
            raise ChatTemplateError(
                f"The chat template override failed: {exc.message}.",
                hint="Fix the override in the model's settings, or clear it to use the "
                "model's own template.",
            ) from exc
        return RenderedPrompt(
            text=text,
            source=TemplateSource.OVERRIDE,
            format_name=_name_of(override),
            stop=_stops(override, eos_token),
        )

    name = fallback_for(architecture, bos_token, eos_token)
    using = f"using {name}, {fallback_reason(architecture)}."
    if template is None or not template.strip():
        note = f"The model has no chat template; {using}"
    else:
        try:
            text = _render(template, variables)
        except ChatTemplateError as exc:
            note = f"The model's chat template failed ({exc.message}); {using}"
        else:
            return RenderedPrompt(
                text=text,
                source=TemplateSource.MODEL,
                format_name=MODEL_TEMPLATE_NAME,
                stop=_stops(template, eos_token),
            )

    fallback = FALLBACK_FORMATS[name]
    try:
        text = _render(fallback, variables)
    except ChatTemplateError as exc:  # only a conversation past the limits gets here
        raise ChatTemplateError(
            f"The conversation could not be turned into a prompt ({name}: {exc.message}).",
            hint="Start a new conversation, or remove some long messages.",
        ) from exc
    return RenderedPrompt(
        text=text,
        source=TemplateSource.FALLBACK,
        format_name=name,
        note=note,
        stop=_stops(fallback, eos_token),
    )


def _render(source: str, variables: Mapping[str, Any]) -> str:
    """Render one template within the size and time limits; an empty prompt for a non-empty
    conversation counts as a failure (a template written for other variable names)."""
    messages: list[dict[str, Any]] = variables["messages"]
    conversation_chars = sum(len(str(message.get("content", ""))) for message in messages)
    text = render_sandboxed(
        source,
        variables,
        max_chars=_OUTPUT_ALLOWANCE_CHARS + 2 * conversation_chars,
        time_limit_s=RENDER_TIME_LIMIT_S,
    )
    if messages and not text.strip():
        raise ChatTemplateError("it rendered nothing")
    return text


def _name_of(override: str) -> str:
    """An override picked from the fallback list goes by that format's name."""
    for name, source in FALLBACK_FORMATS.items():
        if source == override:
            return name
    return CUSTOM_TEMPLATE_NAME


def _stops(source: str, eos_token: str) -> tuple[str, ...]:
    """The end-of-turn markers `source` writes, other than the EOS (llama.cpp stops there)."""
    return tuple(marker for marker in _TURN_END_MARKERS if marker in source and marker != eos_token)
