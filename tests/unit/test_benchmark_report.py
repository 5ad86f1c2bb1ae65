"""The benchmark's pure parts: statistics, formatting, goals and verdicts, report
rendering, recap parsing.

The benchmark itself (scripts/benchmark.sh) is not part of the test suite; these tests
only keep its arithmetic, its verdicts and its page honest. No engine needed.
"""

import dataclasses
import json
import re
import sys
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_comparisons
import bench_goals
import bench_report
import bench_stats
from bench_common import alternate, comparison
from bench_fleet import fleet_inventory, parse_recap
from bench_goals import AT_MOST, GOALS, judge

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("samples", "median", "low", "high"),
    [
        ([3.0], 3.0, 3.0, 3.0),
        ([1.0, 3.0, 2.0], 2.0, 1.0, 3.0),
        ([4.0, 1.0, 2.0, 3.0], 2.5, 1.0, 4.0),
    ],
)
def test_summarize_quotes_median_and_range(samples, median, low, high):
    summary = bench_stats.summarize(samples)
    assert summary["n"] == len(samples)
    assert summary["median"] == pytest.approx(median)
    assert (summary["min"], summary["max"]) == (low, high)


def test_summarize_of_nothing_is_empty_not_an_error():
    assert bench_stats.summarize([]) == {
        "n": 0,
        "median": None,
        "min": None,
        "max": None,
        "mean": None,
    }


@pytest.mark.parametrize(
    ("num", "den", "expected"),
    [(1.0, 4.0, 0.25), (None, 1.0, None), (1.0, None, None), (1.0, 0, None)],
)
def test_ratio(num, den, expected):
    assert bench_stats.ratio(num, den) == expected


def test_paired_differences_pair_back_to_back_runs():
    assert bench_stats.paired_differences([1.0, 2.0, 5.0], [0.5, 1.5]) == [0.5, 0.5]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "n/a"),
        (0.0421, "42 ms"),
        (1.25, "1.2 s"),
        (42.0, "42.0 s"),
        (125.0, "125 s (2 min 05 s)"),
    ],
)
def test_format_seconds(value, text):
    assert bench_stats.format_seconds(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0 B"), (1500, "1.5 kB"), (456_700_000, "456.7 MB"), (1_234_000_000, "1.23 GB")],
)
def test_format_bytes_uses_docker_decimal_units(value, text):
    assert bench_stats.format_bytes(value) == text


def test_small_formats():
    assert bench_stats.format_signed_ms(0.041) == "+41 ms"
    assert bench_stats.format_signed_ms(-0.002) == "-2 ms"
    assert bench_stats.format_ratio(0.421) == "42.1%"
    assert bench_stats.format_range({"n": 2, "min": 0.5, "max": 2.0}) == "500 ms - 2.0 s"
    assert bench_stats.format_range({"n": 0}) == "n/a"


@pytest.mark.parametrize(
    ("met", "word"), [(True, "met"), (False, "not met"), (None, "not measured")]
)
def test_verdict(met, word):
    assert bench_stats.verdict(met) == word


def _results():
    samples = [0.61, 0.58, 0.66]
    return {
        "command": "sudo scripts/benchmark.sh",
        "date": "2026-11-28 10:00 UTC",
        "duration_s": 1500.0,
        "machine": {"cpu_model": "AMD EPYC", "cores": 2, "memory_bytes": 24e9, "kernel": "6.1"},
        "method": ["alternated A B A B"],
        "comparisons": [
            {
                "number": 1,
                "title": "Launcher overhead",
                "goal": "at most 80 ms added",
                "met": True,
                "result": "+30 ms added",
                "timings": [
                    {
                        "label": "devenv | run",
                        "samples": samples,
                        "summary": bench_stats.summarize(samples),
                    }
                ],
                "tables": [{"title": "Derived", "columns": ["a", "b"], "rows": [["x", 1]]}],
                "notes": ["a note"],
                "commands": ["devenv run --no-secrets -- true"],
                "files": [{"title": "Dockerfile", "lang": "dockerfile", "text": "FROM x\n"}],
            },
            {"number": 5, "title": "Fleet", "goal": "2 x", "met": None, "result": "not landed"},
        ],
        "not_measured": ["Fleet: not landed"],
    }


