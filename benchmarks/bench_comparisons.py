"""The comparisons of the benchmark: one module compare_<key>.py for each entry of GOALS.

A comparison module provides:

- NEEDS: the shared preparation steps it needs (see bench_prepare.SHARED_STEPS);
- COUNTS: {name: (repetitions in a full run, in a quick run)};
- prepare(facts), cleanup(): optional, what only it builds before the timings, or leaves
  on the engine;
- measure(counts, facts) -> dict: the measurement (timings, tables, notes, commands,
  files, derived figures), no verdict;
- figures(comp) -> dict: the numbers its goal and its prose need, read back from what
  measure() stored, so a record (docs/benchmarks.json) can be judged again;
- result(figures, goal, verdicts) -> str and analysis(figures, verdicts) -> list: the
  result line, and why a missed goal is missed and what would close it;
- repetitions(counts) -> str: its part of the report's method.
"""

from __future__ import annotations

import importlib

from bench_goals import GOALS, judge


def module(key: str):
    return importlib.import_module(f"compare_{key}")


def modules(keys=None) -> dict:
    """{key: module} in report order."""
    return {key: module(key) for key in GOALS if keys is None or key in keys}


def counts(*, quick: bool) -> dict:
    """Every comparison's repetitions, for a full or a quick run."""
    return {
        name: pair[1 if quick else 0]
        for comp in modules().values()
        for name, pair in comp.COUNTS.items()
    }


def conclude(comp: dict, *, explain: bool = True) -> dict:
    """Judge a measured comparison against its goal and word the result (in place)."""
    goal = GOALS.get(comp.get("id"))
    if goal is None:
        return comp
    comp["goal"] = goal.wording()
    if "derived" not in comp:  # it could not be measured: nothing to judge
        return comp
    compare = module(comp["id"])
    figures = compare.figures(comp)
    verdicts = judge(goal, figures)
    comp["met"] = all(verdicts.values())
    comp["result"] = compare.result(figures, goal, verdicts)
    if explain:
        comp["analysis"] = compare.analysis(figures, verdicts)
    return comp


def conclude_all(results: dict) -> dict:
    """Every comparison of a run (or of its record) judged against today's goals."""
    # A record of schema 1 holds the analysis inside its notes; it is kept as written.
    explain = results.get("schema", 1) >= 2
    for comp in results.get("comparisons", []):
        conclude(comp, explain=explain)
    return results
