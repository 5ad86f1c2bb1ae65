"""Runs under gVisor (isolation: gvisor) on the real engine, which the test world gives
gVisor's runsc as the devenv_engine role does (scripts/lib/images.sh).

What must be enforced differently under gVisor is tested from inside: a fork bomb is
contained by the sandbox's own process limit, a memory hog is stopped with the same
message as under runc, the kernel is not the host's. The gate of the sudo door finds a
gVisor container's mounts through the sandbox's file server (its gofer). The runtime
properties, the secrets' path and the network policy under gVisor are asserted by
`devenv doctor --isolation gvisor` (tests/integration/test_doctor.py); the agents answer
under gVisor in tests/integration/test_agents_e2e.py.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from ansible_collections.kuatecno.devenv.plugins.module_utils._runspec import (
    Host,
    build_spec,
    verify_pins,
)
from ansible_collections.kuatecno.devenv.plugins.module_utils._settings import RunSpecError

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
import install_launcher  # noqa: E402
import people  # noqa: E402
from people import as_person  # noqa: E402

IMAGE = "devenv-test/debian:13"
LOGIN = f"devgv{os.getpid() % 100000}"
RUN = uuid.uuid4().hex[:8]
RUN_LABEL = "io.kuatecno.devenv.testrun"
TEST_LABEL = "io.kuatecno.devenv.test"

FORK_BOMB = r"""
import os, time
kids, error = [], None
for _ in range(400):
    try:
        pid = os.fork()
    except OSError as exc:
        error = exc.errno
        break
    if pid == 0:
        time.sleep(5)
        os._exit(0)
    kids.append(pid)
print("forked", len(kids), "errno", error, flush=True)
for pid in kids:
    os.waitpid(pid, 0)
"""
MEMORY_HOG = """
chunks = []
while True:
    chunks.append(bytearray(16 * 1024 * 1024))