def test_report_has_summary_machine_tables_commands_and_verdicts():
    page = bench_report.render(_results())
    assert page.startswith("# Benchmarks\n")
    assert "| 1 | Launcher overhead | at most 80 ms added | +30 ms added | met |" in page
    assert "| 5 | Fleet | 2 x | not landed | not measured |" in page
    assert "| CPU | AMD EPYC |" in page
    assert "| memory | 22.4 GiB |" in page
    assert "| OS | unknown |" in page
    # A pipe in a label cannot break the table; the range is min - max.
    assert "| devenv \\| run | 3 | 610 ms | 580 ms - 660 ms |" in page
    assert "```sh\ndevenv run --no-secrets -- true\n```" in page
    assert "```dockerfile\nFROM x\n```" in page
    assert "**Verdict: not measured.** not landed" in page
    assert "## Not measured\n\n- Fleet: not landed\n" in page
    assert page.endswith("\n") and not page.endswith("\n\n")


def test_report_renders_from_json_alone():
    data = json.loads(json.dumps(_results()))
    assert bench_report.render(data) == bench_report.render(_results())


def test_parse_recap_reads_every_host():
    output = """
PLAY RECAP *********************************************************************
devenv-bench-fleet-r1n4-1  : ok=31   changed=9    unreachable=0    failed=0    skipped=4
devenv-bench-fleet-r1n4-2  : ok=31   changed=0    unreachable=1    failed=2    skipped=4
"""
    recap = parse_recap(output)
    assert recap["devenv-bench-fleet-r1n4-1"] == {
        "ok": 31,
        "changed": 9,
        "unreachable": 0,
        "failed": 0,
    }
    assert recap["devenv-bench-fleet-r1n4-2"]["failed"] == 2


def test_fleet_inventory_pulls_from_the_registry_through_insecure_registries():
    inv = fleet_inventory(["h1", "h2"], "10.0.0.2:5000", {"l": "1"}, "1.0.0")
    hosts = inv["all"]["children"]["devenv_workers"]["hosts"]
    assert hosts == {"h1": {"ansible_host": "h1"}, "h2": {"ansible_host": "h2"}}
    variables = inv["all"]["vars"]
    assert variables["devenv_image_source"] == "pull"
    assert variables["devenv_image_registry"].startswith("10.0.0.2:5000/")
    assert variables["devenv_engine_daemon_options"] == {"insecure-registries": ["10.0.0.2:5000"]}


@pytest.mark.parametrize(
    ("n_a", "n_b", "order"),
    [
        (3, 2, ["a", "b", "a", "b", "a"]),
        (2, 2, ["a", "b", "a", "b"]),
        (1, 3, ["a", "b", "b", "b"]),
    ],
)
def test_alternate_interleaves_timed_runs(n_a, n_b, order):
    assert alternate("a", n_a, "b", n_b) == order


def test_build_count_rebuilt_counts_steps_not_from_the_cache():
    from compare_rebuild import build_count_rebuilt

    output = (
        "Step 1/4 : FROM base\n"
        "Step 2/4 : RUN apt-get update\n ---> Using cache\n"
        "Step 3/4 : RUN npm install -g x@2\n ---> Running in 1234\n"
        'Step 4/4 : CMD ["bash"]\n ---> Running in 5678\n'
    )
    assert build_count_rebuilt(output) == 2


def test_fleet_analysis_explains_only_missed_goals():
    from compare_fleet import fleet_analysis

    assert fleet_analysis(True, True, False) == []
    notes = fleet_analysis(False, True, False)
    assert len(notes) == 1 and "4-host goal" in notes[0]
    assert len(fleet_analysis(True, False, True)) == 2


# --------------------------------------------------------------------------- goals and verdicts


