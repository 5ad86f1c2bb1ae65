"""The sudo door: users reach the engine only through `devenv run`, as root by one rule.

One test host with its own Docker engine, provisioned by the devenv_launcher role with
its default access (sudo): alice and bob are in the devenv group, not in docker. Each
test acts as they would (`dev` in their shell, `devenv` commands) and checks the outcome
on the host's engine and from inside the container: runs work with every runtime
property; the engine's socket, limits_max, the mount rules, another identity and
another user's containers are out of reach; a source swapped between check and mount is
refused before anything runs; the Infisical CLI runs as the user and dies with the
launcher; one audit line per run reaches the system log.
"""

import hashlib
import json
import shlex
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from container_security import assert_runtime_properties  # noqa: E402
from roles_testhost import EngineHost, docker  # noqa: E402
from waiting import wait_for  # noqa: E402

IMAGE = "devenv-test/debian:13"
PLAYBOOK = "launcher_role.yml"
STAND_IN = ROOT / "tests" / "support" / "infisical"
SYSLOG = "/var/log/devenv-test-syslog"
# A minimal syslog daemon for the test host (it has none): every datagram on /dev/log,
# one per line, into SYSLOG.
SYSLOGD = f"""
import os, socket
try:
    os.unlink("/dev/log")
except FileNotFoundError:
    pass
server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
server.bind("/dev/log")
os.chmod("/dev/log", 0o666)
with open("{SYSLOG}", "ab", buffering=0) as out:
    while True:
        out.write(server.recv(65536).rstrip(b"\\0\\n") + b"\\n")
"""
VARS = {
    "devenv_users": ["alice", "bob"],
    "devenv_launcher_image": IMAGE,
    "devenv_launcher_memory": "256m",
    "devenv_launcher_pids_limit": 64,
    "devenv_launcher_max_memory": "512m",
    "devenv_launcher_ssh": "none",
    # The door is the subject here; the network policy has its own tests.
    "devenv_launcher_network": "open",
    "devenv_launcher_gitconfig": "",
    "devenv_launcher_credentials": [],
    "devenv_launcher_secrets_provider": "infisical",
    "devenv_launcher_infisical_project_id": "proj-door",
    "devenv_launcher_infisical_binary": "/usr/local/bin/infisical",
    "devenv_launcher_infisical_timeout": 10,
}
PROBE = r"""
import hashlib, json, os, sys, time
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return line.split()[1]
out = {"uid": os.getuid(), "cap_eff": status("CapEff"), "no_new_privs": status("NoNewPrivs"),
       "canary": hashlib.sha256(os.environ.get("DEVENV_CANARY", "").encode()).hexdigest()}
open("/app/" + sys.argv[1] + "/inside.json", "w").write(json.dumps(out))
for _ in range(300):
    if os.path.exists("/app/" + sys.argv[1] + "/stop"):
        break
    time.sleep(0.1)
"""


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    test_host = EngineHost("door")
    try:
        test_host.sh("useradd -m -s /bin/bash alice && useradd -m -s /bin/bash bob")
        test_host.sh("mkdir -p /srv/forbidden && echo root-only > /srv/forbidden/secret")
        test_host.sh("mkdir -m 0700 /srv/private && echo root-only > /srv/private/secret")
        test_host.copy_in(STAND_IN, "/usr/local/bin/infisical")
        test_host.sh("chmod 0755 /usr/local/bin/infisical")
        test_host.load(IMAGE)
        docker(
            "exec", "--detach", test_host.name, "python3", "-c", SYSLOGD
        )  # fmt: skip
        run = test_host.playbook(PLAYBOOK, VARS, tmp_path_factory.mktemp("door"))
        assert run.rc == 0, run
        yield test_host
    finally:
        test_host.remove()


def steer(host, user, **settings):
    """What the Infisical stand-in does for `user` (it reads it from the user's home)."""
    record = f"/tmp/record-{user}-{uuid.uuid4().hex[:8]}.json"
    data = json.dumps({"seed": "door-seed", "record": record, **settings})
    host.sh(f"printf %s {shlex.quote(data)} > /home/{user}/.devenv-fake-infisical.json")
    host.sh(f"chown {user}: /home/{user}/.devenv-fake-infisical.json")
    return record


def as_user(host, user, command, *, check=False, detach=False, token=True):
    """`command` in the user's interactive bash (where `dev` is defined), with the token
    a user exports for Infisical."""
    prefix = "export INFISICAL_TOKEN=tok-door; " if token else ""
    inner = f"bash -ic {shlex.quote(prefix + command)}"
    args = ["exec"] + (["--detach"] if detach else []) + [host.name]
    args += ["su", "-", user, "-c", inner]
    return docker(*args, check=check, timeout=120)


