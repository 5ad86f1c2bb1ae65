# Copyright (c) devenv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`devenv`: the host launcher (adapter 1 of the run specification).

Standard library only, Python 3.9+. Installed as <prefix>/lib/devenv/devenv_lib/ next to
byte-identical copies of _runspec.py and _infisical.py (LAUNCHER_FILES), and started by
<prefix>/bin/devenv. Start-up is kept lean: only os, sys, json and the run spec are
imported before docker starts; anything else is imported where it is needed.

Order of a run: read the configuration layers -> parse them once (Settings) -> resolve
the run once (RunSpec) -> one engine round trip (image present, which also says the
engine answers) -> with `network: allowlist`, the egress proxy running (one more round
trip; created or started when it is not) -> fetch secrets -> start `docker run` with the
secrets' values only in the docker CLI's environment (`--env NAME` on its command line)
-> after the run, the destinations the proxy refused.
"""

from __future__ import annotations

import json
import os
import sys

from ._runspec import Host, RunSpec, check_config, expand_home, resolve
from ._settings import FLAG, SETTINGS, SYSTEM, USER, RunSpecError, Settings, flag_names, parse

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only; typing costs start-up time
    from collections.abc import Mapping
    from typing import Any, Optional

# The files of the installed launcher library, in <prefix>/lib/devenv/devenv_lib/. The one
# list: tests/support/install_launcher.py reads it, and the devenv_launcher role's
# `_devenv_launcher_lib_files` is kept equal to it by tests/unit/test_launcher.py.
LAUNCHER_FILES = (
    "__init__.py",
    "_settings.py",
    "_network.py",
    "_runspec.py",
    "_infisical.py",
    "_launcher.py",
)

SYSTEM_CONFIG = "/etc/devenv/config.json"
IMAGE_HINT = "ansible-playbook playbooks/site.yml --tags image"
ENGINE_TIMEOUT = 5.0

EXIT_USAGE = 2  # bad command line or configuration: nothing was fetched or started
EXIT_LAUNCH = 125  # engine, image, secrets or docker CLI problem before the container ran
EXIT_INTERRUPTED = 130

_RUN_SWITCHES = (
    ("--dry-run", "print the docker command and the secret names; start nothing"),
    ("--no-secrets", "start without fetching secrets"),
)


def _run_usage() -> str:
    """`devenv run`'s synopsis; its setting options come from the settings table."""
    words = [f"[{name}]" for name, _doc in _RUN_SWITCHES]
    words += [f"[{s.flag} {s.metavar}]" for s in SETTINGS if s.flag]
    lines, line = [], "usage: devenv run"
    for word in [*words, "[--]", "[COMMAND...]"]:
        if len(line) + len(word) > 86:
            lines.append(line)
            line = " " * 17
        line += " " + word
    return "\n".join([*lines, line])


def _run_help() -> str:
    rows = list(_RUN_SWITCHES)
    rows += [(f"{s.flag} {s.metavar}", f"{s.doc} (setting {s.name})") for s in SETTINGS if s.flag]
    width = max(len(name) for name, _doc in rows)
    options = "\n".join(f"  {name:<{width}}  {doc}" for name, doc in rows)
    return f"{_run_usage()}\n\noptions:\n{options}\n"


