"""The devenv_launcher role with ansible-playbook against a disposable Debian 13 host.

One host for the module, steps in order: a bad limit fails before anything is written,
check mode on the fresh host writes nothing, converge (program, library, configuration,
code directories, dev blocks with owners and modes; `dev` is a function in bash and
zsh), a second run and a check-mode run change nothing, and state=absent removes exactly
what the role installed.
"""

import hashlib
import json
import re
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
import install_launcher  # noqa: E402
from roles_testhost import TestHost  # noqa: E402

MODULE_UTILS = ROOT / "collections" / "devenv" / "plugins" / "module_utils"
LIB_FILES = install_launcher.launcher_files()
PLAYBOOK = "launcher_role.yml"
ALICE_BASHRC = "# alice's own settings\nexport KEEP=1\nalias ll='ls -l'\n"
MARKER_BEGIN = "# BEGIN devenv: dev shell function (managed by Ansible)"
PROGRAM = "/usr/local/bin/devenv"
COMPLETION = "/usr/local/share/devenv/completion"
PTY_SHELL = ROOT / "tests" / "support" / "pty_shell.py"
LIB = "/usr/local/lib/devenv/devenv_lib"
CONFIG = "/etc/devenv/config.json"
WATCHED = ("/usr/local", "/etc", "/home", "/srv")

VARS = {
    "devenv_users": [
        "alice",
        {"name": "bob", "code_dir": "/srv/bob/code", "credentials": []},
    ],
    "devenv_launcher_memory": "3g",
    "devenv_launcher_secrets_provider": "infisical",
    "devenv_launcher_infisical_project_id": "proj-123",
    "devenv_launcher_infisical_domain": "https://secrets.example.invalid",
}


@pytest.fixture(scope="module")
def host():
    test_host = TestHost("launcher-role")
    try:
        test_host.apt_install("zsh", "sudo")
        test_host.sh(
            "useradd -m -s /bin/bash alice && useradd -m -s /usr/bin/zsh bob && "
            "rm -f /home/bob/.bashrc && mkdir -p /srv/bob && chown bob: /srv/bob"
        )
        test_host.sh(
            f"printf %s {_sh_quote(ALICE_BASHRC)} > /home/alice/.bashrc && "
            "chown alice:alice /home/alice/.bashrc && chmod 0600 /home/alice/.bashrc"
        )
        test_host.before = test_host.files_under(*WATCHED)
        yield test_host
    finally:
        test_host.remove()


def _sh_quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("launcher-role")


def test_bad_limit_fails_the_play_before_anything_is_written(host, workdir):
    run = host.playbook(PLAYBOOK, dict(VARS, devenv_launcher_cpus=64.0), workdir)
    assert run.rc != 0, run
    assert "cpus" in run.output and "64" in run.output, run
    assert run.changed == 0, run
    assert host.files_under(*WATCHED) == host.before
    assert host.read("/home/alice/.bashrc") == ALICE_BASHRC


def test_check_mode_on_a_fresh_host_writes_nothing(host, workdir):
    run = host.playbook(PLAYBOOK, VARS, workdir, check=True, diff=True)
    assert run.rc == 0, run
    assert run.changed > 0, run
    assert host.files_under(*WATCHED) == host.before


def _sources():
    """Digest of the collection files the role copies (other work may change them)."""
    return {
        name: hashlib.sha256((MODULE_UTILS / name).read_bytes()).hexdigest() for name in LIB_FILES
    }


