"""`devenv doctor` on the real engine, as an unprivileged user would run it.

A healthy host (the real agent image, the egress proxy, secrets from the Infisical
stand-in, the user's own SSH agent holding a key) passes every check, under runc and
under gVisor; then each dependency is broken in turn (engine down, image missing, an
agent that is not the pinned version, a bad configuration, a loose credential file,
Infisical not logged in) and each gives its own failing line and its fix. Every
container and network carries io.kuatecno.devenv.test=1 and this module's run label.
"""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
import install_launcher  # noqa: E402
import people  # noqa: E402
from agent_image import PROXY_REF  # noqa: E402
from people import as_person  # noqa: E402

LOGIN = f"devdr{os.getpid() % 100000}"
RUN = uuid.uuid4().hex[:8]
RUN_LABEL = "io.kuatecno.devenv.testrun"
TEST_LABEL = "io.kuatecno.devenv.test"
EGRESS = f"devenv-test-doctor-{RUN}"
SEED = "doctor-seed"
CANARY = "cnry" + hashlib.sha256(SEED.encode()).hexdigest()[:28]
TOKEN = f"tok-doctor-{RUN}"
# Every check of a run with secrets, the proxy and an SSH agent, in the order printed.
CHECKS = [
    "configuration",
    "engine",
    "image",
    "isolation",
    "credentials",
    "agent state",
    "ssh",
    "secrets",
    "network",
    "container",
    "inside",
    "secret path",
    "network inside",
    "agents",
]


def docker(*args, check=True, timeout=120):
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=timeout
    ).stdout


@pytest.fixture(scope="module")
def person():
    """An unprivileged user in the docker group, who has used Claude Code on the host."""
    if os.geteuid() != 0:
        pytest.skip("creates a test user: needs root (as in CI)")
    with people.person(LOGIN) as entry:
        home = Path(entry.pw_dir)
        (home / ".claude").mkdir(mode=0o700)
        (home / ".claude" / ".credentials.json").write_text('{"claudeAiOauth": {}}')
        (home / ".claude" / ".credentials.json").chmod(0o600)
        ssh = home / ".ssh"
        ssh.mkdir(mode=0o700)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh / "id_ed25519")],
            check=True,
        )
        subprocess.run(["chown", "-R", f"{LOGIN}:", str(home)], check=True)
        yield entry


