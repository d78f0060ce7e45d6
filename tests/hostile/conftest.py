"""Hostile inputs: hypothesis profiles, and a summary of the worst cost any input took."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from tests.hostile.bounds import WORST

# Bounded runs: the suite stays a few minutes on two cores. HYPOTHESIS_PROFILE=thorough runs
# many more examples (the figures in the closing note of the hostile-input issue).
settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,  # bounds.within_bounds asserts the time bound itself, on CPU time
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
    database=None,
)
settings.register_profile(
    "thorough",
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the worst CPU time and memory per kind of hostile input seen in this run."""
    if not WORST:
        return
    terminalreporter.section("worst cost of a hostile input")
    for label, cost in sorted(WORST.items()):
        terminalreporter.write_line(
            f"{label:<40} {cost.seconds * 1000:9.1f} ms CPU"
            f"  {cost.peak_bytes / 2**20:8.2f} MiB peak"
        )
