"""`devenv doctor`'s pure parts: the runtime properties it asserts (shared with the
integration tests), the probe's facts, the permission checks, the agent pins, the SSH
agent question and the report. The whole doctor runs on a real engine in
tests/integration/test_doctor.py."""

import json
import os
import socket
import struct
import threading
from pathlib import Path

import pytest
import yaml
from ansible_collections.kuatecno.devenv.plugins.module_utils import _doctor
from ansible_collections.kuatecno.devenv.plugins.module_utils._doctor import (
    CREDENTIAL_PATHS,
    Check,
    agent_identities,
    image_pins,
    inside_problems,
    inspect_problems,
    loose_files,
    loose_state,
    network_problems,
    parse_probe,
    reported_version,
    ssh_keys,
)
from ansible_collections.kuatecno.devenv.plugins.module_utils._runspec import Host, build_spec

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024**2


def good_inspect(**changes):
    info = {
        "HostConfig": {
            "Privileged": False,
            "CapDrop": ["ALL"],
            "CapAdd": None,
            "SecurityOpt": ["no-new-privileges"],
            "Memory": 256 * MIB,
            "MemorySwap": 256 * MIB,
            "NanoCpus": 10**9,
            "PidsLimit": 100,
            "NetworkMode": "devenv-net-1",
            "Devices": [],
            "PortBindings": {},
            "PublishAllPorts": False,
            "RestartPolicy": {"Name": "no"},
            "AutoRemove": True,
            "ReadonlyRootfs": True,
            "Init": True,
            "Runtime": "runc",
        },
        "Config": {"User": "1000:1000", "Labels": {"io.kuatecno.devenv.managed": "true"}},
        "Mounts": [
            {
                "Type": "bind",
                "Source": "/home/a/Coding",
                "Destination": "/app",
                "Propagation": "rprivate",
            },
        ],
        "NetworkSettings": {"Ports": {}},
    }
    for path, value in changes.items():
        section, _, key = path.partition(".")
        if key:
            info[section][key] = value
        else:
            info[section] = value
    return info


def test_a_locked_down_container_has_no_problem():
    assert inspect_problems(good_inspect(), memory=256 * MIB, runtime="runc") == []


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"HostConfig.Privileged": True}, "privileged"),
        ({"HostConfig.CapDrop": []}, "capabilities not all dropped"),
        ({"HostConfig.CapAdd": ["NET_ADMIN"]}, "capabilities added"),
        ({"HostConfig.SecurityOpt": []}, "no-new-privileges"),
        ({"HostConfig.SecurityOpt": ["no-new-privileges", "seccomp=unconfined"]}, "unconfined"),
        ({"HostConfig.MemorySwap": -1}, "swap"),
        ({"HostConfig.NanoCpus": 0}, "no CPU limit"),
        ({"HostConfig.PidsLimit": -1}, "no process limit"),
        ({"HostConfig.PidMode": "host"}, "PidMode is the host's"),
        ({"HostConfig.Devices": [{"PathOnHost": "/dev/kvm"}]}, "devices"),
        ({"HostConfig.PortBindings": {"80/tcp": [{}]}}, "ports are published"),
        ({"HostConfig.AutoRemove": False}, "does not remove"),
        ({"HostConfig.RestartPolicy": {"Name": "always"}}, "restart policy"),
        ({"HostConfig.ReadonlyRootfs": False}, "read-only root"),
        ({"HostConfig.Init": False}, "no init"),
        ({"HostConfig.Runtime": "runsc"}, "runtime runsc, not runc"),
        ({"Config.User": "0:0"}, "runs as root"),
        ({"Config.User": ""}, "runs as root"),
        ({"Config.Labels": {}}, "not labelled"),
        (
            {
                "Mounts": [
                    {
                        "Type": "bind",
                        "Source": "/var/run/docker.sock",
                        "Destination": "/s",
                        "Propagation": "rprivate",
                    }
                ]
            },
            "socket is mounted",
        ),
        (
            {
                "Mounts": [
                    {
                        "Type": "bind",
                        "Source": "/etc",
                        "Destination": "/e",
                        "Propagation": "rprivate",
                    }
                ]
            },
            "the host's /etc is mounted",
        ),
        (
            {
                "Mounts": [
                    {"Type": "volume", "Source": "/v", "Destination": "/v", "Propagation": ""}
                ]
            },
            "not a bind mount",
        ),
    ],
)
def test_each_weakened_property_is_named(change, fragment):
    problems = inspect_problems(good_inspect(**change), memory=256 * MIB, runtime="runc")
    assert any(fragment in p for p in problems), problems


def test_a_different_memory_limit_is_named():
    problems = inspect_problems(good_inspect(), memory=512 * MIB)
    assert problems == [f"memory limit {256 * MIB}, not {512 * MIB}"]


