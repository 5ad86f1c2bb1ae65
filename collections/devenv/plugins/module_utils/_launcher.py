# Copyright (c) devenv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`devenv`: the host launcher (adapter 1 of the run specification).

Standard library only, Python 3.9+. Installed as <prefix>/lib/devenv/devenv_lib/ next to
byte-identical copies of _runspec.py and _infisical.py (LAUNCHER_FILES), and started by
<prefix>/bin/devenv. Start-up is kept lean: only os, sys, json and the run spec are
imported before docker starts; anything else is imported where it is needed.

Order of a run: read the configuration -> validate everything (RunSpec) -> engine
reachable -> image present -> fetch secrets -> start `docker run` with the secrets'
values only in the docker CLI's environment (`--env NAME` on its command line).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any, Optional

from ._runspec import (
    PER_USER_KEYS,
    SETTINGS_DEFAULTS,
    Host,
    RunSpec,
    RunSpecError,
    build_spec,
    check_settings,
)

# The files of the installed launcher library, in <prefix>/lib/devenv/devenv_lib/. The one
# list: tests/support/install_launcher.py reads it, and the devenv_launcher role's
# `_devenv_launcher_lib_files` is kept equal to it by tests/unit/test_launcher.py.
LAUNCHER_FILES = ("__init__.py", "_runspec.py", "_infisical.py", "_launcher.py")

SYSTEM_CONFIG = "/etc/devenv/config.json"
USER_CONFIG = ".config/devenv/config.json"  # under XDG_CONFIG_HOME's parent or HOME
# Keys only the administrator's (system) file may set.
SYSTEM_ONLY_KEYS = ("limits_max", "users")
IMAGE_HINT = "ansible-playbook playbooks/site.yml --tags image"
ENGINE_TIMEOUT = 5.0

EXIT_USAGE = 2  # bad command line or configuration: nothing was fetched or started
EXIT_LAUNCH = 125  # engine, image, secrets or docker CLI problem before the container ran
EXIT_INTERRUPTED = 130

RUN_FLAGS = {
    "--image": "image",
    "--memory": "memory",
    "--cpus": "cpus",
    "--pids-limit": "pids_limit",
    "--workdir": "workdir",
}

USAGE = """\
usage: devenv run [--dry-run] [--no-secrets] [--image REF] [--memory M] [--cpus N]
                  [--pids-limit N] [--workdir DIR] [--] [COMMAND...]
       devenv config [--check FILE]

run      start a fresh, locked-down container with the code directory at /app and run
         COMMAND in it (default: an interactive shell); the exit status is the
         command's. --dry-run prints the docker command and the secret names only.
config   print the effective configuration and where each value comes from
         (default, system file, user file, flag); --check FILE validates a system
         configuration file.

Configuration: $DEVENV_CONFIG or /etc/devenv/config.json (administrator), then
~/.config/devenv/config.json (you), then flags. The administrator's limits_max cannot be
exceeded.
"""


class UsageError(Exception):
    pass


class LaunchError(Exception):
    def __init__(self, message: str, code: int = EXIT_LAUNCH) -> None:
        super().__init__(message)
        self.code = code


def _err(message: str) -> None:
    sys.stderr.write(f"devenv: {message}\n")
    sys.stderr.flush()


# ---------------------------------------------------------------- command line


