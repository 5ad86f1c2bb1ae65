"""The devenv_secrets role with ansible-playbook against a disposable Debian 13 host.

The binary install is served by an HTTP server on the test host's own loopback
(127.0.0.1 inside the container): a real tar.gz holding the Infisical stand-in
(tests/support/infisical) as `infisical`. Steps in order: a wrong checksum fails before
anything is installed or changed; converge installs the CLI and fixes deliberately wrong
credential modes, reports missing paths without creating them, leaves a symlink alone
and reports the key without a passphrase; a second run and check mode change nothing;
the passphrase requirement fails the play; the apt path passes check mode without
touching the network; a missing ssh-keygen is reported.
"""

import hashlib
import io
import sys
import tarfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from roles_testhost import TestHost  # noqa: E402

PLAYBOOK = "secrets_role.yml"
STAND_IN = ROOT / "tests" / "support" / "infisical"
ARCHIVE = "cli_0.43.94_linux_amd64.tar.gz"  # as Infisical names its release archives
PORT = 8471
BINARY = "/usr/local/bin/infisical"
CACHE = "/var/cache/devenv-secrets"

# Deliberately wrong modes, fixed by the role: path -> (mode set up, mode expected).
ALICE_PATHS = {
    "/home/alice/.config/infisical": ("0755", "700"),
    "/home/alice/infisical/.env": ("0644", "600"),
    "/home/alice/.claude": ("0777", "700"),
    "/home/alice/.claude/.credentials.json": ("0644", "600"),
    "/home/alice/.claude.json": ("0666", "600"),
    "/home/alice/.ssh": ("0755", "700"),
    "/home/alice/.ssh/id_ed25519": ("0644", "600"),
    "/home/alice/.ssh/work_key": ("0640", "600"),
    "/home/alice/.ssh/deploy": ("0644", "600"),
    "/home/alice/.ssh/id_ed25519.pub": ("0600", "644"),
    "/home/alice/.ssh/work_key.pub": ("0664", "644"),
}
# Paths the role looks for that do not exist for bob: reported, never created.
BOB_MISSING = (
    "/home/bob/.config/infisical",
    "/home/bob/infisical/.env",
    "/home/bob/.claude.json",
    "/home/bob/.gemini",
    "/home/bob/.ssh",
)
# bob's ~/.claude is a link to a root-only directory: nothing below it may be touched.
TRAP = "/etc/devenv-trap"


def _archive_bytes():
    """A real release-like archive: the stand-in as the `infisical` member, mode 0755."""
    data = STAND_IN.read_bytes()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("infisical")
        info.size, info.mode, info.mtime = len(data), 0o755, 1700000000
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    path = tmp_path_factory.mktemp("secrets-dl") / ARCHIVE
    path.write_bytes(_archive_bytes())
    return path


@pytest.fixture(scope="module")
def host(archive):
    test_host = TestHost("secrets-role")
    try:
        test_host.apt_install("openssh-client")
        test_host.sh("useradd -m -s /bin/bash alice && useradd -m -s /bin/bash bob")
        test_host.sh(
            "set -e; h=/home/alice; "
            "mkdir -p $h/.ssh $h/.config/infisical $h/infisical $h/.claude; "
            "echo 'ENCRYPTION_KEY=not-a-real-key' > $h/infisical/.env; "
            "echo '{}' > $h/.claude/.credentials.json; echo '{}' > $h/.claude.json; "
            "ssh-keygen -q -t ed25519 -N '' -C nopass -f $h/.ssh/id_ed25519; "
            "ssh-keygen -q -t ed25519 -N 'a passphrase' -C withpass -f $h/.ssh/work_key; "
            "ssh-keygen -q -t rsa -b 2048 -m PEM -N 'another one' -f $h/.ssh/deploy; "
            "rm $h/.ssh/deploy.pub; "
            "ln -s /etc/hostname $h/.gemini; "
            "chown -R alice:alice $h"
        )
        for path, (mode, _) in ALICE_PATHS.items():
            test_host.sh(f"chmod {mode} {path}")
        test_host.sh(
            f"mkdir -m 0700 {TRAP} && echo root-only > {TRAP}/.credentials.json && "
            f"chmod 0600 {TRAP}/.credentials.json && ln -s {TRAP} /home/bob/.claude && "
            "chown -h bob:bob /home/bob/.claude"
        )
        # Root-owned by mistake: the role gives it back to alice.
        test_host.sh("chown root:root /home/alice/.claude.json")
        # The download server, on the test host's own loopback.
        test_host.sh("mkdir -p /srv/dl")
        test_host.copy_in(archive, f"/srv/dl/{ARCHIVE}")
        test_host.sh(
            f"nohup python3 -m http.server {PORT} --bind 127.0.0.1 --directory /srv/dl "
            ">/var/log/dl.log 2>&1 &"
        )
        test_host.sh(
            'for i in $(seq 50); do python3 -c "import urllib.request as u; '
            f"u.urlopen('http://127.0.0.1:{PORT}/')\" 2>/dev/null && exit 0; sleep 0.1; done; "
            "exit 1"
        )
        test_host.before = test_host.files_under("/home", "/usr/local", "/var/cache", "/etc/apt")
        yield test_host
    finally:
        test_host.remove()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("secrets-role")


@pytest.fixture(scope="module")
def binary_vars(archive):
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    return {
        "devenv_users": ["alice", "bob"],
        "devenv_secrets_install_method": "binary",
        "devenv_secrets_binary_url": f"http://127.0.0.1:{PORT}/{ARCHIVE}",
        "devenv_secrets_binary_checksum": f"sha256:{digest}",
    }


