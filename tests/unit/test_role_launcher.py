"""The devenv_launcher role's pure parts, evaluated with Ansible's templating (no host).

The configuration rendered from the role's defaults holds only what the administrator
set, must pass the very check the role runs before writing it (the launcher's
`config --check`: parse, then resolve for each login) and must build a run for a user;
the OS maps; the dev block; which rc files each user gets.

Values computed by the collection's filters are checked here as the role wires them (OS
map, defaults, state, earlier task results); the filters' own cases are in test_filters.py.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.kuatecno.devenv.plugins.module_utils import _launcher, _runspec, _settings

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from role_templar import RoleVars, role_file  # noqa: E402

ROLE = "devenv_launcher"
USERS = [
    "alice",
    {"name": "bob", "code_dir": "/srv/bob", "credentials": [], "shells": ["zsh"]},
    {"name": "carol", "gitconfig": "", "home": "/data/carol"},
]


def rendered_config(**variables):
    variables.setdefault("devenv_users", USERS)
    return json.loads(RoleVars(ROLE, **variables).render("config.json.j2"))


def _spec(config, cpus=2, tmp_path=None):
    home = tmp_path / "alice"
    (home / "Coding").mkdir(parents=True, exist_ok=True)
    host = _runspec.Host(1000, 1000, "alice", str(home), cpus, {})
    return _runspec.build_spec(config, host=host)


def test_default_config_writes_only_what_the_role_sets(tmp_path):
    config = rendered_config(devenv_users=[])
    # What the run specification decides by default is left to it, not written.
    for key in ("image", "memory", "memory_swap", "cpus", "pids_limit", "ssh", "gitconfig"):
        assert key not in config, key
    assert "read_only_rootfs" not in config and "secrets" not in config
    assert config["limits_max"] == {"memory": "8g", "cpus": 2.0, "pids_limit": 200}
    assert config["code_dir"] == "~/Coding"
    assert config["users"] == {}
    # The host's own agent files are not mounted: devenv keeps the agents' state.
    assert config["credentials"] == []
    for key in ("agent_state", "ephemeral", "claude_nonessential_traffic"):
        assert key not in config, key


@pytest.mark.parametrize(("cpus", "nano"), [(2, 2_000_000_000), (1, 1_000_000_000)])
def test_default_config_gives_the_reference_limits_and_fits_a_small_host(tmp_path, cpus, nano):
    spec = _spec(rendered_config(devenv_users=[]), cpus, tmp_path)
    assert spec.image == "devenv:latest"
    assert (spec.memory, spec.memory_swap, spec.pids_limit) == (4 * 1024**3, 4 * 1024**3, 100)
    assert spec.nano_cpus == nano
    assert spec.read_only_rootfs is True


def test_default_config_keys_are_all_run_spec_settings():
    config = rendered_config()
    assert set(config) <= set(_settings.BY_NAME)


def _check(config, cpus=2, tmp_path=None):
    def host_for(login):
        return _runspec.Host(1000, 1000, login or "", "/nonexistent", cpus, {})

    return _runspec.check_config(config, source="configuration", host_for=host_for)


def test_rendered_config_passes_the_role_s_own_check():
    _check(rendered_config())
    _check(rendered_config(), cpus=1)


def test_rendered_config_builds_a_run_for_each_user(tmp_path):
    config = rendered_config()
    for login, code_dir in (("alice", "Coding"), ("bob", "srv-bob")):
        home = tmp_path / login
        (home / code_dir).mkdir(parents=True)
        settings = dict(config)
        if login == "bob":
            settings["users"] = {"bob": dict(config["users"]["bob"], code_dir=str(home / code_dir))}
        host = _runspec.Host(1000, 1000, login, str(home), 2, {})
        spec = _runspec.build_spec(settings, host=host)
        assert spec.image == "devenv:latest"


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"devenv_launcher_memory": "lots"}, "memory"),
        ({"devenv_launcher_cpus": 64.0}, "cpus"),
        ({"devenv_launcher_pids_limit": 0}, "pids_limit"),
        ({"devenv_launcher_image": "Not An Image"}, "image"),
        ({"devenv_launcher_memory": "16g"}, "memory"),
    ],
)
def test_bad_settings_are_refused_by_the_check(variables, field):
    with pytest.raises(_runspec.RunSpecError, match=field):
        _check(rendered_config(**variables))


def test_per_user_settings_go_to_users_only_when_set():
    config = rendered_config()
    assert config["users"] == {
        "bob": {"code_dir": "/srv/bob", "credentials": []},
        "carol": {"gitconfig": ""},
    }


def test_agent_state_settings_are_written_when_set(tmp_path):
    config = rendered_config(
        devenv_launcher_agent_state="code_dir",
        devenv_launcher_ephemeral=True,
        devenv_launcher_claude_nonessential_traffic=True,
        devenv_users=[{"name": "alice", "agent_state": "user"}],
    )
    assert config["agent_state"] == "code_dir"
    assert config["ephemeral"] is True and config["claude_nonessential_traffic"] is True
    assert config["users"] == {"alice": {"agent_state": "user"}}
    _check(config)


def test_infisical_secrets_source():
    config = rendered_config(
        devenv_launcher_secrets_provider="infisical",
        devenv_launcher_infisical_project_id="p-1",
        devenv_launcher_infisical_environment="prod",
        devenv_launcher_infisical_path="/agents",
    )
    assert config["secrets"] == {
        "provider": "infisical",
        "project_id": "p-1",
        "environment": "prod",
        "path": "/agents",
        "domain": None,
        "timeout": 30,
        "binary": "infisical",
    }


def test_memory_swap_empty_means_unset_and_gitconfig_empty_means_none(tmp_path):
    config = rendered_config(devenv_launcher_memory_swap="6g", devenv_launcher_gitconfig="")
    assert config["memory_swap"] == "6g"
    assert config["gitconfig"] == ""
    assert "memory_swap" not in rendered_config(devenv_launcher_memory_swap="")
    home = tmp_path / "alice"
    (home / "Coding").mkdir(parents=True)
    (home / ".gitconfig").write_text("")
    host = _runspec.Host(1000, 1000, "alice", str(home), 2, {})
    no_git = _runspec.build_spec(dict(config, users={}), host=host)
    assert all(m.target != "/home/dev/.gitconfig" for m in no_git.mounts)
    git = _runspec.build_spec(rendered_config(devenv_users=[]), host=host)
    assert any(m.target == "/home/dev/.gitconfig" for m in git.mounts)


@pytest.mark.parametrize(
    ("os_family", "expected"),
    [
        ("Debian", {"root_group": "root", "home_base": "/home", "user_group": None}),
        ("Darwin", {"root_group": "wheel", "home_base": "/Users", "user_group": "staff"}),
    ],
)
def test_os_maps(os_family, expected):
    os_vars = RoleVars(ROLE, os_family=os_family)["_devenv_launcher_os"]
    for key, value in expected.items():
        assert os_vars[key] == value
    assert os_vars["accounts_from_getent"] is (os_family == "Debian")
    assert any(p.endswith("/zsh") for p in os_vars["zsh_paths"])


def test_macos_accounts_come_from_the_map():
    accounts = RoleVars(ROLE, os_family="Darwin", devenv_users=USERS)["_devenv_launcher_accounts"]
    assert [(a["name"], a["home"], a["group"]) for a in accounts] == [
        ("alice", "/Users/alice", "staff"),
        ("bob", "/Users/bob", "staff"),
        ("carol", "/data/carol", "staff"),
    ]


def test_linux_accounts_come_from_getent():
    passwd = {
        "alice": ["x", "1000", "1000", "", "/home/alice", "/bin/bash"],
        "bob": ["x", "1001", "1001", "", "/srv/home/bob", "/usr/bin/zsh"],
        "carol": ["x", "1002", "100", "", "/home/carol", "/bin/sh"],
    }
    accounts = RoleVars(ROLE, devenv_users=USERS, facts={"getent_passwd": passwd})[
        "_devenv_launcher_accounts"
    ]
    assert [(a["home"], a["group"], a["shell"]) for a in accounts] == [
        ("/home/alice", "1000", "/bin/bash"),
        ("/srv/home/bob", "1001", "/usr/bin/zsh"),
        ("/data/carol", "100", "/bin/sh"),
    ]


def _rc_files(zsh_installed, state="present", login_shell="/bin/bash"):
    passwd = {
        name: ["x", "1000", "1000", "", f"/home/{name}", login_shell]
        for name in ("alice", "bob", "carol")
    }
    role_vars = RoleVars(
        ROLE,
        devenv_users=USERS,
        devenv_launcher_state=state,
        facts={"getent_passwd": passwd},
        _devenv_launcher_zsh_stat={"results": [{"stat": {"exists": zsh_installed}}]},
    )
    return [(f["name"], f["file"]) for f in role_vars["_devenv_launcher_rc_files"]]


def test_rc_files_bash_only_without_zsh():
    assert _rc_files(False) == [
        ("alice", ".bashrc"),
        ("bob", ".zshrc"),  # bob's record says zsh only
        ("carol", ".bashrc"),
    ]


def test_rc_files_with_zsh_installed():
    assert _rc_files(True) == [
        ("alice", ".bashrc"),
        ("alice", ".zshrc"),
        ("bob", ".zshrc"),
        ("carol", ".bashrc"),
        ("carol", ".zshrc"),
    ]


def test_rc_files_when_zsh_is_the_login_shell():
    assert ("alice", ".zshrc") in _rc_files(False, login_shell="/usr/bin/zsh")


def test_removal_looks_at_both_rc_files():
    assert _rc_files(False, state="absent") == [
        (name, rc) for name in ("alice", "bob", "carol") for rc in (".bashrc", ".zshrc")
    ]


def test_code_directories_expand_the_home():
    passwd = {name: ["x", "1", "1", "", f"/home/{name}", "/bin/sh"] for name in ("alice", "bob")}
    dirs = RoleVars(ROLE, devenv_users=USERS[:2], facts={"getent_passwd": passwd})[
        "_devenv_launcher_code_dirs"
    ]
    assert [d["path"] for d in dirs] == ["/home/alice/Coding", "/srv/bob"]


@pytest.mark.parametrize("prefix", ["/usr/local", "/opt/dev env"])
@pytest.mark.parametrize(
    ("access", "os_family", "door"),
    [("sudo", "Debian", "sudo -n "), ("docker_group", "Debian", ""), ("sudo", "Darwin", "")],
)
def test_dev_block_is_a_thin_call_of_the_launcher(prefix, tmp_path, access, os_family, door):
    role_vars = RoleVars(
        ROLE, os_family=os_family, devenv_launcher_prefix=prefix, devenv_launcher_access=access
    )
    block = role_vars["_devenv_launcher_block"]
    assert block == f'dev() {{ {door}"{prefix}/bin/devenv" run "$@"; }}'
    # bash parses it and passes every argument through untouched.
    fake = tmp_path / "bin" / "devenv"
    script = (
        f"{block.replace(door, '').replace(f'{prefix}/bin/devenv', str(fake))}\n"
        "type dev >/dev/null && dev -- 'a b' '$HOME' \"\"\n"
    )
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf \'[%s]\' "$a"; done\n')
    fake.chmod(0o755)
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout == "[run][--][a b][$HOME][]"


@pytest.mark.parametrize(("rc_file", "shell"), [(".bashrc", "bash"), (".zshrc", "zsh")])
def test_blocks_define_dev_and_source_the_completion(rc_file, shell):
    role_vars = RoleVars(ROLE)
    block = role_vars["_devenv_launcher_blocks"][rc_file]
    assert sorted(role_vars["_devenv_launcher_blocks"]) == sorted(
        role_vars["_devenv_launcher_rc_names"].values()
    )
    first, second = block.splitlines()
    assert first == role_vars["_devenv_launcher_block"]
    assert f'"/usr/local/share/devenv/completion.{shell}"' in second
    assert second.startswith("if [") and second.endswith("fi")


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_scripts_are_the_launcher_s_own(shell):
    """The role installs what `devenv completion SHELL` prints, made by the same code."""
    argv = RoleVars(ROLE, ansible_playbook_python=sys.executable, item=shell)[
        "_devenv_launcher_completion_argv"
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout == _launcher.completion_script(shell)


def test_the_sudo_rule_lets_the_group_run_exactly_the_launcher():
    text = RoleVars(ROLE, devenv_launcher_group="devs").render("sudoers.j2")
    rules = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert rules == [
        'Defaults!/usr/local/bin/devenv env_keep += "INFISICAL_TOKEN '
        'INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN SSH_AUTH_SOCK TERM LANG LC_ALL"',
        "%devs ALL=(root) NOPASSWD: /usr/local/bin/devenv",
    ]
    # The environment it keeps is what the launcher takes from a sudo start.
    kept = rules[0].split('"')[1].split()
    assert tuple(kept) == _runspec.SUDO_KEPT_ENV


def test_block_marker_names_devenv():
    marker = role_file(ROLE, "vars/main.yml")["_devenv_launcher_block_marker"]
    assert "{mark}" in marker and "devenv" in marker


@pytest.mark.parametrize(("access", "door"), [("sudo", True), ("docker_group", False)])
def test_the_program_goes_through_the_door_by_itself(access, door):
    text = RoleVars(ROLE, devenv_launcher_access=access).render("devenv.j2")
    compile(text, "devenv", "exec")
    execs = 'os.execvp("sudo", ["sudo", "-n", "--", "/usr/local/bin/devenv", *sys.argv[1:]])'
    assert (execs in text) is door
    if door:  # before anything of the launcher is imported, and only when not yet root
        assert text.index("os.geteuid() != 0") < text.index("from devenv_lib")


def test_program_pins_the_system_configuration():
    text = RoleVars(ROLE, devenv_launcher_config_dir="/etc/x").render("devenv.j2")
    assert text.startswith("#!/usr/bin/python3 -IBS\n")
    assert 'os.environ["DEVENV_CONFIG"] = "/etc/x/config.json"' in text
    assert 'sys.path.insert(0, "/usr/local/lib/devenv")' in text
    compile(text, "devenv", "exec")


def test_the_documented_per_user_keys_are_the_run_specification_s():
    """The argument spec names every key a user record may carry (PER_USER_KEYS)."""
    import re

    specs = role_file(ROLE, "meta/argument_specs.yml")
    option = specs["argument_specs"]["main"]["options"]["devenv_launcher_users"]
    text = " ".join(option["description"]).split("lets C(users.<login>) set")[1]
    assert set(re.findall(r"C\((\w+)\)", text)) == set(_settings.PER_USER_KEYS)
