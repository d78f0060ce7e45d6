"""Stop strings over streamed text: held back while they may begin, never shown when found."""

from __future__ import annotations

import pytest

from app.llm.stop_strings import StopStrings


def stream(stops: list[str], pieces: list[str]) -> tuple[str, bool]:
    filter_ = StopStrings(stops)
    shown: list[str] = []
    for piece in pieces:
        text, stopped = filter_.feed(piece)
        shown.append(text)
        if stopped:
            return "".join(shown), True
    return "".join(shown) + filter_.flush(), False


def test_without_stop_strings_everything_passes_at_once() -> None:
    assert StopStrings([]).feed("abc") == ("abc", False)


@pytest.mark.parametrize(
    "pieces",
    [["Hello END more"], ["Hello E", "ND more"], ["Hello ", "E", "N", "D", " more"]],
)
def test_a_stop_string_split_across_pieces_ends_the_text_before_it(pieces: list[str]) -> None:
    assert stream(["END"], pieces) == ("Hello ", True)


def test_a_partial_match_is_held_back_then_released() -> None:
    filter_ = StopStrings(["END"])
    assert filter_.feed("Hello E") == ("Hello ", False)
    assert filter_.feed("ND")[1] is True


def test_a_prefix_that_turns_out_not_to_stop_is_shown() -> None:
    assert stream(["END"], ["Hello E", "NOUGH"]) == ("Hello ENOUGH", False)


def test_text_held_at_the_end_is_flushed() -> None:
    assert stream(["END"], ["Hello EN"]) == ("Hello EN", False)


def test_the_earliest_of_several_stop_strings_wins() -> None:
    assert stream(["<|im_end|>", "\n\n"], ["a\n\nb<|im_end|>"]) == ("a", True)
