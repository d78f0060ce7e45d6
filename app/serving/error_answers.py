"""An error answer of the local API: a status, a sentence a person can read, headers (say
`Retry-After`), and the body in the shape of the API it answers for. OpenAI's (`ApiError`),
Ollama's (`OllamaError`) and Anthropic's (`AnthropicError`) errors are its subclasses, and
`create_api` answers all of them with one handler."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse

__all__ = ["ErrorAnswer"]


class ErrorAnswer(Exception):
    """An error answer; subclasses say the body's shape (`body`)."""

    def __init__(
        self, status: int, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        raise NotImplementedError

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)
