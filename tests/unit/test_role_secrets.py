"""The devenv_secrets role's pure parts, evaluated with Ansible's templating (no host).

OS maps (Linux and macOS), the install method, the download paths, which paths get
which mode, the classification of the passphrase probe and of the stat results for the
report, the private-key header, and the apt source file.

Values computed by the collection's filters are checked here as the role wires them (OS
map, defaults, state, earlier task results); the filters' own cases are in test_filters.py.
"""

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from role_templar import RoleVars, role_file  # noqa: E402

ROLE = "devenv_secrets"


@pytest.mark.parametrize(
    ("os_family", "expected"),
    [
        (
            "Debian",
            {
                "install_method": "apt",
                "root_group": "root",
                "home_base": "/home",
                "user_group": None,
                "accounts_from_getent": True,
            },
        ),
        (
            "Darwin",
            {
                "install_method": "homebrew",
                "root_group": "wheel",
                "home_base": "/Users",
                "user_group": "staff",
                "accounts_from_getent": False,
            },
        ),
    ],
)
def test_os_maps(os_family, expected):
    os_vars = RoleVars(ROLE, os_family=os_family)["_devenv_secrets_os"]
    for key, value in expected.items():
        assert os_vars[key] == value, key
    assert "/usr/bin/ssh-keygen" in os_vars["ssh_keygen_paths"]


def test_only_linux_and_macos_are_mapped():
    assert set(role_file(ROLE, "vars/main.yml")["_devenv_secrets_os_map"]) == {"Debian", "Darwin"}


@pytest.mark.parametrize(
    ("os_family", "method", "expected"),
    [
        ("Debian", "auto", "apt"),
        ("Darwin", "auto", "homebrew"),
        ("Debian", "binary", "binary"),
        ("Darwin", "none", "none"),
    ],
)
def test_install_method(os_family, method, expected):
    role_vars = RoleVars(ROLE, os_family=os_family, devenv_secrets_install_method=method)
    assert role_vars["_devenv_secrets_method"] == expected


@pytest.mark.parametrize(
    ("url", "archive", "download"),
    [
        (
            "https://h/infisical_0.43.94_linux_amd64.tar.gz",
            True,
            "infisical_0.43.94_linux_amd64.tar.gz",
        ),
        ("http://127.0.0.1:8471/cli.tgz?token=x", True, "cli.tgz"),
        ("https://h/releases/infisical", False, "infisical"),
        ("https://h/infisical.tar.gz.sig", False, "infisical.tar.gz.sig"),
    ],
)
def test_binary_download_paths(url, archive, download):
    role_vars = RoleVars(ROLE, devenv_secrets_binary_url=url)
    assert role_vars["_devenv_secrets_binary_is_archive"] is archive
    assert role_vars["_devenv_secrets_binary_download"] == "/var/cache/devenv-secrets/" + download
    assert role_vars["_devenv_secrets_binary_unpack_dir"] == (
        "/var/cache/devenv-secrets/infisical-0.43.94"
    )


def test_apt_pins_the_package_version():
    role_vars = RoleVars(ROLE, devenv_secrets_infisical_version="1.2.3")
    assert role_vars["_devenv_secrets_apt_package"] == "infisical=1.2.3"


