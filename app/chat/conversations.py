"""Conversations and their messages in the app database, and settings presets per model.

A reply is stored while it streams: `append_message(..., state=STREAMING)` once, then
`update_content` every flush (one UPDATE), then `finish_message`. If the app dies in between,
`recover_interrupted` at the next start turns the half-written reply into an interrupted one,
keeping what was last flushed.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from app.chat.image_store import StoredImage
from app.docs.citation import Citation
from app.errors import AppError
from app.llm.stats import GenerationStats
from app.store import Database

NEW_CONVERSATION_TITLE = "New conversation"


class Role(StrEnum):
    """Who a message is from. A marker is no turn: it is never sent to a model."""

    USER = "user"
    ASSISTANT = "assistant"
    MARKER = "marker"  # older turns were left out of the prompt from here on


class MessageState(StrEnum):
    """Where a message stands. Only STREAMING is not final; CANCELLED is no error."""

    COMPLETE = "complete"
    STREAMING = "streaming"
    INTERRUPTED = "interrupted"  # the app stopped while the reply streamed
    ERROR = "error"
    CANCELLED = "cancelled"  # the person stopped the reply


class ConversationNotFoundError(AppError, LookupError):
    """No conversation has this id (it was deleted, or never existed)."""

    def __init__(self, message: str, *, conversation_id: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.conversation_id = conversation_id


class MessageNotFoundError(AppError, LookupError):
    """No message has this id (its conversation was deleted or truncated)."""

    def __init__(self, message: str, *, message_id: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.message_id = message_id


@dataclass(frozen=True, kw_only=True)
class ModelRef:
    """The model a conversation talks to: a local file, or a model behind a remote server."""

    kind: Literal["local", "remote"]
    name: str  # what a person sees; for a remote server, the model name it is asked for
    path: str | None = None  # local: the checkpoint file or folder
    sha256: str | None = None  # local: when known
    repo_id: str | None = None  # local: the hub repository it came from, when known
    url: str | None = None  # remote: the server's base URL

    @classmethod
    def local(
        cls, *, path: str, name: str, sha256: str | None = None, repo_id: str | None = None
    ) -> ModelRef:
        return cls(kind="local", name=name, path=path, sha256=sha256, repo_id=repo_id)

    @classmethod
    def remote(cls, *, url: str, name: str) -> ModelRef:
        return cls(kind="remote", name=name, url=url)

    @property
    def preset_key(self) -> str:
        """The key its presets are saved under: the sha256 when known (it survives a move)."""
        if self.kind == "remote":
            return f"remote:{self.url}#{self.name}"
        if self.sha256:
            return f"sha256:{self.sha256}"
        return f"path:{self.path}"

    def to_json(self) -> dict[str, Any]:
        """A JSON object with the fields of its kind, in a fixed order (null when unknown)."""
        if self.kind == "remote":
            return {"kind": "remote", "name": self.name, "url": self.url}
        return {
            "kind": "local",
            "name": self.name,
            "path": self.path,
            "sha256": self.sha256,
            "repo_id": self.repo_id,
        }

    @classmethod
    def from_json(cls, value: object) -> ModelRef | None:
        """The reference `to_json` wrote, or None when `value` is not one."""
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            return None
        text = {key: item for key, item in value.items() if isinstance(item, str)}
        if value.get("kind") == "remote":
            return cls.remote(url=text.get("url", ""), name=value["name"])
        if value.get("kind") == "local":
            return cls.local(
                path=text.get("path", ""),
                name=value["name"],
                sha256=text.get("sha256"),
                repo_id=text.get("repo_id"),
            )
        return None


@dataclass(frozen=True, kw_only=True)
class Conversation:
    id: int
    title: str
    system_prompt: str
    model: ModelRef | None  # None: no model picked yet
    settings: Mapping[str, Any]  # sampling and load settings, as JSON values
    created_at: str  # ISO 8601, UTC
    updated_at: str  # the last change to it or to one of its messages


@dataclass(frozen=True, kw_only=True)
class Message:
    id: int
    conversation_id: int
    position: int  # 0, 1, 2, … in reading order (gaps are possible)
    role: Role
    content: str
    state: MessageState
    error: str | None  # one line for a person, when state is ERROR
    stats: GenerationStats | None  # replies only
    dropped: int | None  # markers only: how many older messages were left out
    created_at: str
    updated_at: str  # for a streaming reply: its last flush
    # A regenerated reply keeps its earlier versions: this is version `version` of `versions`
    # (1 of 1 for every message never regenerated). Only the version shown is ever sent.
    version: int = 1
    versions: int = 1
    images: tuple[StoredImage, ...] = ()  # a user message's attached images, in order
    # A reply from documents: the numbered sources it was given, which its [n] cite.
    sources: tuple[Citation, ...] = ()


class VersionNotFoundError(AppError, LookupError):
    """The reply has no version with this number."""


def title_from_message(text: str, *, limit: int = 40) -> str:
    """A conversation title from its first user message: the first line, cut near `limit`.

    The cut falls on a word boundary when there is one in the second half, and ends with "…".
    A message with no text gives "New conversation".
    """
    line = next((line for line in text.splitlines() if line.strip()), "")
    line = " ".join(line.split())
    if not line:
        return NEW_CONVERSATION_TITLE
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,.;:-") + "…"


def marker_text(dropped: int) -> str:
    """What a marker says to a person."""
    noun = "message was" if dropped == 1 else "messages were"
    return f"{dropped} earlier {noun} left out here to fit the model's context."


class ConversationStore:
    """Reads and writes conversations, messages and presets; each call is one short transaction.

    Every method runs on the caller's thread and does disk I/O: call it off the GUI thread.
    """

    def __init__(self, database: Database, *, clock: Callable[[], datetime] | None = None) -> None:
        """`clock` gives the current time (tests pass a fixed one); by default the system's."""
        self._db = database
        self._clock = clock or (lambda: datetime.now(UTC))

    # -- conversations ---------------------------------------------------------------

    def create(
        self,
        title: str,
        *,
        system_prompt: str = "",
        model: ModelRef | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> Conversation:
        """Store a new, empty conversation and return it.

        Raises TypeError when `settings` holds a value JSON cannot represent.
        """
        now = self._now()
        settings = dict(settings or {})
        with self._db.transaction() as connection:
            cursor = connection.execute(
                "INSERT INTO conversations (title, system_prompt, model, settings, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (title, system_prompt, _model_json(model), _dumps(settings), now, now),
            )
            conversation_id = cursor.lastrowid
        assert conversation_id is not None
        return Conversation(
            id=conversation_id,
            title=title,
            system_prompt=system_prompt,
            model=model,
            settings=settings,
            created_at=now,
            updated_at=now,
        )

    def get(self, conversation_id: int) -> Conversation:
        """The conversation with this id. Raises ConversationNotFoundError."""
        row = self._db.fetch_one(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id = ?", (conversation_id,)
        )
        if row is None:
            raise _not_found(conversation_id)
        return _conversation(row)

    def list(self, search: str = "") -> builtins.list[Conversation]:
        """Every conversation, the most recently changed first.

        `search` (when not blank) keeps those whose title or any message contains it, ignoring
        case (ASCII letters only: SQLite's LIKE); % and _ in it match themselves.
        """
        query = f"SELECT {_CONVERSATION_COLUMNS} FROM conversations"
        parameters: tuple[str, ...] = ()
        if search.strip():
            pattern = _like_pattern(search.strip())
            query += (
                " WHERE title LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM messages"
                " WHERE messages.conversation_id = conversations.id AND role != 'marker'"
                " AND content LIKE ? ESCAPE '\\')"
            )
            parameters = (pattern, pattern)
        query += " ORDER BY updated_at DESC, id DESC"
        return [_conversation(row) for row in self._db.fetch_all(query, parameters)]

    def rename(self, conversation_id: int, title: str) -> None:
        """Give the conversation a new title. Raises ConversationNotFoundError."""
        self._update_conversation(conversation_id, "title", title)

    def set_system_prompt(self, conversation_id: int, system_prompt: str) -> None:
        """Replace the system prompt. Raises ConversationNotFoundError."""
        self._update_conversation(conversation_id, "system_prompt", system_prompt)

    def set_settings(self, conversation_id: int, settings: Mapping[str, Any]) -> None:
        """Replace the sampling and load settings. Raises ConversationNotFoundError."""
        self._update_conversation(conversation_id, "settings", _dumps(dict(settings)))

    def set_model(self, conversation_id: int, model: ModelRef | None) -> None:
        """Point the conversation at another model. Raises ConversationNotFoundError."""
        self._update_conversation(conversation_id, "model", _model_json(model))

    def delete(self, conversation_id: int) -> None:
        """Delete the conversation and its messages; deleting a missing one does nothing."""
        self._db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    # -- messages --------------------------------------------------------------------

    def messages(self, conversation_id: int) -> builtins.list[Message]:
        """The conversation's messages in reading order. Raises ConversationNotFoundError."""
        rows = self._db.fetch_all(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY position",
            (conversation_id,),
        )
        if not rows:
            self.get(conversation_id)  # raises when the conversation is gone
        return [_message(row) for row in rows]

    def append_message(
        self,
        conversation_id: int,
        role: Role | str,
        content: str,
        *,
        state: MessageState | str = MessageState.COMPLETE,
        images: tuple[StoredImage, ...] = (),
    ) -> Message:
        """Add a user or assistant message after the last one and return it.

        A reply that is about to stream starts with `state=MessageState.STREAMING`;
        `images` (already in the chat image store) are listed with the message.
        Raises ConversationNotFoundError; ValueError for an unknown role or state, or for a
        marker (see `add_marker`).
        """
        role = Role(role)
        if role is Role.MARKER:
            raise ValueError("markers are added with add_marker")
        return self._append(
            conversation_id, role, content, MessageState(state), dropped=None, images=images
        )

    def add_marker(
        self,
        conversation_id: int,
        *,
        dropped: int,
        before_position: int | None = None,
        text: str | None = None,
    ) -> Message:
        """Record that `dropped` older messages were left out of the prompt to fit the context.

        The marker goes before the message at `before_position` (the first one still sent;
        it and later messages move one position on), or after the last message when that is
        None. `text` replaces the default wording (`marker_text`).
        Raises ConversationNotFoundError; ValueError when `dropped` is below 1.
        """
        if dropped < 1:
            raise ValueError(f"a marker needs at least one dropped message, not {dropped}")
        content = marker_text(dropped) if text is None else text
        return self._append(
            conversation_id,
            Role.MARKER,
            content,
            MessageState.COMPLETE,
            dropped,
            before_position=before_position,
        )

    def set_turn_sources(self, reply_id: int, sources: tuple[Citation, ...]) -> None:
        """Keep `sources` with the reply `reply_id` and with the question it answers (the
        user message before it, which quotes them), so the [n] of both open them.

        Raises MessageNotFoundError.
        """
        sources_json = _dumps([source.to_json() for source in sources]) if sources else None
        with self._db.transaction() as connection:
            row = connection.execute(
                "SELECT conversation_id, position FROM messages WHERE id = ?", (reply_id,)
            ).fetchone()
            if row is None:
                raise _message_not_found(reply_id)
            connection.execute(
                "UPDATE messages SET sources = ? WHERE id = ? OR id = ("
                "SELECT id FROM messages WHERE conversation_id = ? AND position < ? "
                "AND role = 'user' ORDER BY position DESC LIMIT 1)",
                (sources_json, reply_id, row[0], row[1]),
            )

    def update_content(self, message_id: int, content: str) -> None:
        """Store the text a streaming reply has so far: one UPDATE, cheap enough for every
        flush. A message no longer streaming is left alone, so a late flush cannot overwrite
        what `finish_message` wrote."""
        self._db.execute(
            "UPDATE messages SET content = ?, updated_at = ? WHERE id = ? AND state = 'streaming'",
            (content, self._now(), message_id),
        )

    def finish_message(
        self,
        message_id: int,
        *,
        content: str,
        state: MessageState | str,
        stats: GenerationStats | None = None,
        error: str | None = None,
    ) -> Message:
        """Store a reply's final text and outcome and return it.

        Raises MessageNotFoundError; ValueError when `state` is STREAMING or unknown.
        """
        state = MessageState(state)
        if state is MessageState.STREAMING:
            raise ValueError("a finished message cannot be streaming")
        now = self._now()
        stats_json = _dumps(stats.to_json()) if stats is not None else None
        with self._db.transaction() as connection:
            cursor = connection.execute(
                "UPDATE messages SET content = ?, state = ?, error = ?, stats = ?, updated_at = ? "
                "WHERE id = ?",
                (content, state, error, stats_json, now, message_id),
            )
            if cursor.rowcount == 0:
                raise _message_not_found(message_id)
            self._touch_owner(connection, message_id, now)
            row = connection.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
        return _message(row)

    def new_version(self, message_id: int) -> Message:
        """Start another version of the reply `message_id`: the one shown is kept among its
        versions, and the message becomes an empty streaming reply numbered after the last
        (stream into it as into an appended reply). Returns the message as it is now.

        Raises MessageNotFoundError; ValueError when it is no reply, or still streaming.
        """
        now = self._now()
        with self._db.transaction() as connection:
            row = connection.execute(
                "SELECT role, content, state, error, stats, version, created_at FROM messages "
                "WHERE id = ?",
                (message_id,),
            ).fetchone()
            if row is None:
                raise _message_not_found(message_id)
            role, content, state, error, stats, version, created = row
            if role != Role.ASSISTANT:
                raise ValueError("only a reply has versions")
            if state == MessageState.STREAMING:
                raise ValueError("a reply still streaming cannot get another version")
            connection.execute(
                "INSERT INTO reply_versions (message_id, number, content, state, error, stats, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (message_id, version, content, state, error, stats, created),
            )
            (last,) = connection.execute(
                "SELECT MAX(number) FROM reply_versions WHERE message_id = ?", (message_id,)
            ).fetchone()
            connection.execute(
                "UPDATE messages SET content = '', state = 'streaming', error = NULL, "
                "stats = NULL, version = ?, created_at = ?, updated_at = ? WHERE id = ?",
                (max(last, version) + 1, now, now, message_id),
            )
            self._touch_owner(connection, message_id, now)
            fresh = connection.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
        return _message(fresh)

    def choose_version(self, message_id: int, number: int) -> Message:
        """Show version `number` of the reply `message_id` (it is what a model sees from now
        on); the version shown before is kept. Returns the message as it is now.

        Raises MessageNotFoundError; VersionNotFoundError; ValueError while it streams.
        """
        now = self._now()
        with self._db.transaction() as connection:
            row = connection.execute(
                "SELECT content, state, error, stats, version, created_at FROM messages "
                "WHERE id = ?",
                (message_id,),
            ).fetchone()
            if row is None:
                raise _message_not_found(message_id)
            content, state, error, stats, version, created = row
            if state == MessageState.STREAMING:
                raise ValueError("a reply still streaming cannot switch versions")
            if number != version:
                chosen = connection.execute(
                    "SELECT content, state, error, stats, created_at FROM reply_versions "
                    "WHERE message_id = ? AND number = ?",
                    (message_id, number),
                ).fetchone()
                if chosen is None:
                    raise VersionNotFoundError(
                        f"This reply has no version {number}.", hint="Reopen the conversation."
                    )
                connection.execute(
                    "DELETE FROM reply_versions WHERE message_id = ? AND number = ?",
                    (message_id, number),
                )
                connection.execute(
                    "INSERT INTO reply_versions (message_id, number, content, state, error, "
                    "stats, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (message_id, version, content, state, error, stats, created),
                )
                connection.execute(
                    "UPDATE messages SET content = ?, state = ?, error = ?, stats = ?, "
                    "version = ?, created_at = ?, updated_at = ? WHERE id = ?",
                    (*chosen[:4], number, chosen[4], now, message_id),
                )
                self._touch_owner(connection, message_id, now)
            fresh = connection.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
        return _message(fresh)

    def truncate_from(self, conversation_id: int, position: int) -> int:
        """Delete the messages at and after `position` (to edit and resend, or regenerate);
        returns how many were deleted. Raises ConversationNotFoundError."""
        now = self._now()
        with self._db.transaction() as connection:
            touched = connection.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id)
            )
            if touched.rowcount == 0:
                raise _not_found(conversation_id)
            cursor = connection.execute(
                "DELETE FROM messages WHERE conversation_id = ? AND position >= ?",
                (conversation_id, position),
            )
            deleted: int = cursor.rowcount
        return deleted

    def recover_interrupted(self) -> int:
        """Mark replies left streaming by a previous run (the app was killed) as interrupted,
        keeping their text as last flushed. Call once at startup; returns how many."""
        with self._db.transaction() as connection:
            cursor = connection.execute(
                "UPDATE messages SET state = 'interrupted' WHERE state = 'streaming'"
            )
            fixed: int = cursor.rowcount
        return fixed

    # -- presets per model -----------------------------------------------------------

    def save_preset(self, model_key: str, settings: Mapping[str, Any]) -> None:
        """Remember load and sampling settings for a model (see `ModelRef.preset_key`)."""
        self._db.execute(
            "INSERT INTO model_presets (model_key, settings, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(model_key) DO UPDATE SET settings = excluded.settings, "
            "updated_at = excluded.updated_at",
            (model_key, _dumps(dict(settings)), self._now()),
        )

    def load_preset(self, model_key: str) -> dict[str, Any] | None:
        """The settings saved for a model, or None."""
        row = self._db.fetch_one(
            "SELECT settings FROM model_presets WHERE model_key = ?", (model_key,)
        )
        return _json_object(row[0]) if row else None

    def delete_preset(self, model_key: str) -> None:
        """Forget a model's settings (back to the defaults); a missing one does nothing."""
        self._db.execute("DELETE FROM model_presets WHERE model_key = ?", (model_key,))

    # -- helpers ---------------------------------------------------------------------

    def _now(self) -> str:
        # Microseconds: the list is ordered by updated_at, and a second is too coarse for that.
        return self._clock().astimezone(UTC).isoformat(timespec="microseconds")

    @staticmethod
    def _touch_owner(connection: sqlite3.Connection, message_id: int, now: str) -> None:
        """Mark the conversation holding `message_id` as changed now."""
        connection.execute(
            "UPDATE conversations SET updated_at = ? "
            "WHERE id = (SELECT conversation_id FROM messages WHERE id = ?)",
            (now, message_id),
        )

    def _update_conversation(self, conversation_id: int, column: str, value: object) -> None:
        with self._db.transaction() as connection:
            cursor = connection.execute(
                f"UPDATE conversations SET {column} = ?, updated_at = ? WHERE id = ?",
                (value, self._now(), conversation_id),
            )
            if cursor.rowcount == 0:
                raise _not_found(conversation_id)

    def _append(
        self,
        conversation_id: int,
        role: Role,
        content: str,
        state: MessageState,
        dropped: int | None,
        *,
        before_position: int | None = None,
        images: tuple[StoredImage, ...] = (),
    ) -> Message:
        now = self._now()
        images_json = _dumps([image.to_json() for image in images]) if images else None
        with self._db.transaction() as connection:
            touched = connection.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id)
            )
            if touched.rowcount == 0:
                raise _not_found(conversation_id)
            (position,) = connection.execute(
                "SELECT COALESCE(MAX(position) + 1, 0) FROM messages WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()
            if before_position is not None and before_position < position:
                position = max(before_position, 0)
                # Two steps through negative numbers: UNIQUE(conversation_id, position) is
                # checked row by row, so a plain "position + 1" could collide midway.
                connection.execute(
                    "UPDATE messages SET position = -position - 2 "
                    "WHERE conversation_id = ? AND position >= ?",
                    (conversation_id, position),
                )
                connection.execute(
                    "UPDATE messages SET position = -position - 1 "
                    "WHERE conversation_id = ? AND position < 0",
                    (conversation_id,),
                )
            cursor = connection.execute(
                "INSERT INTO messages (conversation_id, position, role, content, state, dropped, "
                "created_at, updated_at, images) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, position, role, content, state, dropped, now, now, images_json),
            )
            message_id = cursor.lastrowid
        assert message_id is not None
        return Message(
            id=message_id,
            conversation_id=conversation_id,
            position=position,
            role=role,
            content=content,
            state=state,
            error=None,
            stats=None,
            dropped=dropped,
            created_at=now,
            updated_at=now,
            images=images,
        )


_CONVERSATION_COLUMNS = "id, title, system_prompt, model, settings, created_at, updated_at"
_MESSAGE_COLUMNS = (
    "id, conversation_id, position, role, content, state, error, stats, dropped, "
    "created_at, updated_at, version, "
    "(SELECT COUNT(*) FROM reply_versions WHERE reply_versions.message_id = messages.id) + 1, "
    "images, sources"
)


def _conversation(row: tuple[Any, ...]) -> Conversation:
    conversation_id, title, system_prompt, model, settings, created, updated = row
    return Conversation(
        id=conversation_id,
        title=title,
        system_prompt=system_prompt,
        model=ModelRef.from_json(_loads(model)),
        settings=_json_object(settings),
        created_at=created,
        updated_at=updated,
    )


def _message(row: tuple[Any, ...]) -> Message:
    message_id, conversation_id, position, role, content, state, error, stats, dropped, *rest = row
    created, updated, version, versions, images, sources = rest
    return Message(
        id=message_id,
        conversation_id=conversation_id,
        position=position,
        role=_role(role),
        content=content,
        state=_state(state),
        error=error,
        stats=GenerationStats.from_json(_loads(stats)),
        dropped=dropped,
        created_at=created,
        updated_at=updated,
        version=version,
        versions=max(versions, version),
        images=_images(images),
        sources=_sources(sources),
    )


def _sources(text: str | None) -> tuple[Citation, ...]:
    """A reply's citations; a malformed entry is left out, not an error."""
    value = _loads(text)
    if not isinstance(value, list):
        return ()
    return tuple(source for item in value if (source := Citation.from_json(item)) is not None)


def _images(text: str | None) -> tuple[StoredImage, ...]:
    """A message's image records; a malformed entry is left out, not an error."""
    value = _loads(text)
    if not isinstance(value, list):
        return ()
    return tuple(image for item in value if (image := StoredImage.from_json(item)) is not None)


def _role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:  # written by a newer version: show it, never send it
        return Role.MARKER


def _state(text: str) -> MessageState:
    try:
        return MessageState(text)
    except ValueError:
        return MessageState.INTERRUPTED


def _not_found(conversation_id: int) -> ConversationNotFoundError:
    return ConversationNotFoundError(
        f"Conversation {conversation_id} no longer exists.", conversation_id=conversation_id
    )


def _message_not_found(message_id: int) -> MessageNotFoundError:
    return MessageNotFoundError(f"Message {message_id} no longer exists.", message_id=message_id)


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _model_json(model: ModelRef | None) -> str | None:
    return _dumps(model.to_json()) if model is not None else None


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _loads(text: str | None) -> object:
    if text is None:
        return None
    try:
        value: object = json.loads(text)
    except ValueError:
        return None
    return value


def _json_object(text: str | None) -> dict[str, Any]:
    value = _loads(text)
    return value if isinstance(value, dict) else {}
