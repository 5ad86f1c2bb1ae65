"""The network policy (`network: allowlist | none | open`) against the real engine.

There is no outside network here, so the "internet" is a test network that only the
egress proxy reaches: stand-in servers on it (a real git server over HTTPS and SSH that
also serves a file, twice: "allowed" and "forbidden", and an Anthropic Messages API
stand-in), with names under .test and certificates from a test CA. The devenv
containers run the real agent image with that CA added the way the image role adds a
corporate CA (tests/support/agent_image.py builds the image and the proxy image through
the role). Every run goes through the installed launcher as an unprivileged test user,
or through the secure_run module; what the tests claim is checked from inside the
container, with `docker inspect` and in the proxy's log.

Everything created carries io.kuatecno.devenv.test=1 and this module's run label (the
launcher puts a run's labels on the proxy and the networks it creates), and is removed
at the end.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
import install_launcher  # noqa: E402
from agent_image import PROXY_REF  # noqa: E402
from ansible_collections.kuatecno.devenv.plugins.module_utils import _network, _settings  # noqa: E402
from container_security import assert_runtime_properties  # noqa: E402
from waiting import wait_for  # noqa: E402

SESSION = uuid.uuid4().hex[:8]
LOGIN = f"devnt{os.getpid() % 100000}"
TEST_LABEL = "io.kuatecno.devenv.test"
RUN_LABEL = "io.kuatecno.devenv.testrun"
PROXY_LABEL = "io.kuatecno.devenv.proxy"
INTERNET = f"devenv-test-internet-{SESSION}"
GITSERVER = "devenv-test/gitserver:13"
BASE = "devenv-test/debian:13"
ALLOWED = "allowed.devenv.test"
FORBIDDEN = "forbidden.devenv.test"
API = "api.devenv.test"
ANSWER = f"Hello through the proxy {SESSION}"
ALLOW = [f"{ALLOWED}:443", f"{ALLOWED}:80", f"{ALLOWED}:22", f"{API}:443"]
MODULE = ROOT / "collections/devenv/plugins/modules/secure_run.py"


def docker(*args, check=True, timeout=120):
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=timeout
    ).stdout


def inspect(kind, name):
    return json.loads(docker(kind, "inspect", name))[0]


# ---------------------------------------------------------------- the test world


def make_certificates(where):
    """A test CA and one server certificate (with its key) for the stand-ins' names."""
    run = lambda *args: subprocess.run(  # noqa: E731
        ["openssl", *args], cwd=where, check=True, capture_output=True, timeout=60
    )
    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN=devenv test CA {SESSION}",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    names = ",".join(f"DNS:{n}" for n in (ALLOWED, FORBIDDEN, API))
    (where / "ext.cnf").write_text(f"subjectAltName={names}\n")
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        f"/CN={ALLOWED}",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.crt",
    )
    (where / "server.pem").write_text(
        (where / "server.crt").read_text() + (where / "server.key").read_text()
    )
    for name in ("server.pem", "server.key", "ca.key"):
        (where / name).chmod(0o644)  # the stand-ins read them as their own users


def make_ssh_key(where):
    """A key pair for git over SSH: the public half goes to the stand-in servers; the
    test copies the private half into a directory of the test user's own."""
    where.mkdir(mode=0o755)
    subprocess.run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "devenv-test",
            "-f",
            str(where / "id"),
        ],
        check=True,
        timeout=60,
    )
    return (where / "id.pub").read_text()


def ca_image(base, ca_file, workdir):
    """The agent image with the test CA trusted, in the image role's own steps for
    devenv_image_ca_certificates (copied to the trust store, update-ca-certificates;
    NODE_EXTRA_CA_CERTS already names the bundle). Tagged for this session, so a
    rebuild of the shared image by another suite cannot change it under the tests."""
    context = workdir / "ca-image"
    (context / "ca").mkdir(parents=True)
    shutil.copy(ca_file, context / "ca" / "devenv-test-network-ca.crt")
    (context / "Dockerfile").write_text(
        f"FROM {base}\n"
        "COPY ca/ /usr/local/share/ca-certificates/devenv/\n"
        "RUN update-ca-certificates\n"
    )
    tag = f"devenv-test/agents-netca:{SESSION}"
    docker("build", "-q", "--label", f"{TEST_LABEL}=1", "-t", tag, str(context), timeout=600)
    return tag


