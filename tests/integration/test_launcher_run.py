"""The `devenv` launcher against the real engine, run as an unprivileged user.

Installed with tests/support/install_launcher.py into a private prefix, configured through
DEVENV_CONFIG, with secrets from the Infisical stand-in. Every container carries
io.kuatecno.devenv.test=1 and a per-run label, and is removed in `finally`.
"""

import hashlib
import json
import os
import pty
import pwd
import select
import shutil
import signal
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
from container_security import assert_runtime_properties  # noqa: E402
from traces import ENGINE_STATE, files_containing  # noqa: E402
from traces import command_lines_containing as cmdlines_containing  # noqa: E402
from waiting import wait_for  # noqa: E402

IMAGE = "devenv-test/debian:13"
# One login per session: concurrent runs of the suite on one machine must not share
# (and delete) each other's test user.
LOGIN = f"devlt{os.getpid() % 100000}"
SEED = "integration-seed"
CANARY = "cnry" + hashlib.sha256(SEED.encode()).hexdigest()[:28]
RUN_LABEL = "io.kuatecno.devenv.testrun"


def docker(*args, check=True):
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=60
    ).stdout


@pytest.fixture(scope="module")
def user():
    if os.geteuid() != 0:
        pytest.skip("creates a test user: needs root (as in CI)")
    created = False
    try:
        entry = pwd.getpwnam(LOGIN)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", LOGIN], check=True)
        created = True
        entry = pwd.getpwnam(LOGIN)
    # Access to the engine, as a devenv user on a host has (the docker group).
    subprocess.run(["usermod", "-aG", "docker", LOGIN], check=True)
    home = Path(entry.pw_dir)
    (home / ".claude").mkdir(exist_ok=True)
    (home / ".claude" / "session.json").write_text("{}")
    for path in (home / ".claude", home / ".claude" / "session.json"):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    yield entry
    if created:
        subprocess.run(["userdel", "--remove", LOGIN], check=False, capture_output=True)


@pytest.fixture(scope="module")
def prefix(user):
    """The launcher and the stand-in in a directory the test user can read."""
    path = Path(tempfile.mkdtemp(prefix="devenv-launcher-"))
    path.chmod(0o755)
    install_launcher.install(path, "/usr/bin/python3")
    shutil.copy(ROOT / "tests" / "support" / "infisical", path / "infisical")
    # The stand-in, run as the test user, records its invocation here.
    (path / "state").mkdir()
    os.chown(path / "state", user.pw_uid, user.pw_gid)
    (path / "infisical").chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def run_id():
    run = uuid.uuid4().hex[:12]
    yield run
    ids = docker("ps", "-aq", "--filter", f"label={RUN_LABEL}={run}", check=False).split()
    if ids:
        docker("rm", "-f", *ids, check=False)


@pytest.fixture
def code_dir(user, run_id):
    path = Path(user.pw_dir) / "Coding" / run_id
    path.mkdir(parents=True)
    for p in (path.parent, path):
        os.chown(p, user.pw_uid, user.pw_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def launcher(user, prefix, run_id, code_dir, tmp_path):
    """launcher(args, **settings) -> Popen of `devenv run ARGS` as the test user."""
    config = prefix / f"config-{run_id}.json"
    record = prefix / "state" / f"record-{run_id}.json"

    def start(args, *, env=None, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, **settings):
        data = {
            "image": IMAGE,
            "memory": "256m",
            "cpus": 1,
            "pids_limit": 64,
            "ssh": "none",
            # Docker's default bridge, as before the network policy (its own tests are in
            # test_network_policy.py).
            "network": "open",
            "code_dir": str(code_dir.parent),
            "gitconfig": None,
            # The host's own ~/.claude, read-only beside the agent's own state.
            "credentials": [{"source": "~/.claude", "target": ".host-claude", "required": True}],
            "labels": {"io.kuatecno.devenv.test": "1", RUN_LABEL: run_id},
            "secrets": {"project_id": "proj", "binary": str(prefix / "infisical"), "timeout": 3},
        }
        data.update(settings)
        config.write_text(json.dumps(data))
        config.chmod(0o644)
        environ = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": user.pw_dir,
            "USER": LOGIN,
            "LOGNAME": LOGIN,
            "DEVENV_CONFIG": str(config),
            "INFISICAL_TOKEN": "tok-not-a-secret",
            "DEVENV_FAKE_INFISICAL_SEED": SEED,
            "DEVENV_FAKE_INFISICAL_RECORD": str(record),
        }
        environ.update(env or {})
        argv = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"]
        return subprocess.Popen(
            [*argv, "--", str(prefix / "bin" / "devenv"), "run", *args],
            env=environ,
            cwd=code_dir,
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
        )

    start.record = record
    yield start
    for path in (config, record):
        path.unlink(missing_ok=True)


