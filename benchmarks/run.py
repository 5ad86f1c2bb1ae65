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
--quick, writes to .state/bench/ instead unless --docs is given).

Everything it creates on the engine carries the labels io.kuatecno.devenv.test=1 and
io.kuatecno.devenv.bench=1 and is removed at the end, also on failure or Ctrl-C. Images
are named devenv-bench/... and kept, so the next run's preparation is quick.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from time import perf_counter

import bench_report
from bench_fleet import measure_fleet
from bench_launcher import Launcher
from bench_stats import (
    format_bytes,
    format_ratio,
    format_seconds,
    format_signed_ms,
    paired_differences,
    ratio,
    summarize,
)

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
# The next published Gemini CLI after 0.22.4 (`npm view @google/gemini-cli versions`).
GEMINI_BUMP = "0.24.0"
IMAGE_VERSION = "1.0.0"
OUR_IMAGE = f"{NAME}/devenv"
OUR_REF = f"{OUR_IMAGE}:v{IMAGE_VERSION}"
OUR_FULL_IMAGE = f"{NAME}/devenv-full"
OUR_FULL_REF = f"{OUR_FULL_IMAGE}:v{IMAGE_VERSION}"
REFERENCE_REF = f"{NAME}/reference:13"
BEFORE_REF = f"{NAME}/before:13"
REBUILD = f"{NAME}/rebuild"

COUNTS_FULL = {
    "launcher_true": 20,
    "launcher_gemini": 6,
    "ready_devenv": 5,
    "ready_before": 3,
    "rebuild_bump": 2,
    "rebuild_cold": 2,
    "fleet": 1,
    "fleet_second": 1,
}
COUNTS_QUICK = {
    "launcher_true": 3,
    "launcher_gemini": 2,
    "ready_devenv": 2,
    "ready_before": 1,
    "rebuild_bump": 1,
    "rebuild_cold": 1,
    "fleet": 1,
    "fleet_second": 1,
}
COMPARISONS = ("launcher", "ready", "size", "rebuild", "fleet")

GOALS = {
    "launcher": (
        "`devenv run --no-secrets` adds at most 80 ms to `-- true` and stays within 10% "
        "for `-- gemini --version`, against the same `docker run` typed by hand"
    ),
    "ready": "ready agents at least 8 times faster than the reference's npm install at start",
    "size": (
        "at most 60% of the size of the reference Dockerfile's image (same base, same tools), "
        "with every tool of the reference present"
    ),
    "rebuild": "rebuild after one agent's version bump takes at most 25% of a cold build",
    "fleet": (
        "4 hosts take at most 2 times the 1-host time; a second converge changes nothing "
        "and takes at most a third of the first"
    ),
}
TITLES = {
    "launcher": "Launcher overhead",
    "ready": "Time to ready agents",
    "size": "Image size",
    "rebuild": "Rebuild after an agent version bump",
    "fleet": "Fleet provisioning",
}

# The reference document's Dockerfile ("Image Contents"), adapted only where this machine
# forces it; every change is listed in the report.
REFERENCE_DOCKERFILE = """\
# The reference document's image ("Image Contents"), for the size comparison. Changes:
# base devenv-test/debian:13 instead of ubuntu:24.04 (the same base as ours; no registry
# is reachable); Gemini CLI 0.22.4 (the document's 0.22.2 is not published); no Infisical
# CLI (its repository is not reachable; dropped on both sides); the proxy's CA certificates
# (needed for npm here; the same mechanism and files as in our image); no prompts from apt.
FROM {base}
ARG DEBIAN_FRONTEND=noninteractive
COPY ca/ /usr/local/share/ca-certificates/bench/
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt

# System packages
RUN apt-get update && apt-get install -y \\
    git \\
    vim \\
    curl \\
    wget \\
    build-essential \\
    ca-certificates \\
 && update-ca-certificates

# Runtime environments
RUN apt-get install -y \\
    python3 \\
    python3-pip \\
    nodejs \\
    npm

# Claude Code (pre-installed, no installation delay)
RUN npm install -g {claude}@{claude_version}

# Gemini CLI (pre-installed)
RUN npm install -g {gemini}@{gemini_version}

# Infisical CLI: dropped (not reachable from this machine)

# Additional tools
RUN apt-get install -y \\
    jq \\
    htop \\
    tree \\
    ripgrep \\
    fzf \\
    tmux
"""

# The reference's "before" case: Node.js and npm on the same base, agents not installed.
BEFORE_DOCKERFILE = """\
# The reference's "before" case: the same base with Node.js and npm from Debian and the
# proxy's CA certificates; the agents are installed by `npm install -g` at every start.
FROM {base}
ARG DEBIAN_FRONTEND=noninteractive
COPY ca/ /usr/local/share/ca-certificates/bench/
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
RUN apt-get update \\
 && apt-get install -y --no-install-recommends nodejs npm \\
 && update-ca-certificates \\
 && rm -rf /var/lib/apt/lists/* /root/.npm
"""

# Each tool of the reference's Dockerfile and the program that proves it is there.
REFERENCE_TOOLS = [
    ("git", "git"),
    ("vim", "vim"),
    ("curl", "curl"),
    ("wget", "wget"),
    ("build-essential", "make"),
    ("build-essential", "gcc"),
    ("build-essential", "g++"),
    ("ca-certificates", "update-ca-certificates"),
    ("python3", "python3"),
    ("python3-pip", "pip3"),
    ("nodejs", "node"),
    ("npm", "npm"),
    ("Claude Code", "claude"),
    ("Gemini CLI", "gemini"),
    ("jq", "jq"),
    ("htop", "htop"),
    ("tree", "tree"),
    ("ripgrep", "rg"),
    ("fzf", "fzf"),
    ("tmux", "tmux"),
]


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