def start_stand_in(name, alias, *args, image=GITSERVER, mounts=(), env=()):
    argv = [
        "run",
        "-d",
        "--name",
        name,
        "--network",
        INTERNET,
        "--network-alias",
        alias,
        "--label",
        f"{TEST_LABEL}=1",
        "--label",
        f"{RUN_LABEL}={SESSION}",
    ]
    for source, target, mode in mounts:
        argv += [
            "--mount",
            f"type=bind,source={source},target={target}" + (",readonly" if mode == "ro" else ""),
        ]
    for item in env:
        argv += ["--env", item]
    docker(*argv, image, *args)
    return inspect("container", name)["NetworkSettings"]["Networks"][INTERNET]["IPAddress"]


class HostListener:
    """A TCP listener on every address of this host: reachable from an `open` run (as
    today), never from an `allowlist` or `none` run."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("0.0.0.0", 0))  # noqa: S104 - the point: every host address
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.hits += 1
            conn.sendall(b"host-says-hi\n")
            conn.close()

    def close(self):
        self.sock.close()


def host_addresses():
    """This host's IPv4 addresses: the bridges' gateways (the engine's default bridge,
    the test internet) and its own interfaces."""
    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "scope", "global"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted({line.split()[3].split("/")[0] for line in out.splitlines()})


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
    subprocess.run(["usermod", "-aG", "docker", LOGIN], check=True)
    yield entry
    if created:
        subprocess.run(["userdel", "--remove", LOGIN], check=False, capture_output=True)


@pytest.fixture(scope="module")
def world(agent_image, user, tmp_path_factory):
    """The stand-ins on the test internet, the CA image, the launcher; torn down after."""
    started = time.monotonic()
    work = tmp_path_factory.mktemp("network")
    certs = work / "certs"
    certs.mkdir()
    make_certificates(certs)
    shared = Path(tempfile.mkdtemp(prefix="devenv-network-"))
    shared.chmod(0o755)
    public_key = make_ssh_key(shared / "ssh")
    (certs / "authorized_keys").write_text(public_key)
    record = shared / "api"
    record.mkdir(mode=0o777)
    record.chmod(0o777)
    # Built every time: the engine's cache makes that a second when nothing changed.
    docker("build", "-q", "-t", GITSERVER, str(ROOT / "tests/images/gitserver"), timeout=900)
    listener = HostListener()
    world = {"work": work, "shared": shared, "listener": listener, "certs": certs}
    try:
        docker(
            "network",
            "create",
            "--label",
            f"{TEST_LABEL}=1",
            "--label",
            f"{RUN_LABEL}={SESSION}",
            INTERNET,
        )
        mounts = [(certs, "/certs", "ro")]
        world["allowed_ip"] = start_stand_in(
            f"devenv-test-allowed-{SESSION}",
            ALLOWED,
            mounts=mounts,
            env=["GREETING=allowed-says-hi"],
        )
        world["forbidden_ip"] = start_stand_in(
            f"devenv-test-forbidden-{SESSION}",
            FORBIDDEN,
            mounts=mounts,
            env=["GREETING=forbidden-says-hi"],
        )
        world["api_ip"] = start_stand_in(
            f"devenv-test-api-{SESSION}",
            API,
            "python3",
            "/stand-in/anthropic_api.py",
            "--port",
            "443",
            "--cert",
            "/certs/server.pem",
            "--answer",
            ANSWER,
            "--record",
            "/record/requests.jsonl",
            image=BASE,
            mounts=[
                (certs, "/certs", "ro"),
                (ROOT / "tests/support", "/stand-in", "ro"),
                (record, "/record", "rw"),
            ],
        )
        world["record"] = record / "requests.jsonl"
        world["image"] = ca_image(agent_image, certs / "ca.crt", work)
        prefix = shared / "prefix"
        install_launcher.install(prefix, "/usr/bin/python3")
        world["prefix"] = prefix
        world["gateway"] = inspect("network", INTERNET)["IPAM"]["Config"][0]["Gateway"]
        world["host_addresses"] = host_addresses()
        world["setup_s"] = time.monotonic() - started
        yield world
    finally:
        listener.close()
        for name in ("allowed", "forbidden", "api"):
            docker("rm", "-f", f"devenv-test-{name}-{SESSION}", check=False)
        # The proxies and internal networks these runs created carry this run label.
        proxies = docker("ps", "-aq", "--filter", f"label={RUN_LABEL}={SESSION}", check=False)
        if proxies.split():
            docker("rm", "-f", *proxies.split(), check=False)
        networks = docker(
            "network", "ls", "-q", "--filter", f"label={RUN_LABEL}={SESSION}", check=False
        )
        for network in networks.split():
            docker("network", "rm", network, check=False)
        docker("rmi", f"devenv-test/agents-netca:{SESSION}", check=False)
        shutil.rmtree(shared, ignore_errors=True)


@pytest.fixture(scope="module")
def code_dir(user):
    path = Path(user.pw_dir) / "Coding"
    path.mkdir(exist_ok=True)
    os.chown(path, user.pw_uid, user.pw_gid)
    return path


@pytest.fixture
def launcher(world, user, code_dir, tmp_path):
    """launcher(args, user_file=None, **system_settings) -> (rc, stdout, stderr)."""
    config = world["shared"] / f"config-{uuid.uuid4().hex[:8]}.json"
    xdg = Path(user.pw_dir) / f".config-{SESSION}"

    def start(args, *, user_file=None, timeout=180, wait=True, **settings):
        data = {
            "image": world["image"],
            "memory": "1g",
            "cpus": 1,
            "pids_limit": 200,
            "ssh": "none",
            "code_dir": str(code_dir),
            "gitconfig": None,
            "credentials": [],
            "labels": {TEST_LABEL: "1", RUN_LABEL: SESSION},
            "network_allow": ALLOW,
            "network_egress": INTERNET,
            "network_proxy_image": PROXY_REF,
        }
        data.update(settings)
        config.write_text(json.dumps(data))
        config.chmod(0o644)
        (xdg / "devenv").mkdir(parents=True, exist_ok=True)
        user_config = xdg / "devenv" / "config.json"
        if user_file is None:
            user_config.unlink(missing_ok=True)
        else:
            user_config.write_text(json.dumps(user_file))
        environ = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": user.pw_dir,
            "USER": LOGIN,
            "LOGNAME": LOGIN,
            "DEVENV_CONFIG": str(config),
            "XDG_CONFIG_HOME": str(xdg),
        }
        argv = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"]
        proc = subprocess.Popen(
            [*argv, "--", str(world["prefix"] / "bin" / "devenv"), "run", *args],
            env=environ,
            cwd=code_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if not wait:
            return proc
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err

    yield start
    config.unlink(missing_ok=True)
    shutil.rmtree(xdg, ignore_errors=True)


def running_devenv_container():
    ids = docker(
        "ps",
        "-q",
        "--filter",
        f"label={RUN_LABEL}={SESSION}",
        "--filter",
        "label=io.kuatecno.devenv.managed=true",
        "--filter",
        "name=devenv-devnt",
    ).split()
    return ids[0] if len(ids) == 1 else None


def proxy_of(allow):
    """The proxy devenv runs for an allow-list on this module's test internet."""
    return _network.plan(_settings._network_allow(allow, "allow"), INTERNET, PROXY_REF).proxy