def containers(run_id):
    return docker("ps", "-aq", "--filter", f"label={RUN_LABEL}={run_id}").split()


# ---------------------------------------------------------------- a real session

INSIDE = r"""
import errno, hashlib, json, os, pwd, time
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return line.split()[1]
def erofs(path):
    try:
        open(path, "w").close()
    except OSError as exc:
        return exc.errno == errno.EROFS
    return False
def cg(path):
    return open("/sys/fs/cgroup/" + path).read().strip()
open("/app/RUNDIR/made-inside", "w").write("x")
os.makedirs(os.environ["HOME"] + "/.cache/agent", exist_ok=True)
open("/tmp/scratch", "w").write("x")
out = {
    "uid": os.getuid(), "gid": os.getgid(),
    "no_new_privs": status("NoNewPrivs"), "cap_eff": status("CapEff"),
    "pids_max": cg("pids/pids.max"),
    "mem": cg("memory/memory.limit_in_bytes"),
    "memsw": cg("memory/memory.memsw.limit_in_bytes"),
    "cred_erofs": erofs(os.environ["HOME"] + "/.host-claude/session.json"),
    "root_erofs": erofs("/usr/local/planted"),
    "passwd_erofs": erofs("/etc/passwd"),
    "me": list(pwd.getpwuid(os.getuid()))[::5],
    "state_written": open(os.environ["CLAUDE_CONFIG_DIR"] + "/from-inside", "w").write("s"),
    "canary_ok": hashlib.sha256(os.environ.get("DEVENV_CANARY", "").encode()).hexdigest()
    == "CANARY_SHA",
    "home": os.environ["HOME"], "cwd": os.getcwd(),
    "docker_sock": os.path.exists("/var/run/docker.sock") or os.path.exists("/run/docker.sock"),
}
open("/app/RUNDIR/inside.json", "w").write(json.dumps(out))
for _ in range(300):
    if os.path.exists("/app/RUNDIR/stop"):
        break
    time.sleep(0.1)
"""


def test_session_properties_and_secrets(launcher, run_id, code_dir, user):
    # The command line carries only a hash of the canary, never the value.
    digest = hashlib.sha256(CANARY.encode()).hexdigest()
    script = INSIDE.replace("RUNDIR", run_id).replace("CANARY_SHA", digest)
    started = time.time() - 1
    proc = launcher(["--", "python3", "-c", script])
    try:
        assert wait_for((code_dir / "inside.json").exists, timeout=20), proc.stderr.read()
        (name,) = containers(run_id)
        info = json.loads(docker("inspect", name))[0]
        hc, cfg = info["HostConfig"], info["Config"]
        assert_runtime_properties(info, memory=256 * 1024**2)
        assert hc["NanoCpus"] == 1_000_000_000
        assert hc["PidsLimit"] == 64
        assert hc["LogConfig"]["Type"] == "none"
        assert cfg["User"] == f"{user.pw_uid}:{user.pw_gid}"
        assert cfg["Labels"]["io.kuatecno.devenv.test"] == "1"
        assert info["Name"].startswith(f"/devenv-{LOGIN}-")
        rw = {m["Destination"]: m["RW"] for m in info["Mounts"]}
        assert rw == {
            "/app": True,
            "/home/dev/.claude": True,  # the agents' own state, kept by devenv
            "/home/dev/.gemini": True,
            "/home/dev/.host-claude": False,
            "/etc/passwd": False,
            "/etc/group": False,
        }
        state = Path(user.pw_dir) / ".local/share/devenv/state/user"
        sources = {m["Destination"]: m["Source"] for m in info["Mounts"]}
        assert sources["/home/dev/.claude"] == str(state / "claude")
        # /run/devenv: the private tmpfs of the start step that received the secrets.
        assert set(hc["Tmpfs"]) == {"/tmp", "/home/dev", "/run/devenv"}
        # The secret is in the command's env, and on no command line on the host, in no
        # part of the container's configuration, and in none of the engine's files.
        assert cmdlines_containing(CANARY) == []
        assert CANARY not in json.dumps(info)
        assert files_containing([CANARY], ENGINE_STATE, started) == []
        (code_dir / "stop").write_text("")
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    inside = json.loads((code_dir / "inside.json").read_text())
    assert inside == {
        "uid": user.pw_uid,
        "gid": user.pw_gid,
        "no_new_privs": "1",
        "cap_eff": "0000000000000000",
        "pids_max": "64",
        "mem": str(256 * 1024**2),
        "memsw": str(256 * 1024**2),
        "cred_erofs": True,
        "root_erofs": True,
        "passwd_erofs": True,
        "me": [LOGIN, "/home/dev"],  # the user exists in the container
        "state_written": 1,
        "canary_ok": True,
        "home": "/home/dev",
        "cwd": f"/app/{run_id}",
        "docker_sock": False,
    }
    made = (code_dir / "made-inside").stat()
    assert (made.st_uid, made.st_gid) == (user.pw_uid, user.pw_gid)
    kept = (Path(user.pw_dir) / ".local/share/devenv/state/user/claude/from-inside").stat()
    assert (kept.st_uid, kept.st_gid) == (user.pw_uid, user.pw_gid)
    assert wait_for(lambda: containers(run_id) == [], timeout=20)
    record = json.loads(launcher.record.read_text())
    assert record["token_on_cmdline"] is False and record["token_in_env"] is True
    # Nothing with the secret was left behind where files usually linger, nor in the
    # engine's and containerd's state after the container is gone.
    assert files_containing([CANARY], ["/tmp", "/var/tmp", user.pw_dir], started) == []
    assert files_containing([CANARY], ENGINE_STATE, started) == []
    assert CANARY not in err