def parse_run_args(args: list[str]) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Options, flag settings, command. Options stop at `--` or the first non-option."""
    options = {"dry_run": False, "no_secrets": False, "help": False}
    flags: dict[str, str] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            index += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        name, has_value, value = arg.partition("=")
        if name in ("--dry-run", "--no-secrets", "-h", "--help") and not has_value:
            options[{"-h": "help", "--help": "help"}.get(name, name[2:].replace("-", "_"))] = True
        elif name in RUN_FLAGS:
            if not has_value:
                index += 1
                if index >= len(args):
                    raise UsageError(f"{name} needs a value")
                value = args[index]
            flags[RUN_FLAGS[name]] = value
        else:
            raise UsageError(f"unknown option {arg!r} (put the command after --)")
        index += 1
    return options, flags, args[index:]


# ---------------------------------------------------------------- configuration


def _load(path: str, what: str) -> Optional[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LaunchError(f"{what} {path}: cannot be read ({exc.strerror})", EXIT_USAGE) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise LaunchError(f"{what} {path}: not valid JSON ({exc})", EXIT_USAGE) from None
    if not isinstance(data, dict):
        raise LaunchError(f"{what} {path}: expected a JSON object", EXIT_USAGE)
    return data


def config_paths(environ: Mapping[str, str], home: str) -> tuple[str, str]:
    system = environ.get("DEVENV_CONFIG") or SYSTEM_CONFIG
    xdg = environ.get("XDG_CONFIG_HOME", "")
    base = xdg if xdg.startswith("/") else os.path.join(home, ".config")
    return system, os.path.join(base, "devenv", "config.json")


def effective_config(
    flags: Mapping[str, Any], host: Host, environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The merged settings and, per key, where the value came from."""
    system_path, user_path = config_paths(environ, host.home)
    settings: dict[str, Any] = {}
    sources = {key: "default" for key in SETTINGS_DEFAULTS if key != "users"}
    system = _load(system_path, "system configuration") or {}
    for key, value in system.items():
        if key != "users":
            settings[key] = value
            sources[key] = f"system file {system_path}"
    users = system.get("users") or {}
    if not isinstance(users, dict):
        raise LaunchError(f"system configuration {system_path}: users must be a mapping", 2)
    own = users.get(host.login) or {}
    if not isinstance(own, dict):
        raise LaunchError(f"system configuration {system_path}: users.{host.login}", 2)
    for key, value in own.items():
        if key not in PER_USER_KEYS:
            raise LaunchError(
                f"system configuration {system_path}: users.{host.login}.{key} cannot be "
                f"set per user (allowed: {', '.join(PER_USER_KEYS)})",
                EXIT_USAGE,
            )
        settings[key] = value
        sources[key] = f"system file {system_path} (users.{host.login})"
    user = _load(user_path, "user configuration") or {}
    for key, given in user.items():
        if key in SYSTEM_ONLY_KEYS:
            raise LaunchError(
                f"user configuration {user_path}: {key} can only be set by the administrator "
                f"in {system_path}",
                EXIT_USAGE,
            )
        value = given
        if key == "secrets" and isinstance(given, dict) and isinstance(settings.get(key), dict):
            value = dict(settings[key], **given)
        settings[key] = value
        sources[key] = f"user file {user_path}"
    for key, value in flags.items():
        settings[key] = value
        sources[key] = "flag"
    return settings, sources


def _default_workdir(settings: dict[str, Any], sources: dict[str, str], host: Host) -> None:
    """Started inside the code directory, begin in the same place under /app."""
    if sources.get("workdir") != "default":
        return
    code_dir = settings.get("code_dir") or SETTINGS_DEFAULTS["code_dir"]
    if not isinstance(code_dir, str):
        return
    if code_dir == "~" or code_dir.startswith("~/"):
        code_dir = host.home + code_dir[1:]
    try:
        here = os.path.realpath(os.getcwd())
    except OSError:
        return
    base = os.path.realpath(code_dir)
    if here != base and here.startswith(base.rstrip("/") + "/"):
        relative = here[len(base.rstrip("/")) + 1 :]
        if not any(c in relative for c in ',=:"') and relative.isprintable():
            settings["workdir"] = "/app/" + relative
            sources["workdir"] = "current directory"


# ---------------------------------------------------------------- the engine


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _engine_socket(environ: Mapping[str, str], home: str) -> Optional[str]:
    """The engine's unix socket when it can be talked to directly (the docker CLI's own
    order: DOCKER_HOST, DOCKER_CONTEXT, the config's current context), else None: then
    the docker CLI itself is asked (TCP, SSH, unreadable contexts)."""
    docker_host = environ.get("DOCKER_HOST")
    if docker_host:
        return docker_host[len("unix://") :] if docker_host.startswith("unix://") else None
    config_dir = environ.get("DOCKER_CONFIG") or os.path.join(home, ".docker")
    context = environ.get("DOCKER_CONTEXT")
    if not context:
        config = _read_json(os.path.join(config_dir, "config.json"))
        context = config.get("currentContext") if isinstance(config, dict) else None
    if not context or context == "default":
        return "/var/run/docker.sock"
    import hashlib  # noqa: PLC0415 - only with a docker context (Docker Desktop)

    digest = hashlib.sha256(context.encode("utf-8")).hexdigest()
    meta = _read_json(os.path.join(config_dir, "contexts", "meta", digest, "meta.json"))
    try:
        host = meta["Endpoints"]["docker"]["Host"]
    except (TypeError, KeyError):
        return None
    if isinstance(host, str) and host.startswith("unix://"):
        return host[len("unix://") :]
    return None


