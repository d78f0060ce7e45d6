"""Serving the loaded model on an OpenAI-compatible local API.

`ModelServer(core.llm)` runs the API (FastAPI on uvicorn) on a thread of the app process,
answering from the app's own engine — or, after `serve_library(ModelPool(...))`
(`model_pool`), from every chat model of the library, each loaded in an engine process of its
own when a request names it. Routers get their model through `served_models.ModelSource`.
A window's switch calls `start()` / `stop()` and shows `url`, `queue_length` and `loading`;
its log panel reads `log.entries()` and listens with `log.add_listener(...)`. FastAPI and
uvicorn are imported only when the server starts (`pip install 'modeldeck[serve]'`).
"""

from app.serving.errors import (
    ServerStartError,
    ServingError,
    ServingUnavailableError,
    UnprotectedBindError,
)
from app.serving.request_log import RequestLog, RequestLogEntry
from app.serving.server import DEFAULT_HOST, DEFAULT_PORT, ModelServer, check_bind_address

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "ModelServer",
    "RequestLog",
    "RequestLogEntry",
    "ServerStartError",
    "ServingError",
    "ServingUnavailableError",
    "UnprotectedBindError",
    "check_bind_address",
]
