"""What every comparison of the benchmark shares: names, paths, running and timing commands,
and the skeleton of a comparison's results.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from time import perf_counter

from bench_goals import GOALS
from bench_stats import summarize

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("DEVENV_STATE", ROOT / ".state"))
WORK = STATE / "bench"
LOG = WORK / "bench.log"

TEST_LABEL = "io.kuatecno.devenv.test=1"
BENCH_LABEL = "io.kuatecno.devenv.bench=1"
LABELS = {"io.kuatecno.devenv.test": "1", "io.kuatecno.devenv.bench": "1"}
NAME = "devenv-bench"

BASE = "devenv-test/debian:13"
NESTED_BASE = "devenv-test/debian-docker:13"
REGISTRY_IMAGE = "devenv-test/registry:13"
CLAUDE = "@anthropic-ai/claude-code"
GEMINI = "@google/gemini-cli"
AGENTS = {CLAUDE: "2.0.76", GEMINI: "0.22.4"}
IMAGE_VERSION = "1.0.0"
OUR_IMAGE = f"{NAME}/devenv"
OUR_REF = f"{OUR_IMAGE}:v{IMAGE_VERSION}"
# The egress proxy image the devenv_image role builds next to ours (network: allowlist).
OUR_PROXY = f"{NAME}/proxy"
OUR_PROXY_REF = f"{OUR_PROXY}:v{IMAGE_VERSION}"

# Other work on this machine may remove containers carrying the shared test label while a
# run is in progress (a test suite's final sweep does). Such a run ends with 137 (SIGKILL)
# or an engine error, and is repeated; the count is reported.
KILLED_FROM_OUTSIDE = {"runs": 0, "rounds": 0}
RETRY_CODES = (125, 137)


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message says which and why."""


def rel(path) -> str:
    """A path as the report shows it: relative to the repository root when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def log(message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)
    with LOG.open("a", encoding="utf-8") as handle:
        handle.write(f"[{stamp}] {message}\n")


def run(argv, *, check=True, env=None, timeout=None, capture=True, cwd=None, input_text=None):
    """Run a command (not timed), log it, return the CompletedProcess."""
    with LOG.open("a", encoding="utf-8") as handle:
        handle.write(f"$ {shlex.join(str(a) for a in argv)}\n")
    proc = subprocess.run(
        [str(a) for a in argv],
        input=input_text,
        stdin=None if input_text is not None else subprocess.DEVNULL,
        capture_output=capture,
        text=True,
        env=env,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )
    if capture:
        with LOG.open("a", encoding="utf-8") as handle:
            handle.write((proc.stdout or "")[-4000:])
            handle.write((proc.stderr or "")[-4000:])
    if check and proc.returncode != 0:
        tail = ((proc.stderr or "") + (proc.stdout or ""))[-1500:] if capture else ""
        raise BenchError(f"command failed (exit {proc.returncode}): {shlex.join(argv)}\n{tail}")
    return proc


def _timed_once(argv, env, timeout):
    start = perf_counter()
    proc = subprocess.run(
        [str(a) for a in argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    return perf_counter() - start, proc


def timed(argv, *, env=None, timeout=None, expect=None, attempts=3):
    """Run a command with stdin closed and return (seconds, stdout). Fails on exit != 0."""
    for attempt in range(1, attempts + 1):
        elapsed, proc = _timed_once(argv, env, timeout)
        if proc.returncode in RETRY_CODES and attempt < attempts:
            KILLED_FROM_OUTSIDE["runs"] += 1
            log(f"  run ended with {proc.returncode} (removed from outside?); repeating it")
            continue
        break
    if proc.returncode != 0:
        raise BenchError(
            f"timed command failed (exit {proc.returncode}): {shlex.join(str(a) for a in argv)}\n"
            f"{(proc.stderr + proc.stdout)[-1500:]}"
        )
    for word in expect or ():
        if word not in proc.stdout:
            raise BenchError(f"{shlex.join(argv)}: expected {word!r} in its output: {proc.stdout}")
    return elapsed, proc.stdout


def alternate(a: str, n_a: int, b: str, n_b: int) -> list:
    """A B A B ..., the rest of the longer side at the end: the order of the timed runs."""
    order = []
    for i in range(max(n_a, n_b)):
        order += ([a] if i < n_a else []) + ([b] if i < n_b else [])
    return order


def docker_label_args():
    return ["--label", TEST_LABEL, "--label", BENCH_LABEL]


def image_present(ref: str) -> bool:
    return run(["docker", "image", "inspect", ref], check=False).returncode == 0


def ansible_env():
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


def playbook(argv, *, extra=None, log_name=None, timeout=3600):
    """ansible-playbook from the project root; extra vars through a JSON file."""
    cmd = ["ansible-playbook", *argv]
    if extra is not None:
        vars_file = WORK / f"vars-{log_name or 'play'}.json"
        vars_file.write_text(json.dumps(extra, indent=2), encoding="utf-8")
        cmd += ["-e", f"@{vars_file}"]
    proc = run(cmd, check=False, env=ansible_env(), timeout=timeout, cwd=ROOT)
    if log_name:
        (WORK / "logs").mkdir(exist_ok=True)
        (WORK / "logs" / f"{log_name}.log").write_text(proc.stdout + proc.stderr, "utf-8")
    if proc.returncode != 0:
        raise BenchError(
            f"ansible-playbook failed (exit {proc.returncode}): {shlex.join(cmd)}\n"
            f"{(proc.stdout + proc.stderr)[-3000:]}"
        )
    return proc


def comparison(key: str, **fields) -> dict:
    """The results of one comparison before any measurement: its place, title and goal."""
    goal = GOALS[key]
    comp = {
        "id": key,
        "number": list(GOALS).index(key) + 1,
        "title": goal.title,
        "goal": goal.wording(),
        "met": None,
        "result": "",
        "timings": [],
        "tables": [],
        "notes": [],
        "commands": [],
    }
    comp.update(fields)
    return comp


def timing(label: str, samples, **extra) -> dict:
    entry = {
        "label": label,
        "samples": [round(s, 6) for s in samples],
        "summary": summarize(samples),
    }
    entry.update(extra)
    return entry


def median(comp: dict, index: int):
    """The median of a comparison's timing number `index` (in the order it measured them)."""
    return comp["timings"][index]["summary"]["median"]