USAGE = (
    _run_usage()
    + """
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
)


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
    run_flags = flag_names()
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
        elif name in run_flags:
            if not has_value:
                index += 1
                if index >= len(args):
                    raise UsageError(f"{name} needs a value")
                value = args[index]
            flags[run_flags[name]] = value
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


def load_settings(flags: Mapping[str, Any], host: Host, environ: Mapping[str, str]) -> Settings:
    """The layers (system file with its users.<login>, user file, flags) parsed once."""
    system_path, user_path = config_paths(environ, host.home)
    layers = []
    system = _load(system_path, "system configuration")
    if system is not None:
        layers.append((f"system file {system_path}", SYSTEM, system))
    user = _load(user_path, "user configuration")
    if user is not None:
        layers.append((f"user file {user_path}", USER, user))
    if flags:
        layers.append(("flag", FLAG, dict(flags)))
    try:
        return parse(layers, login=host.login, system_file=system_path)
    except RunSpecError as exc:
        raise LaunchError(f"{exc}. Nothing was started.", EXIT_USAGE) from None


def default_workdir(settings: Settings, host: Host) -> Settings:
    """Started inside the code directory, begin in the same place under /app."""
    if settings.source("workdir") != "default":
        return settings
    try:
        here = os.path.realpath(os.getcwd())
    except OSError:
        return settings
    base = os.path.realpath(expand_home(settings["code_dir"], host.home)).rstrip("/")
    if here != base and here.startswith(base + "/"):
        relative = here[len(base) + 1 :]
        if not any(c in relative for c in ',=:"') and relative.isprintable():
            return settings.replace("workdir", "/app/" + relative, "current directory")
    return settings


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
    """Image present locally, in one round trip that also proves the engine answers; one
    clear message otherwise."""
    missing = (
        f"the image {image} is not on this host, and devenv never pulls at run time. "
        f"Build it with `{IMAGE_HINT}` (or `docker pull {image}` / `docker load` it "
        "yourself)"
    )
    sock = _engine_socket(environ, home)
    if sock is None:
        code, text = _cli(["docker", "image", "inspect", "--format", "{{.Id}}", image], environ)
        if code == 0:
            return
        if "no such image" in text.lower():
            raise LaunchError(missing)
        raise LaunchError(
            f"the Docker engine is not reachable ({text}); start it or check "
            "DOCKER_HOST / the docker context. Nothing was started."
        )
    where = f"unix://{sock}"
    try:
        # The reference was validated by the run spec: only [A-Za-z0-9._:/@-], URL-safe.
        status, _body = _api_get(sock, f"/images/{image}/json")
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
    if status == 404:
        raise LaunchError(missing)
    if status != 200:
        raise LaunchError(
            f"the Docker engine at {where} is not ready (HTTP {status} looking up {image})"
        )


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


# ---------------------------------------------------------------- the egress proxy


def _proxy_engine(spec: RunSpec, environ: Mapping[str, str], home: str) -> Any:
    from ._network import UnixEngine  # noqa: PLC0415 - only with network: allowlist

    sock = _engine_socket(environ, home)
    if sock is None:
        raise LaunchError(
            "network: allowlist needs the engine's unix socket to run the egress proxy, "
            "and this docker context or DOCKER_HOST is not one; use a local engine, or "
            "--network none. Nothing was started.",
            EXIT_USAGE,
        )
    return UnixEngine(sock)


def ensure_proxy(spec: RunSpec, environ: Mapping[str, str], home: str) -> Any:
    """The run's egress proxy running (fail closed: no proxy, no run). Returns the
    engine connection for the report after the run."""
    from ._network import ProxyError, ensure  # noqa: PLC0415 - only with network: allowlist

    engine = _proxy_engine(spec, environ, home)
    labels = [(k, v) for k, v in spec.labels if k != "io.kuatecno.devenv.managed"]
    try:
        done = ensure(engine, spec.proxy, labels)
    except ProxyError as exc:
        raise LaunchError(f"{exc}. Nothing was started (network: allowlist).") from None
    if done != "running":
        _err(f"note: the egress proxy {spec.proxy.proxy} was {done} for this run")
    return engine


def report_proxy(engine: Any, spec: RunSpec, since: float, system_file: str) -> None:
    """After a run: what the proxy refused for it, and whether the proxy stopped."""
    from ._network import after_run, refused_message  # noqa: PLC0415 - after a run only

    done = after_run(engine, spec.proxy, spec.name, since)
    if done["stopped"]:
        _err(
            f"the egress proxy {spec.proxy.proxy} stopped during this run ({done['stopped']}): "
            "the run's network requests failed, since a run has no other way out. The next "
            "run starts the proxy again"
        )
    if done["refused"]:
        _err(refused_message(done["refused"], system_file))


# ---------------------------------------------------------------- commands


def _report(spec: RunSpec) -> None:
    for warning in spec.warnings:
        _err(f"warning: {warning}")
    for notice in spec.notices:
        _err(f"note: {notice}")


def cmd_run(args: list[str]) -> int:
    options, flags, command = parse_run_args(args)
    if options["help"]:
        sys.stdout.write(_run_help())
        return 0
    if command:
        flags = dict(flags, command=command)
    host = Host.current()
    environ = os.environ
    settings = default_workdir(load_settings(flags, host, environ), host)
    # 1. Everything validated before anything is fetched or started: one RunSpec.
    spec = resolve(settings, host)
    _report(spec)
    # 2. Engine and image (and the egress proxy), before any secret is fetched.
    proxy_engine = None
    if not options["dry_run"]:
        check_engine(spec.image, environ, host.home)
        if spec.proxy is not None:
            proxy_engine = ensure_proxy(spec, environ, host.home)
    # 3. Secrets, attached to the same spec.
    if settings["secrets"] and not options["no_secrets"]:
        from . import _infisical  # noqa: PLC0415 - lean start-up: only runs with secrets

        try:
            secrets = _infisical.fetch_secrets(settings["secrets"], environ=environ)
        except _infisical.SecretsError as exc:
            raise LaunchError(
                f"secrets: {exc}. Nothing was started (--no-secrets starts without them)."
            ) from None
        spec = spec.with_secrets(secrets)
        secrets.clear()
    tty = os.isatty(0) and os.isatty(1)
    argv = spec.docker_argv(tty=tty, interactive=True)
    if options["dry_run"]:
        import shlex  # noqa: PLC0415 - dry runs only

        sys.stdout.write(shlex.join(argv) + "\n")
        names = " ".join(spec.secret_names) or "(none)"
        sys.stdout.write(f"# passed by name from the environment, values not shown: {names}\n")
        if spec.proxy is not None:
            allowed = ", ".join(spec.proxy.describe()["allow"]) or "(nothing)"
            sys.stdout.write(
                f"# network allowlist: through the egress proxy {spec.proxy.proxy} on "
                f"{spec.network} (started when needed); allowed: {allowed}\n"
            )
        return 0
    # The docker CLI gets the caller's environment without Infisical credentials, plus
    # the secrets' values (read by `--env NAME`); nothing else ever holds them.
    env = {k: v for k, v in environ.items() if not k.upper().startswith("INFISICAL_")}
    env.update(spec.secret_env())
    if proxy_engine is None:
        return run_docker(argv, env, spec, host.home)
    import time  # noqa: PLC0415 - lean start-up

    since = time.time()
    try:
        return run_docker(argv, env, spec, host.home)
    finally:
        report_proxy(proxy_engine, spec, since, config_paths(environ, host.home)[0])


def cmd_config(args: list[str]) -> int:
    if args[:1] == ["--check"]:
        if len(args) != 2:
            raise UsageError("config --check needs exactly one FILE")
        return check_file(args[1])
    if args:
        raise UsageError(f"unknown argument {args[0]!r} for config")
    host = Host.current()
    settings = default_workdir(load_settings({}, host, os.environ), host)
    system_path, user_path = config_paths(os.environ, host.home)
    out = [f"# system file: {system_path}", f"# user file:   {user_path}"]
    shown = [s.name for s in SETTINGS if s.name != "users"]
    width = max(len(name) for name in shown)
    for name in shown:
        value = json.dumps(settings.raw(name))
        out.append(f"{name:<{width}}  {value}  ({settings.source(name)})")
    sys.stdout.write("\n".join(out) + "\n")
    try:
        spec = resolve(settings, host)
    except RunSpecError as exc:
        _err(f"this configuration cannot start a run: {exc}")
        return EXIT_USAGE
    _report(spec)
    network = spec.network_policy
    if spec.proxy is not None:
        network += f" (egress proxy {spec.proxy.proxy})"
    sys.stdout.write(
        f"# resolved: user {spec.user}, ssh {spec.ssh}, workdir {spec.workdir}, network {network}\n"
    )
    return 0


def check_file(path: str) -> int:
    """Validate a system configuration file (used by the devenv_launcher role): parsed,
    then resolved for each login it configures, as a run would."""
    data = _load(path, "configuration")
    if data is None:
        raise LaunchError(f"configuration {path}: no such file", EXIT_USAGE)
    try:
        notices = check_config(data, source=f"configuration {path}")
    except RunSpecError as exc:
        raise LaunchError(str(exc), EXIT_USAGE) from None
    for notice in notices:
        _err(f"note: {notice}")
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
