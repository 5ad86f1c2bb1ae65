"""Comparison 1, launcher overhead: `devenv run --no-secrets` against the identical
`docker run` typed by hand (and the launcher with secrets, for what fetching them adds)."""

from __future__ import annotations

import shlex

from bench_common import AGENTS, GEMINI, comparison, log, median, timed, timing
from bench_stats import (
    format_ratio,
    format_seconds,
    format_signed_ms,
    paired_differences,
    ratio,
    summarize,
)
from bench_stats import verdict as said

NEEDS = ("ours", "launcher")
COUNTS = {"launcher_true": (20, 3), "launcher_gemini": (6, 2)}

# (case, command, count of rounds, words its output must hold); timed in this order.
CASES = (
    ("true", ["true"], "launcher_true", None),
    ("gemini", ["gemini", "--version"], "launcher_gemini", [AGENTS[GEMINI]]),
)
SIDES = ("devenv", "docker", "secrets")
# The breakdown's two timings come after every case's sides.
INTERPRETER = len(CASES) * len(SIDES)
DRY_RUN = INTERPRETER + 1


def side_argvs(launcher, command) -> dict:
    """{side: (argv, env)} of one case."""
    return {
        "devenv": (launcher.argv(["--no-secrets", "--", *command]), launcher.env(secrets=False)),
        "docker": (launcher.docker_argv(command), launcher.env(secrets=False)),
        "secrets": (launcher.argv(["--", *command]), launcher.env(secrets=True)),
    }


def time_case(launcher, command, rounds: int, expect) -> dict:
    """{side: [seconds]} of `rounds` rounds of devenv / docker / secrets."""
    argvs = side_argvs(launcher, command)
    samples = {side: [] for side in SIDES}
    log(
        f"launcher overhead, -- {shlex.join(command)}: {rounds} rounds of devenv / docker / secrets"
    )
    for i in range(rounds):
        # A B C, then C B A: alternation cancels drift and order effects.
        for side in reversed(SIDES) if i % 2 else SIDES:
            argv, env = argvs[side]
            if side == "docker":
                argv = launcher.fresh_name(argv)  # the launcher makes a new name every time
            samples[side].append(timed(argv, env=env, timeout=300, expect=expect)[0])
    return samples


def case_timings(command, samples: dict) -> list:
    shown = f"`-- {shlex.join(command)}`"
    return [
        timing(f"{shown}: devenv run --no-secrets", samples["devenv"]),
        timing(f"{shown}: docker run by hand", samples["docker"]),
        timing(f"{shown}: devenv run, secrets via stand-in", samples["secrets"]),
    ]


def case_commands(launcher, command) -> list:
    argvs = side_argvs(launcher, command)
    return [
        f"# A: the launcher (-- {shlex.join(command)})",
        launcher.display(argvs["devenv"][0]),
        "# B: the identical docker run typed by hand (argv from `devenv run --dry-run`;",
        "#    a fresh container name each time, as the launcher makes one)",
        launcher.display(argvs["docker"][0]),
        "# C: the launcher with secrets fetched through the Infisical stand-in",
        launcher.display(argvs["secrets"][0]),
    ]


def breakdown_argvs(launcher) -> tuple:
    """Where the launcher's time goes: the interpreter alone, and everything the launcher
    does before it would start docker (--dry-run: no engine calls, no container)."""
    python_argv = [launcher.python, "-IBS", "-c", "pass"]
    return python_argv, launcher.argv(["--dry-run", "--no-secrets", "--", "true"])


def time_breakdown(launcher, rounds: int) -> list:
    python_argv, dry_argv = breakdown_argvs(launcher)
    python, dry = [], []
    for _ in range(rounds):
        python.append(timed(python_argv)[0])
        dry.append(timed(dry_argv, env=launcher.env(secrets=False))[0])
    return [
        timing("breakdown: the interpreter alone (`python3 -IBS -c pass`)", python),
        timing("breakdown: `devenv run --dry-run --no-secrets -- true`", dry),
    ]


def breakdown_commands(launcher) -> list:
    python_argv, dry_argv = breakdown_argvs(launcher)
    return ["# breakdown", shlex.join(python_argv), launcher.display(dry_argv)]


def derive(samples: dict) -> dict:
    """The figures of both cases: what the launcher adds, with and without secrets."""
    true_s = {k: summarize(v) for k, v in samples["true"].items()}
    gem_s = {k: summarize(v) for k, v in samples["gemini"].items()}
    pairs = paired_differences(samples["true"]["devenv"], samples["true"]["docker"])
    return {
        "added_true_s": true_s["devenv"]["median"] - true_s["docker"]["median"],
        "paired_true": summarize(pairs),
        "gemini_ratio": ratio(gem_s["devenv"]["median"], gem_s["docker"]["median"]),
        "secrets_added_s": true_s["secrets"]["median"] - true_s["devenv"]["median"],
    }


