"""Both adapters of the run specification describe the same container.

The launcher's `docker run` argv is handed to the real docker CLI, pointed at a fake
engine on a unix socket that records the ContainerCreate body the CLI sends; that body
must equal the module's `engine_create_body()` in every field either side sets. So a
property cannot exist on one side only, and the CLI's own flag parsing is the judge.
No engine is needed: the fake answers the create call with an error after recording it.
"""

import json
import os
import pty
import shutil
import socket
import socketserver
import subprocess
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import pytest
from ansible_collections.kuatecno.devenv.plugins.module_utils._runspec import Host, build_spec

DOCKER = shutil.which("docker")
API_VERSION = "1.41"  # what the engine of the test machines (20.10) speaks
SECRET = "adapter-secret-value"


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    created = None


class _Engine(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self, status, body, headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("API-Version", API_VERSION)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = urlsplit(self.path).path
        if path.endswith("/_ping"):
            self._answer(200, b"OK")
        elif path.endswith("/version"):
            version = {"ApiVersion": API_VERSION, "MinAPIVersion": "1.12", "Version": "20.10.24"}
            self._answer(200, dict(version, Os="linux", Arch="amd64"))
        else:
            self._answer(404, {"message": "not served by the fake engine"})

    def do_POST(self):
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if url.path.endswith("/containers/create"):
            self.server.created = {"query": parse_qs(url.query), "body": json.loads(body)}
            self._answer(500, {"message": "recorded by the fake engine"})
        else:
            self._answer(404, {"message": "not served by the fake engine"})


@pytest.fixture
def engine(tmp_path):
    if DOCKER is None:
        pytest.fail("the docker CLI is needed (scripts/test.sh installs it)")
    path = str(tmp_path / "engine.sock")
    server = _Server(path, _Engine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, path
    server.shutdown()
    server.server_close()


def cli_body(engine, spec, *, tty, interactive):
    """The create body and query the real docker CLI sends for the launcher's argv."""
    server, path = engine
    argv = spec.docker_argv(tty=tty, interactive=interactive, docker=DOCKER)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DOCKER_HOST": f"unix://{path}",
        "DOCKER_CONFIG": os.path.dirname(path),
        **spec.secret_env(),
    }
    if tty:  # the CLI asks for a terminal on both ends, as in a person's shell
        primary, secondary = pty.openpty()
        try:
            done = subprocess.run(
                argv, env=env, stdin=secondary, stdout=secondary, stderr=subprocess.PIPE,
                timeout=60, check=False,
            )  # fmt: skip
        finally:
            os.close(secondary)
            os.close(primary)
    else:
        done = subprocess.run(
            argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False
        )
    assert server.created is not None, done.stderr.decode()
    return server.created["body"], server.created["query"]


# How the docker CLI writes "not set": -1 for the swappiness means the engine's default,
# exactly as an absent field does.
CLI_UNSET = {"HostConfig.MemorySwappiness": -1}
# Order that carries no meaning for the engine.
UNORDERED = {"Env"}


def zero(value):
    """An absent field, and a zero value (also nested), mean the same to the engine."""
    if isinstance(value, dict):
        return all(zero(v) for v in value.values())
    if isinstance(value, list):
        return all(zero(v) for v in value)
    return value in (None, "", 0, False)


def differences(ours, theirs, where=""):
    """Fields whose values differ between the module's body and the CLI's."""
    found = []
    for key in sorted(set(ours) | set(theirs)):
        here = f"{where}.{key}" if where else key
        mine, cli = ours.get(key), theirs.get(key)
        if here in CLI_UNSET and cli == CLI_UNSET[here] and mine is None:
            continue
        if here in UNORDERED and isinstance(mine, list) and isinstance(cli, list):
            mine, cli = sorted(mine), sorted(cli)
        if isinstance(mine, dict) and isinstance(cli, dict):
            found += differences(mine, cli, here)
        elif isinstance(mine, list) and isinstance(cli, list) and len(mine) == len(cli):
            for index, (a, b) in enumerate(zip(mine, cli)):
                if isinstance(a, dict) and isinstance(b, dict):
                    found += differences(a, b, f"{here}[{index}]")
                elif a != b:
                    found.append(f"{here}[{index}]: module {a!r} != docker CLI {b!r}")
        elif zero(mine) and zero(cli):
            continue
        elif mine != cli:
            found.append(f"{here}: module {mine!r} != docker CLI {cli!r}")
    return found


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home" / "alice"
    for sub in ("Coding", ".claude", "data"):
        (home / sub).mkdir(parents=True)
    (home / ".gitconfig").write_text("")
    return home


@pytest.fixture
def agent(tmp_path):
    path = tmp_path / "agent.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    yield str(path)
    server.close()


CASES = {
    "defaults": {},
    "limits and labels": {
        "memory": "512m",
        "memory_swap": "1g",
        "cpus": 1.5,
        "pids_limit": 64,
        "labels": {"io.kuatecno.devenv.test": "1", "team": "a=b"},
    },
    "mounts, credentials, writable root": {
        "read_only_rootfs": False,
        "credentials": [{"source": "~/.claude", "target": ".host-claude"}],
        "mounts": [{"source": "~/data", "target": "/data", "read_only": False}],
        "workdir": "/data",
        "command": ["claude", "--version"],
        "env": {"MODE": "fast"},
    },
    "as root": {"run_as_root": True, "container_home": "/root-home"},
    # The default is network: allowlist (the proxy's internal network, proxy variables,
    # resolver options); these are the two others.
    "network none": {"network": "none"},
    "network open, narrowed list": {"network": "open", "network_allow": ["github.com:22"]},
    "allow-list of the administrator": {
        "network_allow": ["*.example.com:443", "git.example.com:22"],
        "network_egress": "corp-egress",
    },
    "ephemeral agent state": {"ephemeral": True, "claude_nonessential_traffic": True},
    "agent state per code directory": {"agent_state": "code_dir"},
    # gVisor: the runtime, and the process limit kept by the sandbox's own kernel.
    "gvisor isolation": {"isolation": "gvisor", "pids_limit": 64},
}


STDIO = {"no stdin": (False, False), "stdin": (False, True), "terminal": (True, True)}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("stdio", sorted(STDIO))
def test_the_cli_argv_and_the_api_body_describe_the_same_container(
    engine, home, agent, case, stdio
):
    tty, interactive = STDIO[stdio]
    environ = {"SSH_AUTH_SOCK": agent} if case == "defaults" else {}
    host = Host(1000, 1000, "alice", str(home), 2, environ)
    settings = dict({"ssh": "auto" if environ else "none"}, **CASES[case])
    spec = build_spec(settings, secrets={"API_KEY": SECRET}, host=host)
    body, query = cli_body(engine, spec, tty=tty, interactive=interactive)
    ours = spec.engine_create_body(tty=tty, interactive=interactive)
    assert differences(ours, body) == []
    assert query["name"] == [spec.name]
    # The secret is in neither: it reaches the container through the start payload.
    assert SECRET not in json.dumps(body) and SECRET not in json.dumps(ours)
    assert body["Cmd"][:2] == ["/bin/sh", "-c"] and body["Cmd"][3] == "devenv-start"
    assert "/run/devenv" in body["HostConfig"]["Tmpfs"]


def test_a_property_on_one_side_only_is_found(engine, home):
    host = Host(1000, 1000, "alice", str(home), 2, {})
    spec = build_spec({"ssh": "none"}, host=host)
    body, _ = cli_body(engine, spec, tty=False, interactive=False)
    ours = spec.engine_create_body()
    ours["HostConfig"]["Privileged"] = True
    del ours["HostConfig"]["LogConfig"]
    found = differences(ours, body)
    assert any(d.startswith("HostConfig.Privileged") for d in found)
    assert any(d.startswith("HostConfig.LogConfig") for d in found)
