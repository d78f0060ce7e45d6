"""A failed load said plainly: what failed, what to try, and the engine's words apart."""

from __future__ import annotations

from app.chat.load_problem import explain_load_failure
from app.engines.errors import EngineError, EngineErrorKind


def test_a_llama_cpp_failure_keeps_its_log_line_for_the_details() -> None:
    error = EngineError(
        "llama.cpp could not load the model: llama_model_load: error loading model: "
        "unknown model architecture: 'brandnew'",
        kind=EngineErrorKind.LOAD_FAILED,
    )
    problem = explain_load_failure("Tiny", error)
    assert problem.summary == "llama.cpp could not load Tiny."
    assert "update ModelDeck" in problem.advice
    assert problem.details.startswith("llama_model_load: error loading model")
    assert "llama_model_load" not in problem.text  # the log line stays in the details


def test_each_failure_says_what_to_try() -> None:
    oom = explain_load_failure("Tiny", EngineError("oom", kind=EngineErrorKind.OUT_OF_MEMORY))
    assert "shorter context" in oom.advice
    gone = explain_load_failure("Tiny", EngineError("x", kind=EngineErrorKind.NOT_FOUND))
    assert "Download it again" in gone.advice
    damaged = explain_load_failure(
        "Tiny", EngineError("llama.cpp could not load the model: bad magic", kind="load-failed")
    )
    assert "incomplete or damaged" in damaged.advice and damaged.details == "bad magic"
    unreadable = explain_load_failure("Tiny", PermissionError("denied"))
    assert unreadable.summary == "Tiny could not be read." and unreadable.details == "denied"


def test_llama_cpps_log_goes_to_the_details_after_its_reason() -> None:
    log = tuple(f"llama_model_loader: line {n}" for n in range(100))
    error = EngineError(
        "llama.cpp could not load the model: bad magic", kind=EngineErrorKind.LOAD_FAILED, log=log
    )
    problem = explain_load_failure("Tiny", error)
    first, _, rest = problem.details.partition("\n")
    assert first == "bad magic"
    assert rest.splitlines()[-1] == "llama_model_loader: line 99"  # the last lines, in order
    assert "line 59" not in rest and "line 60" in rest  # the tail only
    assert "llama_model_loader" not in problem.text