def test_apt_source_accepts_only_the_pinned_key():
    text = RoleVars(ROLE).render("infisical.sources.j2")
    fields = dict(
        line.split(": ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert fields == {
        "Types": "deb",
        "URIs": "https://artifacts-cli.infisical.com/deb",
        "Suites": "stable",
        "Components": "main",
        "Signed-By": "/etc/apt/keyrings/devenv-infisical.asc",
    }


def test_modes():
    modes = role_file(ROLE, "vars/main.yml")["_devenv_secrets_modes"]
    assert modes == {
        "directory": "0700",
        "file": "0600",
        "private_key": "0600",
        "public_key": "0644",
    }


def _paths(**variables):
    variables.setdefault(
        "devenv_users",
        ["alice", {"name": "bob", "credential_paths": [{"path": ".aider.conf", "kind": "file"}]}],
    )
    role_vars = RoleVars(ROLE, os_family="Darwin", **variables)
    return [
        (p["user"], p["group"], p["kind"], p["path"]) for p in role_vars["_devenv_secrets_paths"]
    ]


def test_credential_paths_per_user():
    paths = _paths()
    alice = [p for p in paths if p[0] == "alice"]
    assert ("alice", "staff", "directory", "/Users/alice/.config/infisical") in alice
    assert ("alice", "staff", "file", "/Users/alice/infisical/.env") in alice
    assert ("alice", "staff", "file", "/Users/alice/.claude/.credentials.json") in alice
    assert ("alice", "staff", "file", "/Users/alice/.gemini/oauth_creds.json") in alice
    assert alice[-1] == ("alice", "staff", "directory", "/Users/alice/.ssh")
    # A record's credential_paths replaces the default list for that user.
    assert [p for p in paths if p[0] == "bob"] == [
        ("bob", "staff", "file", "/Users/bob/.aider.conf"),
        ("bob", "staff", "directory", "/Users/bob/.ssh"),
    ]


def test_parents_lead_from_the_home_to_each_path():
    role_vars = RoleVars(ROLE, devenv_users=[{"name": "a", "home": "/h"}], os_family="Darwin")
    parents = {p["path"]: p["parents"] for p in role_vars["_devenv_secrets_paths"]}
    assert parents["/h/.config/infisical"] == ["/h/.config"]
    assert parents["/h/.claude/.credentials.json"] == ["/h/.claude"]
    assert parents["/h/.claude.json"] == []
    assert "/h/.gemini" in role_vars["_devenv_secrets_parent_paths"]


def test_paths_below_a_symlink_are_not_safe():
    parent_stat = {
        "results": [
            {"item": "/h/.config", "stat": {"exists": True, "isdir": True}},
            {"item": "/h/infisical", "stat": {"exists": True, "isdir": True}},
            # ~/.claude is a link (to /etc, say): nothing below it may be touched.
            {"item": "/h/.claude", "stat": {"exists": True, "isdir": False, "islnk": True}},
            {"item": "/h/.gemini", "stat": {"exists": False}},
        ]
    }
    role_vars = RoleVars(
        ROLE,
        devenv_users=[{"name": "a", "home": "/h"}],
        os_family="Darwin",
        _devenv_secrets_parent_stat=parent_stat,
    )
    safe = role_vars["_devenv_secrets_safe_paths"]
    assert "/h/.config/infisical" in safe
    assert "/h/infisical/.env" in safe
    assert "/h/.claude" in safe  # the link itself is handled (left alone) by its own stat
    assert "/h/.claude/.credentials.json" not in safe
    assert "/h/.gemini/oauth_creds.json" not in safe


def test_ssh_is_skipped_when_not_managed():
    assert not any(p[3].endswith("/.ssh") for p in _paths(devenv_secrets_manage_ssh=False))


def test_linux_groups_come_from_getent():
    passwd = {"alice": ["x", "1000", "1234", "", "/srv/alice", "/bin/bash"]}
    role_vars = RoleVars(ROLE, devenv_users=["alice"], facts={"getent_passwd": passwd})
    first = role_vars["_devenv_secrets_paths"][0]
    assert (first["group"], first["path"]) == ("1234", "/srv/alice/.config/infisical")


def _stat(path, kind, **stat):
    return {"item": {"path": path, "kind": kind, "user": "u", "group": "g"}, "stat": stat}


def test_report_lists_missing_and_left_alone_paths():
    results = [
        _stat("/h/.ssh", "directory", exists=True, isdir=True, isreg=False, islnk=False),
        _stat("/h/.env", "file", exists=False),
        _stat("/h/.gemini", "directory", exists=True, isdir=False, isreg=False, islnk=True),
        _stat("/h/.claude.json", "file", exists=True, isdir=True, isreg=False, islnk=False),
        _stat("/h/.claude", "directory", exists=True, isdir=False, isreg=True, islnk=False),
        _stat("/h/.gemini/oauth_creds.json", "file", exists=True, isreg=True, islnk=False),
        {"item": {"path": "/h/x/.env", "kind": "file"}, "failed": True, "msg": "Not a directory"},
    ]
    safe = ["/h/.ssh", "/h/.env", "/h/.gemini", "/h/.claude.json", "/h/.claude"]
    role_vars = RoleVars(
        ROLE, _devenv_secrets_path_stat={"results": results}, _devenv_secrets_safe_paths=safe
    )
    assert role_vars["_devenv_secrets_missing"] == ["/h/.env"]
    assert role_vars["_devenv_secrets_left_alone"] == [
        "/h/.gemini (symlink)",
        "/h/.claude.json (not a regular file)",
        "/h/.claude (not a directory)",
        "/h/.gemini/oauth_creds.json (a parent is a symlink or not a directory)",
        "/h/x/.env (a parent is a symlink or not a directory)",
    ]
    assert role_vars["_devenv_secrets_ssh_dirs"] == [results[0]["item"]]


def test_passphrase_probe_classification():
    probe = {
        "results": [
            {"item": {"path": "/k/open"}, "rc": 0, "stderr": ""},
            {
                "item": {"path": "/k/protected"},
                "rc": 255,
                "stderr": "Load key: incorrect passphrase supplied to decrypt private key",
            },
            {"item": {"path": "/k/broken"}, "rc": 255, "stderr": "invalid format"},
            {"item": {"path": "/k/skipped"}, "skipped": True},
        ]
    }
    role_vars = RoleVars(ROLE, _devenv_secrets_passphrase_probe=probe)
    assert role_vars["_devenv_secrets_keys_without_passphrase"] == ["/k/open"]
    assert role_vars["_devenv_secrets_keys_unchecked"] == ["/k/broken"]


def test_ssh_keygen_is_the_first_found():
    found = {
        "results": [
            {"item": "/usr/bin/ssh-keygen", "stat": {"exists": False}},
            {"item": "/usr/local/bin/ssh-keygen", "stat": {"exists": True}},
        ]
    }
    assert RoleVars(ROLE, _devenv_secrets_ssh_keygen_stat=found)["_devenv_secrets_ssh_keygen"] == (
        "/usr/local/bin/ssh-keygen"
    )
    skipped = {"results": [{"item": "/usr/bin/ssh-keygen", "skipped": True}]}
    assert (
        RoleVars(ROLE, _devenv_secrets_ssh_keygen_stat=skipped)["_devenv_secrets_ssh_keygen"] == ""
    )


@pytest.mark.parametrize(
    ("line", "private"),
    [
        ("-----BEGIN OPENSSH PRIVATE KEY-----", True),
        ("-----BEGIN RSA PRIVATE KEY-----", True),
        ("-----BEGIN EC PRIVATE KEY-----", True),
        ("-----BEGIN PRIVATE KEY-----", True),
        ("-----BEGIN ENCRYPTED PRIVATE KEY-----", True),
        ("ssh-ed25519 AAAAC3Nza user@host", False),
        ("-----BEGIN PUBLIC KEY-----", False),
    ],
)
def test_private_key_header(line, private):
    header = role_file(ROLE, "vars/main.yml")["_devenv_secrets_private_key_header"]
    assert bool(re.search(header, line)) is private


def test_the_image_and_the_hosts_install_infisical_the_same_way():
    """Same repository, same signing-key format and file name, same pinned version."""
    image = role_file("devenv_image", "defaults/main.yml")
    hosts = role_file(ROLE, "defaults/main.yml")
    assert image["devenv_image_infisical_version"] == hosts["devenv_secrets_infisical_version"]
    for image_key, hosts_key in (
        ("repo_url", "apt_repo_url"),
        ("repo_suite", "apt_suite"),
        ("repo_components", "apt_components"),
        ("repo_key_url", "apt_key_url"),
        ("repo_key_checksum", "apt_key_checksum"),
    ):
        assert image[f"devenv_image_infisical_{image_key}"] == hosts[f"devenv_secrets_{hosts_key}"]
    image_vars = role_file("devenv_image", "vars/main.yml")
    hosts_vars = role_file(ROLE, "vars/main.yml")
    keyring = hosts_vars["_devenv_secrets_apt_keyring"]
    assert image_vars["_devenv_image_infisical_keyring"] == keyring
    assert (
        image_vars["_devenv_image_infisical_sources"] == hosts_vars["_devenv_secrets_apt_sources"]
    )
    # Infisical serves an ASCII-armoured key; apt before 3.0 takes the format from the file
    # name and ignores an armoured key saved as .gpg (tests/integration/test_secrets_apt.py).
    assert keyring.endswith(".asc")
    dockerfile = RoleVars(
        "devenv_image", _devenv_image_nodejs_from="distribution", devenv_image_infisical=True
    ).render("Dockerfile.j2")
    assert f"-o {keyring}" in dockerfile
    assert f"'Signed-By: {keyring}'" in dockerfile
    assert f"infisical={hosts['devenv_secrets_infisical_version']} " in dockerfile
    assert ".gpg " not in dockerfile.replace("infisical.gpg -o", "")


def test_the_binary_default_is_infisical_s_release_archive_for_the_host():
    for system, arch, asset in (
        ("Linux", "x86_64", "cli_0.43.94_linux_amd64.tar.gz"),
        ("Linux", "aarch64", "cli_0.43.94_linux_arm64.tar.gz"),
        ("Darwin", "arm64", "cli_0.43.94_darwin_arm64.tar.gz"),
    ):
        role_vars = RoleVars(ROLE, facts={"system": system, "architecture": arch})
        assert role_vars["devenv_secrets_binary_url"] == (
            f"https://github.com/Infisical/cli/releases/download/v0.43.94/{asset}"
        )
        assert role_vars["_devenv_secrets_binary_is_archive"] is True