@pytest.fixture(scope="module")
def prefix(person):
    path = Path(tempfile.mkdtemp(prefix="devenv-doctor-"))
    path.chmod(0o755)
    install_launcher.install(path, "/usr/bin/python3")
    shutil.copy(ROOT / "tests" / "support" / "infisical", path / "infisical")
    (path / "infisical").chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def ssh_agent(person):
    """The person's own ssh-agent, holding their key."""
    sock = Path(tempfile.mkdtemp(prefix="devenv-doctor-agent-")) / "agent.sock"
    os.chown(sock.parent, person.pw_uid, person.pw_gid)
    agent = subprocess.Popen(
        [*as_person(person), "ssh-agent", "-D", "-a", str(sock)],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(50):
            if sock.exists():
                break
            time.sleep(0.1)
        env = {"SSH_AUTH_SOCK": str(sock), "HOME": person.pw_dir, "PATH": "/usr/bin:/bin"}
        key = Path(person.pw_dir) / ".ssh" / "id_ed25519"
        subprocess.run([*as_person(person), "ssh-add", "-q", str(key)], env=env, check=True)
        yield str(sock)
    finally:
        agent.terminate()
        agent.wait(timeout=10)
        shutil.rmtree(sock.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def world(agent_image):
    """The egress network of this module's proxy; its proxies and networks removed after."""
    docker("network", "create", "--label", f"{TEST_LABEL}=1", "--label", f"{RUN_LABEL}={RUN}",
           EGRESS)  # fmt: skip
    try:
        yield agent_image
    finally:
        ids = docker("ps", "-aq", "--filter", f"label={RUN_LABEL}={RUN}", check=False).split()
        if ids:
            docker("rm", "-f", *ids, check=False)
        for line in docker(
            "network", "ls", "-q", "--filter", f"label={RUN_LABEL}={RUN}", check=False
        ).split():
            docker("network", "rm", line, check=False)


@pytest.fixture
def doctor(person, prefix, world, ssh_agent, tmp_path):
    """doctor(*args, env=, user_file=, **settings) -> (exit status, stdout, stderr) of
    `devenv doctor ARGS` as the person, in their code directory."""
    config = prefix / f"config-{uuid.uuid4().hex[:8]}.json"
    home = Path(person.pw_dir)

    def run(*args, env=None, user_file=None, **settings):
        data = {
            "image": world,
            "memory": "1g",
            "pids_limit": 200,
            "network_egress": EGRESS,
            "network_proxy_image": PROXY_REF,
            "gitconfig": None,
            "labels": {TEST_LABEL: "1", RUN_LABEL: RUN},
            "secrets": {"project_id": "p-doctor", "binary": str(prefix / "infisical")},
        }
        data.update(settings)
        config.write_text(json.dumps(data))
        config.chmod(0o644)
        user_config = home / ".config" / "devenv" / "config.json"
        if user_file is not None:
            user_config.parent.mkdir(parents=True, exist_ok=True)
            user_config.write_text(json.dumps(user_file))
            subprocess.run(["chown", "-R", f"{LOGIN}:", str(home / ".config")], check=True)
        environ = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "USER": LOGIN,
            "LOGNAME": LOGIN,
            "DEVENV_CONFIG": str(config),
            "INFISICAL_TOKEN": TOKEN,
            "DEVENV_FAKE_INFISICAL_SEED": SEED,
            "SSH_AUTH_SOCK": ssh_agent,
        }
        environ.update(env or {})
        environ = {k: v for k, v in environ.items() if v is not None}
        try:
            done = subprocess.run(
                [*as_person(person), str(prefix / "bin" / "devenv"), "doctor", *args],
                env=environ,
                cwd=home / "Coding",
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        finally:
            user_config.unlink(missing_ok=True)
        return done.returncode, done.stdout, done.stderr

    yield run
    config.unlink(missing_ok=True)


def lines(out):
    """{check name: [(status, detail, fix)]} of the text report."""
    found = {}
    last = None
    for line in out.splitlines():
        if line.startswith(" ") and "fix: " in line and last:
            found[last][-1] = (*found[last][-1][:2], line.split("fix: ", 1)[1])
            continue
        if not line or line.startswith(("all checks", "\n")) or "check(s) failed" in line:
            continue
        status, rest = line[:4].strip(), line[6:]
        name, detail = rest[:14].strip(), rest[15:]
        found.setdefault(name, []).append((status, detail, ""))
        last = name
    return found


def failing(out):
    return sorted(n for n, rows in lines(out).items() if any(r[0] == "FAIL" for r in rows))


@pytest.mark.parametrize("isolation", ["runc", "gvisor"])
def test_a_healthy_host_passes_every_check(doctor, isolation):
    code, out, err = doctor("--isolation", isolation)
    assert code == 0, out + err
    found = lines(out)
    assert list(found) == CHECKS, out
    # Under gVisor the isolation is reported again once the container showed its kernel.
    assert len(found["isolation"]) == (2 if isolation == "gvisor" else 1), out
    for name, rows in found.items():
        for status, detail, _fix in rows:
            # The one warning: this person reaches the engine through the docker group.
            assert status == "ok" or (name == "engine" and "root-equivalent" in detail), out
    assert "1 key(s)" in found["ssh"][0][1]
    assert "allowlist" in found["network"][0][1]
    assert "claude 2.0.76, gemini 0.22.4" in found["agents"][0][1]
    if isolation == "gvisor":
        boundary = found["isolation"][-1][1]
        assert "kernel boundary active" in boundary and os.uname().release in boundary
    # Infisical answered, and neither its token nor a secret value is printed.
    assert "secret(s) from project p-doctor" in found["secrets"][0][1]
    assert TOKEN not in out + err and CANARY not in out + err
    assert "all checks passed" in out


def test_json_for_tooling(doctor):
    code, out, _err = doctor("--json", "--network", "none")
    assert code == 0, out
    data = json.loads(out)
    assert data["ok"] is True
    names = [c["check"] for c in data["checks"]]
    assert names[:3] == ["configuration", "engine", "image"] and "inside" in names
    assert all(set(c) == {"check", "status", "detail", "fix"} for c in data["checks"])


@pytest.fixture
def dead_engine(tmp_path, person):
    """A socket where an engine was and no longer answers (connection refused)."""
    directory = Path(tempfile.mkdtemp(prefix="devenv-doctor-dead-"))
    directory.chmod(0o755)
    path = directory / "docker.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()
    path.chmod(0o666)
    yield f"unix://{path}"
    shutil.rmtree(directory, ignore_errors=True)


def test_engine_down(doctor, dead_engine):
    code, out, _err = doctor(env={"DOCKER_HOST": dead_engine})
    assert code == 1
    assert failing(out) == ["engine"], out
    ((_status, detail, fix),) = lines(out)["engine"]
    assert "not reachable" in detail and dead_engine in detail
    assert "start the engine" in fix
    assert lines(out)["container"][0][0] == "skip"


def test_image_missing(doctor):
    code, out, _err = doctor(image="devenv-test/no-such-image:1", network="none")
    assert code == 1
    assert failing(out) == ["image"], out
    ((_status, detail, fix),) = lines(out)["image"]
    assert "devenv-test/no-such-image:1 is not on this host" in detail
    assert "--tags image" in fix


@pytest.fixture
def wrong_pin(world):
    """The agent image, relabelled to pin a Claude Code it does not have."""
    ref = f"devenv-test/agents-wrong-pin:{RUN}"
    context = Path(tempfile.mkdtemp(prefix="devenv-doctor-pin-"))
    (context / "Dockerfile").write_text(
        f'FROM {world}\nLABEL io.kuatecno.devenv.agent.claude-code="9.9.9"\n'
    )
    docker("build", "-q", "--label", f"{TEST_LABEL}=1", "-t", ref, str(context))
    yield ref
    docker("rmi", ref, check=False)
    shutil.rmtree(context, ignore_errors=True)


def test_wrong_agent_version(doctor, wrong_pin):
    code, out, _err = doctor(image=wrong_pin, network="none")
    assert code == 1
    assert failing(out) == ["agents"], out
    ((_status, detail, fix),) = lines(out)["agents"]
    assert "claude reports 2.0.76, 9.9.9 pinned" in detail
    assert "rebuild the image" in fix


def test_bad_configuration(doctor):
    code, out, _err = doctor(user_file={"memory": "lots"})
    assert code == 1
    assert failing(out) == ["configuration"], out
    ((_status, detail, fix),) = lines(out)["configuration"]
    assert "memory" in detail and "'lots' is not a size" in detail
    assert "user file" in detail and "devenv config" in fix


def test_loose_credential_permissions(doctor, person):
    credentials = Path(person.pw_dir) / ".claude" / ".credentials.json"
    credentials.chmod(0o644)
    try:
        code, out, _err = doctor(network="none")
    finally:
        credentials.chmod(0o600)
    assert code == 1
    assert failing(out) == ["credentials"], out
    ((_status, detail, fix),) = lines(out)["credentials"]
    assert f"{credentials} is 0644, not 0600" in detail
    assert f"chmod 600 {credentials}" in fix


def test_infisical_not_logged_in(doctor):
    env = {"INFISICAL_TOKEN": None, "DEVENV_FAKE_INFISICAL_MODE": "not-logged-in"}
    code, out, _err = doctor(network="none", env=env)
    assert code == 1
    assert failing(out) == ["secrets"], out
    ((_status, _detail, fix),) = lines(out)["secrets"]
    assert "infisical login" in fix and "INFISICAL_TOKEN" in fix
