"""The goals of the benchmark, as data: one entry per comparison, in report order.

Each goal is a sentence and the limits it states. The verdicts (judge) and the report
(the goal's sentence, the "goal <= ..." of each result line) both read the limits from
here, so a threshold is written once. Pure: no engine, no I/O.

A new comparison is one entry here plus benchmarks/compare_<key>.py (see
bench_comparisons.py for what that file provides).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

from bench_stats import format_signed_ms

AT_MOST = "<="
AT_LEAST = ">="


def number(value: float) -> str:
    """8 -> '8', 2.5 -> '2.5'."""
    return f"{value:g}"


def percent(value: float) -> str:
    """0.25 -> '25%', 1/3 -> '33.3%': a limit as the report writes it."""
    return f"{value * 100:.1f}".removesuffix(".0") + "%"


def times_x(value: float) -> str:
    return f"{value:g} x"


def times_words(value: float) -> str:
    return f"{value:g} times"


def milliseconds(value: float) -> str:
    return f"{value * 1000:g} ms"


def seconds_words(value: float) -> str:
    return f"{value:g} s"


FRACTION_WORDS = {1 / 2: "half", 1 / 3: "a third", 1 / 4: "a quarter"}


def fraction_words(value: float) -> str:
    """1/3 -> 'a third'; anything else as a percentage."""
    for fraction, words in FRACTION_WORDS.items():
        if math.isclose(value, fraction):
            return words
    return percent(value)


def changes_words(value: float) -> str:
    return "nothing" if value == 0 else f"at most {value:g} tasks"


def tools_words(value: float) -> str:
    return "every tool" if value == 0 else f"all but {value:g} tools"


@dataclass(frozen=True)
class Limit:
    """A bound on one or more figures of a comparison (names from its figures())."""

    figures: tuple
    bound: str  # AT_MOST or AT_LEAST
    value: float
    short: Callable[[float], str]  # the value in a result line: "60%"
    words: Optional[Callable[[float], str]] = None  # in the goal's sentence, if it differs

    def holds_for(self, figure: Optional[float]) -> bool:
        """Whether one figure meets the bound; a figure not measured does not."""
        if figure is None:
            return False
        return figure <= self.value if self.bound == AT_MOST else figure >= self.value

    def holds(self, figures: dict) -> bool:
        return all(self.holds_for(figures[name]) for name in self.figures)

    def shown(self) -> str:
        """'60%': the value as a result line shows it."""
        return self.short(self.value)

    def goal(self) -> str:
        """'<= 60%': the limit as a result line quotes it."""
        return f"{self.bound} {self.shown()}"

    def in_words(self) -> str:
        return (self.words or self.short)(self.value)


@dataclass(frozen=True)
class Goal:
    title: str
    sentence: str  # str.format template: {name} is limit `name` in words
    limits: dict  # name -> Limit

    def wording(self) -> str:
        return self.sentence.format(**{n: lim.in_words() for n, lim in self.limits.items()})


GOALS = {
    "launcher": Goal(
        "Launcher overhead",
        "`devenv run --no-secrets` adds at most {true} to `-- true` and stays within {gemini} "
        "for `-- gemini --version`, against the same `docker run` typed by hand",
        {
            "true": Limit(("added_true_s",), AT_MOST, 0.040, format_signed_ms, milliseconds),
            "gemini": Limit(("gemini_slowdown",), AT_MOST, 0.10, percent),
        },
    ),
    "ready": Goal(
        "Time to ready agents",
        "ready agents at least {speedup} times faster than the reference's npm install at start",
        {"speedup": Limit(("speedup",), AT_LEAST, 8, number)},
    ),
    "size": Goal(
        "Image size",
        "at most {share} of the size of the reference Dockerfile's image (same base, same "
        "tools), with {tools} of the reference present",
        {
            "share": Limit(("share",), AT_MOST, 0.60, percent),
            "tools": Limit(("tools_missing",), AT_MOST, 0, number, tools_words),
        },
    ),
    "rebuild": Goal(
        "Rebuild after an agent version bump",
        "rebuild after one agent's version bump takes at most {share} of a cold build",
        {"share": Limit(("share",), AT_MOST, 0.25, percent)},
    ),
    "fleet": Goal(
        "Fleet provisioning",
        "4 hosts take at most {scale} the 1-host time; a second converge changes {changes} "
        "and takes at most {second} of the first",
        {
            "scale": Limit(("scale_4_over_1",), AT_MOST, 2, times_x, times_words),
            "second": Limit(("second_1", "second_4"), AT_MOST, 1 / 3, percent, fraction_words),
            "changes": Limit(("second_changed_max",), AT_MOST, 0, number, changes_words),
        },
    ),
    "proxy": Goal(
        "Egress proxy overhead",
        "`network: allowlist` adds at most {request} to an agent's request (a new "
        "connection, streamed) and at most {run} to `devenv run -- true`, against "
        "`network: open`",
        {
            "request": Limit(("added_request_s",), AT_MOST, 0.020, format_signed_ms, milliseconds),
            "run": Limit(("added_run_s",), AT_MOST, 0.150, format_signed_ms, milliseconds),
        },
    ),
    "gvisor": Goal(
        "gVisor against runc",
        "under gVisor the first answer of `claude -p` takes at most {answer} as long as under "
        "runc, and `devenv run -- true` at most {run} more",
        {
            "answer": Limit(("answer_ratio",), AT_MOST, 2.0, times_x, times_words),
            "run": Limit(("added_run_s",), AT_MOST, 1.5, format_signed_ms, seconds_words),
        },
    ),
}


def judge(goal: Goal, figures: dict) -> dict:
    """{limit name: met?} for a comparison's figures."""
    return {name: limit.holds(figures) for name, limit in goal.limits.items()}
