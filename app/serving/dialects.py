"""The APIs the local server speaks beside OpenAI's chat, on the same port: Ollama's
(/api/...), Anthropic's (/v1/messages), and OpenAI's embeddings (/v1/embeddings).

`create_api` includes their routes from here (their errors are `ErrorAnswer`s, which it
answers in each one's shape). Errors raised outside an
endpoint — the browser guard's refusals, a body over the size limit, an unknown method —
are worded by `error_response` in the shape of the API the request's path belongs to, so an
Ollama client reads `{"error": ...}` and an Anthropic client `{"type": "error", ...}`; any
other path keeps OpenAI's shape (None here).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fastapi import APIRouter, FastAPI
from fastapi.responses import Response

from app.serving.anthropic_api import anthropic_error_response, anthropic_routes
from app.serving.api_context import ApiContext
from app.serving.embeddings_api import embeddings_routes
from app.serving.ollama_api import ollama_error_response, ollama_routes

__all__ = ["add_dialects", "error_response"]

ErrorShape = Callable[[int, str, str, Mapping[str, str] | None], Response]

# Path prefixes and the error shape of the API that owns them.
_SHAPES: tuple[tuple[str, ErrorShape], ...] = (
    ("/api/", ollama_error_response),
    ("/v1/messages", anthropic_error_response),
)


def add_dialects(app: FastAPI, context: ApiContext) -> None:
    """Add the Ollama, Anthropic and embeddings endpoints, answering from `context`, to
    `app`."""
    routers: tuple[APIRouter, ...] = (
        ollama_routes(context),
        anthropic_routes(context),
        embeddings_routes(context),
    )
    for router in routers:
        app.include_router(router)


def error_response(
    path: str,
    status: int,
    message: str,
    code: str,
    headers: Mapping[str, str] | None = None,
) -> Response | None:
    """The error answer for a request to `path` in its API's shape; None for OpenAI's paths
    (the caller words those)."""
    for prefix, shape in _SHAPES:
        if path == prefix.rstrip("/") or path.startswith(prefix):
            return shape(status, message, code, headers)
    return None
