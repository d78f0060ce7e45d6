"""OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`, shared by the
OpenAI endpoints (`api`, `embeddings_api`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.serving.error_answers import ErrorAnswer

__all__ = ["ApiError"]


class ApiError(ErrorAnswer):
    """An error answer in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, headers=headers)
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }
