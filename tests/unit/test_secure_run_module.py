"""Unit tests of the secure_run module and its docker SDK adapter (no engine)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args
from ansible_collections.kuatecno.devenv.plugins.module_utils import (
    _engine,
    _infisical,
    _runspec,
    _settings,
)
from ansible_collections.kuatecno.devenv.plugins.module_utils import _secure_run as sr
from ansible_collections.kuatecno.devenv.plugins.modules import secure_run
from docker import errors as docker_errors

SECRET = "s3cr3t-value-never-shown"


def _doc():
    return yaml.safe_load(secure_run.DOCUMENTATION)


# ---------------------------------------------------------------- documentation


def _compare_options(spec, doc, where):
    assert sorted(spec) == sorted(doc), f"{where}: argument spec and DOCUMENTATION differ"
    for name, arg in spec.items():
        documented = doc[name]
        here = f"{where}.{name}"
        assert documented.get("type", "str") == arg.get("type", "str"), here
        assert bool(documented.get("required", False)) == bool(arg.get("required", False)), here
        assert documented.get("default") == arg.get("default"), here
        assert documented.get("choices") == arg.get("choices"), here
        assert documented.get("elements") == arg.get("elements"), here
        assert documented.get("description"), f"{here}: no description"
        if "options" in arg or "suboptions" in documented:
            _compare_options(arg.get("options", {}), documented.get("suboptions", {}), here)


def test_argument_spec_matches_documentation():
    _compare_options(secure_run.ARGUMENT_SPEC, _doc()["options"], "options")


def test_documentation_examples_and_return_parse():
    doc = _doc()
    assert doc["module"] == "secure_run"
    assert set(doc["attributes"]) == {"action_group", "check_mode", "diff_mode", "platform"}
    assert doc["attributes"]["check_mode"]["support"] == "full"
    # The action group it documents is the one meta/runtime.yml defines (module_defaults).
    assert doc["attributes"]["action_group"]["membership"] == ["kuatecno.devenv.docker"]
    runtime = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "collections/devenv/meta/runtime.yml").read_text()
    )
    assert "secure_run" in runtime["action_groups"]["docker"]
    assert doc["version_added"]
    examples = yaml.safe_load(secure_run.EXAMPLES)
    assert all("kuatecno.devenv.secure_run" in task for task in examples)
    returned = yaml.safe_load(secure_run.RETURN)
    assert {"rc", "stdout", "stderr", "container", "ran", "spec", "msg"} <= set(returned)


@pytest.mark.parametrize(
    "name", ["env", "secrets", "infisical.token"], ids=["env", "secrets", "token"]
)
def test_secret_options_are_no_log(name):
    spec = secure_run.ARGUMENT_SPEC
    for part in name.split("."):
        spec = spec[part] if part in spec else spec["options"][part]
    assert spec.get("no_log") is True


def test_every_setting_option_is_a_runspec_setting():
    assert set(sr.SETTING_OPTIONS) <= set(_settings.BY_NAME)
    assert set(sr.SETTING_OPTIONS) <= set(secure_run.ARGUMENT_SPEC)


def test_the_setting_options_are_the_table_s_module_options():
    table = {s.name for s in _settings.SETTINGS if s.module}
    assert set(sr.SETTING_OPTIONS) == table
    infisical = secure_run.ARGUMENT_SPEC["infisical"]["options"]
    assert set(infisical) == {s.name for s in _settings.SECRET_SETTINGS if s.module} | {"token"}


# ---------------------------------------------------------------- parameter mapping


def _params(tmp_path, **extra):
    """Module parameters as AnsibleModule fills them (defaults applied)."""
    params = {name: arg.get("default") for name, arg in secure_run.ARGUMENT_SPEC.items()}
    params.update(
        image="devenv-test/debian:13",
        command=["true"],
        code_dir=str(tmp_path),
        user="1000:1000",
    )
    params.update(extra)
    return params


def _host(tmp_path):
    return _runspec.Host(
        uid=1000,
        gid=1000,
        login="tester",
        home=str(tmp_path / "home"),
        cpu_count=2,
        environ={},
    )


def test_settings_mapping_passes_options_under_spec_names(tmp_path):
    params = _params(
        tmp_path,
        memory="512m",
        cpus=1.5,
        pids_limit=50,
        read_only_rootfs=False,
        labels={"io.kuatecno.devenv.test": "1"},
        env={"MODE": "ci"},
        mounts=[{"source": str(tmp_path), "target": "/data", "read_only": True}],
    )
    settings = sr.settings_from_params(params)
    assert "secrets" not in settings  # no Infisical option: nothing to fetch
    spec = _runspec.build_spec(
        settings, secrets={"API_KEY": SECRET}, host=_host(tmp_path), module=True
    )
    assert spec.memory == spec.memory_swap == 512 * 1024**2
    assert spec.nano_cpus == 1_500_000_000
    assert spec.pids_limit == 50
    assert spec.read_only_rootfs is False
    assert spec.user == "1000:1000"
    assert spec.ssh == "none"  # the module's default: no SSH unless asked
    assert ("io.kuatecno.devenv.test", "1") in spec.labels
    assert set(spec.secret_names) == {"MODE", "API_KEY"}
    assert {m.target for m in spec.mounts} == {"/app", "/data", "/etc/passwd", "/etc/group"}
    # A module run leaves no agent state behind unless asked: a tmpfs per agent.
    assert spec.ephemeral and ("/home/dev/.claude" in dict(spec.tmpfs))


def test_the_module_can_keep_the_agents_state_like_the_launcher(tmp_path):
    settings = sr.settings_from_params(_params(tmp_path, ephemeral=False, agent_state="code_dir"))
    spec = _runspec.build_spec(settings, host=_host(tmp_path), module=True)
    assert not spec.ephemeral
    assert all("/state/code/" in path for _name, path, _target, _source in spec.state)


def test_unset_options_leave_the_spec_defaults(tmp_path):
    settings = sr.settings_from_params(_params(tmp_path))
    spec = _runspec.build_spec(settings, host=_host(tmp_path), module=True)
    defaults = {s.name: s.default for s in _settings.SETTINGS}
    assert spec.memory == _runspec.parse_memory(defaults["memory"])
    assert spec.pids_limit == defaults["pids_limit"]
    assert spec.workdir == defaults["workdir"]
    assert spec.read_only_rootfs is defaults["read_only_rootfs"]
    # gitconfig unset means none for the module (not the launcher's ~/.gitconfig).
    assert settings["gitconfig"] is None
    assert all(m.target != "/home/dev/.gitconfig" for m in spec.mounts)


def test_infisical_options_map_to_the_fetcher_settings_without_the_token(tmp_path):
    infisical = {
        "project_id": "proj-1",
        "environment": "prod",
        "path": "/api",
        "domain": None,
        "timeout": 5,
        "allow_empty": False,
        "binary": "/opt/bin/infisical",
        "token": SECRET,
    }
    settings = sr.settings_from_params(_params(tmp_path, infisical=infisical))
    assert SECRET not in json.dumps(settings)
    argv = _infisical.build_argv(settings)
    assert argv[0] == "/opt/bin/infisical"
    assert "proj-1" in " ".join(argv) and "prod" in " ".join(argv)
    assert SECRET not in " ".join(argv)
    _runspec.build_spec(settings, host=_host(tmp_path), module=True)  # a known setting


def test_token_reaches_infisical_only_through_its_environment(tmp_path, monkeypatch):
    seen = {}

    def runner(argv, env, timeout):
        seen.update(argv=argv, env=env, timeout=timeout)
        return 0, json.dumps([{"key": "API_KEY", "value": SECRET}]).encode(), b""

    real = _infisical.fetch_secrets
    monkeypatch.setattr(
        _infisical, "fetch_secrets", lambda s, environ=None: real(s, environ=environ, runner=runner)
    )
    infisical = {"project_id": "p1", "timeout": 7, "binary": "infisical", "token": "tok-123"}
    settings = sr.settings_from_params(_params(tmp_path, infisical=infisical))
    assert sr._fetch(settings["secrets"], infisical) == {"API_KEY": SECRET}
    assert seen["env"]["INFISICAL_TOKEN"] == "tok-123"
    assert seen["env"]["INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN"] == "tok-123"
    assert "tok-123" not in " ".join(seen["argv"])
    assert seen["timeout"] == 7


STAND_IN = str(Path(__file__).resolve().parents[2] / "tests" / "support" / "infisical")


def test_the_module_token_wins_over_a_token_in_the_module_s_environment(tmp_path, monkeypatch):
    """The Infisical CLI reads INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN before INFISICAL_TOKEN:
    a token of the environment must not hide the one the task gives."""
    record = tmp_path / "call.json"
    monkeypatch.setenv("INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN", "tok-from-the-environment")
    monkeypatch.setenv("INFISICAL_TOKEN", "tok-also-from-the-environment")
    monkeypatch.setenv("DEVENV_FAKE_INFISICAL_RECORD", str(record))
    wanted = hashlib.sha256(b"tok-of-the-task").hexdigest()
    monkeypatch.setenv("DEVENV_FAKE_INFISICAL_TOKEN_SHA256", wanted)
    infisical = {"project_id": "p1", "binary": STAND_IN, "token": "tok-of-the-task"}
    settings = sr.settings_from_params(_params(tmp_path, infisical=infisical))
    fetched = sr._fetch(settings["secrets"], infisical)
    assert set(fetched) == {"DEVENV_CANARY", "DEVENV_PLAIN"}
    call = json.loads(record.read_text())
    assert call["token_source"] == "INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN"
    assert call["token_sha256"] == wanted and call["token_on_cmdline"] is False
    # Without the task's token the environment's is used, as the CLI itself would.
    settings = sr.settings_from_params(_params(tmp_path, infisical=dict(infisical, token=None)))
    with pytest.raises(_infisical.SecretsError, match="Token is invalid"):
        sr._fetch(settings["secrets"], dict(infisical, token=None))


@pytest.mark.parametrize(
    ("given", "argv"),
    [
        ("echo a, b", ["echo", "a,", "b"]),
        ("printf '%s\\n' 'a b' c", ["printf", "%s\\n", "a b", "c"]),
        ('sh -c "echo $HOME; true"', ["sh", "-c", "echo $HOME; true"]),
        ("  claude   --version ", ["claude", "--version"]),
        (r"touch a\ b", ["touch", "a b"]),
        (["echo", "a, b"], ["echo", "a, b"]),
        (["sleep", 1, 0.5], ["sleep", "1", "0.5"]),
    ],
)
def test_command_string_is_split_like_a_shell_never_on_commas(given, argv):
    assert sr.command_argv(given) == argv


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ("echo 'unclosed", "close the quote, or give the command as a list"),
        ("   ", "holds no command"),
        (["echo", None], "command[1]: expected a string, got NoneType"),
        (["echo", True], "command[1]: expected a string, got bool"),
        ({"cmd": "x"}, "a list of arguments or a string"),
    ],
)
def test_a_command_that_cannot_be_split_is_refused_clearly(given, fragment):
    with pytest.raises(_runspec.RunSpecError, match=re.escape(fragment)):
        sr.command_argv(given)


def test_a_string_command_reaches_the_engine_split_like_a_shell(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_engine.Engine, "connect", lambda *a: pytest.fail("engine used"))
    result = _run_module(
        {
            "image": "devenv-test/debian:13",
            "command": "echo a, 'b c'",
            "code_dir": str(tmp_path),
            "user": "1000:1000",
            "_ansible_check_mode": True,
        },
        capsys,
    )
    assert result["spec"]["body"]["Cmd"] == ["echo", "a,", "b c"]
    bad = _run_module(
        {"image": "x", "command": "echo 'a", "code_dir": str(tmp_path), "user": "1:1"}, capsys
    )
    assert bad["failed"] is True and bad["ran"] is False
    assert "cannot be split into words" in bad["msg"]


def test_a_run_returns_output_lines_and_reports_changed(tmp_path, capsys, monkeypatch):
    class FakeEngine:
        def require_image(self, image):
            pass

        def run(self, spec, timeout, output_limit):
            return {
                "rc": 0,
                "stdout": "one\ntwo\n",
                "stderr": "warn\n",
                "stdout_truncated": False,
                "stderr_truncated": False,
                "oom_killed": False,
                "timed_out": False,
                "removed": True,
                "container": {},
            }

    monkeypatch.setattr(_engine.Engine, "connect", classmethod(lambda cls, *a: FakeEngine()))
    result = _run_module(
        {
            "image": "img",
            "command": "true",
            "code_dir": str(tmp_path),
            "user": "1000:1000",
            "network": "open",
        },
        capsys,
    )
    assert result["stdout_lines"] == ["one", "two"]
    assert result["stderr_lines"] == ["warn"]
    assert result["changed"] is True and result["ran"] is True


def test_merge_secrets_refuses_a_name_given_twice_without_showing_values():
    with pytest.raises(_engine.SecureRunError) as info:
        sr.merge_secrets({"API_KEY": "a"}, {"API_KEY": SECRET, "OTHER": "b"})
    assert "API_KEY" in str(info.value)
    assert SECRET not in str(info.value)
    assert sr.merge_secrets({"A": "1"}, {"B": "2"}) == {"A": "1", "B": "2"}


# ---------------------------------------------------------------- redaction


def test_redact_env_hides_only_the_named_values():
    env = ["HOME=/home/dev", f"API_KEY={SECRET}", "MODE=ci", "EMPTY=", "NOEQUALS"]
    out = _engine.redact_env(env, {"API_KEY", "EMPTY"})
    assert out == [
        "HOME=/home/dev",
        f"API_KEY={_engine.REDACTED}",
        "MODE=ci",
        f"EMPTY={_engine.REDACTED}",
        "NOEQUALS",
    ]


def test_effective_settings_redacts_and_keeps_the_engine_view():
    info = {
        "Id": "abc",
        "Name": "/devenv-x",
        "Image": "sha256:1",
        "Created": "2026-01-02T03:04:05.123456789Z",
        "Config": {"User": "1000:1000", "Env": [f"API_KEY={SECRET}", "HOME=/home/dev"]},
        "HostConfig": {"CapDrop": ["ALL"], "AutoRemove": True},
        "Mounts": [{"Type": "bind", "Destination": "/app"}],
    }
    view = _engine.effective_settings(info, {"API_KEY"})
    assert SECRET not in json.dumps(view)
    assert view["name"] == "devenv-x"
    assert view["config"]["User"] == "1000:1000"
    assert view["host_config"] == {"CapDrop": ["ALL"], "AutoRemove": True}


def test_planned_spec_holds_no_secret_value(tmp_path):
    settings = sr.settings_from_params(
        _params(tmp_path, env={"MODE": "x-env-value"}, network="open")
    )
    spec = _runspec.build_spec(
        settings, secrets={"API_KEY": SECRET}, host=_host(tmp_path), module=True
    )
    view = sr.planned(spec)
    text = json.dumps(view)
    assert SECRET not in text and "x-env-value" not in text
    assert view["body"]["Env"][0] == "HOME=/home/dev"
    assert view["body"]["Env"][-1] == f"MODE={_engine.REDACTED}"
    assert view["secret_names"] == ["MODE", "API_KEY"]
    assert view["body"]["HostConfig"] == spec.engine_create_body()["HostConfig"]


def test_timestamp_reads_the_engine_time_in_utc():
    assert _engine._timestamp("1970-01-01T00:01:40.999999999Z") == 100
    assert _engine._timestamp("2026-01-02T03:04:05Z") == 1767323045


def test_bounded_output_keeps_the_head_and_flags_the_rest():
    bounded = _engine._Bounded(5)
    for chunk in (b"abc", b"defg", b"h"):
        bounded.add(chunk)
    assert bounded.text() == "abcde"
    assert bounded.dropped == 3
    assert _engine._Bounded(10).text() == ""


# ---------------------------------------------------------------- the adapter, with a fake engine


class FakeStream:
    """An iterator over items; blocks at the end until closed if `block` is set."""

    def __init__(self, items, block=False):
        self.items = list(items)
        self.block = block
        self.closed = threading.Event()
        self.more = threading.Event()

    def push(self, *items):
        self.items.extend(items)
        self.more.set()

    def __iter__(self):
        while True:
            while self.items:
                yield self.items.pop(0)
            if not self.block or self.closed.is_set():
                return
            self.more.wait(0.05)
            self.more.clear()

    def close(self):
        self.closed.set()


class FakeAPI:
    def __init__(self, *, image=True, exit_code=0, oom=False, hang=False, fail_start=False):
        self.calls = []
        self.image = image
        self.fail_start = fail_start
        events = [{"Action": "oom"}] if oom else []
        events += [
            {"Action": "die", "Actor": {"Attributes": {"exitCode": str(exit_code)}}},
            {"Action": "destroy"},
        ]
        self.events_stream = FakeStream([] if hang else events, block=hang)
        self.output_stream = FakeStream([(b"out\n", None), (None, b"err\n")], block=hang)

    def inspect_image(self, image):
        self.calls.append("inspect_image")
        if not self.image:
            raise docker_errors.ImageNotFound("no such image")

    def pull(self, *args, **kwargs):  # pragma: no cover - must never be called
        self.calls.append("pull")

    def create_container_from_config(self, body, name=None):
        self.calls.append("create")
        self.body, self.name = body, name
        return {"Id": "cid"}

    def inspect_container(self, cid):
        self.calls.append("inspect")
        env = self.body["Env"]
        return {
            "Id": cid,
            "Name": "/" + self.name,
            "Created": "2026-01-02T03:04:05.5Z",
            "Config": {"Env": env},
            "HostConfig": self.body["HostConfig"],
        }

    def events(self, **kwargs):
        self.calls.append("events")
        self.events_kwargs = kwargs
        return self.events_stream

    def attach(self, cid, **kwargs):
        self.calls.append("attach")
        return self.output_stream

    def start(self, cid):
        self.calls.append("start")
        if self.fail_start:
            raise docker_errors.APIError("boom")

    def kill(self, cid):
        self.calls.append("kill")
        self.events_stream.push(
            {"Action": "die", "Actor": {"Attributes": {"exitCode": "137"}}}, {"Action": "destroy"}
        )
        self.output_stream.close()

    def remove_container(self, cid, force=False):
        self.calls.append("remove")

    def exec_create(self, cid, cmd, **kwargs):
        self.calls.append("exec_create")
        self.exec_args = (cmd, kwargs)
        return {"Id": "eid"}

    def exec_start(self, exec_id, socket=False):
        self.calls.append("exec_start")
        self.start_socket = FakeSocket()
        return self.start_socket

    def exec_inspect(self, exec_id):
        self.calls.append("exec_inspect")
        return {"Running": False, "ExitCode": 0}


class FakeSocket:
    """The hijacked exec stream: records what is written until the write side shuts."""

    def __init__(self):
        self.sent = b""
        self.shut = False
        self.closed = False

    def sendall(self, data):
        assert not self.shut
        self.sent += data

    def shutdown(self, how):
        self.shut = True

    def recv(self, size):
        return b""

    def close(self):
        self.closed = True


@pytest.fixture
def no_watchdog(monkeypatch):
    monkeypatch.setattr(_engine, "_start_watchdog", lambda *a: None)


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    code = tmp_path_factory.mktemp("code")
    host = _runspec.Host(1000, 1000, "t", str(code.parent), 2, {})
    return _runspec.build_spec(
        {"image": "img", "code_dir": str(code), "ssh": "none", "gitconfig": None},
        secrets={"API_KEY": SECRET},
        host=host,
    )


def _run(api, spec, **kwargs):
    engine = _engine.Engine(api, api)
    engine.require_image(spec.image)
    return engine.run(spec, **kwargs)


def test_run_orders_the_calls_so_nothing_is_pulled_or_lost(no_watchdog, spec):
    api = FakeAPI(exit_code=3)
    result = _run(api, spec)
    assert api.calls == [
        "inspect_image",
        "create",
        "inspect",
        "events",
        "attach",
        "start",
        *("exec_create", "exec_start", "exec_inspect"),  # the start payload, by stdin
    ]
    assert api.body == spec.engine_create_body()  # the spec's body, sent untouched
    assert api.name == spec.name
    assert SECRET not in json.dumps(api.body)
    assert api.start_socket.sent == spec.start_payload() and api.start_socket.shut
    assert api.exec_args == (list(_runspec.DELIVER_COMMAND), {
        "stdin": True, "stdout": False, "stderr": False, "user": spec.user,
    })  # fmt: skip
    assert api.events_kwargs["since"] == 1767323045
    assert api.events_kwargs["filters"] == {"type": "container", "container": "cid"}
    assert result["rc"] == 3 and result["removed"] and not result["oom_killed"]
    assert (result["stdout"], result["stderr"]) == ("out\n", "err\n")
    assert SECRET not in json.dumps(result)


def test_missing_image_fails_clearly_and_creates_nothing(no_watchdog, spec):
    api = FakeAPI(image=False)
    with pytest.raises(_engine.SecureRunError, match="never pulled"):
        _run(api, spec)
    assert api.calls == ["inspect_image"]


def test_a_container_that_failed_to_start_is_removed(no_watchdog, spec):
    api = FakeAPI(fail_start=True)
    with pytest.raises(_engine.SecureRunError, match="could not start"):
        _run(api, spec)
    assert api.calls[-1] == "remove"


def test_a_signal_during_create_removes_the_container_by_name(no_watchdog, spec):
    class Interrupted(FakeAPI):
        def create_container_from_config(self, body, name=None):
            self.calls.append("create")
            raise _engine._Interrupted(15)  # SIGTERM while the request was in flight

        def remove_container(self, cid, force=False):
            self.calls.append(("remove", cid, force))

    api = Interrupted()
    with pytest.raises(_engine.SecureRunError, match="interrupted by signal 15"):
        _run(api, spec)
    assert api.calls[-1] == ("remove", spec.name, True)


def test_timeout_kills_the_container_and_reports_it(no_watchdog, spec):
    api = FakeAPI(hang=True)
    result = _run(api, spec, timeout=0.2)
    assert result["timed_out"] and result["rc"] == 137
    assert "kill" in api.calls
    assert "did not finish" in sr._run_message(result, [0])


def test_oom_is_reported_as_memory_limit_reached(no_watchdog, spec):
    result = _run(FakeAPI(exit_code=137, oom=True), spec)
    assert result["oom_killed"] and result["rc"] == 137
    assert sr._run_message(result, [0]).startswith("memory limit reached")


@pytest.mark.parametrize(
    ("rc", "expected", "message"),
    [
        (0, [0], "command exited with 0"),
        (2, [0, 2], "command exited with 2"),
        (1, [0], "command exited with 1 (expected 0)"),
    ],
)
def test_run_message_names_the_unexpected_status(rc, expected, message):
    result = {"rc": rc, "timed_out": False, "oom_killed": False}
    assert sr._run_message(result, expected) == message


def test_a_sigkill_without_oom_report_points_at_the_memory_limit():
    result = {"rc": 137, "timed_out": False, "oom_killed": False}
    message = sr._run_message(result, [0], 32 * 1024**2)
    assert "most likely" in message and "memory limit (32m)" in message
    assert sr._run_message(result, [0, 137], 32 * 1024**2) == "command exited with 137"


def test_missing_sdk_gives_a_clear_message(monkeypatch):
    monkeypatch.setattr(_engine, "HAS_DOCKER_SDK", False)
    with pytest.raises(_engine.SecureRunError, match="pip install docker"):
        _engine.Engine.connect()


# ---------------------------------------------------------------- the module in check mode


def _run_module(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        secure_run.main()
    return json.loads(capsys.readouterr().out)


def test_check_mode_returns_the_plan_and_touches_no_engine(tmp_path, capsys, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the engine must not be used in check mode")

    monkeypatch.setattr(_engine.Engine, "connect", forbidden)
    monkeypatch.setattr(_engine.Engine, "run", forbidden)
    result = _run_module(
        {
            "image": "devenv-test/debian:13",
            "command": ["claude", "--version"],
            "code_dir": str(tmp_path),
            "user": "1000:1000",
            "secrets": {"API_KEY": SECRET},
            "_ansible_check_mode": True,
        },
        capsys,
    )
    assert result["ran"] is False and result["changed"] is True
    assert "failed" not in result or result["failed"] is False
    assert result["spec"]["body"]["Cmd"][-2:] == ["claude", "--version"]
    assert result["spec"]["body"]["Cmd"][3] == "devenv-start"  # waits for its secrets
    assert result["spec"]["body"]["HostConfig"]["CapDrop"] == ["ALL"]
    assert result["spec"]["secret_names"] == ["API_KEY"]
    assert SECRET not in json.dumps(result)


def test_an_invalid_spec_fails_before_anything_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_engine.Engine, "connect", lambda *a: pytest.fail("engine used"))
    result = _run_module(
        {
            "image": "devenv-test/debian:13",
            "command": ["true"],
            "code_dir": str(tmp_path),
            "user": "1000:1000",
            "memory": "lots",
        },
        capsys,
    )
    assert result["failed"] is True and result["ran"] is False
    assert "memory" in result["msg"]


# ---------------------------------------------------------------- ansible-doc


def test_ansible_doc_renders_the_module():
    root = Path(__file__).resolve().parents[2]
    ansible_doc = Path(sys.executable).with_name("ansible-doc")
    env = dict(os.environ, ANSIBLE_CONFIG=str(root / "ansible.cfg"))
    proc = subprocess.run(
        [str(ansible_doc), "kuatecno.devenv.secure_run"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "kuatecno.devenv.secure_run" in proc.stdout
    for text in ("expected_rc", "infisical", "RETURN VALUES", "memory limit reached"):
        assert text in proc.stdout
    assert "ERROR" not in proc.stderr and "WARNING" not in proc.stderr


@pytest.mark.parametrize("option", ["memory", "memory_swap"])
def test_the_module_refuses_a_limit_above_the_host_s_memory(tmp_path, capsys, monkeypatch, option):
    monkeypatch.setattr(_engine.Engine, "connect", lambda *a: pytest.fail("engine used"))
    args = {
        "image": "devenv-test/debian:13",
        "command": ["true"],
        "code_dir": str(tmp_path),
        "user": "1000:1000",
        "memory": "1g",
    }
    args[option] = "4096g"
    result = _run_module(args, capsys)
    assert result["failed"] is True and result["ran"] is False
    assert f"{option}: 4096g is more than this host's memory" in result["msg"]


def test_generated_files_go_to_the_private_dir_the_engine_sees(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_engine.Engine, "connect", lambda *a, **k: pytest.fail("no engine"))
    shared = tmp_path / "shared"
    shared.mkdir()
    result = _run_module(
        {
            "image": "devenv-test/debian:13",
            "command": ["true"],
            "code_dir": str(tmp_path),
            "user": "1000:1000",
            "private_dir": str(shared),
            "_ansible_check_mode": True,
        },
        capsys,
    )
    sources = {m["target"]: m["source"] for m in result["spec"]["mounts"]}
    assert sources["/etc/passwd"].startswith(str(shared) + "/devenv-secure-run-")
    assert list(shared.iterdir()) == []  # the private directory of the run is gone again


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("pids_limit", "1_00"),
        ("pids_limit", "\u0661\u0660\u0660"),
        ("cpus", "1_0"),
        ("cpus", "\u0661"),
    ],
)
def test_numbers_are_ascii_digits_in_the_module_too(tmp_path, capsys, monkeypatch, option, value):
    # Ansible's own int() and float() would take these; the table's parser refuses them.
    monkeypatch.setattr(_engine.Engine, "connect", lambda *a: pytest.fail("engine used"))
    args = {"image": "devenv-test/debian:13", "command": ["true"], "code_dir": str(tmp_path)}
    result = _run_module(
        {**args, "user": "1000:1000", option: value, "_ansible_check_mode": True}, capsys
    )
    assert result["failed"] is True and result["ran"] is False
    assert option in result["msg"]
    ok = _run_module(
        {**args, "user": "1000:1000", option: "1", "_ansible_check_mode": True}, capsys
    )
    assert "failed" not in ok or ok["failed"] is False, ok
