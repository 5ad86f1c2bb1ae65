"""The secure_run module against the real engine (base image devenv-test/debian:13).

Each test runs the module the way Ansible does on a host - the module file with a JSON
arguments file, or ansible-playbook for what users see - and checks the outcome on the
engine with an independent `docker inspect`, and from inside the container.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from container_security import PROBE_SCRIPT, assert_inside, assert_runtime_properties  # noqa: E402
from traces import ENGINE_STATE, files_containing  # noqa: E402
from waiting import wait_for  # noqa: E402

MODULE = ROOT / "collections/devenv/plugins/modules/secure_run.py"
STAND_IN = ROOT / "tests/support/infisical"
IMAGE = "devenv-test/debian:13"
TEST_LABEL = "io.kuatecno.devenv.test"
RUN_LABEL = "io.kuatecno.devenv.testrun"
UID = GID = 1000

# Reports, from inside the container, what the security notes ask to be checked there.
PROBE = r"""
import errno, json, os, sys, time
def read(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError as exc:
        return "error " + errno.errorcode.get(exc.errno, str(exc.errno))
def write(path):
    try:
        with open(path, "w") as handle:
            handle.write("x")
        return "ok"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
status = dict(
    line.split(":", 1) for line in read("/proc/self/status").splitlines() if ":" in line
)
with open("/app/created-inside", "w") as handle:
    handle.write("x")
home = os.environ["HOME"]
print(json.dumps({
    "NoNewPrivs": status["NoNewPrivs"].strip(),
    "CapEff": status["CapEff"].strip(),
    "CapPrm": status["CapPrm"].strip(),
    "Seccomp": status["Seccomp"].strip(),
    "uid": os.getuid(),
    "gid": os.getgid(),
    "home": home,
    "pids_max": read("/sys/fs/cgroup/pids/pids.max"),
    "memory": read("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
    "memsw": read("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"),
    "cfs_quota": read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
    "cfs_period": read("/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
    "write_ro_mount": write("/data/new-file"),
    "write_credential": write(home + "/.claude.json"),
    "me": __import__("pwd").getpwuid(os.getuid()).pw_name,
    "write_rootfs": write("/etc/devenv-probe"),
    "write_home": write(home + "/probe"),
    "write_tmp": write("/tmp/probe"),
}), flush=True)
time.sleep(float(sys.argv[1]))
"""


def docker(*args, check=True):
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=60, check=check
    ).stdout


def containers(run_id, *, all_states=True):
    flags = ["-a"] if all_states else []
    return docker("ps", *flags, "-q", "--filter", f"label={RUN_LABEL}={run_id}").split()


@pytest.fixture
def run_id():
    """A label value of this test's own; its containers are removed afterwards."""
    value = uuid.uuid4().hex[:12]
    yield value
    ids = containers(value)
    if ids:
        docker("rm", "-f", *ids, check=False)


@pytest.fixture
def code_dir(tmp_path):
    path = tmp_path / "code"
    path.mkdir()
    os.chown(path, UID, GID)
    return path


def base_args(run_id, code_dir, **extra):
    args = {
        "image": IMAGE,
        "code_dir": str(code_dir),
        "user": f"{UID}:{GID}",
        "labels": {TEST_LABEL: "1", RUN_LABEL: run_id},
        "timeout": 60,
        # Docker's default bridge; the policy itself is tested in test_network_policy.py.
        "network": "open",
    }
    args.update(extra)
    return args


def module_command(tmp_path, args, *, check_mode=False):
    """The module run as Ansible runs it on a host: the file and a JSON arguments file."""
    payload = dict(args)
    if check_mode:
        payload["_ansible_check_mode"] = True
    path = tmp_path / f"args-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": payload}))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "collections"))
    return [sys.executable, str(MODULE), str(path)], env


def run_module(tmp_path, args, *, check_mode=False, timeout=120):
    argv, env = module_command(tmp_path, args, check_mode=check_mode)
    proc = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"module output is not JSON: {proc.stdout!r} {proc.stderr!r}")


