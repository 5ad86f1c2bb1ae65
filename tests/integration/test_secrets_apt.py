"""The apt method of devenv_secrets against a stand-in of Infisical's repository.

Infisical's repository cannot be reached from here, so the test host serves one with the
same layout on its own loopback (tests/support/infisical_apt_repo.py): an
ASCII-armoured signing key named `infisical.gpg` as Infisical names it, a signed `stable`
suite, and the Infisical CLI stand-in packaged as `infisical` 0.43.94 and 0.43.95. The
role must install the pinned 0.43.94 through a source restricted to that key (kept as
`.asc`), change nothing on a second run; and apt must refuse the same armoured key
saved as `.gpg`, the mistake the image role used to make.

The host is Debian 12: its apt (2.6, like Ubuntu 24.04's 2.7, the image's default base)
reads a key file's format from its name and refuses the armoured key saved as `.gpg`;
apt 3.0 (Debian 13, verifying with sqv) accepts both names.
"""

import hashlib
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from roles_testhost import TestHost  # noqa: E402

PLAYBOOK = "secrets_role.yml"
PORT = 8472
KEYRING = "/etc/apt/keyrings/devenv-infisical.asc"
SOURCES = "/etc/apt/sources.list.d/devenv-infisical.sources"


@pytest.fixture(scope="module")
def host():
    test_host = TestHost("secrets-apt", image="devenv-test/debian:12")
    try:
        test_host.apt_install("gpg", "gpg-agent")
        test_host.copy_in(ROOT / "tests/support/infisical", "/tmp/infisical-stand-in")
        test_host.copy_in(ROOT / "tests/support/infisical_apt_repo.py", "/tmp/apt_repo.py")
        test_host.sh(
            f"python3 /tmp/apt_repo.py /tmp/infisical-stand-in /srv/infisical {PORT} "
            "0.43.94 0.43.95"
        )
        yield test_host
    finally:
        test_host.remove()


@pytest.fixture(scope="module")
def apt_vars(host):
    key = host.out("cat /srv/infisical/infisical.gpg")
    assert key.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")  # armoured, like Infisical's
    return {
        "devenv_users": [],
        "devenv_secrets_install_method": "apt",
        "devenv_secrets_apt_repo_url": f"http://127.0.0.1:{PORT}/deb",
        "devenv_secrets_apt_key_url": f"http://127.0.0.1:{PORT}/infisical.gpg",
        "devenv_secrets_apt_key_checksum": "sha256:" + hashlib.sha256(key.encode()).hexdigest(),
    }


def test_apt_installs_the_pinned_version_through_the_signed_repository(host, apt_vars, tmp_path):
    run = host.playbook(PLAYBOOK, apt_vars, tmp_path)
    assert run.rc == 0, run
    assert host.out("dpkg-query -W -f '${Version}' infisical") == "0.43.94"  # not 0.43.95
    assert host.stat(KEYRING) == ("root", "root", "644")
    assert host.read(KEYRING).startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    sources = host.read(SOURCES)
    assert f"Signed-By: {KEYRING}" in sources and f"URIs: http://127.0.0.1:{PORT}/deb" in sources
    # The installed program is the packaged CLI (the stand-in's export contract).
    exported = host.sh(
        "INFISICAL_TOKEN=t infisical export --format=json --projectId=p", check=False
    )
    assert exported.returncode == 0 and '"key": "DEVENV_CANARY"' in exported.stdout
    again = host.playbook(PLAYBOOK, apt_vars, tmp_path)
    assert again.rc == 0 and again.changed == 0, again


def test_apt_ignores_the_same_armoured_key_saved_as_gpg(host):
    """What the image role did before: the key downloaded as infisical.gpg, unchanged."""
    host.sh(
        f"mv {SOURCES} /tmp/role.sources && cp {KEYRING} /etc/apt/keyrings/wrong.gpg && "
        f"sed 's#{KEYRING}#/etc/apt/keyrings/wrong.gpg#' /tmp/role.sources > {SOURCES}"
    )
    try:
        # Forget what was fetched with the right key, so the signature is checked again.
        update = host.sh("rm -f /var/lib/apt/lists/127.0.0.1* && apt-get update 2>&1", check=False)
    finally:
        host.sh(f"mv /tmp/role.sources {SOURCES} && rm -f /etc/apt/keyrings/wrong.gpg")
    shown = update.stdout + update.stderr
    assert f"The repository 'http://127.0.0.1:{PORT}/deb stable InRelease' is not signed" in shown
    assert "NO_PUBKEY" in shown, shown
    # With the key as the role keeps it, the same repository is trusted again.
    fixed = host.sh("rm -f /var/lib/apt/lists/127.0.0.1* && apt-get update 2>&1", check=False)
    assert fixed.returncode == 0 and "not signed" not in fixed.stdout, fixed.stdout
