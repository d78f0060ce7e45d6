"""Documents over the API (opt-in): a request names a document collection, and its question
goes to the model with numbered passages, as `modeldeck chat --docs` sends them.

Every API takes the same extra field in its body, `"modeldeck": {"documents": "NAME"}`
(OpenAI clients: `extra_body={"modeldeck": {"documents": "NAME"}}`). The last user message
is the question: it is replaced by the passages that fit beside the rest of the prompt and
the reply (`DocumentCollections.compose`, the builder `chat --docs` uses; a reply without a
token limit is given half the context), and the answer carries the sources sent: a
`modeldeck` object, `{"sources": [{label, number, file, page, line_start, line_end, heading,
score}]}`, on the answer (OpenAI: also on a stream's first chunk; Anthropic: on
`message_start`'s message; Ollama: on the last line), and their count in an
`X-ModelDeck-Sources` header. A request without the field is untouched.

A collection this server does not know is a 404, a server without collections (tests, an
embedded server) or a request without a user message a 400; each API words these in its
own error shape (`DocumentsRequestError.status` and `.message`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

import anyio
from pydantic import BaseModel, ConfigDict, Field

from app.chat.tools import Tools
from app.docs.prompt import DocumentPrompt, Source
from app.errors import AppError
from app.serving.served_models import ModelLease

__all__ = [
    "SOURCES_HEADER",
    "DocumentSource",
    "DocumentsRequestError",
    "ModeldeckFields",
    "Sourced",
    "add_documents",
]

SOURCES_HEADER = "X-ModelDeck-Sources"
# Room left beside the passages for the reply's first tokens and the template's own marks
# (as `chat --docs` leaves, `app.commands.docs.PROMPT_MARGIN_TOKENS`).
PROMPT_MARGIN_TOKENS = 64
MAX_COLLECTION_NAME_CHARS = 256


class DocumentSource(Protocol):
    """Document collections a request may name (`app.docs.collections.DocumentCollections`)."""

    def compose(
        self,
        names: Sequence[str],
        question: str,
        *,
        budget_tokens: int,
        count_tokens: Callable[[str], int],
        limit: int = 8,
    ) -> DocumentPrompt: ...


class DocumentsRequestError(Exception):
    """A request's documents cannot be used: `status` (400, 404, 500) and a sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ModeldeckFields(BaseModel):
    """The `modeldeck` object a body may carry: this server's own options."""

    model_config = ConfigDict(extra="ignore")

    documents: Annotated[str, Field(min_length=1, max_length=MAX_COLLECTION_NAME_CHARS)] | None = (
        None
    )


@dataclass(frozen=True)
class Sourced:
    """The messages to send (the question with its passages) and the sources in them."""

    messages: list[dict[str, Any]]
    sources: tuple[Source, ...]

    def field(self) -> dict[str, Any]:
        """The answer's `modeldeck` object."""
        return {"sources": [{"label": s.label(), **s.to_json()} for s in self.sources]}

    def headers(self) -> dict[str, str]:
        return {SOURCES_HEADER: str(len(self.sources))}


async def add_documents(
    documents: Callable[[], DocumentSource] | None,
    fields: ModeldeckFields | None,
    messages: Sequence[Mapping[str, Any]],
    lease: ModelLease,
    *,
    max_tokens: int,
    tools: Tools | None = None,
) -> Sourced | None:
    """`messages` with the last user message answered from the collection `fields` names;
    None when the request names none.

    Raises:
        DocumentsRequestError: no collections here, no such collection, no user message, or
            the search failed (its embedding model, a damaged index).
    """
    if fields is None or fields.documents is None:
        return None
    if documents is None:
        raise DocumentsRequestError(400, "This server has no document collections.")
    turns = [dict(message) for message in messages]
    users = [index for index, message in enumerate(turns) if message.get("role") == "user"]
    if not users:
        raise DocumentsRequestError(400, "Documents answer a question: send a user message.")
    last = users[-1]
    question = str(turns[last].get("content") or "")
    engine, name = lease.engine, fields.documents

    def compose() -> DocumentPrompt:
        frame = [*turns[:last], {**turns[last], "content": ""}]
        overhead = engine.count_tokens(engine.render(frame, tools).text)
        context = lease.loaded.context_length
        # A request that sets no limit may fill the context (OpenAI's, Ollama's default): the
        # passages then get what half the context leaves, and the reply the rest.
        reply = min(max_tokens, context // 2)
        budget = context - reply - overhead - PROMPT_MARGIN_TOKENS
        return documents().compose(
            [name], question, budget_tokens=budget, count_tokens=engine.count_tokens
        )

    try:
        prompt = await anyio.to_thread.run_sync(compose)
    except LookupError as exc:  # CollectionError
        raise DocumentsRequestError(404, str(exc)) from None
    except (AppError, OSError) as exc:  # the embedder (EngineError), the index
        raise DocumentsRequestError(500, f"Searching {name!r} failed: {exc}") from None
    turns[last] = {**turns[last], "content": prompt.text}
    return Sourced(turns, prompt.sources)