def proxies_of_session():
    return docker(
        "ps",
        "-a",
        "--filter",
        f"label={RUN_LABEL}={SESSION}",
        "--filter",
        f"label={PROXY_LABEL}",
        "--format",
        "{{.Names}}",
    ).split()


# ---------------------------------------------------------------- allowlist

PROBE = r"""
import json, os, socket, subprocess, sys, threading, time
ALLOWED, FORBIDDEN = "ALLOWED_NAME", "FORBIDDEN_NAME"
def run(*cmd, timeout=60):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return [p.returncode, p.stdout.strip(), p.stderr.strip()[-300:]]
def connect(address, port):
    s = socket.socket()
    s.settimeout(4)
    try:
        s.connect((address, port))
        return "connected"
    except OSError as exc:
        return type(exc).__name__
    finally:
        s.close()
def lookup(name):
    start = time.monotonic()
    try:
        return [socket.getaddrinfo(name, 443)[0][4][0], round(time.monotonic() - start, 2)]
    except OSError as exc:
        return ["failed: " + str(exc), round(time.monotonic() - start, 2)]
out = {"env": {k: v for k, v in os.environ.items() if "proxy" in k.lower()}}
out["https_allowed"] = run("curl", "-sS", f"https://{ALLOWED}/hello.txt")
out["http_allowed"] = run("curl", "-sS", f"http://{ALLOWED}/hello.txt")
out["https_forbidden"] = run("curl", "-sS", f"https://{FORBIDDEN}/hello.txt")
out["http_forbidden"] = run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                            f"http://{FORBIDDEN}/hello.txt")
out["git_clone"] = run("git", "clone", "-q", f"https://{ALLOWED}/git/repo.git", "/tmp/repo")
readme = "/tmp/repo/README"
out["git_readme"] = open(readme).read().strip() if os.path.exists(readme) else None
out["git_forbidden"] = run("git", "ls-remote", f"https://{FORBIDDEN}/git/repo.git")
out["via_proxy_to_address"] = run("curl", "-sS", "-k", "-m", "10", "https://ALLOWED_IP/hello.txt")
out["via_proxy_to_host"] = run("curl", "-sS", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}",
                               "http://HOST_IP:HOST_PORT/")
out["direct_without_proxy"] = run("curl", "-sS", "-k", "-m", "5", "--noproxy", "*", "https://ALLOWED_IP/hello.txt")
threads, direct = [], {}
for address, port in TARGETS:
    def probe(a=address, p=port):
        direct[f"{a}:{p}"] = connect(a, p)
    threads.append(threading.Thread(target=probe))
for t in threads: t.start()
for t in threads: t.join()
out["direct"] = direct
names = (FORBIDDEN, ALLOWED, "example.org", os.environ["DEVENV_PROXY"].split(":")[0])
out["lookups"] = {n: lookup(n) for n in names}
status = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
out["cap_eff"], out["no_new_privs"] = status["CapEff"].strip(), status["NoNewPrivs"].strip()
out["interfaces"] = sorted(os.listdir("/sys/class/net"))
open("/app/RESULT", "w").write(json.dumps(out))
for _ in range(600):
    if os.path.exists("/app/RESULT.done"):
        break
    time.sleep(0.1)
"""