def test_wrong_checksum_fails_before_anything_is_installed(host, workdir, binary_vars):
    wrong = dict(binary_vars, devenv_secrets_binary_checksum="sha256:" + "0" * 64)
    run = host.playbook(PLAYBOOK, wrong, workdir)
    assert run.rc != 0, run
    assert "did not match" in run.output, run
    assert not host.exists(BINARY)
    # Only the (empty, root-only) cache directory may exist; no download was kept.
    assert host.out(f"ls -A {CACHE}") == ""
    assert host.stat(CACHE) == ("root", "root", "700")
    # The play stopped before touching any credential.
    for path, (mode, _) in ALICE_PATHS.items():
        assert host.stat(path)[2] == mode.lstrip("0"), path


def test_converge_installs_the_verified_cli(host, workdir, binary_vars):
    run = host.playbook(PLAYBOOK, binary_vars, workdir)
    host.converge_output = run.output
    assert run.rc == 0, run
    assert host.stat(BINARY) == ("root", "root", "755")
    installed = host.out(f"sha256sum {BINARY}").split()[0]
    assert installed == hashlib.sha256(STAND_IN.read_bytes()).hexdigest()
    assert host.stat(CACHE) == ("root", "root", "700")
    # The stand-in answers like the CLI: not logged in without a token.
    assert host.sh(f"{BINARY} export --format json", check=False, user="alice").returncode == 1


def test_converge_fixes_credential_modes_and_owners(host):
    for path, (_, expected) in ALICE_PATHS.items():
        assert host.stat(path) == ("alice", "alice", expected), path


def test_missing_credentials_are_reported_not_created(host):
    output = host.converge_output
    assert "do not exist (not created)" in output
    for path in BOB_MISSING:
        assert path in output, path
        assert not host.exists(path), path
    assert "/home/alice/.gemini/oauth_creds.json" in output


def test_symlinked_credentials_are_left_alone_and_reported(host):
    assert "/home/alice/.gemini (symlink)" in host.converge_output
    assert host.out("readlink /home/alice/.gemini").strip() == "/etc/hostname"
    assert host.stat("/etc/hostname")[:2] == ("root", "root")


def test_nothing_below_a_symlinked_directory_is_touched(host):
    assert "/home/bob/.claude (symlink)" in host.converge_output
    assert "/home/bob/.claude/.credentials.json (a parent is a symlink" in host.converge_output
    assert host.stat(f"{TRAP}/.credentials.json") == ("root", "root", "600")
    assert host.stat(TRAP) == ("root", "root", "700")


def test_key_without_passphrase_is_reported(host):
    line = next(
        line
        for line in host.converge_output.splitlines()
        if '"msg": "SSH private keys without a passphrase' in line
    )
    assert "/home/alice/.ssh/id_ed25519" in line
    assert "work_key" not in line and "deploy" not in line
    assert "ssh-keygen could not read them" not in host.converge_output


def test_no_file_content_appears_in_the_output(host):
    assert "not-a-real-key" not in host.converge_output
    assert "PRIVATE KEY" not in host.converge_output
    assert "ssh-ed25519 " not in host.converge_output


def test_second_run_changes_nothing(host, workdir, binary_vars):
    run = host.playbook(PLAYBOOK, binary_vars, workdir)
    assert run.rc == 0, run
    assert run.changed == 0, run


def test_check_mode_on_the_provisioned_host_changes_nothing(host, workdir, binary_vars):
    run = host.playbook(PLAYBOOK, binary_vars, workdir, check=True, diff=True)
    assert run.rc == 0, run
    assert run.changed == 0, run
    assert "not-a-real-key" not in run.output


def test_required_passphrase_fails_the_play(host, workdir, binary_vars):
    run = host.playbook(
        PLAYBOOK, dict(binary_vars, devenv_secrets_require_key_passphrase=True), workdir
    )
    assert run.rc != 0, run
    fatal = "\n".join(line for line in run.output.splitlines() if line.startswith("fatal:"))
    assert "/home/alice/.ssh/id_ed25519" in fatal
    assert "work_key" not in fatal


def test_apt_path_passes_check_mode_without_the_network(host, workdir):
    before = host.files_under("/etc/apt")
    run = host.playbook(
        PLAYBOOK,
        {"devenv_users": ["alice"], "devenv_secrets_install_method": "apt"},
        workdir,
        check=True,
    )
    assert run.rc == 0, run
    assert "Would download Infisical's apt signing key" in run.output
    assert run.changed >= 2, run
    assert host.files_under("/etc/apt") == before


def test_none_installs_nothing(host, workdir):
    before = host.files_under("/usr/local", "/var/cache", "/etc/apt")
    run = host.playbook(
        PLAYBOOK, {"devenv_users": ["alice"], "devenv_secrets_install_method": "none"}, workdir
    )
    assert run.rc == 0 and run.changed == 0, run
    assert host.files_under("/usr/local", "/var/cache", "/etc/apt") == before


def test_missing_ssh_keygen_is_reported_and_fails_when_required(host, workdir):
    host.sh("mv /usr/bin/ssh-keygen /usr/bin/ssh-keygen.away")
    try:
        settings = {"devenv_users": ["alice"], "devenv_secrets_install_method": "none"}
        run = host.playbook(PLAYBOOK, settings, workdir)
        assert run.rc == 0, run
        assert "ssh-keygen is not installed" in run.output
        run = host.playbook(
            PLAYBOOK, dict(settings, devenv_secrets_require_key_passphrase=True), workdir
        )
        assert run.rc != 0, run
        fatal = [line for line in run.output.splitlines() if line.startswith("fatal:")]
        assert fatal and "could not be checked" in fatal[0], run
        assert "/home/alice/.ssh/id_ed25519" in fatal[0]
    finally:
        host.sh("mv /usr/bin/ssh-keygen.away /usr/bin/ssh-keygen")