def test_exit_status_stdin_and_dry_run(launcher, run_id):
    proc = launcher(["--", "sh", "-c", "read line; echo got:$line; exit 7"], stdin=subprocess.PIPE)
    out, _ = proc.communicate("hello\n", timeout=30)
    assert proc.returncode == 7 and out.strip() == "got:hello"
    proc = launcher(["--dry-run", "--", "true"])
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert CANARY not in out and "in the start payload: DEVENV_CANARY" in out
    assert containers(run_id) == []


def test_default_command_is_a_shell_in_app(launcher, run_id):
    proc = launcher(["--no-secrets"], stdin=subprocess.PIPE)
    out, err = proc.communicate("echo shell:$0:$PWD:$HOME; exit 3\n", timeout=30)
    assert proc.returncode == 3, err
    assert out.strip() == f"shell:bash:/app/{run_id}:/home/dev"


def read_all(fd):
    out = b""
    while select.select([fd], [], [], 0.5)[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the terminal's other end is closed
            break
        if not chunk:
            break
        out += chunk
    return out


@pytest.mark.parametrize(
    ("stdin_tty", "stdout_tty", "expected"),
    [(False, False, b"not a tty"), (True, False, b"not a tty"), (True, True, b"/dev/pts/")],
)
def test_tty_only_when_on_a_terminal(launcher, run_id, stdin_tty, stdout_tty, expected):
    main, secondary = pty.openpty()
    try:
        proc = launcher(
            ["--no-secrets", "--", "sh", "-c", "tty; exit 5"],
            stdin=secondary if stdin_tty else subprocess.DEVNULL,
            stdout=secondary if stdout_tty else subprocess.PIPE,
        )
        out = b"" if stdout_tty else proc.stdout.read().encode()
        proc.wait(timeout=30)
    finally:
        os.close(secondary)
    if stdout_tty:
        out = read_all(main)
    os.close(main)
    assert proc.returncode == 5
    assert expected in out


AGENT_SERVER = """
import socket, sys
server = socket.socket(socket.AF_UNIX)
server.bind(sys.argv[1])
server.listen(1)
print("ready", flush=True)
conn, _ = server.accept()
conn.sendall(b"agent-says-hi")
conn.close()
"""

SSH_PROBE = r"""
import errno, os, socket
sock = os.environ.get("SSH_AUTH_SOCK")
if sock:
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    print("agent:" + s.recv(100).decode())
try:
    open(os.environ["HOME"] + "/.ssh/planted", "w")
except OSError as exc:
    print("keys:" + errno.errorcode[exc.errno])
"""


def test_ssh_agent_forwarded_read_only(launcher, user, tmp_path):
    agent_dir = Path(tempfile.mkdtemp(prefix="devenv-agent-"))
    os.chown(agent_dir, user.pw_uid, user.pw_gid)
    sock = agent_dir / "agent.sock"
    server = subprocess.Popen(
        [
            "setpriv",
            f"--reuid={user.pw_uid}",
            f"--regid={user.pw_gid}",
            "--init-groups",
            "--",
            "/usr/bin/python3",
            "-c",
            AGENT_SERVER,
            str(sock),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout.readline().strip() == "ready"
        proc = launcher(
            ["--no-secrets", "--", "python3", "-c", SSH_PROBE],
            env={"SSH_AUTH_SOCK": str(sock)},
            ssh="auto",
        )
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert out.split() == ["agent:agent-says-hi", "keys:ENOENT"]
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(agent_dir, ignore_errors=True)


def test_ssh_keys_mounted_read_only(launcher, user):
    ssh_dir = Path(user.pw_dir) / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "id_test").write_text("not a real key\n")
    for path in (ssh_dir, ssh_dir / "id_test"):
        os.chown(path, user.pw_uid, user.pw_gid)
    try:
        # auto without an agent: the keys stay on the host.
        proc = launcher(["--no-secrets", "--", "python3", "-c", SSH_PROBE], ssh="auto")
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert out.split() == ["keys:ENOENT"]
        # Only when asked for, read-only.
        proc = launcher(["--no-secrets", "--", "python3", "-c", SSH_PROBE], ssh="keys")
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert out.split() == ["keys:EROFS"]
    finally:
        shutil.rmtree(ssh_dir, ignore_errors=True)


# ---------------------------------------------------------------- faults before the start


def test_engine_unreachable_fetches_nothing(launcher, run_id, prefix):
    dead = prefix / f"dead-{run_id}.sock"
    proc = launcher(["--", "true"], env={"DOCKER_HOST": f"unix://{dead}"})
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 125
    assert "not reachable" in err and "no secrets were fetched" in err
    assert not launcher.record.exists()


def test_missing_image_is_never_pulled(launcher, run_id):
    proc = launcher(["--image", "devenv-test/not-there:0", "--", "true"])
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 125
    assert "ansible-playbook playbooks/site.yml --tags image" in err
    assert not launcher.record.exists()
    assert docker("images", "-q", "devenv-test/not-there:0") == ""


@pytest.mark.parametrize(
    ("mode", "fragment"),
    [
        ("fail", "Infisical failed (exit 1)"),
        ("hang", "did not answer within 3 s"),
        ("malformed", "not valid JSON"),
        ("bad-name", "invalid variable name"),
        ("nul", "NUL"),
        ("not-logged-in", "logged in"),
    ],
)
def test_secret_faults_start_nothing(launcher, run_id, mode, fragment):
    proc = launcher(["--", "true"], env={"DEVENV_FAKE_INFISICAL_MODE": mode})
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 125
    assert fragment in err and "Nothing was started" in err
    assert CANARY not in out + err
    assert containers(run_id) == []


def stand_in_processes():
    pids = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if (
                    f"DEVENV_FAKE_INFISICAL_SEED={SEED}".encode()
                    in Path(f"/proc/{pid}/environ").read_bytes()
                    and b"infisical" in Path(f"/proc/{pid}/cmdline").read_bytes()
                ):
                    pids.append(pid)
            except OSError:
                pass
    return pids


def test_ctrl_c_during_fetch(launcher, run_id):
    proc = launcher(["--", "true"], env={"DEVENV_FAKE_INFISICAL_MODE": "hang"})
    assert wait_for(launcher.record.exists, timeout=10)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert "interrupted" in err
    left = wait_for(lambda: stand_in_processes() == [], timeout=5) or [
        Path(f"/proc/{pid}/cmdline").read_bytes() for pid in stand_in_processes()
    ]
    assert left is True
    assert containers(run_id) == []


# ---------------------------------------------------------------- faults during a run


def test_sigterm_of_the_launcher_ends_the_container(launcher, run_id, code_dir):
    command = "trap 'exit 143' TERM; touch /app/RUN/up; while :; do sleep 0.1; done"
    proc = launcher(["--no-secrets", "--", "sh", "-c", command.replace("RUN", run_id)])
    assert wait_for((code_dir / "up").exists, timeout=20), proc.stderr.read()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert wait_for(lambda: containers(run_id) == [], timeout=20)


def test_sigkill_of_the_launcher_leaves_no_container(launcher, run_id, code_dir):
    command = "touch /app/RUN/up; sleep 2".replace("RUN", run_id)
    proc = launcher(["--no-secrets", "--", "sh", "-c", command])
    assert wait_for((code_dir / "up").exists, timeout=20), proc.stderr.read()
    proc.kill()
    proc.wait(timeout=10)
    assert containers(run_id) != []  # still running its command...
    assert wait_for(lambda: containers(run_id) == [], timeout=30)  # ...then removed
    proc.communicate(timeout=10)


def test_memory_hog_is_killed_and_reported(launcher, run_id):
    hog = "b = []\nwhile True: b.append(bytearray(1 << 20))"
    proc = launcher(["--no-secrets", "--memory", "32m", "--", "python3", "-c", hog])
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 137
    # Confirmed by the engine's oom event when it sends one; else the likely cause.
    assert "memory limit (32m)" in err
    assert wait_for(lambda: containers(run_id) == [], timeout=20)


FORK_BOMB = r"""
import os, signal
children = []
try:
    while len(children) < 1000:
        pid = os.fork()
        if pid == 0:
            signal.pause()
            os._exit(0)
        children.append(pid)
except BlockingIOError:
    pass
print(len(children))
for pid in children:
    os.kill(pid, signal.SIGKILL)
"""


def test_fork_bomb_is_contained(launcher, run_id):
    proc = launcher(["--no-secrets", "--pids-limit", "20", "--", "python3", "-c", FORK_BOMB])
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    # init, python and its children share 20 process slots; the host is unaffected.
    assert 1 <= int(out.strip()) < 20
    assert subprocess.run(["true"], check=False).returncode == 0