def probe_script(world, result_name):
    listener = world["listener"]
    targets = [(world["allowed_ip"], 443), (world["forbidden_ip"], 80)]
    targets += [(address, listener.port) for address in world["host_addresses"]]
    return (
        PROBE.replace("ALLOWED_NAME", ALLOWED)
        .replace("FORBIDDEN_NAME", FORBIDDEN)
        .replace("ALLOWED_IP", world["allowed_ip"])
        .replace("HOST_IP", world["gateway"])
        .replace("HOST_PORT", str(listener.port))
        .replace("TARGETS", repr(targets))
        .replace("RESULT", result_name)
    )


def test_allowlist_lets_only_the_allowed_names_through_the_proxy(world, launcher, code_dir):
    name = f"probe-{uuid.uuid4().hex[:6]}"
    hits_before = world["listener"].hits
    proc = launcher(["--", "python3", "-c", probe_script(world, name)], wait=False)
    try:
        assert wait_for((code_dir / name).exists, timeout=150), proc.stderr.read()
        container = running_devenv_container()
        info = inspect("container", container)
        # The runtime properties of every run hold, with every capability dropped.
        assert_runtime_properties(info, memory=1024**3)
        network = info["HostConfig"]["NetworkMode"]
        assert network.startswith("devenv-net-")
        assert list(info["NetworkSettings"]["Networks"]) == [network]
        assert info["HostConfig"]["DnsOptions"] == ["timeout:1", "attempts:1"]
        internal = inspect("network", network)
        assert internal["Internal"] is True
        assert internal["Options"]["com.docker.network.bridge.inhibit_ipv4"] == "true"
        members = {c["Name"] for c in internal["Containers"].values()}
        proxy = proxy_of(ALLOW)
        assert network == host_network_of(proxy)
        assert members == {proxy, info["Name"].lstrip("/")}
        (code_dir / f"{name}.done").write_text("")
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    got = json.loads((code_dir / name).read_text())
    assert got["cap_eff"] == "0000000000000000" and got["no_new_privs"] == "1"
    assert got["env"]["HTTPS_PROXY"] == got["env"]["http_proxy"] == f"http://{proxy}:3128"
    # Allowed names answer through the proxy: curl (HTTPS, HTTP) and git over HTTPS.
    assert got["https_allowed"] == [0, "allowed-says-hi", ""]
    assert got["http_allowed"] == [0, "allowed-says-hi", ""]
    assert got["git_clone"][0] == 0, got["git_clone"]
    assert got["git_readme"] == "allowed-says-hi"
    # A forbidden name gets the proxy's clear refusal: 403, for CONNECT and plain HTTP.
    assert got["https_forbidden"][0] != 0 and "403" in got["https_forbidden"][2]
    assert got["http_forbidden"][1] == "403"
    assert got["git_forbidden"][0] != 0 and "403" in got["git_forbidden"][2]
    # Addresses instead of names, the host's own ones included, are refused by the proxy.
    assert "403" in got["via_proxy_to_address"][2]
    assert got["via_proxy_to_host"][1] == "403"
    # Without the proxy nothing is reachable: no route to the stand-ins or the host.
    assert got["direct_without_proxy"][0] != 0
    assert all(result != "connected" for result in got["direct"].values()), got["direct"]
    assert world["listener"].hits == hits_before
    # No outside name resolves (so DNS carries nothing out); the proxy's own name does.
    lookups = got["lookups"]
    for name_ in (FORBIDDEN, ALLOWED, "example.org"):
        assert lookups[name_][0].startswith("failed"), lookups
        assert lookups[name_][1] < 3, lookups
    assert not lookups[proxy][0].startswith("failed")
    assert got["interfaces"] == ["eth0", "lo"]
    # The launcher names what was refused, once the run is over.
    assert "the network policy refused" in err
    for refused in (f"{FORBIDDEN}:443", f"{FORBIDDEN}:80", f"{world['allowed_ip']}:443"):
        assert refused in err, err
    assert f"{ALLOWED}:443" not in err.split("refused", 1)[1]
    # The proxy logs every destination, allowed or refused, with the run's name and
    # without contents (no paths, no queries).
    log = docker("logs", proxy)
    lines = [line for line in log.splitlines() if info["Name"].lstrip("/") in line]
    assert any(f"CONNECT {ALLOWED}:443 200 TCP_TUNNEL" in line for line in lines), log
    assert any(f"CONNECT {FORBIDDEN}:443 403 TCP_DENIED" in line for line in lines), log
    assert "hello.txt" not in log and "/git/" not in log


