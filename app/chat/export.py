"""A conversation as a file to keep or share: Markdown to read, JSON to process.

The JSON document is versioned (`"format": "modeldeck.conversation"`, `"version": 1`); its keys
come in a fixed order, so exporting the same conversation twice gives the same text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from app.chat.conversations import (
    Conversation,
    Message,
    MessageState,
    ModelRef,
    Role,
)
from app.chat.image_store import ChatImageMissingError, ChatImageStore, StoredImage
from app.docs.citation import Citation
from app.text import one_line

FORMAT = "modeldeck.conversation"
VERSION = 1
_UNTITLED = "Untitled conversation"

_ROLE_HEADINGS = {Role.USER: "User", Role.ASSISTANT: "Assistant"}
_STATE_NOTES = {
    MessageState.STREAMING: "Still being written when this was exported.",
    MessageState.INTERRUPTED: "Interrupted: the app stopped before this reply was finished.",
    MessageState.CANCELLED: "Stopped before the end.",
}


def export_markdown(conversation: Conversation, messages: Sequence[Message]) -> str:
    """The conversation as Markdown: a title, the model and settings, then one section a turn.

    Replies carry a small line of stats; replies that did not finish say so; markers (older
    turns left out to fit the context) appear as a quoted note where they happened.
    """
    lines = [f"# {one_line(conversation.title, fallback=_UNTITLED)}", ""]
    lines.append(f"- **Model:** {_describe_model(conversation.model)}")
    if conversation.settings:
        lines.append(f"- **Settings:** {_describe_settings(conversation.settings)}")
    lines.append(f"- **Started:** {conversation.created_at}")
    if conversation.system_prompt.strip():
        lines += ["", "## System prompt", "", conversation.system_prompt.strip()]
    for message in messages:
        lines.append("")
        if message.role is Role.MARKER:
            lines.append(f"> *{one_line(message.content, fallback=_UNTITLED)}*")
            continue
        lines += [f"## {_ROLE_HEADINGS.get(message.role, message.role.title())}", ""]
        if message.content.strip():
            lines += [message.content.strip(), ""]
        if message.images:  # links into the image folder written beside the export
            lines += [f"![{_alt(image.name)}]({image_link(image)})" for image in message.images]
            lines.append("")
        if message.sources and message.role is Role.ASSISTANT:  # what the reply's [n] cite
            lines += ["**Sources:**", ""]
            lines += [f"- {_source_line(source)}" for source in message.sources]
            lines.append("")
        note = _STATE_NOTES.get(message.state)
        if message.state is MessageState.ERROR:
            note = f"Error: {message.error}" if message.error else "Error."
        if note:
            lines += [f"*({note})*", ""]
        if message.stats is not None and (summary := message.stats.summary(style="document")):
            lines += [f"*{summary}*", ""]
        lines.pop()  # the blank line after the section's last paragraph
    return "\n".join(lines) + "\n"


def export_json(conversation: Conversation, messages: Sequence[Message]) -> str:
    """The conversation as a versioned JSON document (UTF-8 text, indented by 2).

    Each message has role, content, state and created_at, then error, stats, dropped
    (markers), images and sources (a reply from documents: number, file, page, line_start,
    line_end, heading, score) only when it has them.
    """
    document = {
        "format": FORMAT,
        "version": VERSION,
        "title": conversation.title,
        "created_at": conversation.created_at,
        "updated_at": conversation.updated_at,
        "model": conversation.model.to_json() if conversation.model else None,
        "settings": _sorted(conversation.settings),
        "system_prompt": conversation.system_prompt,
        "messages": [_message_document(message) for message in messages],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def _message_document(message: Message) -> dict[str, Any]:
    document: dict[str, Any] = {
        "role": str(message.role),
        "content": message.content,
        "state": str(message.state),
        "created_at": message.created_at,
    }
    if message.error is not None:
        document["error"] = message.error
    if message.stats is not None:
        document["stats"] = _sorted(message.stats.to_json())
    if message.dropped is not None:
        document["dropped"] = message.dropped
    if message.images:
        document["images"] = [
            {"name": image.name, "sha256": image.sha256, "file": image_link(image)}
            for image in message.images
        ]
    if message.sources:
        document["sources"] = [source.to_json() for source in message.sources]
    return document


def _source_line(source: Citation) -> str:
    """ "[1] `/notes/report.pdf`, page 3, lines 10-24 (score 0.0328)"."""
    path = source.path.replace("`", "'")
    return f"[{source.number}] `{path}`, {source.location} (score {source.score:.4g})"


IMAGE_FOLDER = "chat-images"  # beside an exported file, as beside the database


def image_link(image: StoredImage) -> str:
    """Where an exported conversation finds an image: `chat-images/<ab>/<sha256>.<ext>`,
    relative to the export (copy the store's files there: `exported_images`)."""
    return f"{IMAGE_FOLDER}/{image.sha256[:2]}/{image.file_name}"


def exported_images(messages: Sequence[Message]) -> list[StoredImage]:
    """The images an export links to, each once, to copy beside it."""
    seen = {image.sha256: image for message in messages for image in message.images}
    return list(seen.values())


def copy_exported_images(messages: Sequence[Message], store: ChatImageStore, folder: Path) -> None:
    """Copy the images an export links to into `folder` (where the export was written), so
    its relative links open; an image missing from the store is skipped (its link stays)."""
    for image in exported_images(messages):
        target = folder / image_link(image)
        if target.exists():
            continue
        try:
            data = store.read(image)
        except ChatImageMissingError:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _alt(name: str) -> str:
    return one_line(name, fallback="image").replace("[", "(").replace("]", ")")


def _sorted(value: Any) -> Any:
    """Settings with their keys sorted at every level, so equal settings export equally."""
    if isinstance(value, Mapping):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [_sorted(item) for item in value]
    return value


def _describe_model(model: ModelRef | None) -> str:
    if model is None:
        return "none chosen"
    if model.kind == "remote":
        return f"{model.name} at {model.url}"
    parts = [model.name]
    if model.repo_id:
        parts.append(f"from {model.repo_id}")
    if model.sha256:
        parts.append(f"sha256 `{model.sha256}`")
    return " · ".join(parts)


def _describe_settings(settings: Mapping[str, Any]) -> str:
    return " · ".join(f"{name} {_plain(value)}" for name, value in _flatten(settings))


def _flatten(settings: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in settings.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
