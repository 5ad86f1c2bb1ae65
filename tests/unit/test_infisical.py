"""Secrets from Infisical: argv, strict parsing, failures (fake runner and the stand-in)."""

import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from ansible_collections.kuatecno.devenv.plugins.module_utils import _infisical as inf
from ansible_collections.kuatecno.devenv.plugins.module_utils._infisical import (
    SecretsError,
    build_argv,
    fetch_secrets,
    parse_export,
)

STAND_IN = str(Path(__file__).resolve().parents[1] / "support" / "infisical")
CANARY = "canary-3c1e9d"
BASE = {"project_id": "proj-1", "environment": "dev", "path": "/"}


def canary_for(seed):
    return "cnry" + hashlib.sha256(seed.encode()).hexdigest()[:28]


def runner_returning(code, out, err=b""):
    calls = []

    def run(argv, env, timeout):
        calls.append((argv, env, timeout))
        return code, out, err

    run.calls = calls
    return run


# ---------------------------------------------------------------- argv


def test_argv_uses_json_and_no_token():
    argv = build_argv(dict(BASE, path="/apps/api", environment="prod"))
    assert argv == [
        "infisical",
        "export",
        "--format=json",
        "--env=prod",
        "--path=/apps/api",
        "--projectId=proj-1",
    ]


def test_argv_with_domain_and_binary():
    argv = build_argv(dict(BASE, domain="https://secrets.example.com/api", binary="/opt/inf"))
    assert argv[0] == "/opt/inf"
    assert argv[-1] == "--domain=https://secrets.example.com/api"


def test_settings_holding_a_secrets_mapping_are_accepted():
    assert build_argv({"image": "x", "secrets": BASE})[-1] == "--projectId=proj-1"


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({}, "project_id"),
        (dict(BASE, project_id=""), "project_id"),
        (dict(BASE, project_id="--token=x"), "project_id"),
        (dict(BASE, project_id="a b"), "project_id"),
        (dict(BASE, environment="-e"), "environment"),
        (dict(BASE, environment="dev prod"), "environment"),
        (dict(BASE, path="apps"), "path"),
        (dict(BASE, path="/a/../b"), "path"),
        (dict(BASE, path="/a b"), "path"),
        (dict(BASE, domain="ftp://x"), "domain"),
        (dict(BASE, domain="https://x y"), "domain"),
        (dict(BASE, timeout=0), "timeout"),
        (dict(BASE, timeout=601), "timeout"),
        (dict(BASE, timeout="30"), "timeout"),
        (dict(BASE, timeout=True), "timeout"),
        (dict(BASE, allow_empty="yes"), "allow_empty"),
        (dict(BASE, binary="-x"), "binary"),
        (dict(BASE, binary=""), "binary"),
        (dict(BASE, provider="vault"), "provider"),
        (dict(BASE, token="secret-token"), "never goes in the configuration"),
        (dict(BASE, format="dotenv"), "unknown key"),
        ("proj-1", "mapping"),
    ],
)
def test_bad_settings(settings, fragment):
    with pytest.raises(SecretsError) as info:
        build_argv(settings)
    assert fragment in str(info.value)
    assert "secret-token" not in str(info.value)


# ---------------------------------------------------------------- parsing


def test_parse_ok_ignores_extra_fields():
    out = json.dumps(
        [
            {"key": "A_KEY", "value": CANARY, "type": "shared", "_id": "1"},
            {"key": "B", "value": ""},
        ]
    ).encode()
    assert parse_export(out) == {"A_KEY": CANARY, "B": ""}