def test_the_proxy_container_is_hardened(world, launcher):
    rc, _out, err = launcher(["--", "true"])
    assert rc == 0, err
    proxy = proxy_of(ALLOW)
    info = inspect("container", proxy)
    host, config = info["HostConfig"], info["Config"]
    assert config["User"] == "proxy:proxy"
    assert host["ReadonlyRootfs"] is True and host["Privileged"] is False
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["Memory"] == host["MemorySwap"] == 256 * 1024**2
    assert host["NanoCpus"] > 0 and host["PidsLimit"] == 64
    assert host["RestartPolicy"]["Name"] == "unless-stopped"  # survives an engine restart
    assert host["Sysctls"] == {"net.ipv4.ip_forward": "0"}
    assert not host["PortBindings"] and not host["Devices"]
    assert set(info["NetworkSettings"]["Networks"]) == {INTERNET, host_network_of(proxy)}
    status = docker("exec", proxy, "cat", "/proc/1/status", "/proc/self/status")
    assert status.count("CapEff:\t0000000000000000") == 2
    assert status.count("NoNewPrivs:\t1") == 2
    # Its image adds no setuid program to the base's (Squid's pinger is stripped).
    find = ["find", "/", "-xdev", "-perm", "-4000", "-type", "f"]
    setuid = docker("exec", proxy, *find, check=False).split()
    base = docker("run", "--rm", "--label", f"{TEST_LABEL}=1", "--network", "none", BASE, *find,
                  check=False).split()  # fmt: skip
    assert set(setuid) <= set(base), set(setuid) - set(base)


