"""Statistics and formatting for the benchmark: pure functions, no engine, no I/O.

Timings are lists of seconds (floats). A summary quotes the median and the min-max range,
which is what docs/benchmarks.md reports; the mean is kept in the JSON only.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Optional


def summarize(samples: Sequence[float]) -> dict:
    """Median, min, max, mean and count of a list of timings (seconds)."""
    values = [float(s) for s in samples]
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None, "mean": None}
    return {
        "n": len(values),
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


def ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def paired_differences(a: Sequence[float], b: Sequence[float]) -> list:
    """a[i] - b[i] for the pairs measured back to back (A B A B), as many as both have."""
    return [float(x) - float(y) for x, y in zip(a, b)]


def format_seconds(value: Optional[float]) -> str:
    """A duration for a table: ms below 1 s, seconds with one decimal below 100 s."""
    if value is None:
        return "n/a"
    if abs(value) < 1:
        return f"{value * 1000:.0f} ms"
    if abs(value) < 100:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    return f"{value:.0f} s ({minutes} min {seconds:02d} s)"


def format_signed_ms(value: Optional[float]) -> str:
    """A difference in milliseconds with its sign, e.g. '+41 ms'."""
    if value is None:
        return "n/a"
    return f"{value * 1000:+.0f} ms"


def format_bytes(value: Optional[float]) -> str:
    """Sizes as docker reports them (decimal units): 0 B, 12.3 kB, 456.7 MB, 1.23 GB."""
    if value is None:
        return "n/a"
    value = float(value)
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(value) >= scale:
            digits = 2 if unit == "GB" else 1
            return f"{value / scale:.{digits}f} {unit}"
    return f"{value:.0f} B"


def format_ratio(value: Optional[float]) -> str:
    """A ratio as a percentage with one decimal, e.g. '42.0%'."""
    if value is None:
        return "n/a"
    return f"{value * 100:.1f}%"


def format_range(summary: dict, fmt=format_seconds) -> str:
    """'min - max' of a summary, in the given format."""
    if not summary or summary.get("n", 0) == 0:
        return "n/a"
    return f"{fmt(summary['min'])} - {fmt(summary['max'])}"


def verdict(met: Optional[bool]) -> str:
    """The word the report uses for a goal."""
    if met is None:
        return "not measured"
    return "met" if met else "not met"
