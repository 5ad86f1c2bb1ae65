"""Outcome of the whole site.yml on one host: image, secrets, launcher, and a real dev."""

import hashlib
import json
from pathlib import Path

import pytest
import yaml

COLLECTION = Path(__file__).resolve().parents[3] / "collections/devenv"
MODULE_UTILS = COLLECTION / "plugins/module_utils"
ROLE_VARS = COLLECTION / "roles/devenv_launcher/vars/main.yml"
BLOCK_BEGIN = "# BEGIN devenv: dev shell function (managed by Ansible)"

PINNED = {"claude": "2.0.76", "gemini": "0.22.4"}


def _as(host, user, command):
    """Run a command in the user's interactive bash, as a person typing it would."""
    return host.run("su - %s -c %s", user, f"bash -ic {_quote(command)} </dev/null")


def _quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


def test_launcher_program_installed_root_owned(host):
    program = host.file("/usr/local/bin/devenv")
    assert program.exists
    assert (program.user, program.group, program.mode) == ("root", "root", 0o755)
    lib_dir = "/usr/local/lib/devenv/devenv_lib"
    names = sorted(n for n in host.file(lib_dir).listdir() if n != "__pycache__")
    # Exactly the files the role's list names (the module's own code, see below).
    role_vars = yaml.safe_load((ROLE_VARS).read_text())
    assert names == sorted(role_vars["_devenv_launcher_lib_files"])


@pytest.mark.parametrize(
    "name",
    [
        "_settings.py",
        "_network.py",
        "_runspec.py",
        "_infisical.py",
        "_launcher.py",
        "_agents.py",
        "_doctor.py",
    ],
)
def test_launcher_carries_the_modules_own_code(host, name):
    """The very files the module uses, not a copy that can drift."""
    lib = host.file(f"/usr/local/lib/devenv/devenv_lib/{name}")
    assert (lib.user, lib.group, lib.mode) == ("root", "root", 0o644)
    local = hashlib.sha256((MODULE_UTILS / name).read_bytes()).hexdigest()
    assert lib.sha256sum == local


def test_launcher_configuration(host):
    config = host.file("/etc/devenv/config.json")
    assert (config.user, config.group, config.mode) == ("root", "root", 0o644)
    data = json.loads(config.content_string)
    # The role writes only what the administrator set; the launcher's defaults apply to
    # the rest, as `devenv config` shows with where each value comes from.
    assert not {"image", "memory", "cpus", "pids_limit"} & set(data), data
    shown = host.run("su - alice -c 'devenv config'")
    assert shown.rc == 0, shown.stderr
    lines = {
        line.split()[0]: line.split(None, 1)[1]
        for line in shown.stdout.splitlines()
        if line and not line.startswith("#")
    }
    assert lines["image"] == '"devenv:latest"  (default)'
    assert lines["memory"] == '"4g"  (default)'
    assert lines["pids_limit"] == "100  (default)"
    check = host.run("su - alice -c 'devenv config --check /etc/devenv/config.json'")
    assert check.rc == 0, check.stderr


@pytest.mark.parametrize(
    ("user", "rcfile", "shell"),
    [
        ("alice", ".bashrc", "bash"),
        ("alice", ".zshrc", "zsh"),
        ("bob", ".bashrc", "bash"),
        ("bob", ".zshrc", "zsh"),
    ],
)
def test_dev_function_defined(host, user, rcfile, shell):
    rc = host.file(f"/home/{user}/{rcfile}")
    assert rc.exists
    assert (rc.user, rc.group) == (user, user)
    assert not rc.mode & 0o022
    assert rc.content_string.count(BLOCK_BEGIN) == 1
    assert '/usr/local/bin/devenv" run "$@"' in rc.content_string
    out = host.run("su - %s -c %s", user, f"{shell} -ic 'type dev' </dev/null")
    assert out.rc == 0, out.stderr
    assert "function" in out.stdout


