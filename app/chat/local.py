"""A local GGUF as a chat engine: render the chat template here, complete it in llama.cpp.

`LocalChatEngine` is the `LlmEngine` (which takes a rendered prompt) plus the chat layer:
the model's template (or an override, or a fallback) is rendered in this process, so the
prompt shown to the user is the one sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from app.chat.templates import RenderedPrompt, render_prompt
from app.engines.supervisor import RequestHandle
from app.llm.engine import LlmEngine
from app.llm.sampling import Sampling


class LocalChatEngine(LlmEngine):
    """One local LLM that answers chat messages (a `ChatEngine`)."""

    def __init__(self) -> None:
        super().__init__()
        self.template_override: str | None = None

    def render(self, messages: Sequence[Mapping[str, str]]) -> RenderedPrompt:
        """The prompt as the model sees it (the model's template, an override or a fallback)."""
        loaded = self._require_loaded()
        return render_prompt(
            messages,
            template=loaded.chat_template,
            architecture=loaded.architecture,
            bos_token=loaded.bos_token,
            eos_token=loaded.eos_token,
            override=self.template_override,
        )

    def prompt_tokens(self, messages: Sequence[Mapping[str, str]]) -> int:
        """The size of `messages` once templated, in the model's tokens."""
        return self.count_tokens(self.render(messages).text)

    def generate(self, messages: Sequence[Mapping[str, str]], sampling: Sampling) -> RequestHandle:
        """Start a reply; its CHUNK events carry text, its RESULT the reply's statistics."""
        prompt = self.render(messages)
        stops = tuple(dict.fromkeys((*sampling.stop, *prompt.stop)))
        spans = literal_spans(prompt.text, [m.get("content", "") for m in messages])
        return self.generate_from_prompt(
            prompt.text, replace(sampling, stop=stops), literal_spans=spans
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
