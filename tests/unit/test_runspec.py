"""The run specification: every validation rule, and both adapter mappings (no engine)."""

import base64
import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible_collections.kuatecno.devenv.plugins.module_utils import _runspec as rs
from ansible_collections.kuatecno.devenv.plugins.module_utils._runspec import (
    Host,
    RunSpecError,
    build_spec,
    check_config,
    parse_memory,
    validate_env,
)

CANARY = "canary-value-7f3a9"


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home" / "alice"
    (home / "Coding" / "proj").mkdir(parents=True)
    (home / ".claude").mkdir()
    (home / ".gitconfig").write_text("[user]\n")
    return home


@pytest.fixture
def host(home):
    return Host(uid=1000, gid=1000, login="alice", home=str(home), cpu_count=2, environ={})


def spec_of(host, secrets=None, **settings):
    return build_spec(settings, secrets=secrets, host=host)


def error_of(host, secrets=None, **settings):
    with pytest.raises(RunSpecError) as info:
        build_spec(settings, secrets=secrets, host=host)
    return str(info.value)


def flag_values(argv, flag):
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


# ---------------------------------------------------------------- defaults and argv


def test_defaults_map_to_the_full_docker_argv(host, home):
    spec = spec_of(host, ssh="none")
    argv = spec.docker_argv(tty=False, interactive=False)
    assert argv[:2] == ["docker", "run"]
    for flag in ("--rm", "--init", "--read-only"):
        assert flag in argv
    assert flag_values(argv, "--pull") == ["never"]
    assert flag_values(argv, "--cap-drop") == ["ALL"]
    assert flag_values(argv, "--security-opt") == ["no-new-privileges"]
    assert flag_values(argv, "--memory") == [str(4 * 1024**3)]
    assert flag_values(argv, "--memory-swap") == [str(4 * 1024**3)]
    assert flag_values(argv, "--cpus") == ["2"]
    assert flag_values(argv, "--pids-limit") == ["100"]
    assert flag_values(argv, "--user") == ["1000:1000"]
    assert flag_values(argv, "--workdir") == ["/app"]
    assert flag_values(argv, "--log-driver") == ["none"]
    assert flag_values(argv, "--tmpfs") == [
        "/tmp:rw,nosuid,nodev,exec,size=1073741824",
        "/home/dev:rw,nosuid,nodev,exec,size=1073741824,uid=1000,gid=1000,mode=0700",
    ]
    code = os.path.realpath(home / "Coding")
    gitconfig = os.path.realpath(home / ".gitconfig")
    data = os.path.realpath(home) + "/.local/share/devenv"
    assert flag_values(argv, "--mount") == [
        f"type=bind,source={code},target=/app,bind-propagation=rprivate",
        f"type=bind,source={gitconfig},target=/home/dev/.gitconfig,readonly,"
        "bind-propagation=rprivate",
        f"type=bind,source={data}/state/user/claude,target=/home/dev/.claude,"
        "bind-propagation=rprivate",
        f"type=bind,source={data}/state/user/gemini,target=/home/dev/.gemini,"
        "bind-propagation=rprivate",
        f"type=bind,source={data}/identity/passwd,target=/etc/passwd,readonly,"
        "bind-propagation=rprivate",
        f"type=bind,source={data}/identity/group,target=/etc/group,readonly,"
        "bind-propagation=rprivate",
    ]
    assert "-v" not in argv and "--volume" not in argv
    # network: allowlist by default: only the internal network of the egress proxy.
    proxy = spec.proxy.proxy
    assert flag_values(argv, "--network") == [spec.proxy.network]
    assert spec.proxy.network == "devenv-net-" + proxy.removeprefix("devenv-proxy-")
    assert flag_values(argv, "--dns-option") == ["timeout:1", "attempts:1"]
    url = f"http://{proxy}:3128"
    proxy_env = [f"{n}={url}" for n in ("HTTP_PROXY", "HTTPS_PROXY")]
    proxy_env += ["NO_PROXY=localhost,127.0.0.1,::1"]
    proxy_env += [e[: e.index("=")].lower() + e[e.index("=") :] for e in proxy_env]
    assert flag_values(argv, "--env") == [
        "HOME=/home/dev",
        "USER=alice",
        "LOGNAME=alice",
        "CLAUDE_CONFIG_DIR=/home/dev/.claude",
        "DISABLE_AUTOUPDATER=1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
        "NO_BROWSER=true",
        *proxy_env,
        f"DEVENV_PROXY={proxy}:3128",
    ]
    assert flag_values(argv, "--label") == [
        "io.kuatecno.devenv.managed=true",
        "io.kuatecno.devenv.uid=1000",  # whose it is: devenv ps and stop go by it
    ]
    for forbidden in ("--privileged", "--pid", "--ipc", "--uts", "--userns", "--dns"):
        assert forbidden not in argv
    for forbidden in ("-p", "--publish", "--device", "--restart", "--cap-add"):
        assert forbidden not in argv
    assert argv[-3:] == ["--", "devenv:latest", "bash"]
    assert spec.name.startswith("devenv-alice-")


def test_default_mounts_are_code_and_agent_state_rw_the_rest_ro(host, home):
    spec = spec_of(host, ssh="none")
    mounts = {m.target: m for m in spec.mounts}
    assert mounts["/app"].source == os.path.realpath(home / "Coding")
    writable = {t for t, m in mounts.items() if not m.read_only}
    assert writable == {"/app", "/home/dev/.claude", "/home/dev/.gemini"}
    assert set(mounts) == writable | {"/home/dev/.gitconfig", "/etc/passwd", "/etc/group"}
    # Never the host's own agent files.
    for source in (m.source for m in spec.mounts):
        assert not source.startswith(str(home / ".claude")), source
        assert not source.startswith(str(home / ".gemini")), source


@pytest.mark.parametrize(
    ("tty", "interactive", "expected"),
    [
        (False, False, []),
        (False, True, ["--interactive"]),
        (True, True, ["--interactive", "--tty"]),
        (True, False, ["--tty"]),
    ],
)
def test_tty_and_interactive_flags(host, tty, interactive, expected):
    argv = spec_of(host, ssh="none").docker_argv(tty=tty, interactive=interactive)
    assert [a for a in argv if a in ("--interactive", "--tty", "-t", "-i", "-it")] == expected


def test_docker_binary_and_command(host):
    spec = spec_of(host, ssh="none", command=["claude", "--version"], image="devenv:1.2.3")
    argv = spec.docker_argv(tty=False, interactive=False, docker="/usr/bin/docker")
    assert argv[0] == "/usr/bin/docker"
    assert argv[-4:] == ["--", "devenv:1.2.3", "claude", "--version"]


def test_names_are_unique_and_safe(host):
    names = {spec_of(host, ssh="none").name for _ in range(20)}
    assert len(names) == 20
    odd = Host(1000, 1000, "a b$c", host.home, 2, {})
    assert build_spec({"ssh": "none"}, host=odd).name.startswith("devenv-a_b_c-")


# ---------------------------------------------------------------- engine API body


