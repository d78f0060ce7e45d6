"""Human-readable quantities, written the way the Hugging Face Hub writes them."""

from __future__ import annotations

import math

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB")


def format_bytes(n: float) -> str:
    """Format a byte count with decimal (SI) units and three significant digits.

    The Hub shows sizes in decimal units, so a file of 4,920,000,000 bytes is "4.92 GB"
    here too. Trailing zeros are dropped ("5 GB", not "5.00 GB"); plain bytes are whole
    numbers ("0 B", "812 B"). Negative counts keep their sign, so a difference reads
    "-1.5 GB".

    Args:
        n: a number of bytes.

    Raises:
        ValueError: if `n` is not a finite number.
    """
    if not math.isfinite(n):
        raise ValueError(f"not a byte count: {n!r}")
    sign = "-" if n < 0 else ""
    value = float(abs(n))
    unit_index = 0
    # Move to the next unit once the rounded value would read "1000"; so 999,999 B is "1 MB".
    while unit_index < len(_UNITS) - 1 and round(value, _decimals(value)) >= 1000:
        value /= 1000
        unit_index += 1
    if unit_index == 0:
        return f"{sign}{round(value)} B"
    text = f"{value:.{_decimals(value)}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{sign}{text} {_UNITS[unit_index]}"


def _decimals(value: float) -> int:
    """How many decimals give three significant digits for a value below 1000."""
    if round(value, 2) < 10:
        return 2
    if round(value, 1) < 100:
        return 1
    return 0


def format_count(n: int) -> str:
    """A parameter count the way model names write it: "770M", "1.2B", "70B"."""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            value = n / scale
            text = f"{value:.1f}" if value < 10 else f"{value:.0f}"
            return f"{text.removesuffix('.0')}{suffix}"
    return str(n)


def format_duration(seconds: float) -> str:
    """A time left, the way a progress line says it: "45 s", "3 min 20 s", "2 h 5 min"."""
    whole = max(0, round(seconds))
    if whole >= 3600:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    if whole >= 60:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole} s"
