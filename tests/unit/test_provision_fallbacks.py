"""scripts/provision.sh's choice of fallbacks (scripts/lib/provision_fallbacks.py).

The probes run against a local HTTP server (reachable, answering as a registry does)
and a port where nothing listens (unreachable); the written file is read back by
ansible-inventory together with the default inventory, so the fallbacks are seen to
apply, and to lose against a setting of the user's own.
"""

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "lib" / "provision_fallbacks.py"
sys.path.insert(0, str(SCRIPT.parent))
import provision_fallbacks as pf  # noqa: E402


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        # A registry's /v2/ answers 401 to an anonymous client: still reachable.
        self.send_response(401 if self.path.startswith("/v2/") else 200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


@pytest.fixture
def closed():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_reachable(server, closed):
    assert pf.reachable(server + "/v2/") is True
    assert pf.reachable(server + "/deb/dists/stable/Release") is True
    assert pf.reachable(closed, timeout=2) is False
    assert pf.reachable("not a url") is False


@pytest.mark.parametrize(
    ("probes", "expected"),
    [
        ({"base_present": False, "registry": True, "infisical": True, "ca_files": []}, {}),
        ({"base_present": True, "registry": False, "infisical": True, "ca_files": []}, {}),
        (
            {"base_present": False, "registry": False, "infisical": True, "ca_files": []},
            {"devenv_image_base": "devenv-local/debian:13"},
        ),
        (
            {"base_present": False, "registry": True, "infisical": False, "ca_files": ["/c/b.crt"]},
            {
                "devenv_image_infisical": False,
                "devenv_secrets_install_method": "none",
                "devenv_image_ca_certificates": ["/c/b.crt"],
            },
        ),
    ],
)
def test_decide(probes, expected):
    settings, reasons = pf.decide(**probes)
    assert settings == expected
    assert len(reasons) == len({k for k in expected if k != "devenv_secrets_install_method"})


def _write(tmp_path, environ):
    out = tmp_path / "fallbacks.yml"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(out)],
        env=dict(os.environ, DEVENV_PROBE_BASE="devenv-test/no-such-image:0", **environ),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out, done.stderr


def _inventory(tmp_path, *sources):
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-inventory")),
            *(arg for source in sources for arg in ("-i", str(source))),
            "--host",
            "localhost",
        ],
        cwd=tmp_path,
        env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)


def test_an_unreachable_machine_gets_the_local_fallbacks(tmp_path, server, closed):
    cas = tmp_path / "ca"
    cas.mkdir()
    (cas / "proxy.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    out, said = _write(
        tmp_path,
        {
            "DEVENV_PROBE_REGISTRY_URL": closed,
            "DEVENV_PROBE_INFISICAL_URL": closed,
            "DEVENV_PROBE_CA_DIR": str(cas),
        },
    )
    assert yaml.safe_load(out.read_text())["all"]["vars"] == {
        "devenv_image_base": "devenv-local/debian:13",
        "devenv_image_infisical": False,
        "devenv_secrets_install_method": "none",
        "devenv_image_ca_certificates": [str(cas / "proxy.crt")],
    }
    assert "no container registry answers" in said and "Infisical" in said
    # Read with the default inventory as provision.sh does: the fallbacks apply to
    # localhost, and a setting in the user's own host_vars wins over them.
    seen = _inventory(tmp_path, ROOT / "inventory" / "localhost.yml", out)
    assert seen["devenv_image_base"] == "devenv-local/debian:13"
    mine = tmp_path / "inventory"
    shutil.copytree(ROOT / "inventory", mine)
    (mine / "host_vars").mkdir(exist_ok=True)
    (mine / "host_vars" / "localhost.yml").write_text("---\ndevenv_image_base: debian:13\n")
    seen = _inventory(tmp_path, mine / "localhost.yml", out)
    assert seen["devenv_image_base"] == "debian:13"
    assert seen["devenv_secrets_install_method"] == "none"


def test_a_machine_that_reaches_everything_gets_the_defaults(tmp_path, server):
    out, said = _write(
        tmp_path,
        {
            "DEVENV_PROBE_REGISTRY_URL": server + "/v2/",
            "DEVENV_PROBE_INFISICAL_URL": server + "/deb/dists/stable/Release",
            "DEVENV_PROBE_CA_DIR": str(tmp_path / "none"),
        },
    )
    assert yaml.safe_load(out.read_text())["all"]["vars"] == {}
    assert "no fallback" in said
    seen = _inventory(tmp_path, ROOT / "inventory" / "localhost.yml", out)
    assert "devenv_image_base" not in seen