# Other work on this machine may remove containers carrying the shared test label while a
# run is in progress (a test suite's final sweep does). Such a run ends with 137 (SIGKILL)
# or an engine error, and is repeated; the count is reported.
KILLED_FROM_OUTSIDE = {"runs": 0, "rounds": 0}
RETRY_CODES = (125, 137)


def timed(argv, *, env=None, timeout=None, expect=None, attempts=3):
    """Run a command with stdin closed and return (seconds, stdout). Fails on exit != 0."""
    for attempt in range(1, attempts + 1):
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
        elapsed = perf_counter() - start
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


def docker_label_args():
    return ["--label", TEST_LABEL, "--label", BENCH_LABEL]


def image_present(ref: str) -> bool:
    return run(["docker", "image", "inspect", ref], check=False).returncode == 0


def docker_build(tag, context, *, no_cache=False, cache_from=None, timeout=3600):
    argv = ["docker", "build", "-t", tag]
    if no_cache:
        argv.append("--no-cache")
    if cache_from and image_present(cache_from):
        argv += ["--cache-from", cache_from]
    argv.append(str(context))
    return run(argv, timeout=timeout)


def ca_files():
    ca_dir = Path(os.environ.get("DEVENV_TEST_CA_DIR", ""))
    if not ca_dir.is_dir():
        raise BenchError("DEVENV_TEST_CA_DIR must name the directory of extra CA certificates")
    files = sorted(p for p in ca_dir.iterdir() if p.is_file() and p.suffix in (".crt", ".pem"))
    if not files:
        raise BenchError(f"no CA certificates (*.crt, *.pem) in {ca_dir}")
    return files


def copy_ca(context: Path) -> None:
    dest = context / "ca"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for src in ca_files():
        shutil.copy2(src, dest / (src.stem + ".crt"))


def write_context(name: str, dockerfile: str) -> Path:
    context = WORK / "contexts" / name
    context.mkdir(parents=True, exist_ok=True)
    copy_ca(context)
    (context / "Dockerfile").write_text(dockerfile, encoding="utf-8")
    return context


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


# --------------------------------------------------------------------------- the machine


def machine_info() -> dict:
    info = {"cores": os.cpu_count(), "kernel": platform.release()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
        info["cpu_model"] = match.group(1).strip() if match else platform.processor()
        meminfo = Path("/proc/meminfo").read_text(encoding="utf-8")
        match = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.M)
        info["memory_bytes"] = int(match.group(1)) * 1024 if match else None
    except OSError:
        pass
    try:
        osr = Path("/etc/os-release").read_text(encoding="utf-8")
        match = re.search(r'^PRETTY_NAME="?([^"\n]+)"?$', osr, re.M)
        info["os"] = match.group(1) if match else None
    except OSError:
        info["os"] = None
    fmt = "{{.Server.Version}} (client {{.Client.Version}})"
    info["docker_server"] = run(["docker", "version", "--format", fmt]).stdout.strip()
    fmt = "{{.Driver}}, cgroup v{{.CgroupVersion}}, {{.NCPU}} CPUs seen by the engine"
    info["docker_storage"] = run(["docker", "info", "--format", fmt]).stdout.strip()
    ansible_version = run(["ansible", "--version"], check=False).stdout.split("\n")[0]
    info["toolchain"] = f"Python {platform.python_version()} / {ansible_version.strip()}"
    return info


def machine_load() -> dict:
    load = os.getloadavg()
    running = run(["docker", "ps", "-q"], check=False).stdout.split()
    ours = run(["docker", "ps", "-q", "--filter", f"label={BENCH_LABEL}"], check=False)
    return {
        "loadavg_1m": round(load[0], 2),
        "loadavg_5m": round(load[1], 2),
        "other_containers_running": len(set(running) - set(ours.stdout.split())),
    }


# --------------------------------------------------------------------------- preparation