def test_engine_create_body(host, home):
    spec = spec_of(
        host,
        ssh="none",
        network="open",
        secrets={"API_KEY": CANARY},
        labels={"io.kuatecno.devenv.test": "1"},
        memory="512m",
        cpus=1.5,
        pids_limit=64,
    )
    body = spec.engine_create_body()
    hc = body["HostConfig"]
    assert body["Image"] == "devenv:latest"
    # With a secret, the command first waits for its start payload (START_SCRIPT).
    assert body["Cmd"] == ["/bin/sh", "-c", rs.START_SCRIPT, "devenv-start", "bash"]
    assert body["User"] == "1000:1000"
    assert body["WorkingDir"] == "/app"
    assert body["Env"][0] == "HOME=/home/dev"
    assert "CLAUDE_CONFIG_DIR=/home/dev/.claude" in body["Env"]
    assert CANARY not in str(body)
    assert spec_of(host, ssh="none").engine_create_body()["Cmd"] == ["bash"]
    assert body["Labels"] == {
        "io.kuatecno.devenv.managed": "true",
        "io.kuatecno.devenv.uid": "1000",
        "io.kuatecno.devenv.test": "1",
    }
    assert body["Tty"] is False and body["OpenStdin"] is False
    assert hc["AutoRemove"] is True and hc["Init"] is True
    assert hc["Privileged"] is False
    assert hc["CapDrop"] == ["ALL"] and hc["CapAdd"] == []
    assert hc["SecurityOpt"] == ["no-new-privileges"]
    assert hc["ReadonlyRootfs"] is True
    assert hc["Memory"] == hc["MemorySwap"] == 512 * 1024**2
    assert hc["NanoCpus"] == 1_500_000_000
    assert hc["PidsLimit"] == 64
    assert hc["Devices"] == [] and hc["PortBindings"] == {} and hc["Binds"] == []
    assert hc["PublishAllPorts"] is False
    assert hc["RestartPolicy"] == {"Name": "no"}
    assert hc["NetworkMode"] == "default"
    assert hc["Tmpfs"]["/tmp"] == "rw,nosuid,nodev,exec,size=1073741824"
    assert hc["Tmpfs"]["/run/devenv"].endswith(",uid=1000,gid=1000,mode=0700")
    assert hc["Tmpfs"]["/home/dev"].endswith(",uid=1000,gid=1000,mode=0700")
    app = next(m for m in hc["Mounts"] if m["Target"] == "/app")
    assert app == {
        "Type": "bind",
        "Source": os.path.realpath(home / "Coding"),
        "Target": "/app",
        "ReadOnly": False,
        "BindOptions": {"Propagation": "rprivate"},
    }
    assert all(m["Type"] == "bind" for m in hc["Mounts"])
    for key in ("PidMode", "IpcMode", "UTSMode", "UsernsMode", "CapAdd"):
        assert hc.get(key) in (None, [])


def test_engine_body_interactive(host):
    body = spec_of(host, ssh="none").engine_create_body(tty=True, interactive=True)
    assert body["Tty"] is True and body["OpenStdin"] is True and body["AttachStdin"] is True


# ---------------------------------------------------------------- secrets stay out of argv


def test_secrets_only_in_the_start_payload(host):
    spec = spec_of(
        host, ssh="none", network="open", secrets={"API_KEY": CANARY}, env={"MODE": "fast"}
    )
    argv = spec.docker_argv(tty=True, interactive=True)
    assert not any(CANARY in a for a in argv)
    assert not any("fast" in a for a in argv)
    assert flag_values(argv, "--env")[0] == "HOME=/home/dev"
    assert flag_values(argv, "--env")[-1] == "MODE"
    assert not any(CANARY in v or "API_KEY" in v for v in flag_values(argv, "--env"))
    assert spec.secret_env() == {"MODE": "fast"}
    assert spec.secret_names == ("MODE", "API_KEY")
    assert CANARY not in repr(spec)
    assert CANARY not in str(spec.describe())
    payload = spec.start_payload().decode()
    assert payload.splitlines() == [
        "devenv-start 1",
        "E API_KEY " + base64.b64encode(CANARY.encode()).decode(),
        "END",
    ]


def _start(spec, payload, tmp_path):
    """Run the start step of `spec` in a local sh, fed `payload`, with /run/devenv in
    tmp_path; returns (exit status, stdout, stderr)."""
    script = rs.START_SCRIPT.replace("/run/devenv", str(tmp_path))
    command = ["sh", "-c", script, "devenv-start", *spec.command]
    proc = subprocess.Popen(
        command,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    fifo = tmp_path / "start"
    for _ in range(200):
        if fifo.exists():
            break
        time.sleep(0.01)
    if payload is not None:
        with open(fifo, "wb") as handle:
            handle.write(payload)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out.decode(), err.decode()


def test_the_delivery_waits_for_the_start_step_s_fifo(host, tmp_path):
    """The exec may start before the container's first step made its FIFO: it waits
    for it, and never leaves a plain file in its place (found on a busy 1-CPU host)."""
    spec = spec_of(host, ssh="none", command=["sh", "-c", 'printf "%s" "$API_KEY"']).replace(
        secrets={"API_KEY": CANARY}
    )
    deliver = [rs.DELIVER_COMMAND[0], rs.DELIVER_COMMAND[1]]
    deliver.append(rs.DELIVER_COMMAND[2].replace("/run/devenv", str(tmp_path)))
    sender = subprocess.Popen(deliver, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.3)  # the sender is up first, waiting
    assert sender.poll() is None and not (tmp_path / "start").exists()
    script = rs.START_SCRIPT.replace("/run/devenv", str(tmp_path))
    starter = subprocess.Popen(
        ["sh", "-c", script, "devenv-start", *spec.command],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    sender.communicate(spec.start_payload(), timeout=30)
    out, err = starter.communicate(timeout=30)
    assert sender.returncode == 0 and starter.returncode == 0, err
    assert out.decode() == CANARY


def test_the_delivery_refuses_a_plain_file_in_place_of_the_fifo(tmp_path):
    (tmp_path / "start").write_text("")
    deliver = [*rs.DELIVER_COMMAND[:2], rs.DELIVER_COMMAND[2].replace("/run/devenv", str(tmp_path))]
    done = subprocess.run(deliver, input=b"secret", capture_output=True, timeout=30, check=False)
    assert done.returncode == 3
    assert (tmp_path / "start").read_text() == ""


VALUES = {
    "PEM": "-----BEGIN KEY-----\nabc\n-----END KEY-----\n\n",
    "QUOTES": "a 'b' \"c\" $HOME `x` ; rm -rf /",
    "EMPTY": "",
    "UNICODE": "é€",
}


def test_the_start_step_exports_every_value_exactly_and_runs_the_command(host, tmp_path):
    spec = spec_of(
        host,
        ssh="none",
        command=["python3", "-c", "import json,os; print(json.dumps(dict(os.environ)))"],
    ).replace(secrets=dict(VALUES), seed_files=((".c/creds.json", 0o600, b"{}\n"),))
    code, out, err = _start(spec, spec.start_payload(), tmp_path)
    assert code == 0, err
    env = json.loads(out)
    for name, value in VALUES.items():
        assert env[name] == value, name
    for name in ("payload", "line", "data", "value", "ok"):
        assert name not in env
    seeded = tmp_path / ".c" / "creds.json"
    assert seeded.read_bytes() == b"{}\n" and stat.S_IMODE(seeded.stat().st_mode) == 0o600
    assert not (tmp_path / "start").exists()  # the FIFO is gone: nothing is kept


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"devenv-start 1\nE A YQ==\n",  # cut short: no END
        b"devenv-start 1\nE BAD-NAME YQ==\nEND\n",
        b"devenv-start 1\nF 0600 ../escape YQ==\nEND\n",
        b"devenv-start 1\nX what\nEND\n",
    ],
)
def test_a_bad_or_short_start_runs_nothing(host, tmp_path, payload):
    spec = spec_of(host, ssh="none", command=["sh", "-c", "echo RAN"]).replace(gated=True)
    code, out, err = _start(spec, payload, tmp_path)
    assert code == 125 and "RAN" not in out
    assert "the command was not run" in err


def test_secret_conflicting_with_env_is_refused(host):
    message = error_of(host, ssh="none", secrets={"MODE": CANARY}, env={"MODE": "x"})
    assert "MODE" in message and CANARY not in message


# ---------------------------------------------------------------- env rules


