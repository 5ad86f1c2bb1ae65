"""The network policy on a host of its own (a test host with its own Docker engine 20.10,
Debian 12's, the version of the project's build machines), for what the shared engine of
the test machines must not be used for:

- the proxy and its networks survive a restart of the engine;
- on a host whose resolver listens on loopback (systemd-resolved, dnsmasq), the engine
  answers a container's lookups from the host's own namespace, also on an internal
  network (the control below shows it on this engine; moby fixed it in 26.0 and its
  backports); a devenv run's lookup of an outside name never reaches that resolver, so
  DNS carries nothing out;
- the devenv_launcher role installs the launcher with the network settings, and its
  `absent` state removes the proxies and the networks devenv created.

The launcher is installed by the role; the runs go through `devenv run` as a user of
that host. The proxy image is the one the image role built (tests/support/agent_image).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from agent_image import PROXY_REF  # noqa: E402
from roles_testhost import NESTED_ENGINE_20_10, EngineHost  # noqa: E402

BASE = "devenv-test/debian:13"
ALLOWED = "allowed.devenv.test"
OUTSIDE = "outside.devenv.test"
REFUSED = "refused-secret.devenv.test"
USER = "tester"

# A resolver on the host's loopback that records the names it is asked and answers that
# none exists (so nothing is ever connected to).
RECORDER = r"""
import socket
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 53))
while True:
    data, peer = sock.recvfrom(512)
    labels, i = [], 12
    while data[i]:
        labels.append(data[i + 1 : i + 1 + data[i]].decode("ascii", "replace"))
        i += data[i] + 1
    with open("/var/log/dns-queries", "a") as log:
        log.write(".".join(labels) + "\n")
    # The same id and question; response, recursion available, NXDOMAIN, no answers.
    sock.sendto(data[:2] + b"\x81\x83\x00\x01\x00\x00\x00\x00\x00\x00" + data[12 : i + 5], peer)
