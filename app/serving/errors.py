"""Why the local API server could not start."""

from __future__ import annotations

from app.errors import AppError


class ServingError(AppError):
    """The local API server could not start (or do what was asked)."""


class UnprotectedBindError(ServingError, PermissionError):
    """Listening beyond this machine was asked for without an API key."""

    def __init__(self, host: str) -> None:
        super().__init__(
            f"Refusing to serve on {host} without an API key: anyone on the network could use "
            "the model.",
            hint="Set an API key (--api-key or MODELDECK_API_KEY), or serve on 127.0.0.1.",
        )
        self.host = host


class ServerStartError(ServingError, OSError):
    """The address could not be bound (the port is taken, or the host is not this machine's)."""


class ServingUnavailableError(ServingError, ImportError):
    """The server's libraries (FastAPI, uvicorn, sse-starlette) are not installed."""