def _api_get(sock_path: str, path: str) -> tuple[int, bytes]:
    import socket  # noqa: PLC0415 - lean start-up: only when the engine is checked

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(ENGINE_TIMEOUT)
        conn.connect(sock_path)
        conn.sendall(f"GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode("ascii"))
        chunks = []
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    head, _sep, body = b"".join(chunks).partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        status = 0
    return status, body


def _cli(argv: list[str], environ: Mapping[str, str]) -> tuple[int, str]:
    import subprocess  # noqa: PLC0415 - lean start-up: only for non-socket engines

    try:
        done = subprocess.run(
            argv,
            env=dict(environ),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=ENGINE_TIMEOUT * 2,
            check=False,
        )
    except FileNotFoundError:
        raise LaunchError("the docker CLI is not installed or not on PATH") from None
    except subprocess.TimeoutExpired:
        return -1, "no answer in time"
    return done.returncode, (done.stderr or done.stdout).decode("utf-8", "replace").strip()


def check_engine(image: str, environ: Mapping[str, str], home: str) -> None:
    """Engine reachable, then image present locally; one clear message otherwise."""
    missing = (
        f"the image {image} is not on this host, and devenv never pulls at run time. "
        f"Build it with `{IMAGE_HINT}` (or `docker pull {image}` / `docker load` it "
        "yourself)"
    )
    sock = _engine_socket(environ, home)
    if sock is None:
        code, text = _cli(["docker", "version", "--format", "{{.Server.Version}}"], environ)
        if code != 0:
            raise LaunchError(
                f"the Docker engine is not reachable ({text}); start it or check "
                "DOCKER_HOST / the docker context. Nothing was started."
            )
        code, _out = _cli(["docker", "image", "inspect", "--format", "{{.Id}}", image], environ)
        if code != 0:
            raise LaunchError(missing)
        return
    where = f"unix://{sock}"
    try:
        status, _body = _api_get(sock, "/_ping")
    except PermissionError:
        raise LaunchError(
            f"permission denied on the Docker engine socket {where}: add your user to the "
            "docker group (then log in again). Nothing was started."
        ) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise LaunchError(
            f"the Docker engine is not reachable at {where} ({reason}); start it (e.g. "
            "`sudo systemctl start docker` or Docker Desktop) or check DOCKER_HOST. "
            "Nothing was started and no secrets were fetched."
        ) from None
    if status != 200:
        raise LaunchError(f"the Docker engine at {where} is not ready (HTTP {status})")
    # The reference was validated by the run spec: only [A-Za-z0-9._:/@-], URL-safe.
    status, _body = _api_get(sock, f"/images/{image}/json")
    if status == 404:
        raise LaunchError(missing)
    if status != 200:
        raise LaunchError(f"the Docker engine could not look up {image} (HTTP {status})")


# ---------------------------------------------------------------- running docker
#
# Why a child and not exec: exec'ing the docker CLI gives perfect signal and TTY
# behaviour, but then nobody is left to say *why* a session ended with 137, and "memory
# limit reached" is a promised message. The container is removed by the engine
# (--rm/AutoRemove) as soon as it stops, so `docker inspect` cannot tell afterwards; the
# engine's event log still can (an `oom` event for the container's name). So the
# launcher starts `docker run` as a child in its own process group's foreground, and:
#  - does not touch the terminal: docker puts it in raw mode and gets SIGWINCH itself;
#  - ignores SIGINT/SIGQUIT, which a terminal sends to the whole group (docker gets its
#    own copy and forwards it into the container, exactly as when typed by hand);
#  - forwards SIGTERM, SIGHUP, SIGUSR1/2 sent to the launcher alone to docker, which
#    forwards them to the container (--init makes PID 1 pass them on);
#  - returns the container's exit status; if docker itself dies of a signal, dies of the
#    same signal. A SIGKILLed launcher cannot forward anything, but the container still
#    ends with its command and the engine removes it (AutoRemove is daemon-side).
# Secrets live only in the environment handed to docker; the launcher drops its copy.


def _forward_signals(pid: int) -> None:
    import signal  # noqa: PLC0415 - lean start-up

    def forward(signum: int, _frame: Any) -> None:
        try:
            os.kill(pid, signum)
        except OSError:
            pass

    for name in ("SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2"):
        signal.signal(getattr(signal, name), forward)


def _oom_killed(name: str, since: float, environ: Mapping[str, str], home: str) -> bool:
    """Did the engine log an `oom` event for this container since `since`?"""
    import time  # noqa: PLC0415 - only after a failed run

    until = f"{time.time():.3f}"  # not in the future: the engine would wait for it
    sock = _engine_socket(environ, home)
    if sock is not None:
        from urllib.parse import quote  # noqa: PLC0415 - only after a failed run

        filters = json.dumps({"container": [name], "type": ["container"], "event": ["oom"]})
        query = f"since={since:.3f}&until={until}&filters={quote(filters)}"
        try:
            status, body = _api_get(sock, f"/events?{query}")
        except OSError:
            return False
        return status == 200 and b'"oom"' in body
    code, text = _cli(
        [
            "docker",
            "events",
            "--since",
            f"{since:.3f}",
            "--until",
            until,
            "--filter",
            f"container={name}",
            "--filter",
            "event=oom",
            "--format",
            "{{.Status}}",
        ],
        environ,
    )
    return code == 0 and "oom" in text


def run_docker(argv: list[str], env: dict[str, str], spec: RunSpec, home: str = "") -> int:
    """Run docker as a child (see above); returns the container's exit status. `env` is
    cleared once docker has it. `home` locates the docker CLI's config (contexts)."""
    import signal  # noqa: PLC0415 - lean start-up
    import time  # noqa: PLC0415 - lean start-up

    started = time.time() - 1
    # Python ignores SIGPIPE (and we ignore SIGINT/SIGQUIT below): docker gets defaults.
    defaults = [signal.SIGPIPE, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP]
    if hasattr(signal, "SIGXFSZ"):
        defaults.append(signal.SIGXFSZ)
    # Ignored before the child exists, so a Ctrl-C can never orphan it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    try:
        pid = os.posix_spawnp(argv[0], argv, env, setsigdef=defaults)
    except FileNotFoundError:
        raise LaunchError("the docker CLI is not installed or not on PATH") from None
    env.clear()
    _forward_signals(pid)
    _pid, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    advice = (
        "Raise --memory or the configured memory (up to the administrator's limit), or "
        "reduce the workload."
    )
    if code != 0 and _oom_killed(spec.name, started, os.environ, home):
        _err(
            f"the container reached its memory limit ({_size(spec.memory)}) and a process "
            f"was killed (exit {code}). {advice}"
        )
    elif code == 137:
        # Engines on cgroup v1 do not always report the OOM kill (seen here: no `oom`
        # event, OOMKilled false, for a plain memory hog); say what is most likely.
        _err(
            f"the command was killed (exit 137, SIGKILL), most likely because it reached the "
            f"memory limit ({_size(spec.memory)}); the engine did not confirm an "
            f"out-of-memory kill. {advice}"
        )
    return code


def _size(number: int) -> str:
    from ._runspec import format_memory  # noqa: PLC0415 - only for a message

    return format_memory(number)


# ---------------------------------------------------------------- commands


def _report(spec: RunSpec) -> None:
    for warning in spec.warnings:
        _err(f"warning: {warning}")
    for notice in spec.notices:
        _err(f"note: {notice}")


def cmd_run(args: list[str]) -> int:
    options, flags, command = parse_run_args(args)
    if options["help"]:
        sys.stdout.write(USAGE)
        return 0
    if command:
        flags = dict(flags, command=command)
    host = Host.current()
    environ = os.environ
    settings, sources = effective_config(flags, host, environ)
    _default_workdir(settings, sources, host)
    # 1. Everything validated before anything is fetched or started.
    spec = build_spec(settings, host=host)
    _report(spec)
    # 2. Engine and image, before any secret is fetched.
    if not options["dry_run"]:
        check_engine(spec.image, environ, host.home)
    # 3. Secrets.
    secrets: dict[str, str] = {}
    if settings.get("secrets") and not options["no_secrets"]:
        from ._infisical import SecretsError, fetch_secrets  # noqa: PLC0415 - lean start-up

        try:
            secrets = fetch_secrets(settings["secrets"], environ=environ)
        except SecretsError as exc:
            raise LaunchError(
                f"secrets: {exc}. Nothing was started (--no-secrets starts without them)."
            ) from None
    spec = build_spec(settings, secrets=secrets, host=host)
    secrets.clear()
    tty = os.isatty(0) and os.isatty(1)
    argv = spec.docker_argv(tty=tty, interactive=True)
    if options["dry_run"]:
        import shlex  # noqa: PLC0415 - dry runs only

        sys.stdout.write(shlex.join(argv) + "\n")
        names = " ".join(spec.secret_names) or "(none)"
        sys.stdout.write(f"# passed by name from the environment, values not shown: {names}\n")
        return 0
    # The docker CLI gets the caller's environment without Infisical credentials, plus
    # the secrets' values (read by `--env NAME`); nothing else ever holds them.
    env = {k: v for k, v in environ.items() if not k.upper().startswith("INFISICAL_")}
    env.update(spec.secret_env())
    return run_docker(argv, env, spec, host.home)


def cmd_config(args: list[str]) -> int:
    if args[:1] == ["--check"]:
        if len(args) != 2:
            raise UsageError("config --check needs exactly one FILE")
        return check_file(args[1])
    if args:
        raise UsageError(f"unknown argument {args[0]!r} for config")
    host = Host.current()
    settings, sources = effective_config({}, host, os.environ)
    _default_workdir(settings, sources, host)
    system_path, user_path = config_paths(os.environ, host.home)
    out = [f"# system file: {system_path}", f"# user file:   {user_path}"]
    width = max(len(k) for k in sources)
    for key in sources:
        value = settings.get(key, SETTINGS_DEFAULTS.get(key))
        out.append(f"{key:<{width}}  {json.dumps(value)}  ({sources[key]})")
    sys.stdout.write("\n".join(out) + "\n")
    try:
        spec = build_spec(settings, host=host)
    except RunSpecError as exc:
        _err(f"this configuration cannot start a run: {exc}")
        return EXIT_USAGE
    _report(spec)
    sys.stdout.write(f"# resolved: user {spec.user}, ssh {spec.ssh}, workdir {spec.workdir}\n")
    return 0


def check_file(path: str) -> int:
    """Validate a system configuration file (used by the devenv_launcher role)."""
    data = _load(path, "configuration")
    if data is None:
        raise LaunchError(f"configuration {path}: no such file", EXIT_USAGE)
    try:
        check_settings(data)
    except RunSpecError as exc:
        raise LaunchError(f"configuration {path}: {exc}", EXIT_USAGE) from None
    if data.get("secrets"):
        from ._infisical import SecretsError, build_argv  # noqa: PLC0415 - lean start-up

        try:
            build_argv(data["secrets"])
        except SecretsError as exc:
            raise LaunchError(f"configuration {path}: {exc}", EXIT_USAGE) from None
    return 0


def _dispatch(args: list[str]) -> int:
    if not args:
        sys.stderr.write(USAGE)
        return EXIT_USAGE
    if args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0
    commands = {"run": cmd_run, "config": cmd_config}
    if args[0] not in commands:
        raise UsageError(f"unknown command {args[0]!r}")
    return commands[args[0]](args[1:])


def main(argv: Optional[list[str]] = None) -> int:
    """The `devenv` program; argv without the program name. Returns the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        return _dispatch(args)
    except UsageError as exc:
        _err(f"{exc}\n{USAGE.splitlines()[0]}")
        return EXIT_USAGE
    except RunSpecError as exc:
        _err(f"{exc}. Nothing was started.")
        return EXIT_USAGE
    except LaunchError as exc:
        _err(str(exc))
        return exc.code
    except KeyboardInterrupt:
        _err("interrupted; nothing was started")
        return EXIT_INTERRUPTED
