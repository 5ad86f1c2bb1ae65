"""A host with one usable CPU (a small cloud server) provisions with the defaults.

The test host runs its own Docker engine and is limited to CPU 0 (`--cpuset-cpus 0`), so
the engine, and the launcher started there, see one CPU. The devenv_launcher role with
its defaults must converge (its configuration check resolves each run as `dev` would),
and `dev` must then start a container with 1 CPU: the run specification's default of 2,
capped to what the host has, because the role no longer writes the default down. The
default network policy (allowlist) holds there too: the run starts the egress proxy (the
image role's, loaded into that engine), itself limited to one CPU.
"""

import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from agent_image import PROXY_REF  # noqa: E402
from roles_testhost import EngineHost  # noqa: E402

IMAGE = "devenv-test/debian:13"
PLAYBOOK = "launcher_role.yml"


@pytest.fixture(scope="module")
def host(agent_image):
    test_host = EngineHost("small-host", run_args=("--cpuset-cpus=0",))
    try:
        test_host.sh("useradd -m -s /bin/bash alice && usermod -aG docker alice")
        test_host.load(IMAGE, PROXY_REF)
        yield test_host
    finally:
        test_host.remove()


def test_one_cpu_host_converges_with_the_defaults_and_dev_gets_one_cpu(host, tmp_path):
    assert host.out("nproc").strip() == "1"
    assert "1" in host.out("docker info --format '{{.NCPU}}'")
    variables = {
        "devenv_users": ["alice"],
        "devenv_launcher_image": IMAGE,
        "devenv_launcher_network_proxy_image": PROXY_REF,
    }
    run = host.playbook(PLAYBOOK, variables, tmp_path)
    assert run.rc == 0, run
    config = json.loads(host.read("/etc/devenv/config.json"))
    assert "cpus" not in config  # the default is the run specification's, per host
    quota = host.out(
        "su - alice -c 'devenv run --no-secrets -- cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
        "/sys/fs/cgroup/cpu/cpu.cfs_period_us'"
    ).split()
    assert int(quota[0]) == int(quota[1]), quota  # one CPU's worth of time per period
    dry = host.out("su - alice -c 'devenv run --dry-run --no-secrets -- true'")
    assert " --cpus 1 " in dry
    # An explicit 2 on this host is refused before anything starts, naming the reason.
    refused = host.sh("su - alice -c 'devenv run --cpus 2 --no-secrets -- true'", check=False)
    assert refused.returncode == 2
    assert "more than this host's 1 CPUs" in refused.stderr