"""


def lookup(name):
    """A script that looks the name up and prints the address, or why it failed."""
    return (
        "import socket\n"
        "try:\n"
        f"    print(socket.getaddrinfo({name!r}, 80)[0][4][0])\n"
        "except OSError as exc:\n"
        "    print('failed', exc)\n"
    )


# Through the proxy: an allowed name it must look up, and a refused one it must not.
VIA_PROXY = (
    "import urllib.error, urllib.request\n"
    f"for url in ('http://{OUTSIDE}/', 'http://{REFUSED}/'):\n"
    "    try:\n"
    "        print(urllib.request.urlopen(url, timeout=20).status)\n"
    "    except urllib.error.HTTPError as exc:\n"
    "        print(exc.code)\n"
)

FETCH = (
    "import urllib.request\n"
    f"print(urllib.request.urlopen('http://{ALLOWED}/', timeout=20).status)\n"
)

VARS = {
    "devenv_users": [USER],
    # This host's resolver knows only the test's names, so no sudo can be installed from
    # the mirror; the user reaches the engine through the docker group (the door has its
    # own tests, tests/integration/test_door.py).
    "devenv_launcher_access": "docker_group",
    "devenv_launcher_image": BASE,
    "devenv_launcher_memory": "512m",
    "devenv_launcher_credentials": [],
    "devenv_launcher_gitconfig": "",
    "devenv_launcher_ssh": "none",
    # The stand-in (a name the engine knows), and one only the host's resolver could know.
    "devenv_launcher_network_allow": [f"{ALLOWED}:80", f"{OUTSIDE}:80"],
    "devenv_launcher_network_proxy_image": PROXY_REF,
}


@pytest.fixture(scope="module")
def host(agent_image, tmp_path_factory):
    """The test host with its own engine, the base and proxy images, a loopback resolver
    that records every query, and a user in the docker group."""
    # Built when missing (a minute), like the other test hosts' images.
    subprocess.run(
        [
            "docker",
            "build",
            "-q",
            "-t",
            NESTED_ENGINE_20_10,
            str(ROOT / "tests/images/debian-docker-12"),
        ],
        check=True,
        capture_output=True,
        timeout=900,
    )
    test_host = EngineHost("network", image=NESTED_ENGINE_20_10)
    try:
        test_host.load(BASE, PROXY_REF)
        test_host.sh(f"useradd -m -s /bin/bash -G docker {USER}")
        script = Path(tmp_path_factory.mktemp("recorder")) / "recorder.py"
        script.write_text(RECORDER)
        test_host.copy_in(script, "/opt/recorder.py")
        test_host.sh("touch /var/log/dns-queries && chmod 0644 /var/log/dns-queries")
        subprocess.run(
            [
                "docker",
                "exec",
                "--detach",
                test_host.name,
                "sh",
                "-c",
                "python3 /opt/recorder.py >/var/log/recorder.log 2>&1",
            ],
            check=True,
            timeout=60,
        )
        test_host.sh("printf 'nameserver 127.0.0.1\\n' > /etc/resolv.conf")
        yield test_host
    finally:
        test_host.remove()


def queries(host):
    return host.read("/var/log/dns-queries").split()


def devenv(host, script, *args):
    done = host.sh(
        f"cd ~ && devenv run {' '.join(args)} -- python3 -c {shlex.quote(script)}",
        check=False,
        user=USER,
    )
    return done.returncode, done.stdout, done.stderr


def restart_engine(host):
    host.sh("kill $(cat /var/run/docker.pid)")
    for _ in range(120):
        if host.sh("test -e /var/run/docker.pid", check=False).returncode != 0:
            break
        time.sleep(0.5)
    host.sh("rm -f /var/run/docker.pid")
    subprocess.run(
        [
            "docker",
            "exec",
            "--detach",
            host.name,
            "sh",
            "-c",
            "dockerd >>/var/log/dockerd.log 2>&1",
        ],
        check=True,
        timeout=60,
    )
    for _ in range(120):
        if host.sh("docker info >/dev/null 2>&1", check=False).returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError(
        "the engine did not come back:\n" + host.out("tail -n 20 /var/log/dockerd.log")
    )


def proxies(host):
    return host.out(
        "docker ps -a --filter label=io.kuatecno.devenv.proxy --format '{{.Names}} {{.State}}'"
    ).splitlines()


def test_dns_restart_and_removal_on_a_host_of_its_own(host, tmp_path):
    # The trap, shown on this engine: an internal network alone does not stop a lookup
    # from reaching the host's loopback resolver.
    host.sh(
        "docker network create --internal -o com.docker.network.bridge.inhibit_ipv4=true control"
    )
    script = shlex.quote(lookup("control-leak.devenv.test"))
    done = host.sh(f"docker run --rm --network control {BASE} python3 -c {script}", check=False)
    assert "control-leak.devenv.test" in queries(host), done.stdout + done.stderr
    host.sh("docker network rm control")

    run = host.playbook("launcher_role.yml", VARS, tmp_path)
    assert run.rc == 0, run
    config = json.loads(host.read("/etc/devenv/config.json"))
    assert config["network_allow"] == [f"{ALLOWED}:80", f"{OUTSIDE}:80"]
    assert config["network_proxy_image"] == PROXY_REF and "network" not in config

    # A devenv run (network: allowlist): the lookup fails and the host's resolver is
    # never asked, so nothing can be carried out in a query name.
    rc, out, err = devenv(host, lookup("secret-data.devenv.test"))
    assert rc == 0, err
    assert out.startswith("failed"), out
    assert "secret-data.devenv.test" not in queries(host)
    assert "was created for this run" in err
    # The proxy looks up an allowed name through the host's resolver (it says there is
    # none: 503), and never a refused one (403), so that cannot leak through it either.
    rc, out, err = devenv(host, VIA_PROXY)
    assert (rc, out.split()) == (0, ["503", "403"]), err
    assert OUTSIDE in queries(host)
    assert REFUSED not in queries(host)
    assert f"{REFUSED}:80" in err

    # The allowed stand-in on the egress network devenv created; a request through the
    # proxy reaches it.
    host.sh(
        f"docker run -d --name allowed --network devenv-egress --network-alias {ALLOWED} "
        f"{BASE} python3 -m http.server 80"
    )
    time.sleep(1)
    rc, out, err = devenv(host, FETCH)
    assert (rc, out.strip()) == (0, "200"), err
    assert "was created" not in err and "was started" not in err

    # The engine restarts: the proxy comes back by itself (restart policy), the networks
    # are still there, and the next run needs nothing from the launcher.
    before = proxies(host)
    restart_engine(host)
    for _ in range(60):
        if proxies(host) == [p.replace("exited", "running") for p in before]:
            break
        time.sleep(0.5)
    assert all(p.endswith(" running") for p in proxies(host)), proxies(host)
    host.sh("docker start allowed")
    time.sleep(1)
    rc, out, err = devenv(host, FETCH)
    assert (rc, out.strip()) == (0, "200"), err
    assert "was created" not in err and "was started" not in err

    # absent removes the proxies, their networks and the egress network.
    run = host.playbook("launcher_role.yml", dict(VARS, devenv_launcher_state="absent"), tmp_path)
    assert run.rc == 0, run
    assert proxies(host) == []
    networks = host.out("docker network ls --format '{{.Name}}'").split()
    assert not [n for n in networks if n.startswith("devenv-")], networks
    assert not host.exists("/usr/local/bin/devenv")