def render_dockerfile(dest: Path, agents: dict, *, build_essential: bool) -> str:
    """Render the devenv_image role's Dockerfile template with the benchmark's settings."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    extra = {
        "bench_dockerfile_dest": str(dest),
        "devenv_image_base": BASE,
        "devenv_image_infisical": False,
        "devenv_image_build_essential": build_essential,
        "devenv_image_agents": agents,
        "devenv_image_ca_certificates": [str(p) for p in ca_files()],
    }
    playbook([str(ROOT / "benchmarks" / "render_dockerfile.yml")], extra=extra, log_name="render")
    return dest.read_text(encoding="utf-8")


def build_with_role(name: str, *, build_essential: bool, log_name: str) -> None:
    """Build (or find up to date) NAME:v1.0.0 through the devenv_image role itself."""
    extra = {
        "devenv_image_name": name,
        "devenv_image_version": IMAGE_VERSION,
        "devenv_image_base": BASE,
        "devenv_image_infisical": False,
        "devenv_image_build_essential": build_essential,
        "devenv_image_agents": AGENTS,
        "devenv_image_ca_certificates": [str(p) for p in ca_files()],
        "devenv_image_build_dir": str(WORK / "role-build"),
        "devenv_image_container_labels": LABELS,
        "devenv_image_force": True,
    }
    playbook([str(ROOT / "benchmarks" / "build_image.yml")], extra=extra, log_name=log_name)
    if not image_present(f"{name}:v{IMAGE_VERSION}"):
        raise BenchError(f"the devenv_image role did not leave {name}:v{IMAGE_VERSION}")


def prepare(selected) -> dict:
    """Everything built outside the timings. Returns facts for the report; a failed step
    is recorded under facts["errors"] for the comparisons that need it."""
    facts = {"errors": {}}
    steps = []
    if {"launcher", "ready", "fleet"} & set(selected):
        steps.append((("launcher", "ready", "fleet"), prepare_ours))
    if "size" in selected:
        steps.append((("size",), prepare_size))
    if "ready" in selected:
        steps.append((("ready",), prepare_before))
    for needed_by, step in steps:
        try:
            step(facts)
        except (BenchError, subprocess.TimeoutExpired, OSError) as error:
            log(f"preparation failed: {error}")
            for key in needed_by:
                facts["errors"].setdefault(key, error)
    return facts


def prepare_ours(facts) -> None:
    log(f"preparing our image {OUR_REF} through the devenv_image role")
    build_with_role(OUR_IMAGE, build_essential=False, log_name="build-ours")
    facts["ours"] = OUR_REF


def prepare_size(facts) -> None:
    log(f"preparing our image with build-essential {OUR_FULL_REF} through the role")
    build_with_role(OUR_FULL_IMAGE, build_essential=True, log_name="build-ours-full")
    log(f"preparing the reference image {REFERENCE_REF}")
    text = REFERENCE_DOCKERFILE.format(
        base=BASE,
        claude=CLAUDE,
        claude_version=AGENTS[CLAUDE],
        gemini=GEMINI,
        gemini_version=AGENTS[GEMINI],
    )
    docker_build(REFERENCE_REF, write_context("reference", text))
    facts["reference_dockerfile"] = text


def prepare_before(facts) -> None:
    log(f"preparing the before-case image {BEFORE_REF}")
    text = BEFORE_DOCKERFILE.format(base=BASE)
    docker_build(BEFORE_REF, write_context("before", text))
    facts["before_dockerfile"] = text


# --------------------------------------------------------------------------- cleanup


def cleanup() -> None:
    """Remove every container, network and volume this benchmark created."""
    for kind, listing in (
        ("container", ["docker", "ps", "-aq", "--filter", f"label={BENCH_LABEL}"]),
        ("network", ["docker", "network", "ls", "-q", "--filter", f"label={BENCH_LABEL}"]),
        ("volume", ["docker", "volume", "ls", "-q", "--filter", f"label={BENCH_LABEL}"]),
    ):
        ids = run(listing, check=False).stdout.split()
        if not ids:
            continue
        if kind == "container":
            run(["docker", "rm", "-fv", *ids], check=False)
        elif kind == "network":
            run(["docker", "network", "rm", *ids], check=False)
        else:
            run(["docker", "volume", "rm", "-f", *ids], check=False)
    for tag in ("cold", "bump"):
        if image_present(f"{REBUILD}:{tag}"):
            run(["docker", "rmi", f"{REBUILD}:{tag}"], check=False)


# --------------------------------------------------------------------------- comparisons


def comparison(key: str, **fields) -> dict:
    comp = {
        "id": key,
        "number": COMPARISONS.index(key) + 1,
        "title": TITLES[key],
        "goal": GOALS[key],
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


def measure_launcher(counts, launcher: Launcher) -> dict:
    comp = comparison("launcher")
    launcher.warm_up()
    results = {}
    for case, command, n, expect in (
        ("true", ["true"], counts["launcher_true"], None),
        ("gemini", ["gemini", "--version"], counts["launcher_gemini"], [AGENTS[GEMINI]]),
    ):
        devenv_argv = launcher.argv(["--no-secrets", "--", *command])
        docker_argv = launcher.docker_argv(command)
        secret_argv = launcher.argv(["--", *command])
        samples = {"devenv": [], "docker": [], "secrets": []}
        log(f"launcher overhead, -- {shlex.join(command)}: {n} rounds of devenv / docker / secrets")
        for i in range(n):
            # A B C, then C B A: alternation cancels drift and order effects.
            order = ["devenv", "docker", "secrets"]
            if i % 2:
                order.reverse()
            for which in order:
                if which == "devenv":
                    argv, env = devenv_argv, launcher.env(secrets=False)
                elif which == "docker":
                    argv, env = launcher.fresh_name(docker_argv), launcher.env(secrets=False)
                else:
                    argv, env = secret_argv, launcher.env(secrets=True)
                elapsed, _ = timed(argv, env=env, timeout=300, expect=expect)
                samples[which].append(elapsed)
        results[case] = samples
        comp["commands"] += [
            f"# A: the launcher (-- {shlex.join(command)})",
            launcher.display(devenv_argv),
            "# B: the identical docker run typed by hand (argv from `devenv run --dry-run`;",
            "#    a fresh container name each time, as the launcher makes one)",
            launcher.display(docker_argv),
            "# C: the launcher with secrets fetched through the Infisical stand-in",
            launcher.display(secret_argv),
        ]
        comp["timings"] += [
            timing(f"`-- {shlex.join(command)}`: devenv run --no-secrets", samples["devenv"]),
            timing(f"`-- {shlex.join(command)}`: docker run by hand", samples["docker"]),
            timing(
                f"`-- {shlex.join(command)}`: devenv run, secrets via stand-in", samples["secrets"]
            ),
        ]
    # Where the launcher's time goes: the interpreter alone, and everything the launcher does
    # before it would start docker (--dry-run: no engine calls, no container).
    parts = {"python": [], "dry": []}
    python_argv = [launcher.python, "-IB", "-c", "pass"]
    dry_argv = launcher.argv(["--dry-run", "--no-secrets", "--", "true"])
    for _ in range(counts["launcher_true"]):
        parts["python"].append(timed(python_argv)[0])
        parts["dry"].append(timed(dry_argv, env=launcher.env(secrets=False))[0])
    comp["timings"] += [
        timing("breakdown: the interpreter alone (`python3 -IB -c pass`)", parts["python"]),
        timing("breakdown: `devenv run --dry-run --no-secrets -- true`", parts["dry"]),
    ]
    comp["commands"] += [
        "# breakdown",
        shlex.join(python_argv),
        launcher.display(dry_argv),
    ]
    true_s = {k: summarize(v) for k, v in results["true"].items()}
    gem_s = {k: summarize(v) for k, v in results["gemini"].items()}
    added_true = true_s["devenv"]["median"] - true_s["docker"]["median"]
    paired = summarize(paired_differences(results["true"]["devenv"], results["true"]["docker"]))
    gem_ratio = ratio(gem_s["devenv"]["median"], gem_s["docker"]["median"])
    secrets_added = true_s["secrets"]["median"] - true_s["devenv"]["median"]
    met_true = added_true <= 0.080
    met_gem = gem_ratio is not None and gem_ratio <= 1.10
    comp["met"] = met_true and met_gem
    comp["result"] = (
        f"`true`: {format_signed_ms(added_true)} added (median of pairs "
        f"{format_signed_ms(paired['median'])}; goal <= +80 ms, "
        f"{'met' if met_true else 'not met'}); `gemini --version`: "
        f"{format_ratio(abs(gem_ratio - 1) if gem_ratio else None)} "
        f"{'slower' if gem_ratio and gem_ratio >= 1 else 'faster'} "
        f"(goal <= 10%, {'met' if met_gem else 'not met'}). Secrets through the stand-in add "
        f"{format_signed_ms(secrets_added)} more."
    )
    comp["tables"].append(
        {
            "title": "Derived figures",
            "columns": ["figure", "value"],
            "rows": [
                ["added to `true` (difference of medians)", format_signed_ms(added_true)],
                [
                    "added to `true` (median of back-to-back pair differences, min - max)",
                    f"{format_signed_ms(paired['median'])} ({format_signed_ms(paired['min'])}"
                    f" - {format_signed_ms(paired['max'])})",
                ],
                ["`gemini --version`: devenv / docker (medians)", format_ratio(gem_ratio)],
                [
                    "fetching secrets through the stand-in (median, on `true`)",
                    format_signed_ms(secrets_added),
                ],
            ],
        }
    )
    comp["derived"] = {
        "added_true_s": added_true,
        "paired_true": paired,
        "gemini_ratio": gem_ratio,
        "secrets_added_s": secrets_added,
    }
    comp["notes"] += launcher.notes()
    dry = summarize(parts["dry"])["median"]
    interp = summarize(parts["python"])["median"]
    if not met_true:
        comp["notes"].append(
            f"**Why the `true` goal is missed:** before docker even starts, the launcher needs "
            f"{format_seconds(dry)} (`--dry-run`: interpreter, imports, configuration, full "
            f"validation; no engine call), of which {format_seconds(interp)} is the interpreter "
            "alone; then it asks the engine twice over its socket (`/_ping`, the image) and "
            "spawns the docker CLI. **What would close it:** import only what a run needs "
            "(the run specification pulls in `dataclasses`, `secrets` and compiles its regular "
            "expressions at import), let `docker run --pull never` report a missing image "
            "instead of asking the engine first (one round trip less), and start the "
            "interpreter with `-S` where the host's site directory adds `.pth` imports "
            "(this machine's does). Note the spread: single back-to-back pairs differ by "
            f"{format_signed_ms(paired['min'])} to {format_signed_ms(paired['max'])} on this "
            "shared machine, far more than the goal itself, so the verdict rests on medians."
        )
    if not met_gem:
        comp["notes"].append(
            "**Why the `gemini --version` goal is missed:** the launcher's fixed cost is the "
            "same as for `true`, a small share of a command that takes seconds; a larger gap "
            "means the spread of the runs themselves on a loaded machine (see min - max): "
            "repeat on a quiet machine with more rounds to close it."
        )
    return comp


def measure_ready(counts, launcher: Launcher) -> dict:
    comp = comparison("ready")
    script = "claude --version && gemini --version"
    devenv_argv = launcher.argv(["--no-secrets", "--", "sh", "-c", script])
    install = (
        f"npm install -g --no-audit --no-fund {CLAUDE}@{AGENTS[CLAUDE]} {GEMINI}@{AGENTS[GEMINI]}"
        f" && {script}"
    )
    # The reference's dev() flags (without -it: no terminal here), on a fresh container.
    before_base = [
        "docker", "run", "--rm", *docker_label_args(),
        "--memory=4g", "--cpus=2.0", "--pids-limit=100", "--security-opt=no-new-privileges",
    ]  # fmt: skip
    clean = run(["docker", "run", "--rm", *docker_label_args(), BEFORE_REF, "sh", "-c",
                 "test ! -e /root/.npm && test ! -e /usr/local/lib/node_modules/@google "
                 "&& npm config get cache"])  # fmt: skip
    expect = [AGENTS[CLAUDE], AGENTS[GEMINI]]
    ours, before = [], []
    n_ours, n_before = counts["ready_devenv"], counts["ready_before"]
    timed(devenv_argv, env=launcher.env(secrets=False), timeout=300, expect=expect)  # warm-up
    log(f"time to ready agents: {n_ours} x devenv, {n_before} x npm install in a fresh container")
    for i in range(max(n_ours, n_before)):
        if i < n_before:
            name = f"{NAME}-before-{os.getpid()}-{i}"
            argv = [*before_base, "--name", name, BEFORE_REF, "sh", "-c", install]
            elapsed, _ = timed(argv, timeout=1800, expect=expect)
            before.append(elapsed)
            log(f"  before #{i + 1}: {format_seconds(elapsed)}")
        if i < n_ours:
            elapsed, _ = timed(
                devenv_argv, env=launcher.env(secrets=False), timeout=300, expect=expect
            )
            ours.append(elapsed)
    s_ours, s_before = summarize(ours), summarize(before)
    speedup = ratio(s_before["median"], s_ours["median"])
    comp["met"] = speedup is not None and speedup >= 8
    comp["result"] = (
        f"{format_seconds(s_ours['median'])} against {format_seconds(s_before['median'])}: "
        f"{speedup:.0f} times faster (goal >= 8)."
    )
    comp["timings"] = [
        timing("devenv run --no-secrets (our image, agents pre-installed)", ours),
        timing("before: fresh container, npm install -g both agents", before),
    ]
    comp["tables"].append(
        {
            "title": "Derived figures",
            "columns": ["figure", "value"],
            "rows": [
                ["speed-up (before median / ours median)", f"{speedup:.1f} x"],
                [
                    "slowest ours against fastest before",
                    f"{s_before['min'] / s_ours['max']:.1f} x",
                ],
            ],
        }
    )
    comp["derived"] = {"speedup": speedup}
    if not comp["met"]:
        comp["notes"] += [
            "**Why the goal is missed:** our side is not instant: `claude --version` and "
            "`gemini --version` themselves take seconds (Node.js compiling thousands of "
            "modules at every start, slower still on this loaded 2-CPU machine), and the "
            "before case pays the same on top of the "
            "download, so the ratio is bounded by download time / start-up time. "
            "**What would close it:** a faster agent start-up, e.g. Node.js 22 (its on-disk "
            "compile cache, `NODE_COMPILE_CACHE`, warmed at image build time; Debian 13 ships "
            "Node.js 20, so `devenv_image_nodejs_source: nodesource`), and a quieter machine."
        ]
    comp["commands"] = [
        "# ours",
        launcher.display(devenv_argv),
        "# before (a new container, hence an empty npm cache, every time)",
        shlex.join([*before_base, "--name", f"{NAME}-before-N", BEFORE_REF, "sh", "-c", install]),
    ]
    comp["notes"][:0] = [
        "The before image is the same base with Debian's `nodejs` and `npm` and the proxy's CA "
        "certificates, built outside the timing; its Dockerfile is below.",
        "npm cache not reused: every before run is a new container (`--rm`), and the image "
        f"holds no npm cache (checked: no `/root/.npm`; npm's cache dir is "
        f"`{clean.stdout.strip()}`, inside the container).",
        "`--no-audit --no-fund` make the before case faster than a plain `npm install -g`, so "
        "the speed-up is, if anything, understated. Both agents are installed in one npm call.",
        "Downloads go through this machine's TLS-intercepting proxy; on a direct connection "
        "the before case can be faster or slower, ours does not touch the network.",
        "Ours runs without secrets; comparison 1 gives what fetching them adds.",
    ]
    return comp


def image_size(ref: str) -> int:
    return int(run(["docker", "image", "inspect", "--format", "{{.Size}}", ref]).stdout.strip())


def image_layers(ref: str):
    fmt = "{{.Size}}\t{{.CreatedBy}}"
    out = run(["docker", "history", "--human=false", "--no-trunc", "--format", fmt, ref]).stdout
    layers = []
    for line in out.strip().split("\n"):
        size, _, created_by = line.partition("\t")
        created_by = re.sub(
            r"^(\|\d+ (\S+=\S* )*)?/bin/(ba)?sh (-o pipefail )?-c (#\(nop\) )?", "", created_by
        )
        created_by = re.sub(r"\s+", " ", created_by).strip()
        layers.append({"size": int(size), "created_by": created_by})
    layers.reverse()  # oldest first, as in the Dockerfile
    return layers


def tools_present(ref: str) -> dict:
    names = " ".join(binary for _, binary in REFERENCE_TOOLS)
    script = (
        f"for t in {names}; do "
        'if command -v "$t" >/dev/null; then echo "$t yes"; else echo "$t no"; fi; done'
    )
    out = run(
        ["docker", "run", "--rm", *docker_label_args(), "--entrypoint", "sh", ref, "-c", script]
    ).stdout
    found = dict(line.split(" ", 1) for line in out.strip().split("\n") if " " in line)
    return {binary: found.get(binary) == "yes" for _, binary in REFERENCE_TOOLS}


CONTENT_SCRIPT = r"""
pkgs=$(dpkg-query -W -f='${Installed-Size}\n' | awk '{n++; s+=$1} END {print n, s*1024}')
size() { if [ -e "$1" ]; then du -sb "$1" | cut -f1; else echo 0; fi; }
echo "packages $pkgs"
echo "apt_lists $(size /var/lib/apt/lists)"
echo "npm_cache $(size /root/.npm)"
echo "npm_global $(size "$(npm root -g)")"
"""


def image_content(ref: str) -> dict:
    """Where an image's bytes are: Debian packages, apt lists, npm cache, global modules."""
    out = run(
        ["docker", "run", "--rm", *docker_label_args(), "--user", "0", "--entrypoint", "sh",
         ref, "-c", CONTENT_SCRIPT]
    ).stdout  # fmt: skip
    facts = {}
    for line in out.splitlines():
        key, *values = line.split()
        facts[key] = [int(v) for v in values]
    return {
        "packages": facts["packages"][0],
        "packages_bytes": facts["packages"][1],
        "apt_lists_bytes": facts["apt_lists"][0],
        "npm_cache_bytes": facts["npm_cache"][0],
        "npm_global_bytes": facts["npm_global"][0],
    }