def host_network_of(proxy):
    return "devenv-net-" + proxy.removeprefix("devenv-proxy-")


def test_claude_answers_a_prompt_through_the_proxy(world, launcher):
    before = world["record"].read_text() if world["record"].exists() else ""
    rc, out, err = launcher(
        ["--", "claude", "-p", "Say hello"],
        env={
            "ANTHROPIC_BASE_URL": f"https://{API}",
            "ANTHROPIC_API_KEY": "sk-ant-test-not-a-key",
            "DISABLE_TELEMETRY": "1",
        },
    )
    assert rc == 0, err
    assert ANSWER in out
    requests = [
        json.loads(line) for line in world["record"].read_text()[len(before) :].splitlines()
    ]
    messages = [r for r in requests if r["path"].startswith("/v1/messages") and r["stream"]]
    assert messages, requests
    # They came from the proxy: the run container is not on the test internet at all.
    proxy = proxy_of(ALLOW)
    proxy_ip = inspect("container", proxy)["NetworkSettings"]["Networks"][INTERNET]["IPAddress"]
    assert {r["peer"] for r in requests} == {proxy_ip}


GIT_SSH = r"""
set -u
export GIT_SSH_COMMAND="ssh -i /run/test-ssh/id -o UserKnownHostsFile=/tmp/known_hosts \
  -o StrictHostKeyChecking=accept-new -o ConnectTimeout=20"
cd /tmp
git clone -q git@ALLOWED:/srv/git/repo.git repo && echo "clone:$(cat repo/README)"
cd repo
git -c user.name=t -c user.email=t@devenv.test commit -q --allow-empty -m "from devenv"
git push -q origin HEAD:refs/heads/from-devenv-SESSION && echo pushed
git ls-remote git@FORBIDDEN:/srv/git/repo.git >/dev/null 2>/tmp/forbidden.err; echo "forbidden:$?"
cat /tmp/forbidden.err
"""


def test_git_over_ssh_goes_through_the_proxy_to_allowed_hosts_only(world, launcher, user):
    # As the invoking user, as a person would push: the image gives that user a passwd
    # entry, which ssh needs. The key is the user's own, 0600.
    keys = world["shared"] / f"ssh-{user.pw_name}"
    keys.mkdir(mode=0o700, exist_ok=True)
    shutil.copy(world["shared"] / "ssh" / "id", keys / "id")
    for path in (keys, keys / "id"):
        os.chown(path, user.pw_uid, user.pw_gid)
    (keys / "id").chmod(0o600)
    script = GIT_SSH.replace("ALLOWED", ALLOWED).replace("FORBIDDEN", FORBIDDEN)
    script = script.replace("SESSION", SESSION)
    rc, out, err = launcher(
        ["--", "bash", "-c", script],
        mounts=[{"source": str(keys), "target": "/run/test-ssh"}],
    )
    assert rc == 0, err
    lines = out.splitlines()
    assert "clone:allowed-says-hi" in lines and "pushed" in lines, out + err
    branches = docker(
        "exec",
        f"devenv-test-allowed-{SESSION}",
        "git",
        "-C",
        "/srv/git/repo.git",
        "branch",
        "--list",
        f"from-devenv-{SESSION}",
    )
    assert f"from-devenv-{SESSION}" in branches
    forbidden = next(line for line in lines if line.startswith("forbidden:"))
    assert forbidden != "forbidden:0"
    assert "403" in out  # nc: the proxy refused the CONNECT to port 22
    assert f"{FORBIDDEN}:22" in err


