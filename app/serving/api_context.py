"""What every API's endpoints answer from, and the steps they all take the same way.

`create_api` makes one `ApiContext` (the served models, the server's API key, the document
collections requests may name); the OpenAI, Ollama and Anthropic endpoints are each an
`Endpoints` over it, which words refusals in its API's shape (`refusal`) and so shares the
steps of a chat: images only for a model that sees (`check_sees`), a request's documents
joining its messages (`with_documents`), the generation's start (`start`, `start_chat`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from app.chat.tools import Tools
from app.chat.vision import ImageAttachment
from app.engines.supervisor import RequestHandle
from app.llm.sampling import Sampling
from app.serving.error_answers import ErrorAnswer
from app.serving.generation_stream import GenerationFailure, OpenGeneration, start_generation
from app.serving.request_documents import (
    DocumentSource,
    DocumentsRequestError,
    ModeldeckFields,
    Sourced,
    add_documents,
)
from app.serving.served_models import ModelLease, ModelSource

__all__ = ["ApiContext", "Endpoints"]


@dataclass(frozen=True)
class ApiContext:
    """The server's models, key (None: no key needed) and collections (None: none)."""

    models: ModelSource
    api_key: str | None
    documents: Callable[[], DocumentSource] | None = None


class Endpoints:
    """One API's endpoints (methods FastAPI routes to) over an `ApiContext`."""

    def __init__(self, context: ApiContext) -> None:
        self.models = context.models
        self.api_key = context.api_key
        self.documents = context.documents

    def refusal(self, status: int, message: str, *, param: str | None = None) -> ErrorAnswer:
        """An error answer in this API's shape (`param`: the request field at fault, where
        the shape has a place for it)."""
        raise NotImplementedError

    def failure_error(self, failure: GenerationFailure) -> ErrorAnswer:
        """A generation that gave no reply, in this API's shape."""
        return self.refusal(failure.kind.status, failure.message)

    def check_sees(self, lease: ModelLease, images: Sequence[ImageAttachment]) -> None:
        """Refuse (400) images for a model loaded without a vision projector."""
        if images and not lease.loaded.vision:
            raise self.refusal(
                400,
                f"{lease.model_id} can't see images: it has no vision projector.",
                param="messages",
            )

    async def start_chat(
        self,
        request: Request,
        lease: ModelLease,
        messages: Sequence[Mapping[str, Any]],
        sampling: Sampling,
        *,
        tools: Tools | None = None,
        images: Sequence[ImageAttachment] = (),
        fields: ModeldeckFields | None = None,
    ) -> tuple[OpenGeneration | None, Sourced | None]:
        """A chat's generation on `lease`, with its images and the documents `fields` names,
        and the sources sent (None: no documents). The generation is None when the client
        left.

        Raises:
            ErrorAnswer: images for a text model, unusable documents, or the generation
                could not start.
        """
        self.check_sees(lease, images)
        sourced = await self.with_documents(
            fields, messages, lease, max_tokens=sampling.max_tokens, tools=tools
        )
        sent = sourced.messages if sourced is not None else messages
        engine = lease.engine
        opened = await self.start(
            request, lease, lambda: engine.generate(sent, sampling, tools=tools, images=images)
        )
        return opened, sourced

    async def start(
        self, request: Request, lease: ModelLease, submit: Callable[[], RequestHandle]
    ) -> OpenGeneration | None:
        """The generation `submit` makes, queued on `lease` (None: the client left).

        Raises:
            ErrorAnswer: it could not start, or its first event is an error.
        """
        try:
            return await start_generation(request, lease.queue, submit)
        except GenerationFailure as exc:
            raise self.failure_error(exc) from None

    async def with_documents(
        self,
        fields: ModeldeckFields | None,
        messages: Sequence[Mapping[str, Any]],
        lease: ModelLease,
        *,
        max_tokens: int,
        tools: Tools | None,
    ) -> Sourced | None:
        """`messages` with the passages of the collection `fields` names (None: it names
        none), see `request_documents`.

        Raises:
            ErrorAnswer: the collection cannot be used.
        """
        try:
            return await add_documents(
                self.documents, fields, messages, lease, max_tokens=max_tokens, tools=tools
            )
        except DocumentsRequestError as exc:
            raise self.refusal(exc.status, exc.message, param="modeldeck.documents") from None