def content_rows(ours: dict, ref: dict) -> list:
    return [
        ["Debian packages installed", ours["packages"], ref["packages"]],
        ["their installed size (dpkg)", format_bytes(ours["packages_bytes"]),
         format_bytes(ref["packages_bytes"])],
        ["apt package lists left in the image", format_bytes(ours["apt_lists_bytes"]),
         format_bytes(ref["apt_lists_bytes"])],
        ["npm cache left in the image (/root/.npm)", format_bytes(ours["npm_cache_bytes"]),
         format_bytes(ref["npm_cache_bytes"])],
        ["global npm modules (the agents)", format_bytes(ours["npm_global_bytes"]),
         format_bytes(ref["npm_global_bytes"])],
    ]  # fmt: skip


def layer_rows(layers, base_size):
    rows = []
    for layer in layers:
        what = layer["created_by"]
        if len(what) > 110:
            what = what[:107] + "..."
        rows.append([format_bytes(layer["size"]), f"`{what}`" if what else "(base image)"])
    return rows


def measure_size(facts) -> dict:
    comp = comparison("size")
    ours, ref = image_size(OUR_FULL_REF), image_size(REFERENCE_REF)
    base = image_size(BASE)
    ours_default = image_size(OUR_REF) if image_present(OUR_REF) else None
    share = ratio(ours, ref)
    tools_ours, tools_ref = tools_present(OUR_FULL_REF), tools_present(REFERENCE_REF)
    missing = [b for b, ok in tools_ours.items() if not ok]
    comp["met"] = share is not None and share <= 0.60 and not missing
    comp["result"] = (
        f"{format_bytes(ours)} against {format_bytes(ref)}: {format_ratio(share)} "
        f"(goal <= 60%); "
        + ("every tool of the reference present." if not missing else f"missing: {missing}.")
    )
    size_rows = [
        ["ours, with build-essential (for this comparison)", format_bytes(ours),
         format_bytes(ours - base), format_ratio(share)],
        ["reference Dockerfile, same base and tools", format_bytes(ref),
         format_bytes(ref - base), "100.0%"],
        ["base devenv-test/debian:13", format_bytes(base), "", ""],
    ]  # fmt: skip
    if ours_default:
        size_rows.append(
            ["ours, default tool set (no build-essential)", format_bytes(ours_default),
             format_bytes(ours_default - base), format_ratio(ratio(ours_default, ref))]
        )  # fmt: skip
    comp["tables"].append(
        {
            "title": "Sizes (docker image inspect; the base is shared by both)",
            "columns": ["image", "size", "above the base", "share of the reference"],
            "rows": size_rows,
        }
    )
    tool_rows = [
        [tool, f"`{binary}`", "yes" if tools_ours[binary] else "**no**",
         "yes" if tools_ref[binary] else "no"]
        for tool, binary in REFERENCE_TOOLS
    ]  # fmt: skip
    comp["tables"].append(
        {
            "title": "Tools of the reference (command -v in each image)",
            "columns": ["tool", "program", "ours", "reference"],
            "rows": tool_rows,
        }
    )
    content_ours, content_ref = image_content(OUR_FULL_REF), image_content(REFERENCE_REF)
    comp["tables"].append(
        {
            "title": "Where the difference comes from (measured inside each image)",
            "columns": ["", "ours", "reference"],
            "rows": content_rows(content_ours, content_ref),
        }
    )
    layers_ours, layers_ref = image_layers(OUR_FULL_REF), image_layers(REFERENCE_REF)
    comp["tables"].append(
        {
            "title": "Layers of ours (docker history, oldest first)",
            "columns": ["size", "created by"],
            "rows": layer_rows(layers_ours, base),
        }
    )
    comp["tables"].append(
        {
            "title": "Layers of the reference (docker history, oldest first)",
            "columns": ["size", "created by"],
            "rows": layer_rows(layers_ref, base),
        }
    )
    comp["derived"] = {
        "ours_bytes": ours,
        "reference_bytes": ref,
        "base_bytes": base,
        "ours_default_bytes": ours_default,
        "share": share,
        "content_ours": content_ours,
        "content_reference": content_ref,
        "tools_ours": tools_ours,
        "tools_reference": tools_ref,
        "layers_ours": layers_ours,
        "layers_reference": layers_ref,
    }
    if share is not None and share > 0.60:
        comp["notes"].append(
            "**Why the goal is missed:** see the table of contents: the size left is Debian "
            "packages (npm from Debian brings hundreds of node-* packages) and the agents "
            "themselves. **What would close it:** Node.js and npm from a single upstream "
            "build (devenv_image_nodejs_source: nodesource) instead of Debian's split packages."
        )
    comp["commands_title"] = "Commands (nothing timed here):"
    comp["commands"] = [
        "docker image inspect --format '{{.Size}}' IMAGE",
        "docker history --human=false --no-trunc IMAGE",
        "docker run --rm --entrypoint sh IMAGE -c 'command -v TOOL'   # for each tool",
    ]
    comp["notes"][:0] = [
        f"Ours is built by the devenv_image role (`{OUR_FULL_REF}`: base {BASE}, Infisical off, "
        "`devenv_image_build_essential: true`, the proxy's CA certificates); the reference from "
        "its own Dockerfile (below) on the same base.",
        "The Infisical CLI is on neither side: its package repository cannot be reached from this "
        "machine. The reference document counts it in its 3.5 GB; ours installs it from the same "
        "repository when switched on, so it would add the same to both.",
        "Where the size goes (table above): the reference installs with recommended packages and "
        "leaves apt's package lists and npm's download cache in its layers; ours installs "
        "without recommends and removes lists and cache in the layer that made them.",
    ]
    comp["files"] = [
        {
            "title": "Reference Dockerfile as built",
            "lang": "dockerfile",
            "text": facts["reference_dockerfile"],
        },
    ]
    return comp


