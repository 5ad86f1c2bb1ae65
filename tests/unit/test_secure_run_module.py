"""Unit tests of the secure_run module and its docker SDK adapter (no engine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args
from ansible_collections.kuatecno.devenv.plugins.module_utils import _infisical, _runspec
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
    assert set(sr.SETTING_OPTIONS) <= set(_runspec.SETTINGS_DEFAULTS)
    assert set(sr.SETTING_OPTIONS) <= set(secure_run.ARGUMENT_SPEC)


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
    spec = _runspec.build_spec(settings, secrets={"API_KEY": SECRET}, host=_host(tmp_path))
    assert spec.memory == spec.memory_swap == 512 * 1024**2
    assert spec.nano_cpus == 1_500_000_000
    assert spec.pids_limit == 50
    assert spec.read_only_rootfs is False
    assert spec.user == "1000:1000"
    assert spec.ssh == "none"  # the module's default: no SSH unless asked
    assert ("io.kuatecno.devenv.test", "1") in spec.labels
    assert set(spec.secret_names) == {"MODE", "API_KEY"}
    assert {m.target for m in spec.mounts} == {"/app", "/data"}


def test_unset_options_leave_the_spec_defaults(tmp_path):
    settings = sr.settings_from_params(_params(tmp_path))
    spec = _runspec.build_spec(settings, host=_host(tmp_path))
    defaults = _runspec.SETTINGS_DEFAULTS
    assert spec.memory == _runspec.parse_memory(defaults["memory"])
    assert spec.pids_limit == defaults["pids_limit"]
    assert spec.workdir == defaults["workdir"]
    assert spec.read_only_rootfs is defaults["read_only_rootfs"]
    # gitconfig unset means none for the module (not the launcher's ~/.gitconfig).
    assert settings["gitconfig"] is None


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
    _runspec.build_spec(settings, host=_host(tmp_path))  # `secrets` is a known setting


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
    assert sr._fetch(settings, infisical) == {"API_KEY": SECRET}
    assert seen["env"]["INFISICAL_TOKEN"] == "tok-123"
    assert "tok-123" not in " ".join(seen["argv"])
    assert seen["timeout"] == 7


def test_merge_secrets_refuses_a_name_given_twice_without_showing_values():
    with pytest.raises(sr.SecureRunError) as info:
        sr.merge_secrets({"API_KEY": "a"}, {"API_KEY": SECRET, "OTHER": "b"})
    assert "API_KEY" in str(info.value)
    assert SECRET not in str(info.value)
    assert sr.merge_secrets({"A": "1"}, {"B": "2"}) == {"A": "1", "B": "2"}


# ---------------------------------------------------------------- redaction


def test_redact_env_hides_only_the_named_values():
    env = ["HOME=/home/dev", f"API_KEY={SECRET}", "MODE=ci", "EMPTY=", "NOEQUALS"]
    out = sr.redact_env(env, {"API_KEY", "EMPTY"})
    assert out == [
        "HOME=/home/dev",
        f"API_KEY={sr.REDACTED}",
        "MODE=ci",
        f"EMPTY={sr.REDACTED}",
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
    view = sr.effective_settings(info, {"API_KEY"})
    assert SECRET not in json.dumps(view)
    assert view["name"] == "devenv-x"
    assert view["config"]["User"] == "1000:1000"
    assert view["host_config"] == {"CapDrop": ["ALL"], "AutoRemove": True}


def test_planned_spec_holds_no_secret_value(tmp_path):
    settings = sr.settings_from_params(_params(tmp_path, env={"MODE": "x-env-value"}))
    spec = _runspec.build_spec(settings, secrets={"API_KEY": SECRET}, host=_host(tmp_path))
    view = sr.planned(spec)
    text = json.dumps(view)
    assert SECRET not in text and "x-env-value" not in text
    assert f"API_KEY={sr.REDACTED}" in view["body"]["Env"]
    assert view["body"]["HostConfig"] == spec.engine_create_body()["HostConfig"]


def test_timestamp_reads_the_engine_time_in_utc():
    assert sr._timestamp("1970-01-01T00:01:40.999999999Z") == 100
    assert sr._timestamp("2026-01-02T03:04:05Z") == 1767323045


def test_bounded_output_keeps_the_head_and_flags_the_rest():
    bounded = sr._Bounded(5)
    for chunk in (b"abc", b"defg", b"h"):
        bounded.add(chunk)
    assert bounded.text() == "abcde"
    assert bounded.dropped == 3
    assert sr._Bounded(10).text() == ""


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


@pytest.fixture
def no_watchdog(monkeypatch):
    monkeypatch.setattr(sr, "_start_watchdog", lambda *a: None)


def _body():
    return {"Image": "img", "Env": [f"API_KEY={SECRET}"], "HostConfig": {"AutoRemove": True}}


def _run(api, **kwargs):
    return sr.run(
        _body(),
        name="devenv-t",
        image="img",
        redact_names={"API_KEY"},
        api=api,
        stream_api=api,
        **kwargs,
    )


def test_run_orders_the_calls_so_nothing_is_pulled_or_lost(no_watchdog):
    api = FakeAPI(exit_code=3)
    result = _run(api)
    assert api.calls == ["inspect_image", "create", "inspect", "events", "attach", "start"]
    assert api.body == _body()  # the spec's body, sent untouched
    assert api.events_kwargs["since"] == 1767323045
    assert api.events_kwargs["filters"] == {"type": "container", "container": "cid"}
    assert result["rc"] == 3 and result["removed"] and not result["oom_killed"]
    assert (result["stdout"], result["stderr"]) == ("out\n", "err\n")
    assert SECRET not in json.dumps(result)


def test_missing_image_fails_clearly_and_creates_nothing(no_watchdog):
    api = FakeAPI(image=False)
    with pytest.raises(sr.SecureRunError, match="never pulled"):
        _run(api)
    assert api.calls == ["inspect_image"]


def test_a_container_that_failed_to_start_is_removed(no_watchdog):
    api = FakeAPI(fail_start=True)
    with pytest.raises(sr.SecureRunError, match="could not start"):
        _run(api)
    assert api.calls[-1] == "remove"


def test_a_signal_during_create_removes_the_container_by_name(no_watchdog):
    class Interrupted(FakeAPI):
        def create_container_from_config(self, body, name=None):
            self.calls.append("create")
            raise sr._Interrupted(15)  # SIGTERM while the request was in flight

        def remove_container(self, cid, force=False):
            self.calls.append(("remove", cid, force))

    api = Interrupted()
    with pytest.raises(sr.SecureRunError, match="interrupted by signal 15"):
        _run(api)
    assert api.calls[-1] == ("remove", "devenv-t", True)


def test_timeout_kills_the_container_and_reports_it(no_watchdog):
    api = FakeAPI(hang=True)
    result = _run(api, timeout=0.2)
    assert result["timed_out"] and result["rc"] == 137
    assert "kill" in api.calls
    assert "did not finish" in sr._run_message(result, [0])


def test_oom_is_reported_as_memory_limit_reached(no_watchdog):
    result = _run(FakeAPI(exit_code=137, oom=True))
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
    monkeypatch.setattr(sr, "HAS_DOCKER_SDK", False)
    with pytest.raises(sr.SecureRunError, match="pip install docker"):
        sr.connect()


# ---------------------------------------------------------------- the module in check mode


def _run_module(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        secure_run.main()
    return json.loads(capsys.readouterr().out)


def test_check_mode_returns_the_plan_and_touches_no_engine(tmp_path, capsys, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the engine must not be used in check mode")

    monkeypatch.setattr(sr, "connect", forbidden)
    monkeypatch.setattr(sr, "run", forbidden)
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
    assert result["spec"]["body"]["Cmd"] == ["claude", "--version"]
    assert result["spec"]["body"]["HostConfig"]["CapDrop"] == ["ALL"]
    assert result["spec"]["secret_names"] == ["API_KEY"]
    assert SECRET not in json.dumps(result)


def test_an_invalid_spec_fails_before_anything_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sr, "connect", lambda *a: pytest.fail("engine used"))
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