def playbook_command(tmp_path, task_args, *options, env=None):
    playbook = [
        {
            "name": "Secure run test",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Run the command in a devenv container",
                    "kuatecno.devenv.secure_run": task_args,
                    "register": "result",
                },
                {"name": "Show the result", "ansible.builtin.debug": {"var": "result"}},
            ],
        }
    ]
    path = tmp_path / "playbook.yml"
    path.write_text(yaml.safe_dump(playbook))
    run_env = dict(env or os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    argv = [str(Path(sys.executable).with_name("ansible-playbook")), *options, str(path)]
    return argv, run_env


def run_playbook(tmp_path, task_args, *options, env=None):
    argv, run_env = playbook_command(tmp_path, task_args, *options, env=env)
    return subprocess.run(
        argv, cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=180, check=False
    )


def command_lines_holding(*needles):
    """Processes whose command line holds one of the needles."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if any(needle.encode() in cmdline for needle in needles):
            found.append(entry.name)
    return found


def files_holding(roots, *needles):
    """Regular files under the roots whose content holds one of the needles."""
    found = []
    for root in roots:
        for directory, _dirs, names in os.walk(root):
            for name in names:
                path = os.path.join(directory, name)
                try:
                    if os.path.islink(path) or os.path.getsize(path) > 16 * 1024 * 1024:
                        continue
                    data = Path(path).read_bytes()
                except OSError:
                    continue  # removed meanwhile, or not a regular file
                if any(needle.encode() in data for needle in needles):
                    found.append(path)
    return found


def ansible_temp_dirs(tmp_path):
    """Where Ansible and the module write while a task runs on localhost (and this
    test's own directory)."""
    return [
        Path.home() / ".ansible/tmp",
        *Path("/tmp").glob("ansible*"),
        *Path("/tmp").glob("devenv-secure-run-*"),
        tmp_path,
    ]


def inspect(container_id):
    return json.loads(docker("inspect", container_id))[0]


def test_runtime_properties_on_the_running_container_and_inside(tmp_path, run_id, code_dir):
    data = tmp_path / "data"
    data.mkdir()
    credential = tmp_path / "claude.json"
    credential.write_text("{}")
    memory = 256 * 1024 * 1024
    args = base_args(
        run_id,
        code_dir,
        command=["python3", "-c", PROBE, "4"],
        memory="256m",
        cpus=1.5,
        pids_limit=64,
        mounts=[{"source": str(data), "target": "/data"}],
        credentials=[{"source": str(credential), "target": ".claude.json", "required": True}],
    )
    argv, env = module_command(tmp_path, args)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ids = wait_for(lambda: containers(run_id, all_states=False), 20, step=0.2)
        assert ids, "the container did not start"
        running = inspect(ids[0])  # independent of the module, while it runs
        assert running["State"]["Running"] is True
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    result = json.loads(out)
    assert result["rc"] == 0, result
    assert result["ran"] is True and result["removed"] is True

    assert_runtime_properties(running, memory=memory)
    assert running["HostConfig"]["NanoCpus"] == 1_500_000_000
    assert running["HostConfig"]["PidsLimit"] == 64
    assert running["Config"]["User"] == f"{UID}:{GID}"
    modes = {m["Destination"]: m["RW"] for m in running["Mounts"]}
    assert modes == {
        "/app": True,
        "/data": False,
        "/home/dev/.claude.json": False,
        "/etc/passwd": False,  # the user's identity, generated for this run
        "/etc/group": False,
    }
    # The agents' state of a module run is a private tmpfs (ephemeral by default).
    tmpfs = running["HostConfig"]["Tmpfs"]
    assert tmpfs["/home/dev/.claude"].endswith(f"uid={UID},gid={GID},mode=0700")
    assert "/home/dev/.gemini" in tmpfs

    # The module's read-back is the engine's own view of the same container.
    read_back = result["container"]
    assert read_back["id"] == running["Id"]
    for key in ("CapDrop", "SecurityOpt", "Memory", "MemorySwap", "NanoCpus", "PidsLimit",
                "ReadonlyRootfs", "AutoRemove", "Privileged", "Mounts", "Tmpfs"):  # fmt: skip
        assert read_back["host_config"][key] == running["HostConfig"][key], key
    assert read_back["config"]["User"] == running["Config"]["User"]

    inside = json.loads(result["stdout"])
    assert inside["NoNewPrivs"] == "1"
    assert int(inside["CapEff"], 16) == 0 and int(inside["CapPrm"], 16) == 0
    assert inside["Seccomp"] == "2"  # filter mode: the default profile is on
    assert (inside["uid"], inside["gid"]) == (UID, GID)
    assert inside["pids_max"] == "64"
    assert inside["memory"] == str(memory)
    assert inside["memsw"] == str(memory)
    assert int(inside["cfs_quota"]) == int(inside["cfs_period"]) * 3 // 2
    assert inside["write_ro_mount"] == "EROFS"
    assert inside["write_credential"] == "EROFS"
    # The user exists in the container under its host login (or "dev" without one).
    try:
        login = __import__("pwd").getpwuid(UID).pw_name
    except KeyError:
        login = "dev"
    assert inside["me"] == login
    assert inside["write_rootfs"] == "EROFS"
    assert inside["write_home"] == "ok" and inside["write_tmp"] == "ok"
    created = code_dir / "created-inside"
    assert (created.stat().st_uid, created.stat().st_gid) == (UID, GID)
    assert not containers(run_id)


def test_under_gvisor_the_module_keeps_every_property(tmp_path, run_id, code_dir):
    """The module's isolation option: the same run on gVisor's kernel, asserted from
    outside and inside with the checks devenv doctor uses."""
    memory = 256 * 1024 * 1024
    args = base_args(
        run_id,
        code_dir,
        command=["/bin/sh", "-c", PROBE_SCRIPT + "sleep 3\n", "probe"],
        memory="256m",
        pids_limit=64,
        isolation="gvisor",
    )
    argv, env = module_command(tmp_path, args)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ids = wait_for(lambda: containers(run_id, all_states=False), 30, step=0.2)
        assert ids, "the container did not start"
        running = inspect(ids[0])
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    result = json.loads(out)
    assert result["rc"] == 0, result
    assert_runtime_properties(running, memory=memory, runtime="runsc")
    assert running["HostConfig"]["Ulimits"] == [{"Name": "nproc", "Hard": 64, "Soft": 64}]
    facts = assert_inside(
        result["stdout"], uid=UID, memory=memory, pids_limit=64, isolation="gvisor"
    )
    assert facts["kernel"] != os.uname().release


# ---------------------------------------------------------------- secrets


def test_infisical_canary_reaches_the_container_and_never_the_output(tmp_path, run_id, code_dir):
    """A canary fetched through the Infisical stand-in reaches the container's environment
    and appears on no command line, in no file and not in Ansible's -vvv output."""
    seed = uuid.uuid4().hex
    canary = "cnry" + hashlib.sha256(seed.encode()).hexdigest()[:28]
    token = "tok-" + uuid.uuid4().hex
    record = tmp_path / "infisical-call.json"
    show = (
        "import hashlib, os, time; v = os.environ['DEVENV_CANARY']; "
        "print(hashlib.sha256(v.encode()).hexdigest()); print(v, flush=True); time.sleep(2)"
    )
    task = base_args(
        run_id,
        code_dir,
        command=["python3", "-c", show],
        infisical={
            "project_id": "proj-1",
            "environment": "dev",
            "binary": str(STAND_IN),
            # From the controller's environment, as from a vault: not in the playbook file.
            "token": "{{ lookup('ansible.builtin.env', 'DEVENV_TEST_MODULE_TOKEN') }}",
        },
    )
    # A token of another identity in the module's environment, in the variable the
    # Infisical CLI reads first: the task's token must still be the one used.
    other = "tok-env-" + uuid.uuid4().hex
    env = dict(
        os.environ,
        DEVENV_TEST_MODULE_TOKEN=token,
        DEVENV_FAKE_INFISICAL_SEED=seed,
        DEVENV_FAKE_INFISICAL_RECORD=str(record),
        DEVENV_FAKE_INFISICAL_TOKEN_SHA256=hashlib.sha256(token.encode()).hexdigest(),
        INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN=other,
        # Module arguments (the token) reach the module on stdin, not in a file on disk.
        ANSIBLE_PIPELINING="true",
    )
    env.pop("INFISICAL_TOKEN", None)
    argv, run_env = playbook_command(tmp_path, task, "-vvv", env=env)
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    started = time.time() - 1
    try:
        (name,) = wait_for(lambda: containers(run_id, all_states=False), 60, step=0.2)
        # While the container runs: no command line and no temporary file holds them,
        # nor the container's configuration, nor the engine's or containerd's files.
        assert not command_lines_holding(canary, token)
        assert not files_holding(ansible_temp_dirs(tmp_path), canary, token)
        assert canary not in docker("inspect", name)
        assert files_containing([canary], ENGINE_STATE, started) == []
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output[-3000:]
    # Reached the container: it printed the value's hash (and the value, masked by Ansible).
    assert hashlib.sha256(canary.encode()).hexdigest() in output
    assert canary not in output
    assert token not in output
    call = json.loads(record.read_text())
    assert call["token_in_env"] is True and call["token_on_cmdline"] is False
    assert call["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert "--format=json" in call["argv"]
    assert not containers(run_id)
    assert not files_holding(ansible_temp_dirs(tmp_path), canary, token)
    assert files_containing([canary], ENGINE_STATE, started) == []


def test_engine_unreachable_is_reported_before_secrets_are_fetched(tmp_path, run_id, code_dir):
    record = tmp_path / "infisical-call.json"
    os.environ["DEVENV_FAKE_INFISICAL_RECORD"] = str(record)
    try:
        result = run_module(
            tmp_path,
            base_args(
                run_id,
                code_dir,
                command=["true"],
                docker_host=f"unix://{tmp_path}/no-engine.sock",
                infisical={"project_id": "proj-1", "binary": str(STAND_IN), "token": "t"},
            ),
        )
    finally:
        del os.environ["DEVENV_FAKE_INFISICAL_RECORD"]
    assert result["failed"] is True and result["ran"] is False
    assert "unreachable" in result["msg"]
    assert not record.exists()  # Infisical was never asked


def test_infisical_failure_starts_nothing(tmp_path, run_id, code_dir, monkeypatch):
    monkeypatch.setenv("DEVENV_FAKE_INFISICAL_MODE", "fail")
    result = run_module(
        tmp_path,
        base_args(
            run_id,
            code_dir,
            command=["true"],
            infisical={"project_id": "proj-1", "binary": str(STAND_IN), "token": "t"},
        ),
    )
    assert result["failed"] is True and result["ran"] is False
    assert "Infisical failed" in result["msg"]
    assert "junk" not in json.dumps(result)
    assert not containers(run_id)


# ---------------------------------------------------------------- faults and outcomes


def test_killed_module_leaves_no_container_once_the_command_ends(tmp_path, run_id, code_dir):
    argv, env = module_command(tmp_path, base_args(run_id, code_dir, command=["sleep", "3"]))
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: containers(run_id, all_states=False), 20, step=0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert containers(run_id), "the command should still be running after the kill"
    assert wait_for(lambda: not containers(run_id), 20, step=0.2), "container left behind"


def test_terminated_module_stops_and_removes_its_container(tmp_path, run_id, code_dir):
    argv, env = module_command(tmp_path, base_args(run_id, code_dir, command=["sleep", "60"]))
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: containers(run_id, all_states=False), 20, step=0.2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    result = json.loads(out)
    assert result["failed"] is True and "interrupted by signal" in result["msg"]
    assert wait_for(lambda: not containers(run_id), 20, step=0.2), "container left behind"


def test_watchdog_removes_a_created_container_when_the_module_dies_before_start(run_id):
    from ansible_collections.kuatecno.devenv.plugins.module_utils import _engine

    name = f"devenv-test-{run_id}"
    watchdog = _engine._start_watchdog(None, name)
    docker("create", "--label", f"{TEST_LABEL}=1", "--label", f"{RUN_LABEL}={run_id}",
           "--name", name, IMAGE, "true")  # fmt: skip
    assert containers(run_id)
    watchdog.stdin.close()  # what the death of the module does to the pipe: EOF, no "done"
    watchdog.wait(30)
    assert not containers(run_id), "the never-started container was left behind"


def test_missing_image_fails_clearly_without_pulling(tmp_path, run_id, code_dir):
    image = f"devenv-test/absent-{run_id}:1"
    since = docker("info", "--format", "{{.SystemTime}}").strip()
    result = run_module(tmp_path, base_args(run_id, code_dir, image=image, command=["true"]))
    until = docker("info", "--format", "{{.SystemTime}}").strip()
    assert result["failed"] is True and result["ran"] is False
    assert "never pulled" in result["msg"] and image in result["msg"]
    pulls = docker(
        "events", "--since", since, "--until", until, "--filter", "type=image",
        "--filter", "event=pull", "--format", "{{.Actor.ID}}",
    )  # fmt: skip
    assert image not in pulls
    assert not docker("images", "-q", image).strip()
    assert not containers(run_id)


@pytest.mark.parametrize(
    ("expected_rc", "failed"), [([0], True), ([0, 3], False)], ids=["unexpected", "expected"]
)
def test_exit_status_against_expected_rc(tmp_path, run_id, code_dir, expected_rc, failed):
    args = base_args(
        run_id, code_dir, command=["sh", "-c", "echo out; echo err >&2; exit 3"],
        expected_rc=expected_rc,
    )  # fmt: skip
    result = run_module(tmp_path, args)
    assert result["rc"] == 3 and result["ran"] is True
    assert result.get("failed", False) is failed
    assert (result["stdout"], result["stderr"]) == ("out\n", "err\n")
    assert not containers(run_id)


def test_memory_hog_is_killed_and_reported(tmp_path, run_id, code_dir):
    args = base_args(run_id, code_dir, memory="32m", command=["sh", "-c", "tail /dev/zero"])
    result = run_module(tmp_path, args)
    assert result["failed"] is True and result["rc"] == 137
    # This engine (cgroup v1 on a recent kernel) does not always report OOMKilled; the
    # module then says the kill most likely came from the memory limit, naming it.
    assert "memory limit" in result["msg"] and "32m" in result["msg"]
    assert not containers(run_id)


def test_output_is_bounded_and_the_timeout_kills(tmp_path, run_id, code_dir):
    args = base_args(
        run_id, code_dir, output_limit=1000, timeout=3,
        command=["sh", "-c", "head -c 5000 /dev/zero | tr '\\0' a; sleep 60"],
    )  # fmt: skip
    started = time.monotonic()
    result = run_module(tmp_path, args)
    assert time.monotonic() - started < 30
    assert result["failed"] is True and result["timed_out"] is True
    assert result["stdout"] == "a" * 1000 and result["stdout_truncated"] is True
    assert wait_for(lambda: not containers(run_id), 20, step=0.2)


def test_check_mode_through_ansible_runs_nothing(tmp_path, run_id, code_dir):
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    task = base_args(run_id, code_dir, command=["gemini", "--version"])
    proc = run_playbook(tmp_path, task, "--check", env=env)
    assert proc.returncode == 0, proc.stdout[-3000:]
    # The JSON report, then the task timing that ansible.cfg enables.
    report, _ = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{") :])
    tasks = report["plays"][0]["tasks"]
    result = tasks[0]["hosts"]["localhost"]
    assert result["ran"] is False and result["changed"] is True
    assert result["spec"]["body"]["Cmd"] == ["gemini", "--version"]
    assert result["spec"]["body"]["HostConfig"]["AutoRemove"] is True
    assert "rc" not in result
    assert not containers(run_id)


def test_a_string_command_runs_split_like_a_shell_with_output_lines(tmp_path, run_id, code_dir):
    """Through ansible-playbook, as a user writes it: a string, not split on commas."""
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    task = base_args(run_id, code_dir, command="printf '%s\\n' a, 'b c' \"d\\\"e\"")
    proc = run_playbook(tmp_path, task, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:]
    report, _ = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{") :])
    result = report["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert result["rc"] == 0 and result["changed"] is True
    assert result["stdout_lines"] == ["a,", "b c", 'd"e']
    assert result["stderr_lines"] == []
    assert result["container"]["config"]["Cmd"] == ["printf", "%s\\n", "a,", "b c", 'd"e']
    assert not containers(run_id)


def test_without_code_dir_a_fresh_directory_is_mounted_and_removed(tmp_path, run_id, code_dir):
    """What an image check needs: no host directory, yet a writable /app."""
    args = base_args(run_id, code_dir, command=["sh", "-c", "touch /app/x && ls -A /app"])
    del args["code_dir"]
    result = run_module(tmp_path, args)
    assert result["rc"] == 0, result
    assert result["stdout"] == "x\n"
    source = next(m["Source"] for m in result["container"]["mounts"] if m["Destination"] == "/app")
    assert source != str(code_dir)
    assert not Path(source).exists(), "the scratch code directory was left behind"


def test_run_as_root_keeps_every_other_restriction(tmp_path, run_id, code_dir):
    probe = (
        "import os; s = dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l); "
        "print(os.getuid(), s['CapEff'].strip(), s['NoNewPrivs'].strip())"
    )
    args = base_args(run_id, code_dir, command=["python3", "-c", probe], run_as_root=True)
    del args["user"]
    # This engine does not remap users: root is refused before anything starts...
    refused = run_module(tmp_path, args)
    assert refused["failed"] is True and refused["ran"] is False
    assert "does not remap users" in refused["msg"] and "root_without_userns" in refused["msg"]
    assert not containers(run_id)
    # ...unless the administrator accepts the risk explicitly.
    result = run_module(tmp_path, dict(args, root_without_userns=True))
    assert result["rc"] == 0, result
    assert result["stdout"].split() == ["0", "0000000000000000", "1"]
    # ansible-core 2.19 returns warnings as structured summaries.
    assert "run_as_root is set" in json.dumps(result.get("warnings"))
    host = result["container"]["host_config"]
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
    assert host["ReadonlyRootfs"] is True and host["AutoRemove"] is True