def _timings(*medians):
    return [
        {"label": f"case {i}", "samples": [m], "summary": bench_stats.summarize([m])}
        for i, m in enumerate(medians)
    ]


# What each comparison's measure() stores (figures of the first full run, rounded).
MEASURED = {
    "launcher": {
        # true: devenv, docker, secrets; gemini: the same; the interpreter; --dry-run.
        "timings": _timings(0.99, 0.90, 1.04, 6.0, 5.84, 6.1, 0.02, 0.31),
        "derived": {
            "added_true_s": 0.090,
            "paired_true": {"n": 20, "median": 0.079, "min": -0.2, "max": 0.4},
            "gemini_ratio": 1.028,
            "secrets_added_s": 0.052,
        },
    },
    "ready": {"timings": _timings(13.9, 69.2), "derived": {"speedup": 69.2 / 13.9}},
    "size": {
        "derived": {
            "ours_bytes": 1_350_000_000,
            "reference_bytes": 2_500_000_000,
            "share": 0.54,
            "tools_ours": {"git": True, "gcc": True},
        }
    },
    "rebuild": {"timings": _timings(128.0, 80.2), "derived": {"share": 80.2 / 128.0}},
    "fleet": {
        # 1 host first, second; 4 hosts first, second.
        "timings": _timings(106.0, 41.0, 239.0, 105.0),
        "derived": {
            "scale_4_over_1": 239.0 / 106.0,
            "second_over_first": {"1": 41.0 / 106.0, "4": 105.0 / 239.0},
            "recaps": [{"phase": "first", "changed": 40}, {"phase": "second", "changed": 0}],
        },
    },
    "proxy": {
        # A request through the proxy, straight; a whole run with allowlist, with open.
        "timings": _timings(0.031, 0.024, 1.01, 0.93),
        "derived": {"added_request_s": 0.007, "added_run_s": 0.080},
    },
    "gvisor": {
        # claude -p under gVisor, under runc; `-- true` under gVisor, under runc.
        "timings": _timings(9.6, 6.0, 2.4, 1.1),
        "derived": {
            "answer_ratio": 1.6,
            "added_answer_s": 3.6,
            "added_run_s": 1.3,
            "platform": "ptrace",
        },
    },
}

LIMITS = [(key, name) for key, goal in GOALS.items() for name in goal.limits]
FIGURES = [
    (key, name, figure)
    for key, goal in GOALS.items()
    for name, limit in goal.limits.items()
    for figure in limit.figures
]


def _measured(key):
    return json.loads(json.dumps({**comparison(key), **MEASURED[key]}))


def _section(comp):
    return "\n".join(bench_report.render_comparison(comp))


def _with_limit(monkeypatch, key, name, value):
    goal = GOALS[key]
    limit = dataclasses.replace(goal.limits[name], value=value)
    changed = dataclasses.replace(goal, limits={**goal.limits, name: limit})
    monkeypatch.setitem(GOALS, key, changed)


def _crossing(limit, figures):
    """A value of the limit on the other side of the measured figures."""
    values = [figures[name] for name in limit.figures]
    if limit.holds(figures):
        worst = max(values) if limit.bound == AT_MOST else min(values)
        return worst - 1e-6 if limit.bound == AT_MOST else worst + 1e-6
    return max(values) if limit.bound == AT_MOST else min(values)


def test_every_goal_has_its_comparison_module():
    for key in GOALS:
        module = bench_comparisons.module(key)
        for name in ("NEEDS", "COUNTS", "measure", "figures", "result", "analysis"):
            assert hasattr(module, name), f"compare_{key}.py has no {name}"


