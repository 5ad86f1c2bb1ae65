"""What is built before any timing (images, the installed launcher) and swept after.

A comparison names the shared steps it needs in NEEDS ("ours": our image built by the
devenv_image role; "launcher": the launcher installed against it) and may define its own
prepare(facts). A step that fails is recorded under facts["errors"] for the comparisons
that need it; the others still run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from bench_common import (
    AGENTS,
    BASE,
    BENCH_LABEL,
    IMAGE_VERSION,
    LABELS,
    OUR_IMAGE,
    OUR_PROXY,
    OUR_REF,
    ROOT,
    WORK,
    BenchError,
    image_present,
    log,
    playbook,
    run,
)
from bench_launcher import Launcher

STEP_ERRORS = (BenchError, subprocess.TimeoutExpired, OSError)


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


def role_settings(agents: dict, *, build_essential: bool) -> dict:
    """The devenv_image role's variables every image of the benchmark is made with."""
    return {
        "devenv_image_base": BASE,
        "devenv_image_infisical": False,
        "devenv_image_build_essential": build_essential,
        "devenv_image_agents": agents,
        "devenv_image_ca_certificates": [str(p) for p in ca_files()],
        "devenv_image_proxy_name": OUR_PROXY,
    }


def render_dockerfile(dest: Path, agents: dict, *, build_essential: bool) -> str:
    """Render the devenv_image role's Dockerfile template with the benchmark's settings."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    extra = {
        "bench_dockerfile_dest": str(dest),
        **role_settings(agents, build_essential=build_essential),
    }
    playbook([str(ROOT / "benchmarks" / "render_dockerfile.yml")], extra=extra, log_name="render")
    return dest.read_text(encoding="utf-8")


def build_with_role(name: str, agents: dict, *, build_essential: bool, log_name: str) -> None:
    """Build (or find up to date) NAME:v1.0.0 through the devenv_image role itself."""
    extra = {
        "devenv_image_name": name,
        "devenv_image_version": IMAGE_VERSION,
        **role_settings(agents, build_essential=build_essential),
        "devenv_image_build_dir": str(WORK / "role-build"),
        "devenv_image_container_labels": LABELS,
        "devenv_image_force": True,
    }
    playbook([str(ROOT / "benchmarks" / "build_image.yml")], extra=extra, log_name=log_name)
    if not image_present(f"{name}:v{IMAGE_VERSION}"):
        raise BenchError(f"the devenv_image role did not leave {name}:v{IMAGE_VERSION}")


def prepare_ours(facts) -> None:
    log(f"preparing our image {OUR_REF} through the devenv_image role")
    build_with_role(OUR_IMAGE, AGENTS, build_essential=False, log_name="build-ours")
    facts["ours"] = OUR_REF


def install_launcher(facts) -> None:
    launcher = Launcher(WORK, ROOT, OUR_REF, run=run, log=log)
    launcher.install()
    facts["launcher"] = launcher


# In the order they run; "launcher" runs against the image "ours" built.
SHARED_STEPS = {"ours": prepare_ours, "launcher": install_launcher}


def attempt(step, facts, needed_by) -> None:
    """Run one step; on failure, record it for every comparison that needs it."""
    try:
        step(facts)
    except STEP_ERRORS as error:
        log(f"preparation failed: {error}")
        for key in needed_by:
            facts["errors"].setdefault(key, error)


def prepare(modules: dict) -> dict:
    """Everything the selected comparisons ({key: module}) need, built outside the timings.
    Returns facts for the comparisons; failures under facts["errors"][key]."""
    facts = {"errors": {}}
    for name, step in SHARED_STEPS.items():
        users = [key for key, module in modules.items() if name in module.NEEDS]
        # A step none of whose users can run any more (an earlier step failed) is skipped.
        if any(key not in facts["errors"] for key in users):
            attempt(step, facts, users)
    for key, module in modules.items():
        if hasattr(module, "prepare") and key not in facts["errors"]:
            attempt(module.prepare, facts, [key])
    return facts


def cleanup() -> None:
    """Remove every container, network and volume this benchmark created."""
    for kind, remove in (
        ("container", ["docker", "rm", "-fv"]),
        ("network", ["docker", "network", "rm"]),
        ("volume", ["docker", "volume", "rm", "-f"]),
    ):
        listing = ["docker", "ps", "-a"] if kind == "container" else ["docker", kind, "ls"]
        ids = run([*listing, "-q", "--filter", f"label={BENCH_LABEL}"], check=False).stdout.split()
        if ids:
            run([*remove, *ids], check=False)