def build_count_rebuilt(output: str) -> int:
    """How many steps of a legacy `docker build` did not come from the cache."""
    steps = len(re.findall(r"^Step \d+/\d+ : (?!FROM )", output, re.M))
    cached = len(re.findall(r"^ ---> Using cache$", output, re.M))
    return steps - cached


def alternate(a: str, n_a: int, b: str, n_b: int) -> list:
    """A B A B ..., the rest of the longer side at the end: the order of the timed runs."""
    order = []
    for i in range(max(n_a, n_b)):
        order += ([a] if i < n_a else []) + ([b] if i < n_b else [])
    return order


def measure_rebuild(counts) -> dict:
    comp = comparison("rebuild")
    bumped = dict(AGENTS)
    bumped[GEMINI] = GEMINI_BUMP
    ctx_a = WORK / "contexts" / "rebuild-a"
    ctx_b = WORK / "contexts" / "rebuild-b"
    for ctx, agents in ((ctx_a, AGENTS), (ctx_b, bumped)):
        render_dockerfile(ctx / "Dockerfile", agents, build_essential=False)
        copy_ca(ctx)
    log("rebuild: warming the cache with the unbumped Dockerfile (not timed)")
    docker_build(f"{REBUILD}:warm", ctx_a, cache_from=f"{REBUILD}:warm")
    cold, bump, rebuilt = [], [], []
    for which in alternate("bump", counts["rebuild_bump"], "cold", counts["rebuild_cold"]):
        i = len(bump) if which == "bump" else len(cold)
        tag = f"{REBUILD}:{which}"
        argv = ["docker", "build", "-t", tag]
        if which == "cold":
            argv += ["--no-cache", str(ctx_a)]
        else:
            argv += ["--cache-from", f"{REBUILD}:warm", str(ctx_b)]
        elapsed, out = timed(argv, timeout=3600)
        log(f"  {which} build #{i + 1}: {format_seconds(elapsed)}")
        if which == "cold":
            cold.append(elapsed)
        else:
            bump.append(elapsed)
            rebuilt.append(build_count_rebuilt(out))
            if i == 0:
                labels = docker_label_args()
                version = run(["docker", "run", "--rm", *labels, tag, "gemini", "--version"])
                comp["notes"].append(
                    f"The bumped image's `gemini --version` says {version.stdout.strip()}."
                )
        # Remove the result (and its uncached layers), so the next round builds them again.
        run(["docker", "rmi", tag])
    s_cold, s_bump = summarize(cold), summarize(bump)
    share = ratio(s_bump["median"], s_cold["median"])
    comp["met"] = share is not None and share <= 0.25
    comp["result"] = (
        f"{format_seconds(s_bump['median'])} against {format_seconds(s_cold['median'])}: "
        f"{format_ratio(share)} of a cold build (goal <= 25%)."
    )
    comp["timings"] = [
        timing(f"cold build (--no-cache, base present), Gemini CLI {AGENTS[GEMINI]}", cold),
        timing(f"rebuild after bumping Gemini CLI {AGENTS[GEMINI]} -> {GEMINI_BUMP}", bump,
               steps_rebuilt=rebuilt),
    ]  # fmt: skip
    comp["tables"].append(
        {
            "title": "Derived figures",
            "columns": ["figure", "value"],
            "rows": [
                ["rebuild / cold (medians)", format_ratio(share)],
                ["steps not from the cache in the rebuild", ", ".join(map(str, rebuilt))],
            ],
        }
    )
    comp["derived"] = {"share": share, "steps_rebuilt": rebuilt}
    if not comp["met"]:
        comp["notes"].append(
            "**Why the goal is missed:** the cache works (only the bumped agent's layer and the "
            "metadata steps after it are rebuilt, see the steps above), but that one layer is "
            "the most expensive step of the whole build: Gemini CLI is about 470 MB of npm "
            "packages, all downloaded again through the proxy and unpacked, while the cold "
            "build adds only the apt layer and Claude Code on top. **What would close it:** "
            "keep npm's download cache across builds (BuildKit: `RUN --mount=type=cache,"
            "target=/root/.npm`, so a bump fetches only the packages that changed; needs "
            "BuildKit, i.e. `community.docker.docker_image_build` with buildx instead of the "
            "legacy builder), or serve npm from a local caching registry for the build hosts."
        )
    comp["commands"] = [
        f"docker build -t {REBUILD}:cold --no-cache {rel(ctx_a)}   # A: cold",
        f"docker build -t {REBUILD}:bump --cache-from {REBUILD}:warm {rel(ctx_b)}   # B: bumped",
        "docker rmi TAG   # after each build, so every round does the same work",
    ]
    comp["notes"] += [
        "Both Dockerfiles are rendered from the devenv_image role's template "
        "(`benchmarks/render_dockerfile.yml`) with the settings of our image; they differ only "
        f"in Gemini CLI's version. The cache is the unbumped image ({REBUILD}:warm, built "
        "before the timings), named with `--cache-from` as a CI would: on an engine shared "
        "with other builds of the same Dockerfile the legacy builder otherwise follows the "
        "newest matching chain and can miss the right one.",
        "Gemini CLI is the last and largest layer (about 470 MB installed): a bump of it "
        "rebuilds that layer and the few metadata steps after it. Bumping Claude Code, installed "
        "first, would rebuild both agent layers.",
        "Both builds download through this machine's TLS-intercepting proxy (npm) and from the "
        "Debian mirror (apt, cold build only).",
    ]
    comp["files"] = [
        {"title": "Rendered Dockerfile (unbumped)", "lang": "dockerfile",
         "text": (ctx_a / "Dockerfile").read_text(encoding="utf-8")},
    ]  # fmt: skip
    return comp