def test_converge_installs_program_library_and_configuration(host, workdir):
    host.sources = _sources()
    run = host.playbook(PLAYBOOK, VARS, workdir)
    assert run.rc == 0, run
    assert host.stat(PROGRAM) == ("root", "root", "755")
    assert host.read(PROGRAM).startswith("#!/usr/bin/python3 -IBS\n")
    assert host.stat(LIB) == ("root", "root", "755")
    assert host.out(f"ls -A {LIB}").split() == sorted([*LIB_FILES, "__pycache__"])
    # Compiled once by the role, writable by root only, one file per library file.
    assert host.stat(f"{LIB}/__pycache__") == ("root", "root", "755")
    compiled = host.out(f"stat -c '%U %G %a %n' {LIB}/__pycache__/*.pyc").splitlines()
    assert len(compiled) == len(LIB_FILES)
    assert all(line.startswith("root root 644 ") for line in compiled)
    for name in LIB_FILES:
        assert host.stat(f"{LIB}/{name}") == ("root", "root", "644")
        installed = host.out(f"sha256sum {LIB}/{name}").split()[0]
        assert installed == host.sources[name]
    assert host.stat(CONFIG) == ("root", "root", "644")
    config = json.loads(host.read(CONFIG))
    # Only what the administrator set is written; the rest stays the run specification's
    # default (which may depend on the host, like the CPUs).
    assert config["memory"] == "3g"
    for unset in (
        "image",
        "cpus",
        "pids_limit",
        "memory_swap",
        "network",
        "network_allow",
        "ssh",
        "gitconfig",
        "agent_state",
    ):
        assert unset not in config, unset
    assert config["limits_max"] == {"memory": "8g", "cpus": 2.0, "pids_limit": 200}
    assert config["code_dir"] == "~/Coding"
    # The host's own agent files are not mounted: devenv keeps the agents' state.
    assert config["credentials"] == []
    assert config["secrets"]["provider"] == "infisical"
    assert config["secrets"]["project_id"] == "proj-123"
    assert config["users"] == {"bob": {"code_dir": "/srv/bob/code", "credentials": []}}
    # The installed launcher accepts its own configuration.
    assert host.sh(f"{PROGRAM} config --check {CONFIG}", user="alice").returncode == 0
    # The completion scripts are the installed launcher's own, writable by root only.
    for shell in ("bash", "zsh"):
        assert host.stat(f"{COMPLETION}.{shell}") == ("root", "root", "644")
        assert host.read(f"{COMPLETION}.{shell}") == host.out(f"{PROGRAM} completion {shell}")


def test_converge_opens_the_sudo_door_for_the_users_only(host):
    # One rule, root-owned, read-only, accepted by visudo; the users are in its group and
    # not in the root-equivalent docker group.
    assert host.stat("/etc/sudoers.d/devenv") == ("root", "root", "440")
    assert host.sh("visudo -cf /etc/sudoers.d/devenv").returncode == 0
    for user in ("alice", "bob"):
        groups = host.out(f"id -nG {user}").split()
        assert "devenv" in groups and "docker" not in groups, groups
    rules = host.out("sudo -l -U alice")
    assert f"(root) NOPASSWD: {PROGRAM}" in rules
    # Nothing else may be run as root through it.
    other = host.sh("su - alice -c 'sudo -n /bin/true'", check=False)
    assert other.returncode != 0


def test_converge_creates_missing_code_directories(host):
    assert host.stat("/home/alice/Coding") == ("alice", "alice", "700")
    assert host.stat("/srv/bob/code") == ("bob", "bob", "700")


def test_dev_blocks_keep_existing_content_owner_and_mode(host):
    bashrc = host.read("/home/alice/.bashrc")
    assert bashrc.startswith(ALICE_BASHRC)
    assert bashrc.count(MARKER_BEGIN) == 1
    assert f'dev() {{ sudo -n "{PROGRAM}" run "$@"; }}' in bashrc
    assert host.stat("/home/alice/.bashrc") == ("alice", "alice", "600")
    # Missing files are created, owned by the user, 0644; zsh is installed, so every
    # user gets ~/.zshrc too.
    for path, owner in (
        ("/home/bob/.bashrc", "bob"),
        ("/home/bob/.zshrc", "bob"),
        ("/home/alice/.zshrc", "alice"),
    ):
        assert host.stat(path) == (owner, owner, "644"), path
        assert host.read(path).count(MARKER_BEGIN) == 1, path


def test_dev_is_a_thin_function_in_bash_and_zsh(host):
    bash = host.sh("su - alice -c \"bash -ic 'type dev'\" 2>/dev/null").stdout
    assert "dev is a function" in bash
    assert f'sudo -n "{PROGRAM}" run "$@"' in bash
    zsh = host.sh("su - bob -c \"zsh -ic 'whence -f dev'\" 2>/dev/null").stdout
    assert zsh.startswith("dev () {"), zsh
    assert f'sudo -n "{PROGRAM}" run "$@"' in zsh
    help_text = host.sh("su - alice -c \"bash -ic 'dev --help'\" 2>/dev/null", check=False)
    assert "devenv run" in help_text.stdout + help_text.stderr