@pytest.mark.parametrize(
    ("output", "fragment"),
    [
        (b"", "not valid JSON"),
        (b"A_KEY='" + CANARY.encode() + b"'", "not valid JSON"),
        (b'[{"key": "A", "value": "' + CANARY.encode() + b'"}', "not valid JSON"),
        (b'{"A": "x"}', "not a list"),
        (b"null", "not a list"),
        (b'["A=x"]', "entry 0"),
        (b'[{"value": "x"}]', "entry 0 has no string `key`"),
        (b'[{"key": "A"}]', "entry 0 has no string `value`"),
        (b'[{"key": "A", "value": 5}]', "entry 0 has no string `value`"),
        (b'[{"key": 5, "value": "x"}]', "entry 0 has no string `key`"),
        (b'[{"key": "A", "value": "x", "value": "y"}]', "not valid JSON"),
        (b'[{"key": "A", "value": NaN}]', "not valid JSON"),
        (b"\xff\xfe[]", "not valid JSON"),
        (b"[]", "no secrets"),
    ],
)
def test_parse_rejects(output, fragment):
    with pytest.raises(SecretsError) as info:
        parse_export(output)
    assert fragment in str(info.value)
    assert CANARY not in str(info.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("BAD NAME", CANARY),
        ("-rf", CANARY),
        ("A;B", CANARY),
        ("PATH", CANARY),
        ("INFISICAL_TOKEN", CANARY),
        ("DOCKER_HOST", CANARY),
        ("NUL", CANARY + "\x00"),
        ("BIG", CANARY + "x" * 70000),
    ],
)
def test_parse_validates_every_entry(key, value):
    with pytest.raises(SecretsError) as info:
        parse_export(json.dumps([{"key": key, "value": value}]).encode())
    assert CANARY not in str(info.value)
    assert "cannot pass" in str(info.value)


PEM = "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAAS\n-----END PRIVATE KEY-----\n"


@pytest.mark.parametrize(
    "value",
    [PEM, '{\n  "type": "service_account",\n  "key": "a\\nb"\n}', "dos line\r\nend\r", "\n"],
)
def test_values_with_newlines_pass_unchanged(value):
    """They travel in the environment, where only NUL is impossible."""
    assert parse_export(json.dumps([{"key": "DOC", "value": value}]).encode()) == {"DOC": value}


def test_parse_refuses_duplicates():
    out = json.dumps([{"key": "A", "value": "1"}, {"key": "A", "value": "2"}]).encode()
    with pytest.raises(SecretsError, match="defined twice"):
        parse_export(out)


def test_empty_allowed_when_configured():
    assert parse_export(b"[]", allow_empty=True) == {}
    assert fetch_secrets(dict(BASE, allow_empty=True), runner=runner_returning(0, b"[]")) == {}


# ---------------------------------------------------------------- fetch with a fake runner


def test_fetch_passes_environment_and_timeout():
    run = runner_returning(0, json.dumps([{"key": "A", "value": CANARY}]).encode())
    environ = {"INFISICAL_TOKEN": "tok", "HOME": "/h"}
    assert fetch_secrets(dict(BASE, timeout=7), environ=environ, runner=run) == {"A": CANARY}
    argv, env, timeout = run.calls[0]
    assert env == environ and timeout == 7.0
    assert not any("tok" in a for a in argv)


def test_failure_discards_stdout_and_names_no_value():
    out = json.dumps([{"key": "A", "value": CANARY}]).encode()
    run = runner_returning(1, out, b"error: You must be logged in\n")
    with pytest.raises(SecretsError) as info:
        fetch_secrets(BASE, runner=run)
    message = str(info.value)
    assert "exit 1" in message and "logged in" in message
    assert CANARY not in message


def test_long_stderr_is_shortened():
    run = runner_returning(2, b"", b"e\x1b[31m" + b"x" * 5000)
    with pytest.raises(SecretsError) as info:
        fetch_secrets(BASE, runner=run)
    assert len(str(info.value)) < 400 and "\x1b" not in str(info.value)


@pytest.mark.parametrize(
    ("error", "fragment"),
    [
        (FileNotFoundError(), "not installed or not on PATH"),
        (PermissionError(), "cannot be run"),
        (subprocess.TimeoutExpired(["infisical"], 3), "did not answer within"),
    ],
)
def test_runner_errors(error, fragment):
    def run(argv, env, timeout):
        raise error

    with pytest.raises(SecretsError, match=fragment):
        fetch_secrets(BASE, runner=run)


def test_keyboard_interrupt_propagates():
    def run(argv, env, timeout):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch_secrets(BASE, runner=run)


def test_output_size_bounded(monkeypatch):
    monkeypatch.setattr(inf, "OUTPUT_MAX", 10)
    with pytest.raises(SecretsError, match="more than 16 MiB"):
        fetch_secrets(BASE, runner=runner_returning(0, b"[" + b" " * 20 + b"]"))


# ---------------------------------------------------------------- the stand-in, for real