@pytest.mark.parametrize(
    "name",
    [
        "1ABC",
        "A-B",
        "A B",
        "A;B",
        "A$B",
        "A=B",
        "-rf",
        "",
        "Ä",
        "A\nB",
        "PATH",
        "HOME",
        "USER",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "NODE_OPTIONS",
        "SSH_AUTH_SOCK",
        "INFISICAL_TOKEN",
        "INFISICAL_ANYTHING",
        "DOCKER_HOST",
        "DOCKER_CONFIG",
        "HTTPS_PROXY",
        "https_proxy",
        "GODEBUG",
        # names that change how programs start, or whom they trust
        "BASH_ENV",
        "ENV",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "NODE_EXTRA_CA_CERTS",
        "GIT_SSH_COMMAND",
        "GIT_CONFIG_COUNT",
        "GIT_CONFIG_KEY_0",
        "GIT_CONFIG_GLOBAL",
        "PROMPT_COMMAND",
        "BASH_FUNC_ls",
        "LESSOPEN",
        "REQUESTS_CA_BUNDLE",
        "CLAUDE_CONFIG_DIR",
        "NO_BROWSER",
    ],
)
def test_bad_or_reserved_env_names(name):
    with pytest.raises(RunSpecError) as info:
        validate_env({name: CANARY})
    assert CANARY not in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        CANARY + "\x00",
        "a\nb\x00" + CANARY,
        "x" * (64 * 1024 + 1),
        "é" * (32 * 1024 + 1),
        5,
        None,
        ["x"],
    ],
)
def test_bad_env_values_name_the_key_never_the_value(value):
    with pytest.raises(RunSpecError) as info:
        validate_env({"GOOD_NAME": value})
    message = str(info.value)
    assert "GOOD_NAME" in message
    assert CANARY not in message and "xxxx" not in message


@pytest.mark.parametrize(
    "value",
    [
        "",
        "x",
        "a b c",
        "'quoted' \"too\"",
        "$HOME;rm -rf /",
        "=",
        "x" * 65536,
        "é",
        # Newlines are fine in the environment (PEM keys, JSON documents).
        "-----BEGIN KEY-----\nAAAA\n-----END KEY-----\n",
        '{\n "a": 1\n}',
        "cr\r\nlf",
    ],
)
def test_good_env_values(value):
    assert validate_env({"GOOD_NAME": value}) == {"GOOD_NAME": value}


def test_env_duplicates_refused():
    with pytest.raises(RunSpecError, match="A_KEY is defined twice"):
        validate_env([("A_KEY", "1"), ("A_KEY", "2")])


def test_env_total_size_bounded():
    many = {f"K{i}": "x" * 60000 for i in range(20)}
    with pytest.raises(RunSpecError, match="exceed 1 MiB"):
        validate_env(many)


@pytest.mark.parametrize("mapping", ["A=1", 5, [("A",)], [["A", "1", "2"]]])
def test_env_shapes(mapping):
    with pytest.raises(RunSpecError):
        validate_env(mapping)


def test_env_names_accepted():
    ok = {"A": "1", "_X": "2", "ANTHROPIC_API_KEY": "3", "GOOGLE_API_KEY": "4", "lower_ok": "5"}
    assert validate_env(ok) == ok


# ---------------------------------------------------------------- limits


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4g", 4 * 1024**3),
        ("4G", 4 * 1024**3),
        ("512m", 512 * 1024**2),
        ("512M", 512 * 1024**2),
        ("6m", 6 * 1024**2),
        ("7000k", 7000 * 1024),
        ("7340032b", 7340032),
        ("7340032", 7340032),
        (7340032, 7340032),
        ("1.5g", int(1.5 * 1024**3)),
        (" 2g ", 2 * 1024**3),
    ],
)
def test_memory_units(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        *("", "g", "4x", "4gb", "4 gigs", "-1g", "0", "0m", "5m", "1k", "4t", True, None, 1.5),
        # ASCII digits only (Python's int() and float() would take these)
        *("1_000m", "\u0664g", "\uff14g", "4\u00a0g"),
    ],
)
def test_memory_rejected(text):
    with pytest.raises(RunSpecError, match="memory"):
        parse_memory(text)


def test_memory_too_small_names_minimum(host):
    assert "6m" in error_of(host, ssh="none", memory="1m")


@pytest.mark.parametrize(
    ("cpus", "nano"), [(2, 2_000_000_000), ("0.5", 500_000_000), (0.01, 10_000_000), (1.25, None)]
)
def test_cpus_accepted(host, cpus, nano):
    spec = spec_of(host, ssh="none", cpus=cpus)
    assert spec.nano_cpus == (nano or int(float(cpus) * 1e9))


@pytest.mark.parametrize(
    "cpus",
    [0, -1, 0.001, 3, "3", 2.01, "abc", "nan", "inf", True, [1], "1_0", "\u0661", "1e0", " 0x1"],
)
def test_cpus_rejected_with_range(host, cpus):
    assert "allowed: 0.01 to 2" in error_of(host, ssh="none", cpus=cpus)


def test_default_cpus_fit_a_small_host(home):
    small = Host(1000, 1000, "alice", str(home), 1, {})
    assert build_spec({"ssh": "none"}, host=small).nano_cpus == 1_000_000_000
    with pytest.raises(RunSpecError, match="more than this host's 1 CPUs"):
        build_spec({"ssh": "none", "cpus": 2}, host=small)


@pytest.mark.parametrize(
    "pids", [0, -5, "0", "ten", 1.5, True, None, 4194305, "1_00", "\u0661\u0660", "\uff11"]
)
def test_pids_rejected(host, pids):
    settings = {"ssh": "none", "pids_limit": pids}
    if pids is None:
        # null means "the default"
        assert build_spec(settings, host=host).pids_limit == 100
        return
    with pytest.raises(RunSpecError, match=r"pids_limit.*allowed: 1 to"):
        build_spec(settings, host=host)


@pytest.mark.parametrize("pids", [1, 100, "250", 4194304])
def test_pids_accepted(host, pids):
    assert spec_of(host, ssh="none", pids_limit=pids).pids_limit == int(pids)


def test_swap_equals_memory_unless_set(host):
    spec = spec_of(host, ssh="none", memory="1g")
    assert spec.memory_swap == spec.memory == 1024**3
    spec = spec_of(host, ssh="none", memory="1g", memory_swap="2g")
    assert spec.memory_swap == 2 * 1024**3
    assert "at least memory" in error_of(host, ssh="none", memory="1g", memory_swap="512m")
    assert "memory_swap" in error_of(host, ssh="none", memory="1g", memory_swap="-1")


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"memory": "9g"}, "allowed: 6m to 8g"),
        ({"memory": "1g", "memory_swap": "9g"}, "maximum 8g"),
        ({"cpus": 1.5}, "allowed: 0.01 to 1"),
        ({"pids_limit": 201}, "allowed: 1 to 200"),
    ],
)
def test_limits_max_is_a_ceiling(host, settings, fragment):
    limits = {"memory": "8g", "cpus": 1, "pids_limit": 200}
    message = error_of(host, ssh="none", limits_max=limits, **settings)
    assert fragment in message


@pytest.mark.parametrize("name", ["memory", "memory_swap", "home_size", "tmp_size"])
def test_sizes_never_above_the_host_s_memory(home, name):
    small = Host(1000, 1000, "alice", str(home), 2, {}, 2 * 1024**3)
    settings = {"ssh": "none", "memory": "1g", name: "3g"}
    with pytest.raises(RunSpecError, match=f"{name}: 3g is more than this host's memory"):
        build_spec(settings, host=small)
    build_spec(dict(settings, **{name: "2g"}), host=small)