# What a person types (\\t is TAB) and the words the line holds afterwards. The test
# then presses Ctrl-A, types `printf '<%s>\\n' ` and Enter, so the shell itself prints
# the completed line word by word, whatever its line editor drew on the way.
COMPLETIONS = [
    ("devenv ru\\t", ["devenv", "run"]),
    ("dev --dry\\t", ["dev", "--dry-run"]),
    ("dev --no-secrets --wor\\t", ["dev", "--no-secrets", "--workdir"]),
    ("devenv run --mem\\t", ["devenv", "run", "--memory"]),
    ("devenv config --ch\\t", ["devenv", "config", "--check"]),
    ("devenv help comp\\t", ["devenv", "help", "completion"]),
    ("devenv completion z\\t", ["devenv", "completion", "zsh"]),
    ("devenv --vers\\t", ["devenv", "--version"]),
]


def _terminal(host, user, shell, lines):
    """What a terminal running `shell -i` as `user` showed (escape codes removed)."""
    host.copy_in(PTY_SHELL, "/tmp/pty_shell.py")
    args = " ".join("'" + line.replace("'", "'\\''") + "'" for line in lines)
    shown = host.out(f"HOME=/home/{user} python3 /tmp/pty_shell.py {shell} {args}", user=user)
    return re.sub(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|[()][0-9A-B]|[=>])", "", shown).replace("\r", "")


@pytest.mark.parametrize(("user", "shell"), [("alice", "bash"), ("bob", "zsh")])
def test_tab_completes_devenv_and_dev_in_a_real_terminal(host, user, shell):
    lines = [f"{typed}\\aprintf '<%s>\\n' \\r" for typed, _words in COMPLETIONS]
    try:
        shown = _terminal(host, user, shell, lines)
        # A double TAB after `devenv ` lists every command.
        listing = _terminal(host, user, shell, ["devenv \\t\\t\\u"])
    finally:
        # What zsh's completion system writes for the user (the role's test of what it
        # leaves behind compares the home directories).
        host.sh(f"rm -f /home/{user}/.zcompdump*")
    for typed, words in COMPLETIONS:
        printed = "".join(f"<{word}>\n" for word in words)
        # zsh may keep the "=" it adds after an option that takes a value (--memory=).
        assert printed in shown or printed[:-2] + "=>\n" in shown, (typed, shown)
    for command in ("run", "config", "completion", "help"):
        assert command in listing.split("devenv", 1)[1], listing


def test_second_run_changes_nothing(host, workdir):
    run = host.playbook(PLAYBOOK, VARS, workdir)
    assert run.rc == 0, run
    if run.changed and _sources() != host.sources:
        # The collection's files changed since the converge (a shared working tree):
        # copying them again is right; the run after that must change nothing.
        host.sources = _sources()
        run = host.playbook(PLAYBOOK, VARS, workdir)
    assert run.changed == 0, run


def test_check_mode_on_the_provisioned_host_changes_nothing(host, workdir):
    run = host.playbook(PLAYBOOK, VARS, workdir, check=True, diff=True)
    assert run.rc == 0, run
    if run.changed and _sources() != host.sources:
        # As above: bring the host to the changed sources, then check again.
        host.sources = _sources()
        assert host.playbook(PLAYBOOK, VARS, workdir).rc == 0
        run = host.playbook(PLAYBOOK, VARS, workdir, check=True, diff=True)
    assert run.changed == 0, run


def test_state_absent_removes_exactly_what_the_role_installed(host, workdir):
    run = host.playbook(PLAYBOOK, dict(VARS, devenv_launcher_state="absent"), workdir)
    assert run.rc == 0, run
    for path in (
        PROGRAM,
        "/usr/local/lib/devenv",
        "/usr/local/share/devenv",
        CONFIG,
        "/etc/devenv",
        "/etc/sudoers.d/devenv",
    ):
        assert not host.exists(path), path
    assert host.read("/home/alice/.bashrc") == ALICE_BASHRC
    assert host.stat("/home/alice/.bashrc") == ("alice", "alice", "600")
    for path in ("/home/bob/.bashrc", "/home/bob/.zshrc", "/home/alice/.zshrc"):
        assert MARKER_BEGIN not in host.read(path), path
    # What remains beyond the start: the rc files the role created (now without the
    # block) and the users' code directories (user data, never removed).
    left = host.files_under(*WATCHED) - host.before
    assert left == {
        "/home/bob/.bashrc",
        "/home/bob/.zshrc",
        "/home/alice/.zshrc",
        "/home/alice/Coding",
        "/srv/bob/code",
    }
    assert host.before - host.files_under(*WATCHED) == set()
    again = host.playbook(PLAYBOOK, dict(VARS, devenv_launcher_state="absent"), workdir)
    assert again.rc == 0 and again.changed == 0, again
