"""The launcher's promise of Python 3.9 (the python3 of macOS), kept on a real 3.9.

Debian 11's python3 (3.9.2) in the local base made by debootstrap, with Debian's own
pytest: the unit tests of the launcher's library files run there against the checkout
(mounted read-only), then the launcher is installed with that interpreter, exactly as
the devenv_launcher role installs it, and a person's `devenv run --dry-run` works.
"""

import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from roles_testhost import TestHost  # noqa: E402

IMAGE = "devenv-test/debian-python:11"
# The unit tests of the files the launcher carries (LAUNCHER_FILES: _launcher, _settings
# and _runspec, _agents, _network, _infisical, _doctor).
UNIT_TESTS = (
    "tests/unit/test_launcher.py",
    "tests/unit/test_runspec.py",
    "tests/unit/test_isolation.py",
    "tests/unit/test_agents.py",
    "tests/unit/test_network.py",
    "tests/unit/test_infisical.py",
    "tests/unit/test_doctor.py",
)


@pytest.fixture(scope="module")
def host():
    test_host = TestHost(
        "python39",
        image=IMAGE,
        run_args=(
            f"--mount=type=bind,source={ROOT},target=/src,readonly",
            "--env=PYTHONDONTWRITEBYTECODE=1",
        ),
    )
    try:
        yield test_host
    finally:
        test_host.remove()


def test_the_interpreter_is_python_3_9(host):
    assert host.out("python3 -c 'import sys; print(sys.version_info[:2])'").strip() == "(3, 9)"


def test_the_launcher_s_unit_tests_pass_on_python_3_9(host):
    done = host.sh(
        "cd /src && PYTHONPATH=/src/collections python3 -m pytest -q -p no:cacheprovider "
        + " ".join(UNIT_TESTS),
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert " passed" in output and " failed" not in output, output[-2000:]


def test_devenv_run_dry_run_on_python_3_9(host):
    user = f"py39-{uuid.uuid4().hex[:6]}"
    host.sh(
        "python3 /src/tests/support/install_launcher.py /opt/devenv /usr/bin/python3 && "
        f"useradd -m -s /bin/bash {user} && su - {user} -c 'mkdir -p Coding/project'"
    )
    assert host.read("/opt/devenv/bin/devenv").startswith("#!/usr/bin/python3 -IBS\n")
    as_user = f"su - {user} -c "
    version = host.out(as_user + "'/opt/devenv/bin/devenv --version'")
    assert version.startswith("devenv ") and "(kuatecno.devenv)" in version
    dry = host.sh(
        as_user + "'cd Coding/project && /opt/devenv/bin/devenv run --dry-run -- claude --version'",
        check=False,
    )
    assert dry.returncode == 0, dry.stdout + dry.stderr
    argv, names, network = dry.stdout.splitlines()
    assert argv.startswith("docker run --pull never --rm --init ")
    assert "--cap-drop ALL" in argv and "--security-opt no-new-privileges" in argv
    assert f"--mount type=bind,source=/home/{user}/Coding,target=/app," in argv
    assert "--workdir /app/project" in argv
    assert argv.endswith("-- devenv:latest claude --version")
    assert names.startswith("# from the environment by name")
    assert network.startswith("# network allowlist: through the egress proxy")
    # Bad input on 3.9 too: a clear message, exit status 2, nothing started.
    bad = host.sh(as_user + "'/opt/devenv/bin/devenv run --dry-run --memory 1x'", check=False)
    assert bad.returncode == 2 and "memory" in bad.stderr