def test_default_sizes_fit_a_small_host(home):
    # A 1 vCPU / 1 GB cloud server runs with the defaults: 4g of memory and 1g tmpfs are
    # what the host has at most, as the CPU default is; a size that is set stays refused.
    tiny = Host(1000, 1000, "alice", str(home), 1, {}, 1024**3 - 5 * 1024**2)
    spec = build_spec({"ssh": "none"}, host=tiny)
    assert spec.memory == spec.memory_swap == 1019 * 1024**2
    assert dict(spec.tmpfs)["/tmp"].endswith(f"size={1019 * 1024**2}")
    assert spec.nano_cpus == 10**9
    with pytest.raises(RunSpecError, match="memory: 4g is more than this host's memory"):
        build_spec({"ssh": "none", "memory": "4g"}, host=tiny)
    roomy = Host(1000, 1000, "alice", str(home), 2, {}, 16 * 1024**3)
    assert build_spec({"ssh": "none"}, host=roomy).memory == 4 * 1024**3


@pytest.mark.parametrize(
    ("allowed", "image", "ok"),
    [
        (["devenv:*"], "devenv:1.2.3", True),
        (["devenv:*", "team/devenv-*:v1.*"], "team/devenv-go:v1.4.0", True),
        (["devenv:latest"], "devenv:1.2.3", False),
        (["devenv:*"], "evil/devenv:1", False),
    ],
)
def test_images_only_from_the_administrator_s_list(host, allowed, image, ok):
    settings = {"ssh": "none", "images_allowed": allowed, "image": image}
    if ok:
        assert build_spec(settings, host=host).image == image
    else:
        assert "not among the images the administrator allows" in error_of(host, **settings)


def test_root_needs_an_engine_that_remaps_users_or_an_accepted_risk(host):
    root = spec_of(host, ssh="none", run_as_root=True)
    assert root.needs_userns
    rs.check_engine_info(root, {"SecurityOptions": ["name=seccomp", "name=userns"]})
    with pytest.raises(RunSpecError, match="does not remap users"):
        rs.check_engine_info(root, {"SecurityOptions": ["name=seccomp,profile=default"]})
    accepted = spec_of(host, ssh="none", run_as_root=True, root_without_userns=True)
    rs.check_engine_info(accepted, {"SecurityOptions": []})
    rs.check_engine_info(spec_of(host, ssh="none"), {})


def test_limits_max_may_exceed_the_host_but_runs_may_not(host):
    spec = spec_of(host, ssh="none", cpus=2, limits_max={"cpus": 16, "memory": "64g"})
    assert spec.nano_cpus == 2_000_000_000


@pytest.mark.parametrize(
    "limits",
    [{"memory": "1x"}, {"cpus": 0}, {"pids_limit": -1}, {"disk": "1g"}, "8g", [1]],
)
def test_bad_limits_max(host, limits):
    assert "limits_max" in error_of(host, ssh="none", limits_max=limits)


# ---------------------------------------------------------------- image, command


@pytest.mark.parametrize(
    "image",
    [
        "devenv",
        "devenv:latest",
        "devenv:1.2.3",
        "devenv-test/debian:13",
        "registry.local:5000/team/devenv:1.0",
        "localhost/devenv@sha256:" + "a" * 64,
        "my_org/dev__env:v1.0-rc.1",
    ],
)
def test_good_images(host, image):
    assert spec_of(host, ssh="none", image=image).image == image


@pytest.mark.parametrize(
    "image",
    [
        "",
        "Devenv",
        "devenv:",
        "devenv:tag with space",
        "-devenv",
        "--privileged",
        "devenv;rm",
        "devenv:" + "x" * 129,
        "dev env",
        "devenv@sha256:short",
        "a//b",
        5,
        ["devenv"],
    ],
)
def test_bad_images(host, image):
    assert "image" in error_of(host, ssh="none", image=image)


@pytest.mark.parametrize("command", ["bash -l", [], [1], ["ok", "x\x00"], {"a": 1}])
def test_bad_commands(host, command):
    settings = {"ssh": "none", "command": command}
    if command == []:
        # empty means "the default command"
        assert build_spec(settings, host=host).command == ("bash",)
        return
    with pytest.raises(RunSpecError, match="command"):
        build_spec(settings, host=host)


# ---------------------------------------------------------------- mount sources


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("/var/run/docker.sock", "engine's socket"),
        ("/run/docker.sock", "engine's socket"),
        ("/", "filesystem root"),
        ("/etc", "system directory"),
        ("/etc/ssh", "system directory"),
        ("/usr/bin", "system directory"),
        ("/boot", "system directory"),
        ("/dev", "system directory"),
        ("/proc", "system directory"),
        ("/sys", "system directory"),
        ("/lib", "system directory"),
        ("/run", "engine's socket"),
        ("/var/run", "engine's socket"),
        ("/var", "system directory /var/run"),
        ("/root", "system directory"),
        ("relative/path", "absolute path"),
        ("~bob/x", "only ~"),
        ("/srv/a,b", "','"),
        ("/srv/a=b", "'='"),
        ('/srv/a"b', "'\"'"),
        ("/srv/a\nb", "control character"),
        ("/srv/a\tb", "control character"),
        ("/srv/a\x7fb", "control character"),
        ("", "host path"),
    ],
)
def test_refused_mount_sources(host, source, fragment):
    message = error_of(host, ssh="none", mounts=[{"source": source, "target": "/data"}])
    assert "mounts[0].source" in message
    assert fragment in message


def test_home_and_above_refused(host, home):
    for source in (str(home), str(home.parent), "~", "~/"):
        message = error_of(host, ssh="none", mounts=[{"source": source, "target": "/data"}])
        assert "whole home directory" in message
    assert "whole home" in error_of(host, ssh="none", code_dir="~")


def test_docker_socket_through_a_symlink_refused(host, home):
    (home / "sock").symlink_to("/var/run/docker.sock")
    (home / "varrun").symlink_to("/var/run")
    for name in ("sock", "varrun"):
        message = error_of(host, ssh="none", mounts=[{"source": f"~/{name}", "target": "/d"}])
        assert "engine's socket" in message


def test_docker_host_socket_and_directory_holding_it_refused(home, tmp_path):
    rundir = tmp_path / "rootless"
    rundir.mkdir()
    sock = rundir / "docker.sock"
    sock.write_text("")
    env = {"DOCKER_HOST": f"unix://{rundir / 'engine.sock'}"}
    alice = Host(1000, 1000, "alice", str(home), 2, env)
    for source in (str(rundir), str(rundir / "engine.sock"), str(sock)):
        with pytest.raises(RunSpecError, match="engine's socket"):
            build_spec({"ssh": "none", "mounts": [{"source": source, "target": "/d"}]}, host=alice)


def test_system_dir_refused_as_written_even_if_it_resolves_elsewhere(host, home, monkeypatch):
    real = os.path.realpath
    monkeypatch.setattr(
        rs.os.path, "realpath", lambda p: "/srv/elsewhere" if p.startswith("/etc") else real(p)
    )
    message = error_of(host, ssh="none", mounts=[{"source": "/etc/hosts", "target": "/d"}])
    assert "system directory" in message


def test_symlink_to_system_dir_refused(host, home):
    (home / "etc-link").symlink_to("/etc")
    message = error_of(host, ssh="none", mounts=[{"source": "~/etc-link", "target": "/d"}])
    assert "system directory /etc" in message


def test_missing_source_is_an_error(host, home):
    message = error_of(host, ssh="none", mounts=[{"source": "~/nope", "target": "/data"}])
    assert "does not exist" in message
    assert "code_dir" in error_of(host, ssh="none", code_dir="~/missing")
    (home / "file").write_text("x")
    assert "not a directory" in error_of(host, ssh="none", code_dir="~/file")


def test_resolved_source_is_used(host, home):
    (home / "link").symlink_to(home / "Coding" / "proj")
    spec = spec_of(host, ssh="none", mounts=[{"source": "~/link", "target": "/data"}])
    data = next(m for m in spec.mounts if m.target == "/data")
    assert data.source == os.path.realpath(home / "Coding" / "proj")
    assert data.read_only is True