def measure(key, counts, launcher, facts) -> dict:
    if key in facts["errors"]:
        raise BenchError(f"preparation failed: {facts['errors'][key]}")
    if key == "launcher":
        return measure_launcher(counts, launcher)
    if key == "ready":
        comp = measure_ready(counts, launcher)
        comp["files"] = [
            {
                "title": "Before-case Dockerfile",
                "lang": "dockerfile",
                "text": facts["before_dockerfile"],
            },
        ]
        return comp
    if key == "size":
        return measure_size(facts)
    if key == "rebuild":
        return measure_rebuild(counts)
    return measure_fleet(
        counts["fleet"], helpers=sys.modules[__name__], seconds_per_round=counts["fleet_second"]
    )


def failed_comparison(key: str, error: BaseException) -> dict:
    comp = comparison(key)
    comp["result"] = f"could not be measured: {str(error).splitlines()[0][:300]}"
    comp["notes"] = [f"Error: {str(error)[:1500]}"]
    return comp


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(COMPARISONS), help="comma-separated subset")
    parser.add_argument("--quick", action="store_true", help="few repetitions (a smoke run)")
    parser.add_argument("--docs", action="store_true", help="write docs/ even for a partial run")
    parser.add_argument("--render-only", action="store_true", help="re-render docs from JSON")
    args = parser.parse_args(argv)

    if args.render_only:
        data = json.loads((ROOT / "docs" / "benchmarks.json").read_text(encoding="utf-8"))
        (ROOT / "docs" / "benchmarks.md").write_text(bench_report.render(data), encoding="utf-8")
        return 0

    selected = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = set(selected) - set(COMPARISONS)
    if unknown:
        parser.error(f"unknown comparisons: {', '.join(sorted(unknown))}")
    counts = COUNTS_QUICK if args.quick else COUNTS_FULL
    full = not args.quick and set(selected) == set(COMPARISONS)
    out_dir = ROOT / "docs" if (full or args.docs) else WORK
    WORK.mkdir(parents=True, exist_ok=True)
    LOG.write_text("", encoding="utf-8")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    start_perf = perf_counter()
    results = {
        "schema": 1,
        "command": "sudo scripts/benchmark.sh" + ("" if full else " " + " ".join(sys.argv[1:])),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "load_before": machine_load(),
        "counts": counts,
        "comparisons": [],
        "not_measured": [],
    }
    try:
        run_all(selected, counts, results)
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
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "benchmarks.json").write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    (out_dir / "benchmarks.md").write_text(bench_report.render(results), encoding="utf-8")
    log(f"wrote {rel(out_dir / 'benchmarks.md')} and {rel(out_dir / 'benchmarks.json')}")
    return 0