PROBE_OUTPUT = """uid=1000
gid=1000
whoami=alice
NoNewPrivs=1
CapEff=0000000000000000
CapPrm=0000000000000000
CapAmb=0000000000000000
nproc=unlimited
pids_max=100
memory_max=268435456
memtotal=25000000000
rootfs=/bin/sh: 1: cannot create /var/tmp/.devenv-doctor-7: Read-only file system
app=1000:1000
home=writable
canary=devenv-doctor-0123
kernel=6.1.0
dmesg=
interfaces=eth0 lo
gateway=172.22.0.1 rc=124
proxy_refuses=HTTP/1.1 403 Forbidden
agent.claude=2.0.76 (Claude Code)
end=1
"""
EXPECTED = {"uid": 1000, "memory": 256 * MIB, "pids_limit": 100}


def test_the_probe_facts_of_a_locked_down_run_hold():
    facts = parse_probe(PROBE_OUTPUT)
    assert facts["agent.claude"] == "2.0.76 (Claude Code)"
    assert inside_problems(facts, **EXPECTED) == []
    assert network_problems(facts, "allowlist") == []


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("uid=0", "runs as uid 0"),
        ("whoami=", "no passwd entry"),
        ("NoNewPrivs=0", "NoNewPrivs is 0"),
        ("CapEff=00000000a80425fb", "CapEff"),
        ("pids_max=max", "pids.max is max"),
        ("memory_max=9223372036854771712", "memory limit"),
        ("rootfs=writable", "root filesystem is writable"),
        ("home=read-only", "HOME is not writable"),
    ],
)
def test_each_weakness_seen_inside_is_named(line, fragment):
    key = line.split("=")[0]
    text = "\n".join(line if ln.startswith(key + "=") else ln for ln in PROBE_OUTPUT.splitlines())
    problems = inside_problems(parse_probe(text), **EXPECTED)
    assert any(fragment in p for p in problems), problems


def test_under_gvisor_the_sandbox_kernel_keeps_the_limits():
    facts = parse_probe(PROBE_OUTPUT)
    facts.update(nproc="100", memtotal=str(256 * MIB), pids_max="", memory_max="")
    facts["dmesg"] = "[    0.000000] Starting gVisor..."
    assert inside_problems(facts, isolation="gvisor", **EXPECTED) == []
    facts.update(nproc="unlimited", memtotal=str(10**12), dmesg="")
    problems = inside_problems(facts, isolation="gvisor", **EXPECTED)
    assert len(problems) == 3, problems


@pytest.mark.parametrize(
    ("facts", "policy", "fragment"),
    [
        ({"interfaces": "eth0 lo"}, "none", "besides loopback"),
        ({"gateway": "172.17.0.1 rc=1 connect: Connection refused"}, "allowlist", "answers"),
        ({"gateway": "172.17.0.1 rc=0", "proxy_refuses": "HTTP/1.1 403 x"}, "allowlist", "answers"),
        ({"proxy_refuses": "HTTP/1.1 200 Connection established"}, "allowlist", "did not refuse"),
        ({}, "allowlist", "no answer"),
    ],
)
def test_a_network_policy_not_in_force_is_named(facts, policy, fragment):
    problems = network_problems(facts, policy)
    assert any(fragment in p for p in problems), problems
    assert network_problems({"interfaces": "lo "}, "none") == []
    assert network_problems({}, "open") == []


def test_the_credentials_checked_are_the_ones_the_secrets_role_locks_down():
    defaults = yaml.safe_load(
        (ROOT / "collections/devenv/roles/devenv_secrets/defaults/main.yml").read_text()
    )
    role = [(p["path"], p["kind"]) for p in defaults["devenv_secrets_credential_paths"]]
    assert list(CREDENTIAL_PATHS) == role


def test_loose_credentials_are_found_and_private_ones_pass(tmp_path):
    home = tmp_path
    (home / ".claude").mkdir(mode=0o700)
    creds = home / ".claude" / ".credentials.json"
    creds.write_text("{}")
    creds.chmod(0o600)
    (home / ".gemini").mkdir(mode=0o755)
    (home / ".claude.json").symlink_to(creds)
    found = loose_files(str(home), CREDENTIAL_PATHS)
    assert (str(home / ".gemini"), "0755", "0700") in found
    assert (str(home / ".claude.json"), "a symbolic link", "a file of yours") in found
    assert len(found) == 2
    creds.chmod(0o644)
    assert (str(creds), "0644", "0600") in loose_files(str(home), CREDENTIAL_PATHS)