def inner_docker(host, *args):
    return host.out("docker " + " ".join(shlex.quote(a) for a in args))


def canary():
    return "cnry" + hashlib.sha256(b"door-seed").hexdigest()[:28]


def code_dir(host, user):
    name = uuid.uuid4().hex[:8]
    host.sh(f"mkdir -p /home/{user}/Coding/{name} && chown -R {user}: /home/{user}/Coding")
    return name


def test_dev_works_through_the_door_with_every_runtime_property(host):
    record = steer(host, "alice")
    run = code_dir(host, "alice")
    started = as_user(host, "alice", f"dev -- python3 -c {shlex.quote(PROBE)} {run}", detach=True)
    assert started.returncode == 0
    inside = f"/home/alice/Coding/{run}/inside.json"
    assert wait_for(lambda: host.exists(inside), 60), host.out(f"cat {SYSLOG}")
    (name,) = inner_docker(
        host, "ps", "--format", "{{.Names}}", "--filter", "label=io.kuatecno.devenv.uid"
    ).split()
    info = json.loads(inner_docker(host, "inspect", name))[0]
    assert_runtime_properties(info, memory=256 * 1024**2)
    uid = int(host.out("id -u alice"))
    assert info["Config"]["User"] == f"{uid}:{uid}"
    assert info["Config"]["Labels"]["io.kuatecno.devenv.uid"] == str(uid)
    assert canary() not in json.dumps(info)  # the secret is in no configuration
    host.sh(f"touch /home/alice/Coding/{run}/stop")
    assert wait_for(lambda: not inner_docker(host, "ps", "-q").strip(), 30)
    probe = json.loads(host.read(inside))
    assert probe == {
        "uid": uid,
        "cap_eff": "0000000000000000",
        "no_new_privs": "1",
        "canary": hashlib.sha256(canary().encode()).hexdigest(),
    }
    # The Infisical CLI ran as alice, with her token and who she is, nothing else of her
    # environment (sudo reset it; the launcher passed only these).
    call = json.loads(host.read(record))
    assert call["uid"] == uid and call["token_in_env"] and not call["token_on_cmdline"]
    # (LC_CTYPE is the stand-in's own Python coercing the C locale, PEP 538.)
    names = set(call["env_names"]) - {"LC_CTYPE"}
    assert names == {"HOME", "LOGNAME", "PATH", "USER", "INFISICAL_TOKEN"}
    # One audit line for the run, in the system log; no secret value in it.
    lines = [line for line in host.read(SYSLOG).splitlines() if name in line]
    assert len(lines) == 1, lines
    assert 'run user="alice"' in lines[0] and 'via="sudo"' in lines[0] and "exit=0" in lines[0]
    assert 'secrets="DEVENV_CANARY,DEVENV_PLAIN"' in lines[0] and canary() not in lines[0]
    assert 'image_id="sha256:' in lines[0]


def test_a_user_cannot_open_the_engine_socket(host):
    probe = "import socket; socket.socket(socket.AF_UNIX).connect('/var/run/docker.sock')"
    done = as_user(host, "alice", f"python3 -c {shlex.quote(probe)}")
    assert done.returncode != 0 and "PermissionError" in done.stderr
    done = as_user(host, "alice", "docker ps")
    assert done.returncode != 0 and "permission denied" in done.stderr.lower()


@pytest.mark.parametrize(
    ("user_file", "flags", "fragment"),
    [
        ({}, "--memory 1g", "above the administrator's maximum"),
        ({"mounts": [{"source": "/etc", "target": "/x"}]}, "", "system directory"),
        ({"mounts": [{"source": "/srv/private", "target": "/x"}]}, "", "is not yours to open"),
        (
            {"mounts": [{"source": "/srv/forbidden", "target": "/x", "read_only": False}]},
            "",
            "is not yours to write",
        ),
        ({"user": "0:0"}, "", "only be set by the administrator in /etc/devenv/config.json"),
        ({"run_as_root": True}, "", "only be set by the administrator"),
        ({"user": "bob"}, "", "only be set by the administrator"),
    ],
)
def test_what_a_user_cannot_reach_is_refused_before_anything_starts(
    host, user_file, flags, fragment
):
    steer(host, "alice")
    host.sh("mkdir -p /home/alice/.config/devenv")
    host.sh(
        f"printf %s {shlex.quote(json.dumps(user_file))} > /home/alice/.config/devenv/config.json"
    )
    host.sh("chown -R alice: /home/alice/.config")
    try:
        done = as_user(host, "alice", f"dev {flags} -- true")
    finally:
        host.sh("rm -f /home/alice/.config/devenv/config.json")
    assert done.returncode == 2, done.stderr
    assert fragment in done.stderr and "Nothing was started" in done.stderr
    assert not inner_docker(host, "ps", "-aq").strip()


