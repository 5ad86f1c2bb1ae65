"""Comparison 7, gVisor: what the kernel boundary costs a run and an agent, against runc.

Both sides run the same image through the same installed launcher, one configuration
each (isolation runc or gvisor), alternated. Timed: the first answer of `claude -p` from
the model API stand-in (tests/support/model_api.py, a container on Docker's default
bridge), a whole `devenv run` from the command to the printed answer with a fresh
(ephemeral) agent state, as a person's first prompt of a session; and `devenv run --
true`. The gVisor platform in use is read from the engine's runtime and stated.
"""

from __future__ import annotations

import json
import sys

from bench_common import (
    LABELS,
    ROOT,
    BenchError,
    alternate,
    comparison,
    log,
    median,
    run,
    timed,
    timing,
)
from bench_stats import format_seconds, format_signed_ms, ratio, summarize
from bench_stats import verdict as said

NEEDS = ("ours", "launcher")
COUNTS = {"gvisor_answers": (8, 2), "gvisor_runs": (10, 3)}

SIDES = ("gvisor", "runc")
# The timings in the order measure() lists them.
ANSWER = {"gvisor": 0, "runc": 1}
RUN = {"gvisor": 2, "runc": 3}
PROMPT = "Say hello. standin-tag:bench-gvisor"


def _model_api():
    sys.path.insert(0, str(ROOT / "tests" / "support"))
    import model_api  # noqa: PLC0415 - the tests' stand-in, loaded where it is used

    return model_api


def platform() -> str:
    """The runsc runtime's platform flag as the engine has it registered."""
    runtimes = json.loads(run(["docker", "info", "--format", "{{json .Runtimes}}"]).stdout)
    args = (runtimes.get("runsc") or {}).get("runtimeArgs") or []
    if "runsc" not in runtimes:
        raise BenchError("the engine has no runsc runtime (scripts/lib/images.sh registers it)")
    found = [a.split("=", 1)[1] for a in args if a.startswith("--platform=")]
    return found[0] if found else "runsc's default"


class Sides:
    """The two launcher configurations (same launcher, image and stand-in)."""

    def __init__(self, launcher, api_url: str):
        self.launcher = launcher
        base = json.loads(launcher.config.read_text(encoding="utf-8"))
        base["env"] = {"ANTHROPIC_BASE_URL": api_url, "ANTHROPIC_API_KEY": "sk-ant-bench"}
        # A fresh state per run (a tmpfs), as a first prompt finds it; the agent's
        # threads fit the limit under both runtimes.
        base.update(ephemeral=True, pids_limit=200, memory="2g")
        self.configs = {}
        for side in SIDES:
            path = launcher.work / f"config-{side}.json"
            path.write_text(json.dumps(dict(base, isolation=side), indent=2), encoding="utf-8")
            self.configs[side] = path

    def env(self, side: str) -> dict:
        env = self.launcher.env(secrets=False)
        env["DEVENV_CONFIG"] = str(self.configs[side])
        return env

    def answer_argv(self) -> list:
        return self.launcher.argv(["--no-secrets", "--", "claude", "-p", PROMPT])

    def run_argv(self) -> list:
        return self.launcher.argv(["--no-secrets", "--", "true"])


STAND_IN = {}


def times(value) -> str:
    return "n/a" if value is None else f"{value:.2f} x"


def prepare(facts) -> None:
    api = _model_api().ModelAPI.start(network="bridge", labels=LABELS)
    STAND_IN["api"] = api
    sides = Sides(facts["launcher"], api.url)
    # Untimed: each side answers once (and pages the image in).
    for side in SIDES:
        seconds, out = timed(sides.answer_argv(), env=sides.env(side), timeout=300)
        log(f"gvisor comparison: {side} answers in {format_seconds(seconds)}: {out.strip()}")
    facts["gvisor_sides"] = sides
    facts["gvisor_platform"] = platform()


def cleanup() -> None:
    api = STAND_IN.pop("api", None)
    if api is not None:
        api.stop()


def time_sides(argv, sides, count: int, expect=None) -> dict:
    samples = {side: [] for side in SIDES}
    for side in alternate("gvisor", count, "runc", count):
        seconds, _out = timed(argv, env=sides.env(side), timeout=600, expect=expect)
        samples[side].append(seconds)
    return samples