# ---------------------------------------------------------------- none and open

NET_FACTS = r"""
import json, os, socket
def connect(address, port):
    s = socket.socket(); s.settimeout(4)
    try:
        s.connect((address, port)); return "connected"
    except OSError as exc:
        return type(exc).__name__
    finally:
        s.close()
routes = [l.split()[1] for l in open("/proc/net/route").read().splitlines()[1:]]
print(json.dumps({
    "interfaces": sorted(os.listdir("/sys/class/net")),
    "routes": routes,
    "proxy_env": sorted(k for k in os.environ if "proxy" in k.lower()),
    "host": {a: connect(a, PORT) for a in ADDRESSES},
    "loopback": connect("127.0.0.1", 9),
}))
"""


def net_facts(world):
    return NET_FACTS.replace("PORT", str(world["listener"].port)).replace(
        "ADDRESSES", repr(world["host_addresses"])
    )


def test_none_leaves_only_loopback(world, launcher):
    rc, out, err = launcher(["--network", "none", "--", "python3", "-c", net_facts(world)])
    assert rc == 0, err
    facts = json.loads(out)
    assert facts["interfaces"] == ["lo"]
    assert facts["routes"] == [] and facts["proxy_env"] == []
    assert set(facts["host"].values()) == {"OSError"}  # ENETUNREACH: no route at all
    assert facts["loopback"] == "ConnectionRefusedError"  # loopback itself works


def test_open_is_todays_default_bridge_and_users_cannot_widen(world, launcher):
    # A user may not widen the administrator's allowlist, with a flag or a user file.
    rc, _out, err = launcher(["--network", "open", "--", "true"])
    assert rc == 2 and "wider than the administrator's 'allowlist'" in err
    assert "DEVENV_CONFIG" not in err and "network_widen" in err
    rc, _out, err = launcher(["--", "true"], user_file={"network_allow": ["example.org:443"]})
    assert rc == 2 and "example.org:443 is not in the administrator's list" in err
    # The administrator's `open`: Docker's default bridge, the full network, as before.
    hits = world["listener"].hits
    rc, out, err = launcher(["--", "python3", "-c", net_facts(world)], network="open")
    assert rc == 0, err
    facts = json.loads(out)
    assert facts["interfaces"] == ["eth0", "lo"] and "00000000" in facts["routes"]
    assert facts["proxy_env"] == []
    assert "connected" in facts["host"].values()  # today: the host is reachable
    assert world["listener"].hits > hits


# ---------------------------------------------------------------- separate rules, fail closed


def test_a_narrower_user_list_gets_its_own_proxy_and_network(world, launcher):
    rc, _out, err = launcher(["--", "true"])
    assert rc == 0, err
    wide = set(proxies_of_session())
    script = (
        "import os, socket, subprocess\n"
        f"r = subprocess.run(['curl', '-sS', 'https://{ALLOWED}/hello.txt'],\n"
        "                   capture_output=True, text=True)\n"
        "print('curl', r.returncode, '403' in r.stderr)\n"
        "for name in OTHERS:\n"
        "    try:\n"
        "        socket.getaddrinfo(name, 3128); print('resolved', name)\n"
        "    except OSError:\n"
        "        print('unresolved', name)\n"
    ).replace("OTHERS", repr(sorted(wide)))
    rc, out, err = launcher(
        ["--", "python3", "-c", script], user_file={"network_allow": [f"{API}:443"]}
    )
    assert rc == 0, err
    narrow = set(proxies_of_session()) - wide
    assert len(narrow) == 1  # one proxy (and network) per distinct allow-list
    assert out.splitlines()[0] == "curl 56 True"  # refused by its own proxy's rules
    assert all(line.startswith("unresolved") for line in out.splitlines()[1:])
    (proxy,) = narrow
    config = inspect("container", proxy)["Config"]["Env"]
    assert any(f"dstdomain -n {API}" in item for item in config)
    assert not any(ALLOWED in item for item in config)


