"""The real agent image (Claude Code, Gemini CLI) for tests that run the agents.

Built once per machine through the devenv_image role itself (so the tests run the
product's image, not a copy of its Dockerfile), on the local Debian 13 base with the
host's extra CA certificates; the role rebuilds it only when its inputs change, and the
engine's layer cache makes that cheap. Tests that are not about building use this image
(and load it into nested engines with save/load) instead of building their own.

    ref = ensure_agent_image(workdir)   # "devenv-test/agents:v0.0.0"
    ref = ensure_agent_image(workdir, pin="devenv-test/agents:session-1234")

Several suites may share one engine (and one machine) while their checkouts differ: the
role of another checkout rebuilds the same tag with its own Dockerfile. `pin` tags the
image this call converged, in the same locked step, under a name of the caller's own, so
a suite keeps running the image it built; remove that tag (`unpin`) when done.

The same converge builds the egress proxy image (`PROXY_REF`, Squid on the same base),
which runs with `network: allowlist` need.
"""

import fcntl
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "tests" / "integration" / "playbooks" / "image_role.yml"
NAME = "devenv-test/agents"
VERSION = "0.0.0"
REF = f"{NAME}:v{VERSION}"
PROXY_NAME = "devenv-test/proxy"
PROXY_REF = f"{PROXY_NAME}:v{VERSION}"
BASE = "devenv-test/debian:13"
AGENTS = {"@anthropic-ai/claude-code": "2.0.76", "@google/gemini-cli": "0.22.4"}
CA_DIR = Path(os.environ.get("DEVENV_TEST_CA_DIR", "/usr/local/share/ca-certificates"))
LOCK = Path(tempfile.gettempdir()) / "devenv-test-agent-image.lock"


def _ansible_playbook():
    venv = Path(sys.executable).with_name("ansible-playbook")
    return str(venv) if venv.exists() else "ansible-playbook"


def ensure_agent_image(workdir, pin=None, **overrides):
    """Converge the agent image with the role (a no-op when nothing changed); returns
    its reference, or `pin` tagged to it. Serialised across processes: concurrent suites
    share one build."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    variables = {
        "devenv_image_base": BASE,
        "devenv_image_name": NAME,
        "devenv_image_version": VERSION,
        "devenv_image_agents": AGENTS,
        "devenv_image_infisical": False,
        "devenv_image_force": True,  # a test image: rebuilt in place when the role changes
        "devenv_image_tag_latest": False,
        "devenv_image_keep_versions": 1,
        "devenv_image_ca_certificates": sorted(str(p) for p in CA_DIR.glob("*.crt")),
        "devenv_image_build_dir": str(Path(tempfile.gettempdir()) / "devenv-test-agent-image"),
        "devenv_image_container_labels": {"io.kuatecno.devenv.test": "1"},
        "devenv_image_proxy_name": PROXY_NAME,
        "devenv_image_proxy_version": VERSION,
    }
    variables.update(overrides)
    extra = workdir / "agent-image-vars.json"
    extra.write_text(json.dumps(variables))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = subprocess.run(
            [_ansible_playbook(), str(PLAYBOOK), "-e", f"@{extra}"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if done.returncode == 0 and pin:
            subprocess.run(["docker", "tag", REF, pin], check=True, capture_output=True)
    if done.returncode != 0:
        raise AssertionError(f"building {REF} failed:\n{(done.stdout + done.stderr)[-6000:]}")
    return pin or REF


def unpin(pin):
    """Remove a pinned tag (the image itself stays while another tag names it)."""
    subprocess.run(["docker", "rmi", pin], check=False, capture_output=True)