def test_the_goals_keep_their_wording_and_the_launcher_goal_is_40_ms():
    assert [goal.wording() for goal in GOALS.values()] == [
        "`devenv run --no-secrets` adds at most 40 ms to `-- true` and stays within 10% "
        "for `-- gemini --version`, against the same `docker run` typed by hand",
        "ready agents at least 8 times faster than the reference's npm install at start",
        "at most 60% of the size of the reference Dockerfile's image (same base, same tools), "
        "with every tool of the reference present",
        "rebuild after one agent's version bump takes at most 25% of a cold build",
        "4 hosts take at most 2 times the 1-host time; a second converge changes nothing "
        "and takes at most a third of the first",
        "`network: allowlist` adds at most 20 ms to an agent's request (a new connection, "
        "streamed) and at most 150 ms to `devenv run -- true`, against `network: open`",
        "under gVisor the first answer of `claude -p` takes at most 2 times as long as under "
        "runc, and `devenv run -- true` at most 1.5 s more",
    ]


@pytest.mark.parametrize(("key", "name"), LIMITS)
def test_every_limit_is_judged_from_figures_its_comparison_provides(key, name):
    figures = bench_comparisons.module(key).figures(_measured(key))
    limit = GOALS[key].limits[name]
    assert set(limit.figures) <= set(figures)
    assert judge(GOALS[key], figures)[name] == limit.holds(figures)


@pytest.mark.parametrize(("key", "name"), LIMITS)
def test_every_limit_is_used_by_the_verdict_and_the_report(monkeypatch, key, name):
    figures = bench_comparisons.module(key).figures(_measured(key))
    held = GOALS[key].limits[name].holds(figures)
    before = bench_comparisons.conclude(_measured(key))
    _with_limit(monkeypatch, key, name, _crossing(GOALS[key].limits[name], figures))
    after = bench_comparisons.conclude(_measured(key))
    # The limit now falls on the other side of the figure, and the verdict follows it ...
    verdicts = judge(GOALS[key], figures)
    assert verdicts[name] is not held
    assert after["met"] is all(verdicts.values())
    # ... as do the goal's sentence and the section on the page.
    assert after["goal"] != before["goal"]
    assert f"**Goal:** {after['goal']}" in _section(after)
    assert f"**Verdict: {bench_stats.verdict(after['met'])}.**" in _section(after)
    assert _section(after) != _section(before)


@pytest.mark.parametrize(("key", "name", "figure"), FIGURES)
def test_verdicts_flip_at_the_threshold(key, name, figure):
    goal = GOALS[key]
    # Every figure exactly at its limit: every goal is met ...
    at_limit = {f: lim.value for lim in goal.limits.values() for f in lim.figures}
    assert all(judge(goal, at_limit).values())
    # ... one step past this one's, and that goal and only it is not.
    step = 1e-9 if goal.limits[name].bound == AT_MOST else -1e-9
    past = {**at_limit, figure: at_limit[figure] + step}
    verdicts = judge(goal, past)
    assert not verdicts[name]
    assert [n for n, met in verdicts.items() if not met] == [name]


@pytest.mark.parametrize(("key", "name"), LIMITS)
def test_a_figure_not_measured_does_not_meet_its_goal(key, name):
    goal = GOALS[key]
    figures = {f: lim.value for lim in goal.limits.values() for f in lim.figures}
    figures[goal.limits[name].figures[0]] = None
    assert not judge(goal, figures)[name]


@pytest.mark.parametrize(
    ("fmt", "value", "text"),
    [
        (bench_goals.percent, 0.25, "25%"),
        (bench_goals.percent, 1 / 3, "33.3%"),
        (bench_goals.percent, 0.10, "10%"),
        (bench_goals.fraction_words, 1 / 3, "a third"),
        (bench_goals.fraction_words, 0.3, "30%"),
        (bench_goals.milliseconds, 0.040, "40 ms"),
        (bench_goals.times_words, 2, "2 times"),
        (bench_goals.times_x, 2, "2 x"),
        (bench_goals.changes_words, 0, "nothing"),
        (bench_goals.tools_words, 0, "every tool"),
    ],
)
def test_limits_are_worded_from_their_values(fmt, value, text):
    assert fmt(value) == text