LOOP = r"""
import json, subprocess, time
results = []
for _ in range(300):
    r = subprocess.run(["curl", "-sS", "-m", "3", "https://ALLOWED/hello.txt"],
                       capture_output=True, text=True)
    results.append([time.time(), r.returncode, r.stderr.strip()[-120:]])
    open("/app/NAME", "w").write(json.dumps(results))
    import os
    if os.path.exists("/app/NAME.done"):
        break
    time.sleep(0.2)
"""


def test_a_killed_proxy_fails_closed_and_the_next_run_starts_it(world, launcher, code_dir):
    name = f"loop-{uuid.uuid4().hex[:6]}"
    script = LOOP.replace("ALLOWED", ALLOWED).replace("NAME", name)
    proc = launcher(["--", "python3", "-c", script], wait=False)
    try:

        def succeeded():
            path = code_dir / name
            return path.exists() and any(r[1] == 0 for r in json.loads(path.read_text() or "[]"))

        assert wait_for(succeeded, timeout=150), proc.stderr.read()
        proxy = proxy_of(ALLOW)
        assert inspect("container", running_devenv_container())["HostConfig"][
            "NetworkMode"
        ] == host_network_of(proxy)
        killed_at = time.time()
        docker("kill", proxy)
        time.sleep(4)
        (code_dir / f"{name}.done").write_text("")
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    results = json.loads((code_dir / name).read_text())
    after = [r for r in results if r[0] > killed_at + 0.5]
    assert after and all(r[1] != 0 for r in after), after  # nothing got out any more
    assert f"the egress proxy {proxy} stopped during this run" in err
    assert not inspect("container", proxy)["State"]["Running"]
    # The next run brings it back (created on demand), and traffic flows again.
    rc, out, err = launcher(["--", "curl", "-sS", f"https://{ALLOWED}/hello.txt"])
    assert rc == 0, err
    assert out.strip() == "allowed-says-hi"
    assert f"the egress proxy {proxy} was started for this run" in err


def test_a_missing_proxy_image_starts_nothing(world, launcher):
    rc, _out, err = launcher(
        ["--", "true"],
        network_proxy_image="devenv-test/no-such-proxy:1",
        network_allow=[f"{API}:443"],
    )
    assert rc == 125
    assert "the egress proxy image devenv-test/no-such-proxy:1 is not on this host" in err
    assert "Nothing was started" in err
    assert running_devenv_container() is None


# ---------------------------------------------------------------- the module


def run_module(tmp_path, args):
    path = tmp_path / f"args-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "collections"))
    proc = subprocess.run(
        [sys.executable, str(MODULE), str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return json.loads(proc.stdout)


def test_the_module_runs_with_the_same_policy_and_proxy(world, launcher, tmp_path):
    rc, _out, err = launcher(["--", "true"])
    assert rc == 0, err
    before = set(proxies_of_session())
    code = tmp_path / "code"
    code.mkdir()
    os.chown(code, 1000, 1000)
    script = (
        f"curl -sS https://{ALLOWED}/hello.txt; "
        f"curl -sS -o /dev/null -w '%{{http_code}}\\n' http://{FORBIDDEN}/x; "
        f"getent hosts {ALLOWED} || echo no-dns"
    )
    result = run_module(
        tmp_path,
        {
            "image": world["image"],
            "command": ["sh", "-c", script],
            "code_dir": str(code),
            "user": "1000:1000",
            "labels": {TEST_LABEL: "1", RUN_LABEL: SESSION},
            "network_allow": ALLOW,
            "network_egress": INTERNET,
            "network_proxy_image": PROXY_REF,
            "timeout": 120,
        },
    )
    assert result["rc"] == 0, result
    assert result["stdout"].split() == ["allowed-says-hi", "403", "no-dns"]
    assert result["network_refused"] == [{"destination": f"{FORBIDDEN}:80", "count": 1}]
    assert result["proxy_stopped"] is None
    assert f"refused: {FORBIDDEN}:80" in result["msg"]
    # The launcher's proxy for the same configuration served it: no second proxy.
    assert set(proxies_of_session()) == before
    host = result["container"]["host_config"]
    assert host["NetworkMode"].startswith("devenv-net-") and host["CapDrop"] == ["ALL"]