def test_extra_mount_can_be_writable(host):
    spec = spec_of(
        host, ssh="none", mounts=[{"source": "~/Coding/proj", "target": "/w", "read_only": False}]
    )
    assert [m.read_only for m in spec.mounts if m.target == "/w"] == [False]


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("/", "system directory"),
        ("/proc", "system directory"),
        ("/proc/x", "system directory"),
        ("/sys/fs", "system directory"),
        ("/dev", "system directory"),
        ("/etc/x", "system directory"),
        ("/usr/local", "system directory"),
        ("data", "absolute"),
        ("/data/../etc", ".."),
        ("/a,b", "','"),
        ("/a:b", "':'"),
        ("/a\nb", "control"),
        ("/app", "used twice"),
        ("/home/dev", "used twice"),
        ("/tmp", "used twice"),
    ],
)
def test_refused_mount_targets(host, target, fragment):
    message = error_of(host, ssh="none", mounts=[{"source": "~/Coding/proj", "target": target}])
    assert fragment in message


@pytest.mark.parametrize(
    "mounts",
    [
        "x",
        [{"target": "/d"}],
        [{"source": "~/Coding/proj"}],
        [{"source": "~/Coding/proj", "target": "/d", "ro": True}],
        [{"source": "~/Coding/proj", "target": "/d", "read_only": "yes"}],
        ["~/Coding/proj:/d"],
    ],
)
def test_malformed_mounts(host, mounts):
    assert "mounts" in error_of(host, ssh="none", mounts=mounts)


def test_duplicate_targets(host):
    mounts = [
        {"source": "~/Coding/proj", "target": "/d"},
        {"source": "~/.claude", "target": "/d/"},
    ]
    assert "used twice" in error_of(host, ssh="none", mounts=mounts)


# ---------------------------------------------------------------- credentials


def test_credentials_read_only_into_home(host, home):
    (home / ".gemini").mkdir()
    (home / ".config" / "gh").mkdir(parents=True)
    creds = [
        {"source": "~/.config/gh", "target": ".config/gh"},
        {"source": "~/.gemini", "target": "cfg/.gemini", "required": True},
        {"source": "~/.netrc", "target": ".netrc", "required": False},
    ]
    spec = spec_of(host, ssh="none", credentials=creds)
    mounts = {m.target: m for m in spec.mounts}
    assert mounts["/home/dev/.config/gh"].read_only is True
    assert mounts["/home/dev/cfg/.gemini"].read_only is True
    assert "/home/dev/.netrc" not in mounts
    assert any("~/.netrc does not exist" in n for n in spec.notices)


def test_credential_target_defaults_to_basename(host, home):
    (home / ".npmrc").write_text("")
    spec = spec_of(host, ssh="none", credentials=[{"source": "~/.npmrc"}])
    assert "/home/dev/.npmrc" in {m.target for m in spec.mounts}


@pytest.mark.parametrize(
    "item",
    [
        {"source": "~/.claude"},
        {"source": "~/.claude", "target": ".claude"},
        {"source": "~/.claude", "target": ".claude/hooks"},
        {"source": "~/.claude", "target": ".gemini/x"},
    ],
)
def test_credentials_cannot_land_in_the_agents_state(host, item):
    message = error_of(host, ssh="none", credentials=[item])
    assert "credentials[0]" in message and "devenv keeps" in message and "own state" in message


@pytest.mark.parametrize(
    ("mount", "guarded"),
    [
        ({"source": "~/.claude", "target": "/data"}, ".claude"),
        ({"source": "~/.gemini", "target": "/data"}, ".gemini"),
        ({"source": "~/.claude.json", "target": "/data/c.json"}, ".claude.json"),
        ({"source": "~/.claude/projects", "target": "/data"}, ".claude"),
    ],
)
def test_host_agent_files_are_never_writable(host, home, mount, guarded):
    for name in (".gemini", ".claude/projects"):
        (home / name).mkdir(parents=True, exist_ok=True)
    (home / ".claude.json").write_text("{}")
    message = error_of(host, ssh="none", mounts=[dict(mount, read_only=False)])
    assert "never writable" in message and guarded in message
    # Read-only, elsewhere in the container, is the user's choice.
    spec = spec_of(host, ssh="none", mounts=[mount])
    assert any(m.target == mount["target"] and m.read_only for m in spec.mounts)


def test_a_code_dir_holding_the_host_agent_files_or_devenv_state_is_refused(host, home):
    (home / "dotfiles" / "claude").mkdir(parents=True)
    (home / ".claude").rmdir()
    (home / ".claude").symlink_to(home / "dotfiles" / "claude")
    assert "never writable" in error_of(host, ssh="none", code_dir="~/dotfiles")
    (home / ".local" / "share" / "devenv").mkdir(parents=True)
    assert "devenv's own directory" in error_of(host, ssh="none", code_dir="~/.local")


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        ({"source": "~/.missing", "target": ".m", "required": True}, "does not exist"),
        ({"source": "~/.claude", "target": "/abs"}, "relative to the container HOME"),
        ({"source": "~/.claude", "target": "../escape"}, ".."),
        ({"source": "~/.claude", "target": ".c", "required": "yes"}, "required"),
        ({"source": "~/.claude", "target": ".c", "read_only": False}, "unknown key"),
        ({"source": "/etc/passwd", "target": ".p"}, "system directory"),
        ({"target": ".c"}, "source"),
    ],
)
def test_bad_credentials(host, item, fragment):
    message = error_of(host, ssh="none", credentials=[item])
    assert "credentials[0]" in message
    assert fragment in message


def test_gitconfig_optional_and_disabled(host, home):
    (home / ".gitconfig").unlink()
    assert all(m.target != "/home/dev/.gitconfig" for m in spec_of(host, ssh="none").mounts)
    (home / ".gitconfig").write_text("")
    spec = spec_of(host, ssh="none", gitconfig=None)
    assert all(m.target != "/home/dev/.gitconfig" for m in spec.mounts)


# ---------------------------------------------------------------- ssh


@pytest.fixture
def agent_socket(tmp_path):
    path = tmp_path / "agent.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    yield path
    server.close()


def test_ssh_auto_prefers_a_running_agent(home, agent_socket):
    (home / ".ssh").mkdir()
    alice = Host(1000, 1000, "alice", str(home), 2, {"SSH_AUTH_SOCK": str(agent_socket)})
    spec = build_spec({}, host=alice)
    assert spec.ssh == "agent"
    agent = next(m for m in spec.mounts if m.target == "/run/devenv/ssh-agent.sock")
    assert agent.source == os.path.realpath(agent_socket) and agent.read_only
    assert ("SSH_AUTH_SOCK", "/run/devenv/ssh-agent.sock") in spec.plain_env
    assert all(m.target != "/home/dev/.ssh" for m in spec.mounts)


def test_ssh_auto_without_an_agent_gives_nothing_even_with_keys(host, home):
    assert spec_of(host).ssh == "none"
    stale = Host(1000, 1000, "alice", str(home), 2, {"SSH_AUTH_SOCK": str(home / "gone")})
    assert build_spec({}, host=stale).ssh == "none"
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_text("private")
    spec = build_spec({}, host=stale)
    assert spec.ssh == "none"
    assert all(".ssh" not in m.source for m in spec.mounts)
    assert all(name != "SSH_AUTH_SOCK" for name, _ in spec.plain_env)


def test_ssh_keys_only_when_asked_for(host, home):
    (home / ".ssh").mkdir()
    spec = spec_of(host, ssh="keys")
    keys = next(m for m in spec.mounts if m.target == "/home/dev/.ssh")
    assert keys.read_only is True and spec.ssh == "keys"