def run_all(selected, counts, results) -> None:
    """Prepare, then measure each selected comparison; results gathered in `results`."""
    cleanup()
    prep_start = perf_counter()
    facts = prepare(selected)
    launcher = None
    if {"launcher", "ready"} & set(selected) and "ours" in facts:
        launcher = Launcher(WORK, ROOT, OUR_REF, run=run, log=log)
        launcher.install()
    results["prepare_s"] = perf_counter() - prep_start
    for key in COMPARISONS:
        if key not in selected:
            continue
        log(f"=== comparison: {TITLES[key]}")
        started = perf_counter()
        try:
            comp = measure(key, counts, launcher, facts)
        except (BenchError, subprocess.TimeoutExpired, OSError) as error:
            log(f"comparison {key} failed: {error}")
            with LOG.open("a", encoding="utf-8") as handle:
                traceback.print_exc(file=handle)
            comp = failed_comparison(key, error)
        comp["seconds"] = round(perf_counter() - started, 1)
        results["comparisons"].append(comp)
        if comp.get("met") is None:
            results["not_measured"].append(f"{comp['title']}: {comp['result']}")
        log(f"    {comp['title']}: {comp['result']}")


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
        f"Repetitions: launcher `true` {counts['launcher_true']} rounds, `gemini --version` "
        f"{counts['launcher_gemini']} rounds (each round: devenv, docker, devenv with secrets); "
        f"ready agents {counts['ready_devenv']} x ours, {counts['ready_before']} x before "
        f"(each before run downloads about 600 MB); rebuild {counts['rebuild_bump']} x bumped "
        f"and {counts['rebuild_cold']} x cold (a cold build takes minutes); fleet "
        f"{counts['fleet']} round(s) of 1 and 4 hosts, each a first converge and "
        f"{counts['fleet_second']} with nothing to change.",
        f"Runs repeated because their container was removed from outside (exit 137/125; "
        f"other test suites on this machine sweep containers with the shared test label): "
        f"{KILLED_FROM_OUTSIDE['runs']}; fleet rounds repeated for the same reason: "
        f"{KILLED_FROM_OUTSIDE['rounds']}.",
        f"Machine load: 1-minute load average {lb['loadavg_1m']} at the start, "
        f"{la['loadavg_1m']} at the end; other containers running at the start: "
        f"{lb['other_containers_running']} (the machine is shared with other work).",
    ]


if __name__ == "__main__":
    sys.exit(main())