def test_result_lines_quote_the_limits_of_the_table():
    comp = bench_comparisons.conclude(_measured("launcher"))
    assert "goal <= +40 ms, not met" in comp["result"]
    assert "2.8% slower (goal <= 10%, met)" in comp["result"]
    assert comp["met"] is False
    fleet = bench_comparisons.conclude(_measured("fleet"))
    assert "(goal <= 2 x, not met)" in fleet["result"]
    assert "(goal <= 33.3% and 0 changes, not met)" in fleet["result"]


def test_counts_are_those_of_every_comparison_in_report_order():
    assert bench_comparisons.counts(quick=False) == {
        "launcher_true": 20,
        "launcher_gemini": 6,
        "ready_devenv": 5,
        "ready_before": 3,
        "rebuild_bump": 2,
        "rebuild_cold": 2,
        "fleet": 1,
        "fleet_second": 1,
        "proxy_rounds": 10,
        "proxy_requests": 10,
        "proxy_runs": 10,
        "gvisor_answers": 8,
        "gvisor_runs": 10,
    }
    assert list(bench_comparisons.counts(quick=True).values()) == [
        3, 2, 2, 1, 1, 1, 1, 1, 2, 5, 3, 2, 3
    ]  # fmt: skip


def test_a_record_of_schema_1_keeps_its_analysis_inside_its_notes():
    comp = {**_measured("rebuild"), "notes": ["**Why the goal is missed:** as recorded"]}
    record = bench_comparisons.conclude_all({"schema": 1, "comparisons": [comp]})
    assert "analysis" not in record["comparisons"][0]
    comp = {**_measured("rebuild"), "notes": ["a setting"]}
    record = bench_comparisons.conclude_all({"schema": 2, "comparisons": [comp]})
    page = _section(record["comparisons"][0])
    assert page.index("- a setting") < page.index("- **Why the goal is missed:**")


def test_a_comparison_that_could_not_be_measured_is_not_judged():
    comp = {**comparison("ready"), "result": "could not be measured: no engine"}
    assert bench_comparisons.conclude(comp)["met"] is None


def test_a_new_comparison_is_one_module_and_one_goal(monkeypatch):
    goal = bench_goals.Goal(
        "Proxy overhead",
        "the proxy adds at most {added} to a request",
        {"added": bench_goals.Limit(("added_s",), AT_MOST, 0.005, bench_goals.milliseconds)},
    )
    module = types.ModuleType("compare_newcomer")
    module.figures = lambda comp: {"added_s": comp["derived"]["added_s"]}
    module.result = lambda figures, goal, verdicts: f"goal {goal.limits['added'].goal()}"
    module.analysis = lambda figures, verdicts: []
    monkeypatch.setitem(GOALS, "newcomer", goal)
    monkeypatch.setitem(sys.modules, "compare_newcomer", module)
    comp = {**comparison("newcomer"), "derived": {"added_s": 0.004}}
    page = bench_report.render(bench_comparisons.conclude_all({"comparisons": [comp]}))
    assert f"## {len(GOALS)}. Proxy overhead" in page
    assert "**Goal:** the proxy adds at most 5 ms to a request" in page
    assert "**Verdict: met.** goal <= 5 ms" in page


def test_the_committed_report_is_what_its_record_renders_to():
    import run

    record = json.loads((ROOT / "docs" / "benchmarks.json").read_text(encoding="utf-8"))
    assert run.report(record) == (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")


def test_the_committed_record_names_no_path_of_the_machine_it_ran_on():
    # Files of the benchmark are shown by their path in the repository (.state/...).
    text = (ROOT / "docs" / "benchmarks.json").read_text(encoding="utf-8")
    assert not re.findall(r"(?<![\w.$])/(?:[\w.-]+/)+\.state/", text)


def test_commands_show_the_benchmark_s_files_by_their_path_in_the_repository(tmp_path):
    from bench_launcher import Launcher

    launcher = Launcher(tmp_path / "work", tmp_path, "img", run=None, log=None)
    config = tmp_path / "work" / "launcher" / "config-gvisor.json"
    shown = launcher.display([launcher.program, "run", "--config", config, launcher.code_dir])
    assert shown == "devenv run --config work/launcher/config-gvisor.json $CODE_DIR"
