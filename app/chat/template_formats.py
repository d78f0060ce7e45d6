"""The chat formats ModelDeck falls back on when a model's own template is missing or fails.

Each is a Jinja template rendered the same way as a model's (`template_sandbox`), so one code
path renders every prompt. They take what every chat template takes (`messages`,
`add_generation_prompt`, `bos_token`, `eos_token`) and, unlike many model templates, never
raise: a fallback must render any conversation. Formats without a system role (Llama 2,
Mistral, Gemma) put the system prompt at the head of the first user turn, as their own
templates do.

`fallback_for` picks one from GGUF metadata (`general.architecture`, the BOS/EOS tokens).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "DEFAULT_FORMAT",
    "FALLBACK_FORMATS",
    "fallback_for",
    "fallback_reason",
]

# `ns.system` is the system prompt until a user turn has taken it; `turns` the rest.
_SPLIT_SYSTEM = (
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% set ns = namespace(system=messages[0]['content'] | trim) %}"
    "{% set turns = messages[1:] %}"
    "{% else %}"
    "{% set ns = namespace(system='') %}"
    "{% set turns = messages %}"
    "{% endif %}"
)


def _user_content(merge: str) -> str:
    """Set `content` to the user turn's text, with the system prompt merged in by `merge` (a
    Jinja expression over `ns.system` and `text`) on the first user turn."""
    return (
        "{% set text = message['content'] | trim %}"
        "{% if ns.system %}"
        f"{{% set content = {merge} %}}"
        "{% set ns.system = '' %}"
        "{% else %}"
        "{% set content = text %}"
        "{% endif %}"
    )


CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' ~ message['role'] ~ '\n' ~ message['content'] ~ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

LLAMA_3 = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' ~ message['role'] ~ '<|end_header_id|>\n\n'"
    " ~ message['content'] | trim ~ '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)

LLAMA_2 = (
    _SPLIT_SYSTEM + "{% for message in turns %}"
    "{% if message['role'] == 'user' %}"
    + _user_content("'<<SYS>>\n' ~ ns.system ~ '\n<</SYS>>\n\n' ~ text")
    + "{{ bos_token ~ '[INST] ' ~ content ~ ' [/INST]' }}"
    "{% else %}"
    "{{ ' ' ~ message['content'] | trim ~ ' ' ~ eos_token }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if ns.system %}{{ bos_token ~ '[INST] <<SYS>>\n' ~ ns.system ~ '\n<</SYS>>\n\n [/INST]' }}"
    "{% endif %}"
)

MISTRAL = (
    _SPLIT_SYSTEM + "{{ bos_token }}"
    "{% for message in turns %}"
    "{% if message['role'] == 'user' %}"
    + _user_content("ns.system ~ '\n\n' ~ text")
    + "{{ '[INST] ' ~ content ~ ' [/INST]' }}"
    "{% else %}"
    "{{ message['content'] | trim ~ eos_token }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if ns.system %}{{ '[INST] ' ~ ns.system ~ ' [/INST]' }}{% endif %}"
)

GEMMA = (
    _SPLIT_SYSTEM + "{{ bos_token }}"
    "{% for message in turns %}"
    "{% if message['role'] == 'user' %}"
    + _user_content("ns.system ~ '\n\n' ~ text")
    + "{{ '<start_of_turn>user\n' ~ content ~ '<end_of_turn>\n' }}"
    "{% else %}"
    "{{ '<start_of_turn>model\n' ~ message['content'] | trim ~ '<end_of_turn>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if ns.system %}{{ '<start_of_turn>user\n' ~ ns.system ~ '<end_of_turn>\n' }}{% endif %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)

PHI_3 = (
    "{% for message in messages %}"
    "{{ '<|' ~ message['role'] ~ '|>\n' ~ message['content'] ~ '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

DEFAULT_FORMAT = "ChatML"

# In the order an override list shows them: the default first.
FALLBACK_FORMATS: Mapping[str, str] = MappingProxyType(
    {
        "ChatML": CHATML,
        "Llama 3": LLAMA_3,
        "Llama 2": LLAMA_2,
        "Mistral": MISTRAL,
        "Gemma": GEMMA,
        "Phi-3": PHI_3,
    }
)

# general.architecture → format; "llama" is decided by its tokens (see fallback_for).
_BY_ARCHITECTURE: Mapping[str, str] = MappingProxyType(
    {
        "llama": "Llama 2",
        "mistral": "Mistral",
        "qwen2": "ChatML",
        "qwen2moe": "ChatML",
        "qwen3": "ChatML",
        "qwen3moe": "ChatML",
        "gemma": "Gemma",
        "gemma2": "Gemma",
        "gemma3": "Gemma",
        "phi3": "Phi-3",
    }
)
_LLAMA_3_TOKENS = frozenset({"<|begin_of_text|>", "<|eot_id|>", "<|end_of_text|>"})


def fallback_for(architecture: str | None, bos_token: str = "", eos_token: str = "") -> str:
    """The name of the format (a key of `FALLBACK_FORMATS`) to use for a model without a
    working chat template.

    `architecture` is GGUF `general.architecture`. Llama 2 and Llama 3 share the "llama"
    architecture; Llama 3's BOS/EOS tokens tell them apart. Unknown architectures get ChatML,
    the format most instruction-tuned models of the last years understand.
    """
    arch = (architecture or "").lower()
    if arch == "llama" and (bos_token in _LLAMA_3_TOKENS or eos_token in _LLAMA_3_TOKENS):
        return "Llama 3"
    return _BY_ARCHITECTURE.get(arch, DEFAULT_FORMAT)


def fallback_reason(architecture: str | None) -> str:
    """Why `fallback_for` chose what it did, as the end of a sentence ("chosen for …")."""
    if not architecture:
        return "the default when the architecture is unknown"
    if architecture.lower() in _BY_ARCHITECTURE:
        return f"chosen for architecture {architecture}"
    return f"the default for architecture {architecture}"
