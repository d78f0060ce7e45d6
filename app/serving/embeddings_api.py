"""OpenAI's `POST /v1/embeddings` over the engine's embedding mode.

`input` is one text or a list of texts (token-id inputs are refused: this server takes text);
each gets one vector, normalized to length 1 as OpenAI's are. `encoding_format` "float" gives
lists of numbers; "base64" (the `openai` client's default) gives each vector's little-endian
float32 bytes in base64, which the client decodes back to the same floats. `dimensions` is
refused unless it is the model's own width (these models cannot shorten their vectors).

The model must be one loaded for embeddings (`LoadSettings(embedding=True)`); a chat model
answers 400 `model_not_embedding`. Errors have OpenAI's shape.
"""

from __future__ import annotations

import base64
import struct
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from app.engines.errors import EngineError, EngineErrorKind
from app.llm.messages import Embedded
from app.serving.api_context import ApiContext
from app.serving.api_keys import KeyCheck, check_key
from app.serving.openai_errors import ApiError
from app.serving.request_body import BodyError, parse_body
from app.serving.schemas import MAX_MODEL_NAME_CHARS

__all__ = ["MAX_EMBEDDING_INPUTS", "EmbeddingsRequest", "embeddings_routes"]

MAX_EMBEDDING_INPUTS = 2048  # OpenAI's own limit per request
_BODY = ConfigDict(extra="ignore", allow_inf_nan=False)

Text = Annotated[str, Field(min_length=1)]


class EmbeddingsRequest(BaseModel):
    model_config = _BODY

    model: Annotated[str, Field(max_length=MAX_MODEL_NAME_CHARS)] | None = None
    input: Text | Annotated[list[Text], Field(min_length=1, max_length=MAX_EMBEDDING_INPUTS)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


def embeddings_routes(context: ApiContext) -> APIRouter:
    """`POST /v1/embeddings` over `context`; with an API key, it needs the key (Bearer)."""
    models, api_key = context.models, context.api_key

    async def check_access(request: Request) -> None:
        verdict = check_key(request.headers, api_key)
        if verdict is not KeyCheck.ACCEPTED:
            message = (
                "You didn't provide an API key. Send it in an Authorization header using "
                "Bearer auth (Authorization: Bearer YOUR_KEY)."
                if verdict is KeyCheck.MISSING
                else "Incorrect API key provided."
            )
            raise ApiError(
                401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
            )

    async def embeddings(request: Request) -> dict[str, Any]:
        try:
            body = parse_body(await request.body(), EmbeddingsRequest)
        except BodyError as exc:
            raise ApiError(400, exc.message, param=exc.param) from None
        async with models.acquire(body.model, embedding=True) as lease:
            try:
                embedded = await anyio.to_thread.run_sync(lease.engine.embed, body.texts)
            except EngineError as exc:
                raise _embedding_error(exc) from None
        _check_dimensions(body.dimensions, embedded)
        data = [
            {"object": "embedding", "index": index, "embedding": _encoded(vector, body)}
            for index, vector in enumerate(embedded.vectors)
        ]
        usage = {"prompt_tokens": embedded.prompt_tokens, "total_tokens": embedded.prompt_tokens}
        return {"object": "list", "data": data, "model": lease.model_id, "usage": usage}

    router = APIRouter(dependencies=[Depends(check_access)])
    router.add_api_route("/v1/embeddings", embeddings, methods=["POST"])
    return router


def _encoded(vector: tuple[float, ...], body: EmbeddingsRequest) -> list[float] | str:
    if body.encoding_format == "float":
        return list(vector)
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def _check_dimensions(dimensions: int | None, embedded: Embedded) -> None:
    width = len(embedded.vectors[0]) if embedded.vectors else 0
    if dimensions is not None and dimensions != width:
        raise ApiError(
            400,
            f"This model's vectors have {width} dimensions; it cannot make {dimensions}.",
            param="dimensions",
        )


def _embedding_error(exc: EngineError) -> ApiError:
    if exc.kind == EngineErrorKind.UNSUPPORTED:
        return ApiError(400, str(exc), param="model", code="model_not_embedding")
    if exc.kind == EngineErrorKind.BAD_INPUT:
        return ApiError(400, str(exc), param="input")
    return ApiError(500, str(exc), type="server_error", code=str(exc.kind).replace("-", "_"))