def derived_table(derived: dict) -> dict:
    paired = derived["paired_true"]
    return {
        "title": "Derived figures",
        "columns": ["figure", "value"],
        "rows": [
            ["added to `true` (difference of medians)", format_signed_ms(derived["added_true_s"])],
            [
                "added to `true` (median of back-to-back pair differences, min - max)",
                f"{format_signed_ms(paired['median'])} ({format_signed_ms(paired['min'])}"
                f" - {format_signed_ms(paired['max'])})",
            ],
            [
                "`gemini --version`: devenv / docker (medians)",
                format_ratio(derived["gemini_ratio"]),
            ],
            [
                "fetching secrets through the stand-in (median, on `true`)",
                format_signed_ms(derived["secrets_added_s"]),
            ],
        ],
    }


def measure(counts, facts) -> dict:
    launcher = facts["launcher"]
    comp = comparison("launcher")
    launcher.warm_up()
    samples = {}
    for case, command, count, expect in CASES:
        samples[case] = time_case(launcher, command, counts[count], expect)
        comp["commands"] += case_commands(launcher, command)
        comp["timings"] += case_timings(command, samples[case])
    comp["timings"] += time_breakdown(launcher, counts["launcher_true"])
    comp["commands"] += breakdown_commands(launcher)
    comp["derived"] = derive(samples)
    comp["tables"].append(derived_table(comp["derived"]))
    comp["notes"] += launcher.notes()
    return comp


def figures(comp) -> dict:
    derived = comp["derived"]
    paired = derived["paired_true"]
    gemini = derived["gemini_ratio"]
    return {
        "added_true_s": derived["added_true_s"],
        "paired_median_s": paired["median"],
        "paired_min_s": paired["min"],
        "paired_max_s": paired["max"],
        "gemini_slowdown": None if gemini is None else gemini - 1,
        "secrets_added_s": derived["secrets_added_s"],
        "interpreter_s": median(comp, INTERPRETER),
        "dry_run_s": median(comp, DRY_RUN),
    }


def result(figures, goal, verdicts) -> str:
    slowdown = figures["gemini_slowdown"]
    pace = "n/a"
    if slowdown is not None:
        pace = f"{format_ratio(abs(slowdown))} {'slower' if slowdown >= 0 else 'faster'}"
    return (
        f"`true`: {format_signed_ms(figures['added_true_s'])} added (median of pairs "
        f"{format_signed_ms(figures['paired_median_s'])}; goal {goal.limits['true'].goal()}, "
        f"{said(verdicts['true'])}); `gemini --version`: {pace} "
        f"(goal {goal.limits['gemini'].goal()}, {said(verdicts['gemini'])}). Secrets through "
        f"the stand-in add {format_signed_ms(figures['secrets_added_s'])} more."
    )


def analysis(figures, verdicts) -> list:
    notes = []
    if not verdicts["true"]:
        notes.append(
            f"**Why the `true` goal is missed:** before docker even starts, the launcher needs "
            f"{format_seconds(figures['dry_run_s'])} (`--dry-run`: interpreter, imports, "
            f"configuration, full validation; no engine call), of which "
            f"{format_seconds(figures['interpreter_s'])} is the interpreter "
            "alone; then it asks the engine one question over its socket (is the image "
            "there), spawns the docker CLI and waits for it. What is left to shave is the "
            "interpreter and the json/re imports (json's decoder needs re, which needs "
            "enum); the launcher already imports nothing a run does not use, loads compiled "
            "bytecode, and skips the site directories (-S). Note the spread: single "
            "back-to-back pairs differ by "
            f"{format_signed_ms(figures['paired_min_s'])} to "
            f"{format_signed_ms(figures['paired_max_s'])} on this "
            "shared machine, far more than the goal itself, so the verdict rests on medians."
        )
    if not verdicts["gemini"]:
        notes.append(
            "**Why the `gemini --version` goal is missed:** the launcher's fixed cost is the "
            "same as for `true`, a small share of a command that takes seconds; a larger gap "
            "means the spread of the runs themselves on a loaded machine (see min - max): "
            "repeat on a quiet machine with more rounds to close it."
        )
    return notes


def repetitions(counts) -> str:
    return (
        f"launcher `true` {counts['launcher_true']} rounds, `gemini --version` "
        f"{counts['launcher_gemini']} rounds (each round: devenv, docker, devenv with secrets)"
    )