def test_a_source_swapped_between_check_and_mount_is_refused(host):
    # The secrets fetch takes 3 s: long enough to swap the code directory for a link to a
    # directory alice may not write, after the launcher checked it and before the mount.
    steer(host, "alice", mode="slow")
    run = code_dir(host, "alice")
    out = f"/tmp/swap-{run}"
    command = f"dev -- sh -c 'echo RAN; touch /app/ran' >{out}.out 2>{out}.err; echo $? >{out}.rc"
    assert as_user(host, "alice", command, detach=True).returncode == 0
    assert wait_for(lambda: running(host, "/usr/local/bin/infisical"), 20)
    host.sh("mv /home/alice/Coding /home/alice/Coding.real")
    host.sh("ln -s /srv/forbidden /home/alice/Coding")
    try:
        assert wait_for(lambda: host.exists(f"{out}.rc"), 60)
        assert host.read(f"{out}.rc").strip() == "125"
        assert "changed between its check and the engine's mount" in host.read(f"{out}.err")
        assert "RAN" not in host.read(f"{out}.out")
        assert not host.exists("/srv/forbidden/ran")
        assert wait_for(lambda: not inner_docker(host, "ps", "-aq").strip(), 30)
    finally:
        host.sh("rm /home/alice/Coding && mv /home/alice/Coding.real /home/alice/Coding")


def test_users_see_and_stop_only_their_own_containers(host):
    steer(host, "alice")
    as_user(host, "alice", "dev --no-secrets -- sleep 120", detach=True)
    listed = wait_for(lambda: as_user(host, "alice", "devenv ps").stdout.split()[3:], 30)
    name = listed[0]
    assert name.startswith("devenv-alice-")
    bob = as_user(host, "bob", "devenv ps")
    assert bob.returncode == 0 and name not in bob.stdout
    refused = as_user(host, "bob", f"devenv stop {name}")
    assert refused.returncode == 125 and "no running devenv container of yours" in refused.stderr
    assert name in inner_docker(host, "ps", "--format", "{{.Names}}")
    stopped = as_user(host, "alice", f"devenv stop {name}")
    assert stopped.returncode == 0, stopped.stderr
    assert wait_for(lambda: not inner_docker(host, "ps", "-aq").strip(), 30)


PS = r"""
import json, os
rows = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        args = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode().strip()
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        continue
    rows.append([int(pid), uid, args])
print(json.dumps(rows))
"""


def processes(host):
    """(pid, uid, command line) of every process of the test host (it has no ps)."""
    return json.loads(host.out(f"python3 -c {shlex.quote(PS)}"))


def running(host, needle):
    return [p for p in processes(host) if needle in p[2]]


def _launcher_pid(host):
    for pid, uid, args in processes(host):
        if uid == 0 and "/usr/local/bin/devenv run" in args and not args.startswith("sudo"):
            return pid
    return None


@pytest.mark.parametrize("signal_name", ["TERM", "HUP", "KILL"])
def test_a_launcher_ended_while_fetching_ends_the_infisical_cli(host, signal_name):
    record = steer(host, "alice", mode="hang")
    as_user(host, "alice", "dev -- true", detach=True)
    assert wait_for(lambda: host.exists(record), 20)
    pid = wait_for(lambda: _launcher_pid(host), 20)
    assert pid
    assert running(host, "/usr/local/bin/infisical")
    host.sh(f"kill -{signal_name} {pid}")
    # The CLI and the child it forked (which holds its output) are gone, nothing started.
    assert wait_for(lambda: not running(host, "/usr/local/bin/infisical"), 15), processes(host)
    assert not inner_docker(host, "ps", "-aq").strip()


def test_interactive_dev_through_sudo_keeps_the_terminal(host):
    done = docker(
        "exec", "-t", host.name, "su", "-", "alice", "-c",
        "bash -ic \"dev --no-secrets -- sh -c 'tty; exit 5'\"",
        check=False,
    )  # fmt: skip
    assert done.returncode == 5, done.stdout + done.stderr
    assert "/dev/pts/" in done.stdout
