#!/usr/bin/env python3
"""devenv benchmark: every comparison of issue 6, side by side, in one run.

Run it through `scripts/benchmark.sh` (root; it sets up the venv, the engine and the
base images first). It builds what needs building outside the timings, then times:

1. launcher overhead: `devenv run --no-secrets` against the identical `docker run`;
2. time to ready agents: our image against `npm install -g` in a fresh container;
3. image size: our image against the reference document's Dockerfile on the same base;
4. rebuild after one agent's version bump against a cold build;
5. fleet: converge site.yml on 1 and on 4 nested hosts, then again with nothing to do;

and rewrites docs/benchmarks.md and docs/benchmarks.json (a partial run, --only or
--quick, writes to .state/bench/ instead unless --docs is given). The goals are in
bench_goals.py, each comparison in compare_<key>.py.

Everything it creates on the engine carries the labels io.kuatecno.devenv.test=1 and
io.kuatecno.devenv.bench=1 and is removed at the end, also on failure or Ctrl-C. Images
are named devenv-bench/... and kept, so the next run's preparation is quick.
"""

from __future__ import annotations

import argparse
import datetime
import json
import signal
import sys
import traceback
from pathlib import Path
from time import perf_counter

import bench_comparisons
import bench_prepare
import bench_report
from bench_common import KILLED_FROM_OUTSIDE, LOG, ROOT, WORK, BenchError, comparison, log, rel
from bench_goals import GOALS
from bench_machine import machine_info, machine_load
from bench_stats import format_seconds

# 2: a comparison's analysis (why a goal is missed) is kept apart from its notes.
SCHEMA = 2
DOCS = ROOT / "docs"


def report(results: dict) -> str:
    """The page for a run's record, judged against the goals of bench_goals.py."""
    return bench_report.render(bench_comparisons.conclude_all(results))


def render_record(out_dir: Path) -> None:
    """benchmarks.md from benchmarks.json: a run's page and a re-rendered one are alike."""
    data = json.loads((out_dir / "benchmarks.json").read_text(encoding="utf-8"))
    (out_dir / "benchmarks.md").write_text(report(data), encoding="utf-8")


def cleanup() -> None:
    bench_prepare.cleanup()
    for module in bench_comparisons.modules().values():
        if hasattr(module, "cleanup"):
            module.cleanup()


def failed_comparison(key: str, error: BaseException) -> dict:
    comp = comparison(key)
    comp["result"] = f"could not be measured: {str(error).splitlines()[0][:300]}"
    comp["notes"] = [f"Error: {str(error)[:1500]}"]
    return comp


def measure_one(key: str, module, counts: dict, facts: dict) -> dict:
    """One comparison measured and judged, or recorded as not measured."""
    log(f"=== comparison: {GOALS[key].title}")
    started = perf_counter()
    try:
        if key in facts["errors"]:
            raise BenchError(f"preparation failed: {facts['errors'][key]}")
        comp = bench_comparisons.conclude(module.measure(counts, facts))
    except bench_prepare.STEP_ERRORS as error:
        log(f"comparison {key} failed: {error}")
        with LOG.open("a", encoding="utf-8") as handle:
            traceback.print_exc(file=handle)
        comp = failed_comparison(key, error)
    comp["seconds"] = round(perf_counter() - started, 1)
    return comp


def run_all(selected, counts, results) -> None:
    """Prepare, then measure each selected comparison; results gathered in `results`."""
    modules = bench_comparisons.modules(selected)
    cleanup()
    prep_start = perf_counter()
    facts = bench_prepare.prepare(modules)
    results["prepare_s"] = perf_counter() - prep_start
    for key, module in modules.items():
        comp = measure_one(key, module, counts, facts)
        results["comparisons"].append(comp)
        if comp.get("met") is None:
            results["not_measured"].append(f"{comp['title']}: {comp['result']}")
        log(f"    {comp['title']}: {comp['result']}")


def repetitions(counts) -> str:
    parts = [
        module.repetitions(counts)
        for module in bench_comparisons.modules().values()
        if hasattr(module, "repetitions")
    ]
    return f"Repetitions: {'; '.join(parts)}."


def method_lines(counts, results) -> list:
    lb, la = results["load_before"], results["load_after"]
    return [
        "Everything a comparison needs is built first, outside the timings: our images through "
        "the devenv_image role, the reference and before-case images from their Dockerfiles, "
        f"the launcher installed into a prefix under `.state/` (preparation: "
        f"{format_seconds(results.get('prepare_s'))}, mostly cache hits when images exist).",
        "Each timing is the wall-clock time of the whole command (Python `time.perf_counter` "
        "around `subprocess.run`, stdin closed, output captured), median and min - max quoted.",
        "Cases are alternated (A B A B; for three cases A B C C B A) so drift on a shared "
        "machine hits both sides alike.",
        repetitions(counts),
        f"Runs repeated because their container was removed from outside (exit 137/125; "
        f"other test suites on this machine sweep containers with the shared test label): "
        f"{KILLED_FROM_OUTSIDE['runs']}; fleet rounds repeated for the same reason: "
        f"{KILLED_FROM_OUTSIDE['rounds']}.",
        f"Machine load: 1-minute load average {lb['loadavg_1m']} at the start, "
        f"{la['loadavg_1m']} at the end; other containers running at the start: "
        f"{lb['other_containers_running']} (the machine is shared with other work).",
    ]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(GOALS), help="comma-separated subset")
    parser.add_argument("--quick", action="store_true", help="few repetitions (a smoke run)")
    parser.add_argument("--docs", action="store_true", help="write docs/ even for a partial run")
    parser.add_argument("--render-only", action="store_true", help="re-render docs from JSON")
    args = parser.parse_args(argv)
    args.selected = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = set(args.selected) - set(GOALS)
    if unknown:
        parser.error(f"unknown comparisons: {', '.join(sorted(unknown))}")
    return args


def new_results(counts, full: bool) -> dict:
    return {
        "schema": SCHEMA,
        "command": "sudo scripts/benchmark.sh" + ("" if full else " " + " ".join(sys.argv[1:])),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "load_before": machine_load(),
        "counts": counts,
        "comparisons": [],
        "not_measured": [],
    }


def write_record(results, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "benchmarks.json").write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    render_record(out_dir)
    log(f"wrote {rel(out_dir / 'benchmarks.md')} and {rel(out_dir / 'benchmarks.json')}")


def on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.render_only:
        render_record(DOCS)
        return 0
    counts = bench_comparisons.counts(quick=args.quick)
    full = not args.quick and set(args.selected) == set(GOALS)
    WORK.mkdir(parents=True, exist_ok=True)
    LOG.write_text("", encoding="utf-8")
    signal.signal(signal.SIGTERM, on_signal)
    start_perf = perf_counter()
    results = new_results(counts, full)
    try:
        run_all(args.selected, counts, results)
    except KeyboardInterrupt:
        log("interrupted: removing what the benchmark created")
        cleanup()
        return 130
    finally:
        cleanup()
    results["duration_s"] = perf_counter() - start_perf
    results["load_after"] = machine_load()
    results["method"] = method_lines(counts, results)
    results["killed_from_outside"] = KILLED_FROM_OUTSIDE
    write_record(results, DOCS if (full or args.docs) else WORK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