def test_ssh_agent_brings_the_host_known_hosts_read_only(home, agent_socket):
    alice = Host(1000, 1000, "alice", str(home), 2, {"SSH_AUTH_SOCK": str(agent_socket)})
    assert all(m.target != "/run/devenv/known_hosts" for m in build_spec({}, host=alice).mounts)
    (home / ".ssh").mkdir()
    (home / ".ssh" / "known_hosts").write_text("host ssh-ed25519 AAAA\n")
    (home / ".ssh" / "id_ed25519").write_text("private")
    spec = build_spec({}, host=alice)
    known = next(m for m in spec.mounts if m.target == "/run/devenv/known_hosts")
    assert known.read_only and known.source == os.path.realpath(home / ".ssh" / "known_hosts")
    # The keys themselves stay on the host.
    assert all("id_ed25519" not in m.source and not m.source.endswith("/.ssh") for m in spec.mounts)


DESKTOP_APP = "/Library/Containers/com.docker.docker"


def _docker_context(home, name, endpoint):
    import hashlib

    meta = home / ".docker" / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    endpoints = {"docker": {"Host": endpoint, "SkipTLSVerify": False}}
    (meta / "meta.json").write_text(json.dumps({"Name": name, "Endpoints": endpoints}))
    (home / ".docker" / "config.json").write_text(json.dumps({"currentContext": name}))


@pytest.mark.parametrize(
    ("platform", "context", "environ", "desktop"),
    [
        # Docker Desktop's own context, and its socket under ~/.docker/run.
        ("darwin", ("desktop-linux", "unix://HOME/.docker/run/docker.sock"), {}, True),
        ("darwin", ("mine", "unix://HOME/.docker/run/docker.sock"), {}, True),
        ("darwin", None, {"DOCKER_HOST": "unix://HOME/.docker/run/docker.sock"}, True),
        ("darwin", None, {"DOCKER_HOST": f"unix://HOME{DESKTOP_APP}/d.sock"}, True),
        ("darwin", ("orbstack", "unix://HOME/.orbstack/run/docker.sock"), {}, True),
        # Colima, a remote engine, no engine socket at all, and Linux.
        ("darwin", ("colima", "unix://HOME/.colima/default/docker.sock"), {}, False),
        ("darwin", None, {"DOCKER_HOST": "tcp://10.0.0.5:2376"}, False),
        ("darwin", ("desktop-linux", "unix://x"), {"DOCKER_HOST": "unix:///run/o.sock"}, False),
        ("darwin", None, {}, False),
        ("linux", ("desktop-linux", "unix://HOME/.docker/desktop/docker.sock"), {}, False),
    ],
)  # fmt: skip
def test_docker_desktop_is_detected(home, platform, context, environ, desktop):
    if context:
        _docker_context(home, context[0], context[1].replace("HOME", str(home)))
    environ = {k: v.replace("HOME", str(home)) for k, v in environ.items()}
    host = Host(501, 20, "alice", str(home), 2, environ, platform=platform)
    assert rs.is_docker_desktop(host) is desktop


def test_docker_desktop_socket_through_a_symlink(home, tmp_path):
    """Docker Desktop links /var/run/docker.sock to its own socket."""
    real = home / ".docker" / "run" / "docker.sock"
    real.parent.mkdir(parents=True)
    real.write_text("")
    link = tmp_path / "docker.sock"
    link.symlink_to(real)
    host = Host(
        501, 20, "alice", str(home), 2, {"DOCKER_HOST": f"unix://{link}"}, platform="darwin"
    )
    assert rs.is_docker_desktop(host)


def test_on_docker_desktop_the_mac_agent_comes_through_its_forwarded_socket(home, agent_socket):
    _docker_context(home, "desktop-linux", f"unix://{home}/.docker/run/docker.sock")
    mac = Host(
        501, 20, "alice", str(home), 2, {"SSH_AUTH_SOCK": str(agent_socket)}, platform="darwin"
    )
    spec = build_spec({}, host=mac)
    agent = next(m for m in spec.mounts if m.target == "/run/devenv/ssh-agent.sock")
    assert (spec.ssh, agent.source, agent.read_only) == (
        "agent",
        "/run/host-services/ssh-auth.sock",
        True,
    )
    assert ("SSH_AUTH_SOCK", "/run/devenv/ssh-agent.sock") in spec.plain_env
    # No agent on the Mac: auto forwards nothing; `agent` still uses Docker Desktop's.
    idle = Host(501, 20, "alice", str(home), 2, {}, platform="darwin")
    assert build_spec({}, host=idle).ssh == "none"
    forced = build_spec({"ssh": "agent"}, host=idle)
    assert "/run/host-services/ssh-auth.sock" in {m.source for m in forced.mounts}


def test_a_mac_engine_that_cannot_reach_the_agent_gets_none_and_a_notice(home, agent_socket):
    _docker_context(home, "colima", f"unix://{home}/.colima/default/docker.sock")
    mac = Host(
        501, 20, "alice", str(home), 2, {"SSH_AUTH_SOCK": str(agent_socket)}, platform="darwin"
    )
    spec = build_spec({}, host=mac)
    assert spec.ssh == "none"
    assert any("not Docker Desktop" in n for n in spec.notices)


def test_ssh_explicit_modes_need_their_source(host, home):
    assert "SSH_AUTH_SOCK is not set" in error_of(host, ssh="agent")
    assert "~/.ssh" in error_of(host, ssh="keys")
    (home / "not-a-socket").write_text("")
    plain = Host(1000, 1000, "alice", str(home), 2, {"SSH_AUTH_SOCK": str(home / "not-a-socket")})
    with pytest.raises(RunSpecError, match="not a socket"):
        build_spec({"ssh": "agent"}, host=plain)


def test_ssh_agent_pointing_at_docker_socket_refused(home):
    evil = Host(1000, 1000, "alice", str(home), 2, {"SSH_AUTH_SOCK": "/var/run/docker.sock"})
    with pytest.raises(RunSpecError, match="engine's socket"):
        build_spec({"ssh": "agent"}, host=evil)


@pytest.mark.parametrize("mode", ["yes", "", "AGENT", 1, True])
def test_ssh_bad_mode(host, mode):
    assert "ssh" in error_of(host, ssh=mode)


# ---------------------------------------------------------------- user


def test_root_needs_an_explicit_option(home):
    root = Host(0, 0, "root", str(home), 2, {})
    with pytest.raises(RunSpecError, match="invoking user is root"):
        build_spec({"ssh": "none"}, host=root)
    spec = build_spec({"ssh": "none", "run_as_root": True}, host=root)
    assert spec.user == "0:0"
    assert any("run_as_root" in w for w in spec.warnings)


def test_run_as_root_warns(host):
    spec = spec_of(host, ssh="none", run_as_root=True)
    assert spec.user == "0:0" and spec.warnings
    assert spec_of(host, ssh="none").warnings == ()


@pytest.mark.parametrize("value", ["yes", 1, "true"])
def test_run_as_root_must_be_boolean(host, value):
    assert "run_as_root" in error_of(host, ssh="none", run_as_root=value)


def test_explicit_numeric_user(host):
    spec = spec_of(host, ssh="none", user="4242:4343")
    assert spec.user == "4242:4343"
    assert "uid=4242,gid=4343" in dict(spec.tmpfs)["/home/dev"]


@pytest.mark.parametrize("user", ["nosuchuser-xyz", "", 5, "1:2:3x"])
def test_bad_user(host, user):
    assert "user" in error_of(host, ssh="none", user=user)


