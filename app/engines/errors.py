"""One error family for every engine (local LLM, image, remote): `EngineError`, with a kind.

A kind is a short machine tag an ERROR event carries ("load-failed", "unreachable"); the
message beside it is for a person. A kind this app does not know reads as `INTERNAL`.
"""

from __future__ import annotations

from enum import StrEnum

from app.errors import AppError


class EngineErrorKind(StrEnum):
    """Why an engine refused or failed a request."""

    # the engine itself
    UNAVAILABLE = "unavailable"  # the runtime cannot start on this machine
    NO_RUNTIME = "no-runtime"  # the runtime (torch, diffusers) is not installed
    STOPPED = "stopped"  # the child process died
    CLOSED = "closed"  # the engine was closed
    CANCELLED = "cancelled"  # the request was cancelled
    UNSUPPORTED = "unsupported"  # an operation the engine does not have
    INTERNAL = "internal"  # a bug
    # models
    NOT_FOUND = "not-found"
    BAD_SETTINGS = "bad-settings"
    LOAD_FAILED = "load-failed"
    NOT_LOADED = "not-loaded"
    NO_MODEL = "no-model"
    OUT_OF_MEMORY = "out-of-memory"
    CONTEXT_FULL = "context-full"  # the prompt does not fit the model's context
    BAD_GRAMMAR = "bad-grammar"  # a reply grammar (GBNF) llama.cpp cannot parse
    BAD_PROJECTOR = "bad-projector"  # a vision projector that is not one, or not the model's
    NO_VISION = "no-vision"  # images sent to a model loaded without a projector
    # images
    BAD_INPUT = "bad-input"
    NOT_A_PIPELINE = "not-a-pipeline"
    PICKLE = "pickle"
    NOT_DIFFUSION = "not-diffusion"
    UNSUPPORTED_FAMILY = "unsupported-family"
    NAN = "nan"
    # remote servers
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    AUTH = "auth"
    REJECTED = "rejected"
    RATE_LIMITED = "rate-limited"
    SERVER_ERROR = "server-error"
    BAD_RESPONSE = "bad-response"
    DISCONNECTED = "disconnected"

    @classmethod
    def of(cls, text: str) -> EngineErrorKind:
        """The kind named `text`; `INTERNAL` for a name this app does not know."""
        try:
            return cls(text)
        except ValueError:
            return cls.INTERNAL


class EngineError(AppError, RuntimeError):
    """An engine refused or failed a request; `kind` says which way."""

    def __init__(
        self,
        message: str,
        *,
        kind: EngineErrorKind | str,
        hint: str | None = None,
        log: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, hint=hint)
        self.kind = kind if isinstance(kind, EngineErrorKind) else EngineErrorKind.of(kind)
        self.log = log  # the engine's own log lines around the failure (may be empty)


class EngineUnavailableError(EngineError):
    """The runtime is not installed (or cannot start) on this machine."""
