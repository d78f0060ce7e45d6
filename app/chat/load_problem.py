"""A failed load, said plainly: what failed and what to try, with llama.cpp's own words kept
apart for a details expander (a person reads the first part; a bug report quotes the second).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.engines.errors import EngineError, EngineErrorKind

_LLAMA_PREFIX = "llama.cpp could not load the model:"
_LOG_TAIL = 40  # the last lines of llama.cpp's log before the failure: enough to see why


@dataclass(frozen=True, kw_only=True)
class LoadProblem:
    """Why a model did not load, for a person."""

    summary: str  # what failed, one sentence
    advice: str  # what to try next
    details: str  # the engine's own words (llama.cpp's log line, the exception), may be empty

    @property
    def text(self) -> str:
        return f"{self.summary} {self.advice}"


def explain_load_failure(name: str, error: BaseException) -> LoadProblem:
    """`error` (raised while planning or loading the model `name`) as a `LoadProblem`."""
    details = getattr(error, "message", None) or str(error)
    hint = getattr(error, "hint", None)
    if isinstance(error, EngineError):
        kind = error.kind
        if kind is EngineErrorKind.OUT_OF_MEMORY:
            return LoadProblem(
                summary=f"{name} did not fit in memory.",
                advice="Try a shorter context, fewer GPU layers, or a smaller quantization.",
                details=details,
            )
        if kind is EngineErrorKind.NOT_FOUND:
            return LoadProblem(
                summary=f"The file of {name} is gone.",
                advice="Download it again from Discover, or open another file.",
                details=details,
            )
        if kind is EngineErrorKind.BAD_SETTINGS:
            return LoadProblem(
                summary=f"{name} cannot be loaded with these settings.",
                advice=hint or "Put the load settings back to their defaults and try again.",
                details=details,
            )
        if kind is EngineErrorKind.LOAD_FAILED:
            details = details.removeprefix(_LLAMA_PREFIX).strip() or details
            if error.log:  # llama.cpp's own lines: what a bug report quotes
                details = "\n".join((details, "", "llama.cpp's log:", *error.log[-_LOG_TAIL:]))
            advice = (
                "This llama.cpp does not know the model's architecture: update ModelDeck, "
                "or pick another model."
                if "architecture" in details.lower()
                else "The file may be incomplete or damaged, or made for a newer llama.cpp: "
                "download it again, or pick another model."
            )
            return LoadProblem(
                summary=f"llama.cpp could not load {name}.", advice=advice, details=details
            )
        if kind in (EngineErrorKind.UNAVAILABLE, EngineErrorKind.NO_RUNTIME):
            return LoadProblem(
                summary="The llama.cpp engine cannot start on this machine.",
                advice=hint or "Run scripts/start again to install it.",
                details=details,
            )
        if kind is EngineErrorKind.STOPPED:
            return LoadProblem(
                summary=f"The engine stopped while loading {name}.",
                advice="Press Load to try again; if it stops again, try fewer GPU layers.",
                details=details,
            )
    if isinstance(error, MemoryError):  # refused by the plan, before llama.cpp tried
        return LoadProblem(
            summary=f"{name} will not fit in this machine's memory.",
            advice=hint or "Pick a smaller quantization, or a shorter context.",
            details=details,
        )
    if isinstance(error, OSError):
        return LoadProblem(
            summary=f"{name} could not be read.",
            advice="Check that the file is still there and readable, then press Load again.",
            details=details,
        )
    return LoadProblem(
        summary=f"{name} was not loaded.",
        advice=hint or "Press Load to try again, or pick another model.",
        details=details if not hint else f"{details}\n{hint}",
    )