# ---------------------------------------------------------------- paths inside


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"workdir": "app"}, "absolute"),
        ({"workdir": "/etc"}, "must be inside"),
        ({"workdir": "/app/../etc"}, ".."),
        ({"workdir": "/app/a:b"}, "':'"),
        ({"container_home": "/"}, "cannot be used as HOME"),
        ({"container_home": "/app"}, "cannot be used as HOME"),
        ({"container_home": "/tmp"}, "cannot be used as HOME"),
        ({"container_home": "/etc/dev"}, "cannot be used as HOME"),
        ({"container_home": "/home/a,b"}, "','"),
        ({"home_size": "1x"}, "home_size"),
        ({"tmp_size": "0"}, "tmp_size"),
        ({"read_only_rootfs": "false"}, "read_only_rootfs"),
    ],
)
def test_container_side_rules(host, settings, fragment):
    assert fragment in error_of(host, ssh="none", **settings)


@pytest.mark.parametrize("workdir", ["/app", "/app/proj", "/home/dev", "/tmp", "/app/x/"])
def test_workdir_accepted(host, workdir):
    assert spec_of(host, ssh="none", workdir=workdir).workdir == workdir.rstrip("/")


def test_writable_root_filesystem_switch(host):
    spec = spec_of(host, ssh="none", read_only_rootfs=False)
    assert "--read-only" not in spec.docker_argv(tty=False, interactive=False)
    assert spec.engine_create_body()["HostConfig"]["ReadonlyRootfs"] is False


# ---------------------------------------------------------------- labels, settings shape


@pytest.mark.parametrize(
    "labels",
    [
        {"Io.Upper": "1"},
        {"bad key": "1"},
        {"-x": "1"},
        {"a..b": "1"},
        {"io.kuatecno.devenv.managed": "false"},
        {"io.kuatecno.devenv.uid": "0"},
        {"io.kuatecno.devenv.proxy": "x"},  # what the launcher role's absent removes
        {"ok.key": "multi\nline"},
        {"ok.key": 1},
        {"": "1"},
        ["io.x=1"],
    ],
)
def test_bad_labels(host, labels):
    assert "labels" in error_of(host, ssh="none", labels=labels)


def test_extra_labels_pass_through(host):
    spec = spec_of(host, ssh="none", labels={"io.kuatecno.devenv.test": "1", "team": "a=b"})
    labels = flag_values(spec.docker_argv(tty=False, interactive=False), "--label")
    assert labels == [
        "io.kuatecno.devenv.managed=true",
        "io.kuatecno.devenv.uid=1000",
        "io.kuatecno.devenv.test=1",
        "team=a=b",
    ]


def test_unknown_keys_refused(host):
    assert "unknown key(s) memroy" in error_of(host, memroy="4g")
    with pytest.raises(RunSpecError, match="mapping"):
        build_spec(["image"], host=host)


def test_per_user_overrides(host, home):
    (home / "other").mkdir()
    users = {"alice": {"code_dir": "~/other", "ssh": "none"}, "bob": {"code_dir": "/nowhere"}}
    spec = spec_of(host, users=users)
    assert next(m for m in spec.mounts if m.target == "/app").source == os.path.realpath(
        home / "other"
    )
    assert "cannot be set per user" in error_of(host, users={"alice": {"memory": "1g"}})
    assert "users" in error_of(host, users=["alice"])


def test_null_means_default(host):
    spec = spec_of(host, ssh="none", memory=None, cpus=None, image=None)
    assert (spec.memory, spec.nano_cpus, spec.image) == (4 * 1024**3, 2 * 10**9, "devenv:latest")


# ---------------------------------------------------------------- the check of a file


@pytest.fixture
def host_for(tmp_path):
    """Each login a fresh home on a 2-CPU host, as the role's check sees them."""

    def make(login):
        home = tmp_path / "homes" / (login or "nobody")
        home.mkdir(parents=True, exist_ok=True)
        return Host(1000, 1000, login or "", str(home), 2, {})

    return make


def check_settings(settings, host_for):
    return check_config(settings, source="system file", host_for=host_for)


def test_check_settings_accepts_the_documented_example(host_for):
    check_settings(
        {
            "image": "devenv:latest",
            "memory": "4g",
            "memory_swap": None,
            "cpus": 2,
            "pids_limit": 100,
            "limits_max": {"memory": "8g", "cpus": 2, "pids_limit": 200},
            "ssh": "auto",
            "read_only_rootfs": True,
            "run_as_root": False,
            "code_dir": "~/Coding",
            "workdir": "/app",
            "container_home": "/home/dev",
            "credentials": [{"source": "~/.claude", "target": ".claude", "required": False}],
            "gitconfig": "~/.gitconfig",
            "mounts": [{"source": "/srv/data", "target": "/data", "read_only": True}],
            "secrets": {"provider": "infisical", "project_id": "p"},
            "users": {"alice": {"code_dir": "/srv/alice/code", "gitconfig": None}},
        },
        host_for,
    )


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"memory": "9g", "limits_max": {"memory": "8g"}}, "allowed: 6m to 8g"),
        ({"cpus": 4}, "more than this host's 2 CPUs"),
        ({"image": "Bad"}, "image"),
        ({"ssh": "maybe"}, "ssh"),
        ({"code_dir": "relative"}, "absolute"),
        ({"code_dir": "/etc"}, "system directory"),
        ({"mounts": [{"source": "/", "target": "/d"}]}, "filesystem root"),
        ({"mounts": [{"source": "/srv", "target": "/proc"}]}, "system directory"),
        ({"credentials": [{"source": "~/.c", "target": "/abs"}]}, "relative"),
        ({"users": {"bob": {"pids_limit": 5}}}, "cannot be set per user"),
        ({"users": {"bob": {"ssh": "x"}}}, "ssh"),
        ({"users": {"bob": {"mounts": [{"source": "/usr", "target": "/u"}]}}}, "(users.bob)"),
        ({"env": {"PATH": "/x"}}, "reserved"),
        ({"labels": {"Bad": "1"}}, "labels"),
        ({"typo": 1}, "unknown key"),
    ],
)
def test_check_settings_rejects(settings, fragment, host_for):
    with pytest.raises(RunSpecError) as info:
        check_settings(settings, host_for)
    assert fragment in str(info.value)


def test_check_resolves_each_configured_login_and_lets_missing_paths_pass(host_for):
    settings = {
        "ssh": "agent",
        "code_dir": "~/not-yet",
        "credentials": [{"source": "~/.claude", "target": ".claude", "required": True}],
        "users": {"bob": {"code_dir": "/srv/bob/code"}},
    }
    notices = check_settings(settings, host_for)
    assert any(n.startswith("any user: code_dir") for n in notices)
    assert any(n.startswith("bob: code_dir") for n in notices)
    assert any("credentials[0].source" in n for n in notices)


def test_check_as_one_user_passes_paths_closed_to_them_as_notices(host_for, monkeypatch):
    """`devenv config --check` run by alice: bob's home is closed to her (seen on a test
    host); his run checks his files. A real run still refuses an unreadable path."""
    real_stat = os.stat

    def closed(path, *args, **kwargs):
        if "/homes/bob/" in str(path):
            raise PermissionError(13, "Permission denied")
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(rs.os, "stat", closed)
    settings = {"ssh": "none", "gitconfig": "~/.gitconfig", "users": {"bob": {}}}
    notices = check_settings(settings, host_for)
    assert any(n.startswith("bob: gitconfig") and "cannot be looked at" in n for n in notices)
    bob = host_for("bob")
    (Path(bob.home) / "Coding").mkdir()
    with pytest.raises(RunSpecError, match="cannot be read"):
        build_spec({"ssh": "none", "code_dir": "~/Coding"}, host=bob)


def test_module_is_stdlib_only():
    source = open(rs.__file__, encoding="utf-8").read()
    assert "ansible" not in source.split('"""', 2)[2].replace("ansible-playbook", "")


# ---------------------------------------------------------------- the agents' state


def _state(spec):
    return {name: (path, target) for name, path, target, _source in spec.state}