@pytest.mark.parametrize(
    ("path", "mode"),
    [
        ("/home/alice/.config/infisical", 0o700),
        ("/home/alice/infisical/.env", 0o600),
        ("/home/alice/.claude", 0o700),
        ("/home/alice/.claude/.credentials.json", 0o600),
        ("/home/alice/.claude.json", 0o600),
        ("/home/alice/.ssh", 0o700),
        ("/home/alice/.ssh/id_ed25519", 0o600),
        ("/home/alice/.ssh/id_ed25519.pub", 0o644),
    ],
)
def test_credential_modes_fixed(host, path, mode):
    f = host.file(path)
    assert f.exists
    assert (f.user, f.group) == ("alice", "alice")
    assert f.mode == mode


@pytest.mark.parametrize(
    "path",
    ["/home/alice/.gemini", "/home/bob/.config/infisical", "/home/bob/.claude", "/home/bob/.ssh"],
)
def test_missing_credentials_not_created(host, path):
    assert not host.file(path).exists


def test_code_directory_created_private(host):
    code = host.file("/home/alice/Coding")
    assert code.is_directory
    assert (code.user, code.group, code.mode) == ("alice", "alice", 0o700)


def test_image_tagged_and_labelled(host):
    labels = json.loads(
        host.check_output("docker image inspect --format '{{json .Config.Labels}}' devenv:v1.0.0")
    )
    assert labels["org.opencontainers.image.version"] == "1.0.0"
    latest = host.check_output("docker image inspect --format '{{.Id}}' devenv:latest")
    assert latest == host.check_output("docker image inspect --format '{{.Id}}' devenv:v1.0.0")


def test_users_reach_the_engine_only_through_the_door(host):
    groups = host.check_output("id -nG alice").split()
    assert "devenv" in groups and "docker" not in groups
    assert host.file("/etc/sudoers.d/devenv").mode == 0o440
    denied = _as(host, "alice", "docker ps")
    assert denied.rc != 0 and "permission denied" in denied.stderr.lower()


def test_dev_runs_as_the_user_with_app_and_limits(host):
    script = (
        "id -u; id -g; pwd; touch /app/made-in-dev; "
        "grep NoNewPrivs /proc/self/status; grep CapEff /proc/self/status; "
        "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes "
        "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"
    )
    out = _as(host, "alice", f'dev -- sh -c "{script}"')
    assert out.rc == 0, out.stderr
    uid = host.user("alice").uid
    gid = host.user("alice").gid
    lines = out.stdout.split()
    assert lines[0:2] == [str(uid), str(gid)]
    assert lines[2] == "/app"
    assert "NoNewPrivs:" in out.stdout
    status = dict(zip(lines[3::2], lines[4::2]))
    assert status["NoNewPrivs:"] == "1"
    assert int(status["CapEff:"], 16) == 0
    assert lines[-3:] == ["100", str(4 * 1024**3), str(4 * 1024**3)]
    made = host.file("/home/alice/Coding/made-in-dev")
    assert made.exists
    assert (made.user, made.group) == ("alice", "alice")
    # No run container is left (the shared egress proxy stays, by design).
    left = (
        "docker ps -aq --filter label=io.kuatecno.devenv.managed=true"
        f" --filter label=io.kuatecno.devenv.uid={uid}"
    )
    assert host.check_output(left) == ""


@pytest.mark.parametrize("agent", sorted(PINNED))
def test_dev_runs_the_pinned_agents(host, agent):
    out = _as(host, "alice", f"dev -- {agent} --version")
    assert out.rc == 0, out.stderr
    assert PINNED[agent] in out.stdout


def test_gvisor_is_a_runtime_of_the_engine(host):
    runtimes = json.loads(host.check_output("docker info --format '{{json .Runtimes}}'"))
    assert runtimes["runsc"]["path"] == "/usr/bin/runsc"
    assert runtimes["runsc"]["runtimeArgs"][0] == "--platform=ptrace"


@pytest.mark.parametrize("isolation", ["runc", "gvisor"])
def test_doctor_passes_through_the_door(host, isolation):
    """Every control of a dev run holds for alice, who reaches the engine only through
    the sudo door, under runc and under gVisor (the gate finds the mounts of a gVisor
    container through its gofer)."""
    out = _as(host, "alice", f"devenv doctor --isolation {isolation}")
    assert out.rc == 0, out.stdout + out.stderr
    assert "through the administrator's sudo rule" in out.stdout
    assert "FAIL" not in out.stdout
    if isolation == "gvisor":
        assert "kernel boundary active" in out.stdout