def test_private_ssh_keys_are_found_by_their_header(tmp_path):
    ssh = tmp_path / ".ssh"
    ssh.mkdir(mode=0o700)
    (ssh / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nx\n")
    (ssh / "id_ed25519.pub").write_text("ssh-ed25519 AAAA")
    (ssh / "config").write_text("Host x\n")
    assert ssh_keys(str(tmp_path)) == [(".ssh", "directory"), (".ssh/id_ed25519", "file")]


def test_state_is_loose_only_where_another_user_can_reach_it(tmp_path):
    data = tmp_path / "devenv"
    (data / "identity").mkdir(parents=True)
    (data / "state" / "user" / "claude").mkdir(parents=True)
    for path in (data, data / "identity", data / "state", data / "state" / "user"):
        path.chmod(0o700)
    (data / "state" / "user" / "claude").chmod(0o700)
    (data / "identity" / "passwd").write_text("x")
    (data / "identity" / "passwd").chmod(0o644)  # inside a 0700 directory: private
    assert loose_state(str(data)) == []
    data.chmod(0o755)
    (data / "state").chmod(0o755)
    (data / "state" / "user").chmod(0o711)
    found = dict(loose_state(str(data)))
    assert found == {
        str(data): "0755",
        str(data / "state"): "0755",
        str(data / "state/user"): "0711",
    }
    creds = data / "state" / "user" / "claude" / ".credentials.json"
    (data / "state" / "user" / "claude").chmod(0o755)
    creds.write_text("{}")
    creds.chmod(0o644)
    assert str(creds) in dict(loose_state(str(data)))


def test_the_image_pins_come_from_its_labels():
    image = {
        "Config": {
            "Labels": {
                "io.kuatecno.devenv.agent.claude-code": "2.0.76",
                "io.kuatecno.devenv.agent.gemini-cli": "0.22.4",
                "io.kuatecno.devenv.agent.codex": "1.0.0",
                "io.kuatecno.devenv.agent.x;rm": "1",
                "io.kuatecno.devenv.build-hash": "abc",
            }
        }
    }
    assert image_pins(image) == {"claude": "2.0.76", "codex": "1.0.0", "gemini": "0.22.4"}
    assert image_pins({"Config": {"Labels": None}}) == {}


@pytest.mark.parametrize(
    ("output", "version"),
    [
        ("2.0.76 (Claude Code)", "2.0.76"),
        ("0.22.4", "0.22.4"),
        ("v1.2.3-rc.1\n", "1.2.3-rc.1"),
        ("command not found", ""),
    ],
)
def test_the_reported_version_is_read_from_the_output(output, version):
    assert reported_version(output) == version


@pytest.fixture
def fake_agent(tmp_path):
    """An SSH agent stand-in answering REQUEST_IDENTITIES with two keys."""
    path = str(tmp_path / "agent.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)

    def serve():
        conn, _ = server.accept()
        with conn:
            request = conn.recv(5)
            if request == struct.pack(">IB", 1, 11):
                conn.sendall(struct.pack(">IBI", 5, 12, 2))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path
    server.close()


def test_the_ssh_agent_is_asked_for_its_keys(fake_agent, tmp_path):
    assert agent_identities(fake_agent) == 2
    silent = socket.socket(socket.AF_UNIX)
    silent.bind(str(tmp_path / "silent.sock"))
    silent.listen(1)
    with pytest.raises(OSError):
        agent_identities(str(tmp_path / "silent.sock"), timeout=0.5)
    silent.close()


def test_the_report_has_a_line_and_a_fix_per_failure_and_json_for_tooling():
    checks = [Check("engine", "ok", "answers"), Check("image", "FAIL", "missing", "build it")]
    text = _doctor.render(checks, False)
    assert text.splitlines() == [
        "ok    engine         answers",
        "FAIL  image          missing",
        "                     fix: build it",
    ]
    data = json.loads(_doctor.render(checks, True))
    assert data["ok"] is False
    assert data["checks"][1] == {
        "check": "image",
        "status": "FAIL",
        "detail": "missing",
        "fix": "build it",
    }
    assert "1 check(s) failed: image" in _doctor.summary(checks)


def test_a_gvisor_run_carries_the_runtime_and_its_process_limit_in_the_sandbox(tmp_path):
    (tmp_path / "Coding").mkdir()
    host = Host(1000, 1000, "alice", str(tmp_path), 2, {})
    spec = build_spec({"ssh": "none", "isolation": "gvisor", "gitconfig": None}, host=host)
    body = spec.engine_create_body()["HostConfig"]
    assert body["Runtime"] == "runsc"
    assert body["Ulimits"] == [{"Name": "nproc", "Hard": 100, "Soft": 100}]
    assert body["PidsLimit"] == spec.host_pids_limit > 100
    runc = build_spec({"ssh": "none", "gitconfig": None}, host=host)
    assert runc.engine_create_body()["HostConfig"]["Runtime"] == "runc"
    assert runc.host_pids_limit == 100
    assert os.path.basename(_doctor.__file__) == "_doctor.py"
