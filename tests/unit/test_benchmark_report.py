"""The benchmark's pure parts: statistics, formatting, report rendering, recap parsing.

The benchmark itself (scripts/benchmark.sh) is not part of the test suite; these tests
only keep its arithmetic and its page honest. No engine needed.
"""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_report
import bench_stats
from bench_fleet import fleet_inventory, parse_recap


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
    import run

    assert run.alternate("a", n_a, "b", n_b) == order


def test_build_count_rebuilt_counts_steps_not_from_the_cache():
    import run

    output = (
        "Step 1/4 : FROM base\n"
        "Step 2/4 : RUN apt-get update\n ---> Using cache\n"
        "Step 3/4 : RUN npm install -g x@2\n ---> Running in 1234\n"
        'Step 4/4 : CMD ["bash"]\n ---> Running in 5678\n'
    )
    assert run.build_count_rebuilt(output) == 2


def test_fleet_analysis_explains_only_missed_goals():
    from bench_fleet import fleet_analysis

    assert fleet_analysis(True, True, False) == []
    notes = fleet_analysis(False, True, False)
    assert len(notes) == 1 and "4-host goal" in notes[0]
    assert len(fleet_analysis(True, False, True)) == 2