def measure(counts, facts) -> dict:
    sides = facts["gvisor_sides"]
    comp = comparison("gvisor")
    answers_n, runs_n = counts["gvisor_answers"], counts["gvisor_runs"]
    where = facts["gvisor_platform"]
    log(f"gvisor: {answers_n} answers and {runs_n} runs per side, platform {where}")
    answers = time_sides(sides.answer_argv(), sides, answers_n, expect=["ANSWER("])
    runs = time_sides(sides.run_argv(), sides, runs_n)
    comp["timings"] = [
        timing("first answer of `claude -p`, gVisor", answers["gvisor"]),
        timing("first answer of `claude -p`, runc", answers["runc"]),
        timing("`devenv run --no-secrets -- true`, gVisor", runs["gvisor"]),
        timing("`devenv run --no-secrets -- true`, runc", runs["runc"]),
    ]
    answer = {side: summarize(v)["median"] for side, v in answers.items()}
    whole = {side: summarize(v)["median"] for side, v in runs.items()}
    comp["derived"] = {
        "answer_ratio": ratio(answer["gvisor"], answer["runc"]),
        "added_answer_s": answer["gvisor"] - answer["runc"],
        "added_run_s": whole["gvisor"] - whole["runc"],
        "platform": facts["gvisor_platform"],
    }
    comp["tables"].append(
        {
            "title": "Derived figures",
            "columns": ["figure", "value"],
            "rows": [
                ["gVisor platform", comp["derived"]["platform"]],
                [
                    "first answer, gVisor / runc (medians)",
                    times(comp["derived"]["answer_ratio"]),
                ],
                ["added to the first answer", format_signed_ms(comp["derived"]["added_answer_s"])],
                ["added to `devenv run -- true`", format_signed_ms(comp["derived"]["added_run_s"])],
            ],
        }
    )
    comp["notes"] = [
        *sides.launcher.notes(),
        f"gVisor: the distribution's runsc, registered as the engine's runtime `runsc` with "
        f"`--platform={facts['gvisor_platform']} --network=host --host-uds=open` (as the "
        "devenv_engine role registers it).",
        "The answer comes from the model API stand-in on Docker's default bridge (network "
        "open on both sides); it answers at once, so the time is the agent's own start, its "
        "request and its output, and the container's start and removal.",
        "Under gVisor every system call of the agent goes to gVisor's kernel (with ptrace, "
        "each one is a round trip through the host's ptrace); the process limit is kept by "
        "that kernel, and the engine's limit bounds the sandbox as a whole.",
    ]
    launcher = sides.launcher
    comp["commands"] = [
        f"# configurations: {launcher.display([str(sides.configs['gvisor'])])} and "
        f"{launcher.display([str(sides.configs['runc'])])} (isolation, the stand-in's URL, "
        "ephemeral state)",
        launcher.display(sides.answer_argv()),
        launcher.display(sides.run_argv()),
    ]
    return comp


def figures(comp) -> dict:
    derived = comp["derived"]
    return {
        "answer_ratio": derived["answer_ratio"],
        "added_answer_s": derived["added_answer_s"],
        "added_run_s": derived["added_run_s"],
        "platform": derived["platform"],
        "answer_gvisor_s": median(comp, ANSWER["gvisor"]),
        "answer_runc_s": median(comp, ANSWER["runc"]),
        "run_gvisor_s": median(comp, RUN["gvisor"]),
        "run_runc_s": median(comp, RUN["runc"]),
    }


def result(figures, goal, verdicts) -> str:
    return (
        f"platform {figures['platform']}: the first answer takes "
        f"{times(figures['answer_ratio'])} as long "
        f"({format_seconds(figures['answer_gvisor_s'])} against "
        f"{format_seconds(figures['answer_runc_s'])}; goal {goal.limits['answer'].goal()}, "
        f"{said(verdicts['answer'])}); `-- true` {format_signed_ms(figures['added_run_s'])} "
        f"(goal {goal.limits['run'].goal()}, {said(verdicts['run'])})."
    )


def analysis(figures, verdicts) -> list:
    notes = []
    if not all(verdicts.values()):
        notes.append(
            f"**Why a goal is missed:** with the {figures['platform']} platform every system "
            "call of the container is intercepted by ptrace and served by gVisor's kernel, and "
            "Node.js makes many of them at start; the sandbox's own start adds its kernel's "
            "boot. **What would close it:** the kvm platform where /dev/kvm works "
            "(devenv_engine_gvisor_platform: kvm), or systrap with a newer runsc."
        )
    return notes


def repetitions(counts) -> str:
    return f"gVisor {counts['gvisor_answers']} answers and {counts['gvisor_runs']} runs per side"
