"""A local GGUF as a chat engine: render the chat template here, complete it in llama.cpp.

`LocalChatEngine` is the `LlmEngine` (which takes a rendered prompt) plus the chat layer:
the model's template (or an override, or a fallback) is rendered in this process, so the
prompt shown to the user is the one sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from app.chat.templates import RenderedPrompt, render_prompt
from app.chat.tools import Tools, template_reads_tools, with_tool_prompt
from app.chat.vision import ImageAttachment, place_images
from app.engines.supervisor import RequestHandle
from app.llm.engine import LlmEngine
from app.llm.grammar import grammar_for_schema_text
from app.llm.sampling import Sampling


class LocalChatEngine(LlmEngine):
    """One local LLM that answers chat messages (a `ChatEngine`)."""

    def __init__(self) -> None:
        super().__init__()
        self.template_override: str | None = None

    def render(
        self, messages: Sequence[Mapping[str, Any]], tools: Tools | None = None
    ) -> RenderedPrompt:
        """The prompt as the model sees it (the model's template, an override or a fallback),
        with `tools` rendered by the template when it reads them, else described in a system
        message (`app.chat.tools`)."""
        return self._render(self._with_tools(messages, tools), tools)

    def _with_tools(
        self, messages: Sequence[Mapping[str, Any]], tools: Tools | None
    ) -> Sequence[Mapping[str, Any]]:
        """The messages the template is given: as they are, or with the tools written in."""
        if tools is None or template_reads_tools(self._template()):
            return messages
        return with_tool_prompt(messages, tools)

    def _render(self, messages: Sequence[Mapping[str, Any]], tools: Tools | None) -> RenderedPrompt:
        loaded = self._require_loaded()
        template_tools = None
        if tools is not None and tools.offered and template_reads_tools(self._template()):
            template_tools = tools.template_tools()
        return render_prompt(
            messages,
            template=loaded.chat_template,
            architecture=loaded.architecture,
            bos_token=loaded.bos_token,
            eos_token=loaded.eos_token,
            override=self.template_override,
            tools=template_tools,
        )

    @property
    def sees_images(self) -> bool:
        """Whether the loaded model has a vision projector: messages may carry images."""
        return self._loaded is not None and self._loaded.vision

    def _template(self) -> str | None:
        """The template source that renders prompts (an override, else the model's)."""
        if self.template_override is not None:
            return self.template_override
        return self._require_loaded().chat_template

    def prompt_tokens(self, messages: Sequence[Mapping[str, str]]) -> int:
        """The size of `messages` once templated, in the model's tokens."""
        return self.count_tokens(self.render(messages).text)

    def generate(
        self,
        messages: Sequence[Mapping[str, Any]],
        sampling: Sampling,
        *,
        tools: Tools | None = None,
        images: Sequence[ImageAttachment] = (),
    ) -> RequestHandle:
        """Start a reply; its CHUNK events carry text, its RESULT the reply's statistics.

        `sampling.json_schema` constrains the reply by a grammar; a forced tool choice
        constrains it to one call instead (see `app.chat.tools`), parsed by the caller.

        `images` go, in order, where `content_with_images` put their markers (`app.chat.vision`).

        Raises:
            GrammarError: the schema cannot become a grammar.
            VisionError: the rendered prompt has another number of image markers.
        """
        messages = self._with_tools(messages, tools)
        prompt = self._render(messages, tools)
        stops = tuple(dict.fromkeys((*sampling.stop, *prompt.stop)))
        spans = literal_spans(prompt.text, [m.get("content") or "" for m in messages])
        schema = sampling.json_schema
        if tools is not None and (call_schema := tools.call_schema()) is not None:
            schema = json.dumps(call_schema)
        grammar = grammar_for_schema_text(schema) if schema is not None else None
        return self.generate_from_prompt(
            prompt.text,
            replace(sampling, stop=stops),
            literal_spans=spans,
            grammar=grammar,
            images=place_images(prompt.text, images) if images else (),
        )


def literal_spans(prompt: str, contents: Sequence[str]) -> list[tuple[int, int]]:
    """Where each message's text sits in the rendered prompt, in order (texts a template
    changed are not found, and are left out)."""
    spans: list[tuple[int, int]] = []
    cursor = 0
    for content in contents:
        if not content:
            continue
        start = prompt.find(content, cursor)
        if start >= 0:
            spans.append((start, start + len(content)))
            cursor = start + len(content)
    return spans
