"""Counts and durations written for people."""

from __future__ import annotations

import pytest

from app.units import format_count, format_duration


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0"),
        (999, "999"),
        (1_500, "1.5K"),
        (770_000_000, "770M"),
        (1_234_000_000, "1.2B"),
        (7_000_000_000, "7B"),
        (70_600_000_000, "71B"),
    ],
)
def test_parameter_counts_read_like_model_names(count: int, text: str) -> None:
    assert format_count(count) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (44.6, "45 s"), (200, "3 min 20 s"), (7500, "2 h 5 min"), (-3, "0 s")],
)
def test_durations_read_like_a_progress_line(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