"""


def docker(*args, check=True, timeout=120):
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=timeout
    ).stdout


@pytest.fixture(scope="module")
def person():
    if os.geteuid() != 0:
        pytest.skip("creates a test user: needs root (as in CI)")
    try:
        with people.person(LOGIN) as entry:
            yield entry
    finally:
        ids = docker("ps", "-aq", "--filter", f"label={RUN_LABEL}={RUN}", check=False).split()
        if ids:
            docker("rm", "-f", *ids, check=False)


@pytest.fixture(scope="module")
def dev(person):
    """dev(*args, **settings) -> the finished `devenv run ARGS` as the person."""
    prefix = Path(tempfile.mkdtemp(prefix="devenv-gvisor-"))
    prefix.chmod(0o755)
    install_launcher.install(prefix, "/usr/bin/python3")
    config = prefix / "config.json"

    def run(*args, timeout=180, **settings):
        data = {
            "image": IMAGE,
            "memory": "512m",
            "pids_limit": 100,
            "ssh": "none",
            "network": "none",
            "gitconfig": None,
            "labels": {TEST_LABEL: "1", RUN_LABEL: RUN},
        }
        data.update(settings)
        config.write_text(json.dumps(data))
        config.chmod(0o644)
        argv = [*as_person(person), str(prefix / "bin" / "devenv"), "run", *args]
        environ = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": person.pw_dir,
            "USER": LOGIN,
            "DEVENV_CONFIG": str(config),
        }
        return subprocess.run(
            argv, env=environ, cwd=Path(person.pw_dir) / "Coding", capture_output=True,
            text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip

    yield run
    shutil.rmtree(prefix, ignore_errors=True)


def test_the_kernel_under_gvisor_is_not_the_host_s(dev):
    runc = dev("--", "uname", "-r")
    gvisor = dev("--isolation", "gvisor", "--", "sh", "-c", "uname -r; dmesg | head -n 1")
    assert runc.returncode == 0 and gvisor.returncode == 0, runc.stderr + gvisor.stderr
    assert runc.stdout.strip() == os.uname().release
    kernel, first = gvisor.stdout.splitlines()
    assert kernel != os.uname().release
    assert "Starting gVisor" in first


def test_a_fork_bomb_is_contained_by_the_sandbox_s_process_limit(dev):
    done = dev("--isolation", "gvisor", "--pids-limit", "50", "--", "python3", "-c", FORK_BOMB)
    assert done.returncode == 0, done.stderr
    forked, errno = done.stdout.split()[1], done.stdout.split()[3]
    # The limit counts every task of the user in the sandbox (the shell's init and the
    # python process among them): fewer than 50 more, refused with EAGAIN.
    assert 40 <= int(forked) < 50, done.stdout
    assert errno == "11", done.stdout


def test_an_agent_s_normal_number_of_threads_works_under_the_limit(dev):
    # Node.js starts about a dozen threads; gemini --version loads the whole CLI.
    done = dev("--isolation", "gvisor", "--pids-limit", "100", "--", "python3", "-c",
               "import threading, time; ts = [threading.Thread(target=time.sleep, args=(1,)) "
               "for _ in range(40)]; [t.start() for t in ts]; [t.join() for t in ts]; "
               "print('threads ok')")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "threads ok"


def test_a_memory_hog_is_stopped_with_the_same_message(dev):
    done = dev("--isolation", "gvisor", "--memory", "256m", "--", "python3", "-c", MEMORY_HOG)
    assert done.returncode == 137, done.stderr
    assert "memory limit (256m)" in done.stderr
    inside = dev("--isolation", "gvisor", "--memory", "256m", "--", "grep", "MemTotal",
                 "/proc/meminfo")  # fmt: skip
    assert inside.stdout.split()[1] == str(256 * 1024), inside.stdout


def test_without_permission_a_user_may_not_leave_the_administrator_s_gvisor(dev):
    done = dev("--isolation", "runc", "--", "true", isolation="gvisor")
    assert done.returncode == 2
    assert "'runc' isolates less than the administrator's 'gvisor'" in done.stderr
    assert "isolation_widen: true" in done.stderr
    allowed = dev("--isolation", "runc", "--", "uname", "-r", isolation="gvisor",
                  isolation_widen=True)  # fmt: skip
    assert allowed.returncode == 0 and allowed.stdout.strip() == os.uname().release


@pytest.fixture
def sandbox():
    """A gVisor container with a bind mount, started as the engine starts a run."""
    source = Path(tempfile.mkdtemp(prefix="devenv-gvisor-pin-"))
    name = f"devenv-test-gvisor-pins-{RUN}"
    docker(
        "run", "-d", "--rm", "--runtime", "runsc", "--name", name, "--label", f"{TEST_LABEL}=1",
        "--label", f"{RUN_LABEL}={RUN}", "--network", "none",
        "--mount", f"type=bind,source={source},target=/app,readonly", IMAGE, "sleep", "60",
    )  # fmt: skip
    try:
        pid = int(docker("inspect", "--format", "{{.State.Pid}}", name).strip())
        yield source, pid
    finally:
        docker("rm", "-f", name, check=False)
        shutil.rmtree(source, ignore_errors=True)


def test_the_gate_finds_a_gvisor_container_s_mounts_through_its_gofer(sandbox, tmp_path):
    source, pid = sandbox
    (tmp_path / "Coding").mkdir()
    host = Host(1000, 1000, "alice", str(tmp_path), 2, {})
    settings = {"ssh": "none", "gitconfig": None, "network": "none", "isolation": "gvisor"}
    spec = build_spec(settings, host=host)
    info = os.stat(source)
    verify_pins(spec.replace(pins=(("/app", info.st_dev, info.st_ino),)), pid)
    swapped = spec.replace(pins=(("/app", info.st_dev, info.st_ino + 1),))
    with pytest.raises(RunSpecError, match="changed between its check and the engine's mount"):
        verify_pins(swapped, pid)
    # The sandbox's own root is empty: without the gofer the gate could not check.
    assert not os.path.exists(f"/proc/{pid}/root/app")
