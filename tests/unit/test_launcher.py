"""The devenv launcher without an engine: command line, configuration layers, order of
the steps, engine checks against a fake socket, the docker child, the installed layout."""

import ast
import base64
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import types
from pathlib import Path

import pytest
import yaml
from ansible_collections.kuatecno.devenv.plugins.module_utils import _engineapi, _infisical
from ansible_collections.kuatecno.devenv.plugins.module_utils import _launcher as la
from ansible_collections.kuatecno.devenv.plugins.module_utils._launcher import (
    LaunchError,
    UsageError,
    load_settings,
    parse_run_args,
)
from ansible_collections.kuatecno.devenv.plugins.module_utils._runspec import Host, RunSpecError

ROOT = Path(__file__).resolve().parents[2]
MODULE_UTILS = ROOT / "collections" / "devenv" / "plugins" / "module_utils"
STAND_IN = str(ROOT / "tests" / "support" / "infisical")
sys.path.insert(0, str(ROOT / "tests" / "support"))
import install_launcher  # noqa: E402


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home" / "alice"
    (home / "Coding" / "proj" / "sub").mkdir(parents=True)
    return home


@pytest.fixture
def host(home):
    return Host(uid=1000, gid=1000, login="alice", home=str(home), cpu_count=2, environ={})