def test_agent_state_per_user_is_one_writable_directory_per_agent(host, home):
    spec = spec_of(host, ssh="none")
    data = os.path.realpath(home) + "/.local/share/devenv"
    assert _state(spec) == {
        "claude": (f"{data}/state/user/claude", "/home/dev/.claude"),
        "gemini": (f"{data}/state/user/gemini", "/home/dev/.gemini"),
    }
    assert spec.data_dir == str(home) + "/.local/share/devenv"
    assert ("CLAUDE_CONFIG_DIR", "/home/dev/.claude") in spec.plain_env
    # The login comes from the host's own files, which are only read.
    sources = {name: source for name, _p, _t, source in spec.state}
    assert sources == {
        "claude": os.path.realpath(home / ".claude"),
        "gemini": str(home / ".gemini"),
    }
    assert not spec.ephemeral
    assert (spec.host_uid, spec.host_gid, spec.host_home) == (1000, 1000, str(home))


def test_agent_state_per_code_directory(host, home):
    (home / "work").mkdir()
    one = _state(spec_of(host, ssh="none", agent_state="code_dir"))["claude"][0]
    two = _state(spec_of(host, ssh="none", agent_state="code_dir", code_dir="~/work"))["claude"][0]
    again = _state(spec_of(host, ssh="none", agent_state="code_dir"))["claude"][0]
    assert one == again != two
    assert "/state/code/Coding-" in one and "/state/code/work-" in two
    assert one.endswith("/claude")


def test_agent_state_follows_xdg_data_home(home):
    host = Host(1000, 1000, "alice", str(home), 2, {"XDG_DATA_HOME": str(home / "xdg")})
    spec = build_spec({"ssh": "none"}, host=host)
    assert _state(spec)["gemini"][0] == os.path.realpath(home) + "/xdg/devenv/state/user/gemini"


def test_ephemeral_state_is_a_private_tmpfs_per_agent(host):
    spec = spec_of(host, ssh="none", ephemeral=True, home_size="256m")
    assert spec.ephemeral
    assert _state(spec) == {
        "claude": ("", "/home/dev/.claude"),
        "gemini": ("", "/home/dev/.gemini"),
    }
    tmpfs = dict(spec.tmpfs)
    for target in ("/home/dev/.claude", "/home/dev/.gemini"):
        assert (
            tmpfs[target]
            == f"rw,nosuid,nodev,exec,size={256 * 1024**2},uid=1000,gid=1000,mode=0700"
        )
        assert all(m.target != target for m in spec.mounts)
    assert ("CLAUDE_CONFIG_DIR", "/home/dev/.claude") in spec.plain_env


def test_claude_nonessential_traffic_is_off_unless_allowed(host):
    off = dict(spec_of(host, ssh="none").plain_env)
    assert off["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert off["DISABLE_AUTOUPDATER"] == "1" and off["NO_BROWSER"] == "true"
    on = dict(spec_of(host, ssh="none", claude_nonessential_traffic=True).plain_env)
    assert "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC" not in on
    assert on["DISABLE_AUTOUPDATER"] == "1"


def test_agent_state_is_vetted_like_any_mount(home, tmp_path):
    # devenv's directory moved onto a system directory, or onto the engine's socket.
    etc = Host(1000, 1000, "alice", str(home), 2, {"XDG_DATA_HOME": "/etc"})
    with pytest.raises(RunSpecError, match="system directory /etc"):
        build_spec({"ssh": "none"}, host=etc)
    engine = tmp_path / "engine"
    engine.mkdir()
    (engine / "docker.sock").write_text("")
    (home / ".local" / "share").mkdir(parents=True)
    (home / ".local" / "share" / "devenv").symlink_to("/var/run")
    with pytest.raises(RunSpecError, match=r"system directory|engine's socket"):
        spec_of(Host(1000, 1000, "alice", str(home), 2, {}), ssh="none")


def test_root_keeps_its_state_in_its_own_home(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    root = Host(0, 0, "root", "/root", 2, {})
    settings = {"ssh": "none", "run_as_root": True, "code_dir": str(code), "gitconfig": None}
    spec = build_spec(settings, host=root)
    assert (
        _state(spec)["claude"][0]
        == os.path.realpath("/root") + "/.local/share/devenv/state/user/claude"
    )


# ---------------------------------------------------------------- identity


def test_the_user_exists_in_the_container(host, home):
    spec = spec_of(host, ssh="none")
    files = dict(spec.generated)
    data = os.path.realpath(home) + "/.local/share/devenv/identity"
    assert set(files) == {f"{data}/passwd", f"{data}/group"}
    passwd = files[f"{data}/passwd"].splitlines()
    assert "alice:x:1000:1000:alice:/home/dev:/bin/bash" in passwd
    assert passwd[0].startswith("root:x:0:0:") and passwd[-1].startswith("nobody:x:65534:")
    assert all(line.split(":")[1] == "x" for line in passwd)  # never a password hash
    group = files[f"{data}/group"].splitlines()
    assert any(line.endswith(":x:1000:") for line in group)
    mounts = {m.target: m for m in spec.mounts}
    assert mounts["/etc/passwd"].source == f"{data}/passwd" and mounts["/etc/passwd"].read_only
    assert mounts["/etc/group"].source == f"{data}/group" and mounts["/etc/group"].read_only
    assert ("USER", "alice") in spec.plain_env and ("LOGNAME", "alice") in spec.plain_env


@pytest.mark.parametrize(
    ("login", "uid", "name"),
    [("alice", 1000, "alice"), ("a:b", 1000, "dev"), ("1234", 1234, "dev"), ("root", 1000, "dev"),
     ("x" * 40, 1000, "dev"), ("root", 0, "root")],
)  # fmt: skip
def test_identity_names_are_safe(home, login, uid, name):
    host = Host(uid, uid, login, str(home), 2, {})
    settings = {"ssh": "none", "run_as_root": uid == 0}
    passwd = dict(build_spec(settings, host=host).generated)
    text = next(v for k, v in passwd.items() if k.endswith("passwd"))
    assert f"{name}:x:{uid}:{uid}:{name}:/home/dev:/bin/bash\n" in text
    assert text.count("\n") == (2 if uid == 0 else 3)


def test_identity_files_go_where_the_caller_says(host, home, tmp_path):
    settings = rs.parse([("t", rs.SYSTEM, {"ssh": "none"})])
    spec = rs.resolve(settings, host, files_dir=str(tmp_path / "files"))
    assert {p for p, _c in spec.generated} == {
        str(tmp_path / "files/passwd"),
        str(tmp_path / "files/group"),
    }


@pytest.mark.skipif(os.geteuid() != 0, reason="needs another user's private home")
def test_a_configuration_check_by_another_user_notes_what_it_cannot_see(tmp_path):
    home = tmp_path / "bob"
    (home / "Coding").mkdir(parents=True)
    (home / ".gitconfig").write_text("")
    home.chmod(0o700)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from ansible_collections.kuatecno.devenv.plugins.module_utils import _runspec as rs;"
        "h = rs.Host(1000, 1000, 'bob', sys.argv[2], 2, {});"
        "print(rs.check_config({}, source='c', host_for=lambda login: h))"
    )
    root = str(Path(__file__).resolve().parents[2] / "collections")
    tmp_path.chmod(0o755)
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
         sys.executable, "-c", probe, root, str(home)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "gitconfig: ~/.gitconfig cannot be looked at by this user" in done.stdout
    assert "identity" not in done.stdout and "agent state" not in done.stdout  # devenv's own


def test_a_uid_gid_user_is_ascii_digits(host):
    # "\u0661\u0660\u0660\u0660" would match \d+; it is a login name nobody has.
    assert "no such user" in error_of(host, ssh="none", user="\u0661\u0660\u0660\u0660:1000")