def stand_in_env(tmp_path, mode, token=True):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DEVENV_FAKE_INFISICAL_MODE": mode,
        "DEVENV_FAKE_INFISICAL_SEED": "unit-seed",
        "DEVENV_FAKE_INFISICAL_RECORD": str(tmp_path / "record.json"),
    }
    if token:
        env["INFISICAL_TOKEN"] = "tok-123"
    return env


def test_stand_in_ok(tmp_path):
    secrets = fetch_secrets(
        dict(BASE, binary=STAND_IN, domain="https://infisical.local"),
        environ=stand_in_env(tmp_path, "ok"),
    )
    assert secrets["DEVENV_CANARY"] == canary_for("unit-seed")
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["token_on_cmdline"] is False and record["token_in_env"] is True
    assert (
        "--format=json" in record["argv"] and "--domain=https://infisical.local" in record["argv"]
    )
    assert not any("tok-123" in a for a in record["argv"])


@pytest.mark.parametrize(
    ("mode", "token", "fragment"),
    [
        ("fail", True, "exit 1"),
        ("not-logged-in", True, "logged in"),
        ("ok", False, "logged in"),
        ("malformed", True, "not valid JSON"),
        ("bad-name", True, "invalid variable name"),
        ("nul", True, "NUL"),
        ("empty", True, "no secrets"),
    ],
)
def test_stand_in_failures(tmp_path, mode, token, fragment):
    with pytest.raises(SecretsError) as info:
        fetch_secrets(dict(BASE, binary=STAND_IN), environ=stand_in_env(tmp_path, mode, token))
    assert fragment in str(info.value)
    assert canary_for("unit-seed") not in str(info.value)


def test_stand_in_multiline_secret_arrives_whole(tmp_path):
    secrets = fetch_secrets(
        dict(BASE, binary=STAND_IN), environ=stand_in_env(tmp_path, "multiline")
    )
    assert secrets == {"MULTI": canary_for("unit-seed") + "\nsecond line"}


def test_missing_binary(tmp_path):
    with pytest.raises(SecretsError, match="not installed"):
        fetch_secrets(dict(BASE, binary=str(tmp_path / "nope")), environ={})


def _stand_in_pids(seed):
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if f"DEVENV_FAKE_INFISICAL_SEED={seed}".encode() in environ:
            pids.append(int(entry))
    return pids


def test_hang_is_bounded_and_kills_the_whole_group(tmp_path):
    env = stand_in_env(tmp_path, "hang")
    env["DEVENV_FAKE_INFISICAL_SEED"] = seed = f"hang-{os.getpid()}"
    start = time.monotonic()
    with pytest.raises(SecretsError, match="did not answer within 1 s"):
        fetch_secrets(dict(BASE, binary=STAND_IN, timeout=1), environ=env)
    assert time.monotonic() - start < 5
    time.sleep(0.2)
    assert _stand_in_pids(seed) == []  # the forked grandchild is gone too


def test_ctrl_c_during_fetch_kills_the_cli(tmp_path):
    env = stand_in_env(tmp_path, "hang")
    env["DEVENV_FAKE_INFISICAL_SEED"] = seed = f"int-{os.getpid()}"
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            fetch_secrets(dict(BASE, binary=STAND_IN, timeout=30), environ=env)
    finally:
        timer.cancel()
    time.sleep(0.2)
    assert _stand_in_pids(seed) == []


@pytest.mark.parametrize(
    ("environ", "source", "hidden"),
    [
        ({}, None, []),
        ({"INFISICAL_TOKEN": "a"}, "INFISICAL_TOKEN", []),
        (
            {"INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN": "b"},
            "INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN",
            [],
        ),
        (
            {"INFISICAL_TOKEN": "a", "INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN": "b"},
            "INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN",
            ["INFISICAL_TOKEN"],
        ),
        (
            {"INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN": "  ", "INFISICAL_TOKEN": "a"},
            "INFISICAL_TOKEN",
            [],
        ),
    ],
)
def test_token_source_follows_the_cli_s_order(environ, source, hidden):
    assert inf.token_source(environ) == (source, hidden)


def test_environ_with_token_leaves_no_other_token_in_front():
    env = inf.environ_with_token({"INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN": "old", "X": "1"}, "new")
    assert {k: v for k, v in env.items() if k.startswith("INFISICAL_")} == {
        "INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN": "new",
        "INFISICAL_TOKEN": "new",
    }
    assert env["X"] == "1"