@pytest.fixture
def system_file(tmp_path, monkeypatch):
    path = tmp_path / "etc" / "config.json"
    path.parent.mkdir()
    monkeypatch.setenv("DEVENV_CONFIG", str(path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return path


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


# ---------------------------------------------------------------- command line


@pytest.mark.parametrize(
    ("args", "options", "flags", "command"),
    [
        ([], {}, {}, []),
        (["--dry-run"], {"dry_run": True}, {}, []),
        (["--no-secrets", "--", "ls", "-la"], {"no_secrets": True}, {}, ["ls", "-la"]),
        (["ls", "--dry-run"], {}, {}, ["ls", "--dry-run"]),
        (["--memory", "1g", "--cpus=0.5", "true"], {}, {"memory": "1g", "cpus": "0.5"}, ["true"]),
        (
            ["--image=devenv:2", "--pids-limit", "50"],
            {},
            {"image": "devenv:2", "pids_limit": "50"},
            [],
        ),
        (["--workdir", "/app/x", "--", "--weird"], {}, {"workdir": "/app/x"}, ["--weird"]),
        (["-h"], {"help": True}, {}, []),
        (["--", "--"], {}, {}, ["--"]),
        (["--ephemeral", "claude"], {}, {"ephemeral": True}, ["claude"]),
        (["--code-dir", "~/w", "--ephemeral"], {}, {"code_dir": "~/w", "ephemeral": True}, []),
    ],
)
def test_parse_run_args(args, options, flags, command):
    got_options, got_flags, got_command = parse_run_args(args)
    expected = {"dry_run": False, "no_secrets": False, "help": False}
    expected.update(options)
    assert (got_options, got_flags, got_command) == (expected, flags, command)


@pytest.mark.parametrize(
    "args",
    [
        ["--memory"],
        ["--bogus"],
        ["-v", "x"],
        ["--dry-run=yes"],
        ["--privileged", "ls"],
        ["--ephemeral=false"],
    ],
)
def test_parse_run_args_rejects(args):
    with pytest.raises(UsageError):
        parse_run_args(args)


@pytest.mark.parametrize(
    ("argv", "code", "stream", "fragment"),
    [
        ([], 2, "err", "usage: devenv COMMAND"),
        (["--help"], 0, "out", "usage: devenv COMMAND"),
        (["-h"], 0, "out", "commands:"),
        (["help"], 0, "out", "commands:"),
        (["--version"], 0, "out", f"devenv {la.VERSION} (kuatecno.devenv)"),
        (
            ["frobnicate"],
            2,
            "err",
            "unknown command 'frobnicate' (commands: run, login, state, config",
        ),
        (["--frobnicate"], 2, "err", "`devenv help` lists the commands"),
        (["run", "--bogus"], 2, "err", "unknown option '--bogus'"),
        (["run", "--bogus"], 2, "err", "`devenv help run` shows its options"),
        (["run", "--help"], 0, "out", "usage: devenv run [--dry-run]"),
        (["help", "run"], 0, "out", "usage: devenv run [--dry-run]"),
        (["config", "--help"], 0, "out", "--check FILE"),
        (["help", "config"], 0, "out", "usage: devenv config [--check FILE]"),
        (["completion", "-h"], 0, "out", "usage: devenv completion bash|zsh"),
        (["help", "help"], 0, "out", "usage: devenv help [COMMAND]"),
        (["help", "frob"], 2, "err", "unknown command 'frob'"),
        (["help", "run", "x"], 2, "err", "at most one COMMAND"),
        (["config", "--check"], 2, "err", "exactly one FILE"),
        (["config", "--check"], 2, "err", "usage: devenv config [--check FILE]"),
        (["config", "extra"], 2, "err", "unknown argument"),
        (["run", "--help"], 0, "out", "--ephemeral "),
        (["state", "--help"], 0, "out", "usage: devenv state [reset [AGENT]] [--yes]"),
        (["login", "claude", "--help"], 0, "out", "usage: devenv login claude|gemini"),
        (["login"], 2, "err", "login needs the agent to log in: claude, gemini"),
        (["login", "codex"], 2, "err", "login needs the agent"),
        (["login", "claude", "--", "sh"], 2, "err", "takes no command"),
        (["state", "reset", "codex"], 2, "err", "no agent 'codex'"),
        (["state", "--dry-run"], 2, "err", "state takes"),
        (["completion"], 2, "err", "bash or zsh"),
        (["completion", "fish"], 2, "err", "bash or zsh"),
    ],
)
def test_main_usage(capsys, argv, code, stream, fragment):
    assert la.main(argv) == code
    captured = capsys.readouterr()
    assert fragment in (captured.out if stream == "out" else captured.err)


def test_every_command_has_a_handler_and_lists_in_the_help(capsys):
    assert la.main(["help"]) == 0
    listing = capsys.readouterr().out
    for row in la._COMMANDS:
        assert callable(getattr(la, "cmd_" + row[0]))
        assert f"  {row[0]} " in listing and row[1] in listing
        assert la.main([row[0], "--help"]) == 0
        own = capsys.readouterr().out
        assert own == la.command_help(row[0])
        assert own.startswith(f"usage: devenv {row[0]}") and "-h, --help" in own


def test_run_help_lists_every_flag_of_the_settings_table(capsys):
    assert la.main(["run", "--help"]) == 0
    text = capsys.readouterr().out
    for setting in la.SETTINGS:
        if setting.flag:
            assert f"{setting.flag} {setting.metavar}" in text, setting.name
    assert "--dry-run" in text and "--no-secrets" in text


def test_version_is_the_collection_s():
    galaxy = yaml.safe_load((ROOT / "collections/devenv/galaxy.yml").read_text())
    assert la.VERSION == galaxy["version"]


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_scripts_know_every_command_and_flag(capsys, shell):
    assert la.main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert "devenv dev" in script  # registered for both names
    for row in la._COMMANDS:
        assert row[0] in script
    for setting in la.SETTINGS:
        if setting.flag:
            assert setting.flag in script, setting.name
    assert "--dry-run" in script and "--check" in script


def test_bash_completion_script_parses_in_bash(tmp_path):
    script = tmp_path / "completion.bash"
    script.write_text(la.completion_script("bash"))
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- configuration layers


def test_layers_and_sources(system_file, host, home):
    write(
        system_file,
        {
            "image": "devenv:1",
            "memory": "2g",
            "limits_max": {"memory": "8g"},
            "secrets": {"project_id": "p", "environment": "dev"},
            "users": {"alice": {"code_dir": "/srv/alice"}, "bob": {"code_dir": "/srv/bob"}},
        },
    )
    write(
        home / ".config" / "devenv" / "config.json",
        {"memory": "3g", "ssh": "none", "secrets": {"environment": "staging"}},
    )
    settings = load_settings({"memory": "1g", "cpus": "1"}, host, os.environ)
    assert settings["image"] == "devenv:1"
    assert settings.source("image") == f"system file {system_file}"
    assert settings["code_dir"] == "/srv/alice"
    assert settings.source("code_dir") == f"system file {system_file} (users.alice)"
    assert settings["ssh"] == "none" and settings.source("ssh").startswith("user file ")
    assert settings.raw("memory") == "1g" and settings.source("memory") == "flag"
    assert settings.raw("secrets") == {"project_id": "p", "environment": "staging"}
    assert settings["secrets"]["environment"] == "staging"
    assert settings["secrets"]["project_id"] == "p"
    assert settings.source("pids_limit") == "default" and settings["pids_limit"] == 100


def test_missing_files_mean_defaults(system_file, host):
    settings = load_settings({}, host, os.environ)
    assert {settings.source(name) for name in settings.names()} == {"default"}


@pytest.mark.parametrize(
    "key", ["limits_max", "users", "user", "run_as_root", "root_without_userns", "images_allowed"]
)
def test_user_file_cannot_set_admin_keys(system_file, host, home, key):
    write(home / ".config" / "devenv" / "config.json", {key: {}})
    with pytest.raises(LaunchError, match="only be set by the administrator") as info:
        load_settings({}, host, os.environ)
    assert str(system_file) in str(info.value)


def test_xdg_config_home(system_file, host, tmp_path):
    write(tmp_path / "xdg" / "devenv" / "config.json", {"memory": "5g"})
    settings = load_settings({}, host, dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg")))
    assert settings.raw("memory") == "5g"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [("{not json", "not valid JSON"), ("[1]", "expected a JSON object")],
)
def test_bad_system_file(system_file, host, content, fragment):
    system_file.write_text(content)
    with pytest.raises(LaunchError, match=fragment) as info:
        load_settings({}, host, os.environ)
    assert info.value.code == 2


def test_bad_users_entry(system_file, host):
    write(system_file, {"users": {"alice": {"memory": "9g"}}})
    with pytest.raises(LaunchError, match="cannot be set per user"):
        load_settings({}, host, os.environ)


@pytest.mark.parametrize("flag", ["--user=0:0", "--run-as-root", "--root-without-userns"])
def test_no_flag_names_another_user_or_root(system_file, host, capsys, monkeypatch, flag):
    monkeypatch.setattr(Host, "current", classmethod(lambda cls: host))
    assert la.main(["run", "--dry-run", flag, "true"]) == 2
    assert "unknown option" in capsys.readouterr().err


def test_flag_above_admin_limit_refused(system_file, host, home, capsys, monkeypatch):
    write(system_file, {"limits_max": {"memory": "2g"}, "ssh": "none"})
    monkeypatch.setattr(Host, "current", classmethod(lambda cls: host))
    assert la.main(["run", "--dry-run", "--memory", "3g", "true"]) == 2
    assert "allowed: 6m to 2g" in capsys.readouterr().err


def test_workdir_follows_the_current_directory(system_file, host, home, monkeypatch):
    monkeypatch.chdir(home / "Coding" / "proj" / "sub")
    settings = la.default_workdir(load_settings({}, host, os.environ), host)
    assert settings["workdir"] == "/app/proj/sub"
    assert settings.source("workdir") == "current directory"
    monkeypatch.chdir(home)
    settings = la.default_workdir(load_settings({}, host, os.environ), host)
    assert (settings["workdir"], settings.source("workdir")) == ("/app", "default")
    monkeypatch.chdir(home / "Coding" / "proj")
    settings = la.default_workdir(load_settings({"workdir": "/tmp"}, host, os.environ), host)
    assert (settings["workdir"], settings.source("workdir")) == ("/tmp", "flag")


def test_config_command_shows_sources(system_file, host, home, capsys, monkeypatch):
    write(system_file, {"memory": "2g", "ssh": "none"})
    monkeypatch.setattr(Host, "current", classmethod(lambda cls: host))
    assert la.main(["config"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf'^memory +"2g"  \(system file {re.escape(str(system_file))}\)$', out, re.M)
    assert re.search(r"^pids_limit +100  \(default\)$", out, re.M)
    assert re.search(r'^network +"allowlist"  \(default\)$', out, re.M)
    assert re.search(r'^agent_state +"user"  \(default\)$', out, re.M)
    assert "# resolved: user 1000:1000, ssh none, workdir /app, network allowlist (egress" in out


def test_config_command_reports_an_unusable_configuration(system_file, host, capsys, monkeypatch):
    write(system_file, {"code_dir": "/nonexistent-dir"})
    monkeypatch.setattr(Host, "current", classmethod(lambda cls: host))
    assert la.main(["config"]) == 2
    assert "cannot start a run" in capsys.readouterr().err


# ---------------------------------------------------------------- config --check (the role)


def test_check_file(tmp_path, capsys):
    good = tmp_path / "good.json"
    write(good, {"memory": "4g", "limits_max": {"memory": "8g"}, "secrets": None})
    assert la.main(["config", "--check", str(good)]) == 0
    for data, fragment in [
        ({"memory": "9g", "limits_max": {"memory": "8g"}}, "allowed: 6m to 8g"),
        ({"secrets": {"project_id": ""}}, "project_id"),
        ({"mounts": [{"source": "/var/run/docker.sock", "target": "/s"}]}, "engine's socket"),
    ]:
        bad = tmp_path / "bad.json"
        write(bad, data)
        assert la.main(["config", "--check", str(bad)]) == 2
        assert fragment in capsys.readouterr().err
    assert la.main(["config", "--check", str(tmp_path / "missing.json")]) == 2


# ---------------------------------------------------------------- the order of a run


@pytest.fixture
def run_env(system_file, host, home, tmp_path, monkeypatch):
    """A launcher run whose engine check and docker start are recorded, not done."""
    write(
        system_file,
        {
            "image": "devenv-test/debian:13",
            "ssh": "none",
            "labels": {"io.kuatecno.devenv.test": "1"},
            "secrets": {"project_id": "p", "binary": STAND_IN},
        },
    )
    monkeypatch.setattr(Host, "current", classmethod(lambda cls: host))
    monkeypatch.chdir(home)
    for key, value in {
        "INFISICAL_TOKEN": "tok-xyz",
        "INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN": "tok-ua",
        "DEVENV_FAKE_INFISICAL_MODE": "ok",
        "DEVENV_FAKE_INFISICAL_SEED": "launcher-seed",
        "DEVENV_FAKE_INFISICAL_RECORD": str(tmp_path / "record.json"),
    }.items():
        monkeypatch.setenv(key, value)
    calls = []

    def fake_check(spec, environ, home_dir):
        calls.append(("engine", spec.image))

    def fake_run(argv, env, spec, home="", engine_env=None):
        calls.append(("docker", list(argv), dict(env), spec))
        return 7

    def fake_proxy(spec, environ, home_dir):
        calls.append(("proxy", spec.proxy.proxy))
        return "engine"

    def fake_report(engine, spec, since, system_path):
        calls.append(("report", engine, spec.name, system_path))

    def fake_prepare(spec, login=None):
        calls.append(("prepare", spec, login))
        return []

    monkeypatch.setattr(la, "check_engine", fake_check)
    monkeypatch.setattr(la, "run_docker", fake_run)
    monkeypatch.setattr(la._agents, "prepare", fake_prepare)
    monkeypatch.setattr(la, "ensure_proxy", fake_proxy)
    monkeypatch.setattr(la, "report_proxy", fake_report)
    return calls, tmp_path / "record.json"


def canary():
    return "cnry" + hashlib.sha256(b"launcher-seed").hexdigest()[:28]


def test_run_passes_secrets_only_in_the_start_payload(run_env):
    calls, record = run_env
    assert la.main(["run", "--", "env"]) == 7
    # The egress proxy is running, and the host side prepared, before any secret is
    # fetched; the proxy's report comes after the run.
    assert [c[0] for c in calls] == ["engine", "proxy", "prepare", "docker", "report"]
    _, argv, env, spec = calls[3]
    # Neither the docker CLI's command line nor its environment holds a secret.
    assert not any(canary() in a for a in argv) and canary() not in json.dumps(env)
    assert "DEVENV_CANARY" not in argv and "DEVENV_CANARY" not in env
    assert not any(k.startswith("INFISICAL_") for k in env)
    # The container starts by waiting for its start payload, which holds them.
    assert spec.uses_start and argv[-1] == "env" and "devenv-start" in argv
    encoded = base64.b64encode(canary().encode()).decode()
    assert f"E DEVENV_CANARY {encoded}" in spec.start_payload().decode()
    assert json.loads(record.read_text())["token_on_cmdline"] is False


def test_a_hidden_infisical_token_is_named(run_env, capsys):
    """Both token variables set: the CLI reads INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN."""
    assert la.main(["run", "--", "env"]) == 7
    err = capsys.readouterr().err
    assert (
        "note: INFISICAL_TOKEN is set, but the Infisical CLI uses "
        "INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN (read first)"
    ) in err
    assert "tok-xyz" not in err and "tok-ua" not in err


def test_engine_checked_before_secrets(run_env, monkeypatch, capsys):
    _, record = run_env

    def down(spec, environ, home_dir):
        raise LaunchError("the Docker engine is not reachable")

    monkeypatch.setattr(la, "check_engine", down)
    assert la.main(["run", "true"]) == 125
    assert not record.exists()
    assert "not reachable" in capsys.readouterr().err


def test_invalid_spec_stops_before_anything(run_env, capsys):
    calls, record = run_env
    assert la.main(["run", "--memory", "1x", "true"]) == 2
    assert calls == [] and not record.exists()
    assert "Nothing was started" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["fail", "malformed", "bad-name", "nul", "empty"])
def test_secret_failures_start_nothing(run_env, monkeypatch, capsys, mode):
    calls, _ = run_env
    monkeypatch.setenv("DEVENV_FAKE_INFISICAL_MODE", mode)
    assert la.main(["run", "true"]) == 125
    assert [c[0] for c in calls] == ["engine", "proxy", "prepare"]
    err = capsys.readouterr().err
    assert "secrets:" in err and "Nothing was started" in err
    assert canary() not in err


def test_no_secrets_skips_the_fetch(run_env):
    calls, record = run_env
    assert la.main(["run", "--no-secrets", "true"]) == 7
    assert not record.exists()
    assert not calls[3][3].uses_start  # nothing to hand over: the command starts at once


def test_dry_run_prints_names_never_values(run_env, capsys):
    calls, _ = run_env
    assert la.main(["run", "--dry-run", "--", "sh", "-c", "echo hi"]) == 0
    out = capsys.readouterr().out
    assert calls == []
    assert canary() not in out
    lines = out.rstrip("\n").split("\n")
    command, comment, network = "\n".join(lines[:-2]), lines[-2], lines[-1]
    assert command.startswith("docker run --pull never --rm --init ")
    assert command.endswith(" devenv-start sh -c 'echo hi'")
    assert "-- devenv-test/debian:13 /bin/sh -c " in command
    assert "DEVENV_CANARY" not in command
    assert comment.endswith("in the start payload: DEVENV_CANARY DEVENV_PLAIN (values not shown)")
    assert network.startswith("# network allowlist: through the egress proxy devenv-proxy-")
    assert "api.anthropic.com:443" in network and "github.com:22" in network


def test_ctrl_c_during_fetch_exits_130(run_env, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_infisical, "fetch_secrets", interrupted)
    calls, _ = run_env
    assert la.main(["run", "true"]) == 130
    assert [c[0] for c in calls] == ["engine", "proxy", "prepare"]
    assert "interrupted" in capsys.readouterr().err


# ---------------------------------------------------------------- login and state


def test_login_runs_the_agent_s_own_flow_in_the_state(run_env, monkeypatch):
    calls, _ = run_env
    monkeypatch.setattr(la.os, "isatty", lambda fd: True)
    assert la.main(["login", "gemini", "--no-secrets"]) == 7
    assert [c[0] for c in calls] == ["engine", "proxy", "prepare", "docker", "report"]
    assert calls[2][2] == "gemini"  # the state readied for Gemini CLI's login
    argv = calls[3][1]
    assert argv[-1] == "gemini" and "NO_BROWSER=true" in argv
    assert la.main(["login", "claude", "--no-secrets"]) == 7
    assert calls[-2][1][-2:] == ["claude", "/login"]


def test_an_ephemeral_run_carries_the_host_login_in_its_start(run_env, home, monkeypatch):
    calls, _ = run_env
    (home / ".claude").mkdir()
    (home / ".claude" / ".credentials.json").write_text("the-login")
    monkeypatch.setattr(la._agents, "as_user", lambda uid, gid, func, *args: func(*args))
    assert la.main(["run", "--ephemeral", "--no-secrets", "true"]) == 7
    spec = calls[3][3]
    assert (".claude/.credentials.json", 0o600, b"the-login") in spec.seed_files
    assert "the-login" not in " ".join(calls[3][1])  # never on the docker command line


def test_login_needs_a_terminal_and_a_kept_state(run_env, monkeypatch, capsys):
    calls, _ = run_env
    monkeypatch.setattr(la.os, "isatty", lambda fd: False)
    assert la.main(["login", "claude"]) == 2
    assert "run it in a terminal" in capsys.readouterr().err
    monkeypatch.setattr(la.os, "isatty", lambda fd: True)
    assert la.main(["login", "claude", "--ephemeral"]) == 2
    assert "without --ephemeral" in capsys.readouterr().err
    assert calls == []


@pytest.fixture
def state_env(system_file, host, home, monkeypatch):
    write(system_file, {"ssh": "none", "gitconfig": None})
    monkeypatch.setattr(Host, "current", classmethod(lambda cls: host))
    monkeypatch.chdir(home)
    monkeypatch.setattr(la, "_containers_using", lambda paths, environ, home: [])
    # The suite runs as root; the state belongs to the test's own (unprivileged) alice.
    monkeypatch.setattr(la._agents, "as_user", lambda uid, gid, func, *args: func(*args))
    data = home / ".local" / "share" / "devenv" / "state" / "user"
    (data / "claude" / "projects").mkdir(parents=True)
    (data / "claude" / "projects" / "s.jsonl").write_text("x" * 2048)
    return data


def test_state_shows_where_and_how_big(state_env, capsys):
    assert la.main(["state"]) == 0
    out = capsys.readouterr().out
    assert f"claude  {state_env / 'claude'}  2.0 KiB" in out
    assert f"gemini  {state_env / 'gemini'}  not created yet" in out
    assert "never changed" in out


def test_state_reset_asks_first(state_env, monkeypatch, capsys):
    monkeypatch.setattr(la.os, "isatty", lambda fd: False)
    assert la.main(["state", "reset"]) == 2
    assert "add --yes" in capsys.readouterr().err
    assert (state_env / "claude").exists()
    monkeypatch.setattr(la.os, "isatty", lambda fd: True)
    monkeypatch.setattr(la.sys, "stdin", __import__("io").StringIO("n\n"))
    assert la.main(["state", "reset", "claude"]) == 0
    assert "kept" in capsys.readouterr().out and (state_env / "claude").exists()
    monkeypatch.setattr(la.sys, "stdin", __import__("io").StringIO("y\n"))
    assert la.main(["state", "reset", "claude"]) == 0
    assert not (state_env / "claude").exists()
    assert "imports the host's login again" in capsys.readouterr().out


def test_state_reset_with_yes_and_per_code_directory(state_env, home, capsys):
    (home / "work").mkdir()
    write(home / ".config" / "devenv" / "config.json", {"agent_state": "code_dir"})
    assert la.main(["state", "--code-dir", str(home / "work")]) == 0
    assert "/state/code/work-" in capsys.readouterr().out
    assert la.main(["state", "reset", "--yes"]) == 0  # the per-user state is not this one
    assert "nothing to reset" in capsys.readouterr().out
    assert (state_env / "claude").exists()


def test_state_reset_refuses_while_a_run_uses_it(state_env, monkeypatch, capsys):
    monkeypatch.setattr(la, "_containers_using", lambda paths, environ, home: ["devenv-alice-1"])
    assert la.main(["state", "reset", "--yes"]) == 125
    assert "devenv-alice-1" in capsys.readouterr().err
    assert (state_env / "claude").exists()


# ---------------------------------------------------------------- the engine


@pytest.mark.parametrize(
    ("environ", "config", "expected"),
    [
        ({}, None, "/var/run/docker.sock"),
        ({"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}, None, "/run/user/1000/docker.sock"),
        ({"DOCKER_HOST": "tcp://127.0.0.1:2375"}, None, None),
        ({"DOCKER_HOST": "ssh://box"}, None, None),
        ({"DOCKER_CONTEXT": "remote"}, None, None),
        ({"DOCKER_CONTEXT": "desk", "DOCKER_HOST": "unix:///d.sock"}, None, "/d.sock"),
        ({}, {"currentContext": "remote"}, None),
        ({}, {"currentContext": "desk"}, "/Users/a/.docker/run/docker.sock"),
        ({"DOCKER_CONTEXT": "desk"}, None, "/Users/a/.docker/run/docker.sock"),
        ({"DOCKER_CONTEXT": "tcp"}, None, None),
        ({}, {"currentContext": "default"}, "/var/run/docker.sock"),
        ({}, "not json", "/var/run/docker.sock"),
    ],
)
def test_engine_socket(tmp_path, environ, config, expected):
    for name, host in (("desk", "unix:///Users/a/.docker/run/docker.sock"), ("tcp", "tcp://x")):
        meta = tmp_path / ".docker/contexts/meta" / hashlib.sha256(name.encode()).hexdigest()
        meta.mkdir(parents=True)
        endpoints = {"docker": {"Host": host, "SkipTLSVerify": False}}
        (meta / "meta.json").write_text(json.dumps({"Name": name, "Endpoints": endpoints}))
    if config is not None:
        text = config if isinstance(config, str) else json.dumps(config)
        (tmp_path / ".docker" / "config.json").write_text(text)
    assert _engineapi.engine_socket(environ, str(tmp_path)) == expected


class FakeEngine:
    """A unix-socket HTTP server answering /images/<ref>/json and /events."""

    def __init__(self, path, images, status=None, events=b"", info=b"{}"):
        self.path, self.images, self.status, self.events = str(path), images, status, events
        self.info = info
        self.requests = []
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(self.path)
        self.server.listen(8)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                request = conn.recv(4096).decode()
                target = request.split(" ")[1]
                self.requests.append(target)
                body = b"OK"
                if self.status is not None:
                    status = self.status
                elif target.startswith("/events?"):
                    status, body = 200, self.events
                elif target == "/info":
                    status, body = 200, self.info
                else:
                    status = 200 if target[len("/images/") : -len("/json")] in self.images else 404
                conn.sendall(f"HTTP/1.0 {status} X\r\n\r\n".encode() + body)

    def close(self):
        self.server.close()


def wanted(image, *, root=False):
    """What check_engine reads of a RunSpec."""
    return types.SimpleNamespace(
        image=image, needs_userns=root, needs_engine_info=root, runtime="runc"
    )


@pytest.mark.parametrize(
    ("options", "allowed"),
    [(["name=seccomp,profile=default", "name=userns"], True), (["name=seccomp"], False)],
)
def test_root_only_on_an_engine_that_remaps_users(tmp_path, options, allowed):
    info = json.dumps({"SecurityOptions": options}).encode()
    engine = FakeEngine(tmp_path / "d.sock", {"devenv:1"}, info=info)
    try:
        env = {"DOCKER_HOST": f"unix://{engine.path}"}
        la.check_engine(wanted("devenv:1"), env, str(tmp_path))
        assert engine.requests == ["/images/devenv:1/json"]  # no extra question without root
        if allowed:
            la.check_engine(wanted("devenv:1", root=True), env, str(tmp_path))
        else:
            with pytest.raises(RunSpecError, match="root_without_userns in the system file"):
                la.check_engine(wanted("devenv:1", root=True), env, str(tmp_path))
        assert engine.requests[-1] == "/info"
    finally:
        engine.close()


def test_check_engine_ok_and_image_missing(tmp_path):
    engine = FakeEngine(tmp_path / "d.sock", {"devenv:1"})
    try:
        env = {"DOCKER_HOST": f"unix://{engine.path}"}
        la.check_engine(wanted("devenv:1"), env, str(tmp_path))
        with pytest.raises(LaunchError) as info:
            la.check_engine(wanted("devenv:2"), env, str(tmp_path))
        assert "ansible-playbook playbooks/site.yml --tags image" in str(info.value)
        assert "never pulls" in str(info.value)
        # One round trip each: the image lookup also proves that the engine answers.
        assert engine.requests == ["/images/devenv:1/json", "/images/devenv:2/json"]
    finally:
        engine.close()


@pytest.mark.parametrize(("events", "expected"), [(b'{"status":"oom"}\n', True), (b"", False)])
def test_oom_event_over_the_socket(tmp_path, events, expected):
    engine = FakeEngine(tmp_path / "d.sock", set(), events=events)
    try:
        env = {"DOCKER_HOST": f"unix://{engine.path}"}
        assert la._oom_killed("devenv-a-1", 1.5, env, str(tmp_path)) is expected
        (request,) = engine.requests
        assert request.startswith("/events?since=1.500&until=")
        assert "devenv-a-1" in request and "oom" in request
    finally:
        engine.close()


def test_check_engine_not_ready(tmp_path):
    engine = FakeEngine(tmp_path / "d.sock", set(), status=500)
    try:
        with pytest.raises(LaunchError, match="not ready"):
            la.check_engine(
                wanted("devenv:1"), {"DOCKER_HOST": f"unix://{engine.path}"}, str(tmp_path)
            )
    finally:
        engine.close()


@pytest.mark.parametrize("kind", ["missing", "dead"])
def test_check_engine_unreachable(tmp_path, kind):
    path = tmp_path / "dead.sock"
    if kind == "dead":
        socket.socket(socket.AF_UNIX).bind(str(path))  # bound, never listening
    with pytest.raises(LaunchError) as info:
        la.check_engine(wanted("devenv:1"), {"DOCKER_HOST": f"unix://{path}"}, str(tmp_path))
    assert "not reachable" in str(info.value) and "no secrets were fetched" in str(info.value)
    assert info.value.code == 125


# ---------------------------------------------------------------- the docker child


FAKE_DOCKER = """\
#!/bin/sh
# Fake docker CLI: `run` behaves as told by FAKE_RUN; `events` reports an OOM if FAKE_OOM.
if [ "$1" = events ]; then
    [ -n "$FAKE_OOM" ] && echo oom
    exit 0
fi
printf '%s\\n' "$@" > "$FAKE_DIR/argv"
env > "$FAKE_DIR/env"
case "$FAKE_RUN" in
    exit*) exit "${FAKE_RUN#exit}" ;;
    selfkill) kill -TERM $$ ;;
    trap) trap 'echo got-term > "$FAKE_DIR/term"; exit 143' TERM
          echo ready > "$FAKE_DIR/ready"
          while :; do sleep 0.05; done ;;
esac
"""

DRIVER = """\
import sys
sys.path.insert(0, {lib!r})
from devenv_lib import _launcher, _runspec
spec = _runspec.build_spec(
    {{"ssh": "none", "code_dir": {code!r}, "memory": "64m"}},
    host=_runspec.Host(1000, 1000, "alice", {home!r}, 2, {{}}),
)
env = dict(__import__("os").environ, SECRET_X="value-x")
sys.exit(_launcher.run_docker(["docker", "run", "x"], env, spec))
"""


@pytest.fixture
def driver(tmp_path, home):
    prefix = tmp_path / "prefix"
    install_launcher.install(prefix)
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "docker").write_text(FAKE_DOCKER)
    (fake / "docker").chmod(0o755)
    script = tmp_path / "driver.py"
    script.write_text(
        DRIVER.format(
            lib=str(prefix / "lib" / "devenv"),
            code=str(home / "Coding"),
            home=str(home),
        )
    )

    def start(mode, oom=False):
        env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", FAKE_RUN=mode)
        env["DOCKER_HOST"] = "tcp://127.0.0.1:9"  # not a socket: events go to the fake CLI
        env["FAKE_DIR"] = str(tmp_path)
        if oom:
            env["FAKE_OOM"] = "1"
        return subprocess.Popen(
            [sys.executable, "-IB", str(script)], env=env, stderr=subprocess.PIPE, text=True
        )

    return start, tmp_path


@pytest.mark.parametrize(
    ("mode", "oom", "code", "fragment"),
    [
        ("exit0", False, 0, None),
        ("exit3", False, 3, None),
        ("exit137", True, 137, "reached its memory limit (64m)"),
        ("exit137", False, 137, "most likely because it reached the memory limit (64m)"),
        ("exit1", True, 1, "reached its memory limit"),
        ("selfkill", False, -signal.SIGTERM, None),
    ],
)
def test_run_docker_exit_status(driver, mode, oom, code, fragment):
    start, tmp = driver
    proc = start(mode, oom)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == code
    if fragment:
        assert fragment in err
    else:
        assert "memory" not in err and "killed" not in err
    assert "SECRET_X=value-x" in (tmp / "env").read_text()


def test_run_docker_forwards_sigterm(driver):
    start, tmp = driver
    proc = start("trap")
    for _ in range(200):
        if (tmp / "ready").exists():
            break
        threading.Event().wait(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    assert proc.returncode == 143
    assert (tmp / "term").read_text().strip() == "got-term"


# ---------------------------------------------------------------- the installed layout


def test_one_file_list_shared_with_the_role():
    role_vars = ROOT / "collections/devenv/roles/devenv_launcher/vars/main.yml"
    if not role_vars.exists():
        pytest.skip("the devenv_launcher role is not there yet")
    files = yaml.safe_load(role_vars.read_text())["_devenv_launcher_lib_files"]
    assert tuple(files) == la.LAUNCHER_FILES
    assert install_launcher.launcher_files() == la.LAUNCHER_FILES
    for name in la.LAUNCHER_FILES:
        assert (MODULE_UTILS / name).is_file()


def test_install_layout_and_lean_start(tmp_path):
    program = install_launcher.install(tmp_path / "p", "/usr/bin/python3")
    lib = tmp_path / "p" / "lib" / "devenv" / "devenv_lib"
    for name in la.LAUNCHER_FILES:
        assert (lib / name).read_bytes() == (MODULE_UTILS / name).read_bytes()
    # Compiled at install time: a start under -B never compiles the library itself.
    assert len(list((lib / "__pycache__").glob("*.pyc"))) == len(la.LAUNCHER_FILES)
    assert program.read_text().startswith("#!/usr/bin/python3 -IBS\n")
    done = subprocess.run([str(program), "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "devenv run" in done.stdout
    probe = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(lib.parent)!r})
        import devenv_lib._launcher
        heavy = ("subprocess", "socket", "shlex", "argparse", "devenv_lib._infisical",
                 "ansible", "threading", "asyncio", "typing", "dataclasses", "inspect")
        print(sorted(m for m in heavy if m in sys.modules))
        """
    )
    done = subprocess.run(
        ["/usr/bin/python3", "-IBS", "-c", probe], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_role_check_code_runs_against_the_installed_library(tmp_path):
    """The devenv_launcher role validates its file with main(['config', '--check', FILE])."""
    install_launcher.install(tmp_path / "p")
    good = tmp_path / "c.json"
    write(good, {"image": "devenv:latest", "memory": "4g"})
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from devenv_lib._launcher import main; sys.exit(main(['config', '--check', sys.argv[2]]))"
    )
    lib_root = str(tmp_path / "p" / "lib" / "devenv")
    ok = subprocess.run([sys.executable, "-IB", "-c", code, lib_root, str(good)], check=False)
    assert ok.returncode == 0
    write(good, {"memory": "1x"})
    bad = subprocess.run(
        [sys.executable, "-IB", "-c", code, lib_root, str(good)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "memory" in bad.stderr


@pytest.mark.skipif(
    not hasattr(sys, "stdlib_module_names"),
    reason="the list of standard modules needs Python 3.10; on 3.9 the other tests run the files",
)
@pytest.mark.parametrize("name", la.LAUNCHER_FILES)
def test_python39_syntax_and_stdlib_only(name):
    source = (MODULE_UTILS / name).read_text(encoding="utf-8")
    tree = ast.parse(source, feature_version=(3, 9))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots = {node.module.split(".")[0]}
        else:
            continue
        assert roots <= set(sys.stdlib_module_names), roots
