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

from . import _agents
from ._engineapi import engine_socket, request
from ._runspec import (
    START_WAIT,
    Host,
    RunSpec,
    audit,
    check_config,
    check_engine_info,
    expand_home,
    pin_own,
    resolve,
    verify_pins,
)
from ._settings import (
    FLAG,
    SETTINGS,
    SYSTEM,
    USER,
    RunSpecError,
    Settings,
    flag_names,
    is_switch,
    parse,
)
from ._settings import MANAGED_LABEL as MANAGED_LABEL_KEY

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
    "_agents.py",
    "_runspec.py",
    "_engineapi.py",
    "_network.py",
    "_infisical.py",
    "_launcher.py",
    "_doctor.py",
)

SYSTEM_CONFIG = "/etc/devenv/config.json"
IMAGE_HINT = "ansible-playbook playbooks/site.yml --tags image"
ENGINE_TIMEOUT = 5.0
# Seconds the launcher waits for its container to run before it hands over the start.
START_DEADLINE = START_WAIT / 2

EXIT_USAGE = 2  # bad command line or configuration: nothing was fetched or started
EXIT_LAUNCH = 125  # engine, image, secrets or docker CLI problem before the container ran
EXIT_INTERRUPTED = 130

# The release of the kuatecno.devenv collection this launcher belongs to (`devenv
# --version`); held equal to galaxy.yml's version by tests/unit/test_launcher.py.
VERSION = "0.1.0"

_RUN_SWITCHES = (
    ("--dry-run", "print the docker command and the secret names; start nothing"),
    ("--no-secrets", "start without fetching secrets"),
)
_HELP_SWITCH = ("-h, --help", "show this help and exit")


def _wrap(words: list[str], first: str, width: int = 88) -> str:
    """`first` followed by the words, wrapped under it."""
    lines, line = [], first
    for word in words:
        if len(line) + len(word) + 1 > width and line.strip() != first.strip():
            lines.append(line)
            line = " " * len(first)
        line += " " + word
    return "\n".join([*lines, line])


def _flag_words(setting: Any) -> str:
    return setting.flag if is_switch(setting) else f"{setting.flag} {setting.metavar}"


def _run_options() -> list[tuple[str, str]]:
    """`devenv run`'s options: its switches, then the settings table's flags."""
    rows = list(_RUN_SWITCHES)
    rows += [(_flag_words(s), f"{s.doc} (setting {s.name})") for s in SETTINGS if s.flag]
    return rows


def _run_usage() -> str:
    words = [f"[{name}]" for name, _doc in _RUN_SWITCHES]
    words += [f"[{_flag_words(s)}]" for s in SETTINGS if s.flag]
    return _wrap([*words, "[--]", "[COMMAND...]"], "usage: devenv run")


# ---------------------------------------------------------------- the commands
#
# One row per command: name, one-line summary, synopsis (after "devenv "), a short
# description, its options as (option, help) rows, and what completes its other words
# (see completion_script): "command" (a command line follows the options), "commands"
# (a command name), a tuple of words, or None (nothing). The row's handler is
# cmd_<name>. A new command is one row and one function; the list of commands,
# `COMMAND --help` and shell completion all come from here.

_COMMANDS = (
    (
        "run",
        "start a fresh, locked-down container (what `dev` does)",
        None,  # the synopsis is built from the settings table
        "Start a fresh, locked-down container with the code directory at /app and run\n"
        "COMMAND in it (default: an interactive shell); the exit status is the command's.\n"
        "Options stop at -- or at the first word that is not an option.",
        _run_options,
        "command",
    ),
    (
        "login",
        "log an agent in, with its own login flow (no browser needed)",
        "login claude|gemini [RUN OPTIONS]",
        "Run the agent's own login flow in a container: it prints a URL and asks for the\n"
        "code shown after signing in. The login is kept in devenv's agent state, never in\n"
        "the host's own ~/.claude or ~/.gemini. Needs a terminal.",
        _run_options,
        ("claude", "gemini"),
    ),
    (
        "state",
        "where the agents' state lives and its size; reset it",
        "state [reset [AGENT]] [--yes] [RUN OPTIONS]",
        "Show where the agents' state (login, settings, sessions) lives and its size, for\n"
        "the settings a run would use; `state reset [AGENT]` deletes it after asking (the\n"
        "next run starts afresh and imports the host's login again). The host's own\n"
        "~/.claude, ~/.claude.json and ~/.gemini are never touched.",
        lambda: [("--yes", "reset without asking"), *_run_options()],
        ("reset",),
    ),
    (
        "config",
        "print the effective configuration, or check a system file",
        "config [--check FILE]",
        "Print every setting with its value and where it comes from (default, system\n"
        "file, users.<login>, user file), then how a run would resolve.",
        lambda: [("--check FILE", "validate a system configuration file and exit")],
        None,
    ),
    (
        "doctor",
        "check everything a dev run depends on, then one real container",
        "doctor [--json] [RUN OPTIONS]",
        "Check, one line each with the fix for each failure: the configuration, the\n"
        "engine and how you reach it, the image and its pinned agents, the isolation,\n"
        "credential and agent-state permissions, the SSH agent, Infisical (no value is\n"
        "shown) and the network policy; then start one container as dev does and assert\n"
        "its runtime properties from outside and inside. Exit status 0 only when all hold.",
        lambda: [("--json", "print the checks as JSON (for tooling)"), *_run_options()],
        None,
    ),
    (
        "ps",
        "list your running devenv containers",
        "ps",
        "List the devenv containers you started that still run: name, image, status.",
        list,
        None,
    ),
    (
        "stop",
        "stop one of your running devenv containers",
        "stop NAME",
        "Stop the devenv container NAME (as `devenv ps` lists it); only your own.",
        list,
        None,
    ),
    (
        "completion",
        "print the shell completion script for bash or zsh",
        "completion bash|zsh",
        "Print the completion script for devenv and dev. The devenv_launcher role installs\n"
        'it; elsewhere, add `eval "$(devenv completion bash)"` to ~/.bashrc (zsh: the same\n'
        "with zsh, in ~/.zshrc).",
        list,
        ("bash", "zsh"),
    ),
    (
        "help",
        "show this help, or the help of COMMAND",
        "help [COMMAND]",
        "Show the list of commands, or the usage and options of one command (the same as\n"
        "`devenv COMMAND --help`).",
        list,
        "commands",
    ),
)


def _command(name: str) -> tuple:
    for row in _COMMANDS:
        if row[0] == name:
            return row
    names = ", ".join(row[0] for row in _COMMANDS)
    raise UsageError(f"unknown command {name!r} (commands: {names})", None)


def _synopsis(row: tuple) -> str:
    return _run_usage() if row[0] == "run" else f"usage: devenv {row[2]}"


def command_help(name: str) -> str:
    """The help of one command: synopsis, description, options."""
    import textwrap  # noqa: PLC0415 - help only

    row = _command(name)
    rows = [*row[4](), _HELP_SWITCH]
    width = max(len(option) for option, _doc in rows)
    indent = " " * (width + 4)
    options = "\n".join(
        textwrap.fill(f"  {option:<{width}}  {doc}", 88, subsequent_indent=indent)
        for option, doc in rows
    )
    return f"{_synopsis(row)}\n\n{row[3]}\n\noptions:\n{options}\n"


def main_help() -> str:
    width = max(len(row[0]) for row in _COMMANDS)
    commands = "\n".join(f"  {row[0]:<{width}}  {row[1]}" for row in _COMMANDS)
    return f"""usage: devenv COMMAND [ARGS...]
       devenv --version

Run a shell or a command in a fresh, locked-down container (memory, CPU and process
limits, no privileges, your code at /app); `dev` is `devenv run`.

commands:
{commands}

`devenv help COMMAND` (or `devenv COMMAND --help`) shows the options of a command.

Configuration: $DEVENV_CONFIG or {SYSTEM_CONFIG} (administrator), then
~/.config/devenv/config.json (you), then flags. The administrator's limits_max cannot be
exceeded.
"""


class UsageError(Exception):
    """A bad command line; `command` names the command whose usage to show (None: the
    list of commands)."""

    def __init__(self, message: str, command: Optional[str] = "run") -> None:
        super().__init__(message)
        self.command = command


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
    flags: dict[str, Any] = {}
    run_flags = flag_names()
    switches = {s.flag for s in SETTINGS if is_switch(s)}
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
        elif name in switches:
            if has_value:
                raise UsageError(f"{name} takes no value")
            flags[run_flags[name]] = True
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
    with host.identity():  # the user's own file, read with the user's rights
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
        with host.identity():
            here = os.path.realpath(os.getcwd())
            base = os.path.realpath(expand_home(settings["code_dir"], host.home)).rstrip("/")
    except OSError:
        return settings
    if here != base and here.startswith(base + "/"):
        relative = here[len(base) + 1 :]
        if not any(c in relative for c in ',=:"') and relative.isprintable():
            return settings.replace("workdir", "/app/" + relative, "current directory")
    return settings


# ---------------------------------------------------------------- the engine


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


def check_engine(spec: RunSpec, environ: Mapping[str, str], home: str) -> str:
    """Image present locally, in one round trip that also proves the engine answers; one
    clear message otherwise. A run as root (does the engine remap users?) or under gVisor
    (has the engine its runtime?) also asks for the engine's /info. Returns the image's
    id (for the audit line)."""
    image = spec.image
    missing = (
        f"the image {image} is not on this host, and devenv never pulls at run time. "
        f"Build it with `{IMAGE_HINT}` (or `docker pull {image}` / `docker load` it "
        "yourself)"
    )
    sock = engine_socket(environ, home)
    if sock is None:
        code, text = _cli(["docker", "image", "inspect", "--format", "{{.Id}}", image], environ)
        if code == 0:
            image_id = text
            if spec.needs_engine_info:
                code, text = _cli(["docker", "info", "--format", "{{json .}}"], environ)
                check_engine_info(spec, json.loads(text) if code == 0 else {})
            return image_id
        if "no such image" in text.lower():
            raise LaunchError(missing)
        raise LaunchError(
            f"the Docker engine is not reachable ({text}); start it or check "
            "DOCKER_HOST / the docker context. Nothing was started."
        )
    where = f"unix://{sock}"
    try:
        # The reference was validated by the run spec: only [A-Za-z0-9._:/@-], URL-safe.
        status, body = request(sock, "GET", f"/images/{image}/json")
    except PermissionError:
        raise LaunchError(
            f"permission denied on the Docker engine socket {where}: on a host provisioned "
            "by devenv, `dev` reaches it through sudo for the members of the devenv group; "
            "ask the administrator to add you to devenv_users (then log in again). Nothing "
            "was started."
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
    if spec.needs_engine_info:
        from ._engineapi import request_json  # noqa: PLC0415 - only for root or gVisor

        check_engine_info(spec, request_json(sock, "GET", "/info")[1])
    try:
        return json.loads(body).get("Id") or ""
    except (ValueError, AttributeError):
        return ""


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
    sock = engine_socket(environ, home)
    if sock is not None:
        from urllib.parse import quote  # noqa: PLC0415 - only after a failed run

        filters = json.dumps({"container": [name], "type": ["container"], "event": ["oom"]})
        query = f"since={since:.3f}&until={until}&filters={quote(filters)}"
        try:
            status, body = request(sock, "GET", f"/events?{query}")
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


def run_docker(
    argv: list[str],
    env: dict[str, str],
    spec: RunSpec,
    home: str = "",
    engine_env: Optional[Mapping[str, str]] = None,
) -> int:
    """Run docker as a child (see above); returns the container's exit status. `env` is
    cleared once docker has it. `home` and `engine_env` locate the engine as the docker
    CLI does (contexts); `engine_env` defaults to this process's environment."""
    engine_env = os.environ if engine_env is None else engine_env
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
    failure = None
    if spec.uses_start:
        try:
            deliver_start(spec, pid, engine_env, home)
        except (LaunchError, RunSpecError) as exc:
            failure = exc if isinstance(exc, LaunchError) else LaunchError(str(exc))
            _kill_container(spec.name, engine_env, home)
    _pid, status = os.waitpid(pid, 0)
    if failure is not None:
        _err(str(failure))
        return failure.code
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    advice = (
        "Raise --memory or the configured memory (up to the administrator's limit), or "
        "reduce the workload."
    )
    if code != 0 and _oom_killed(spec.name, started, engine_env, home):
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


def _child_ended(pid: int) -> bool:
    """Has the docker child ended? Asked without reaping it (run_docker waits for it)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def deliver_start(spec: RunSpec, child: int, environ: Mapping[str, str], home: str) -> None:
    """Hand the start payload (secrets, seed files) to the container once it runs,
    through the standard input of an exec. Raises LaunchError; the payload never goes
    to a file, a command line or the container's configuration."""
    import time  # noqa: PLC0415 - lean start-up

    from ._runspec import DELIVER_COMMAND  # noqa: PLC0415 - only for runs with a start

    deadline = time.monotonic() + START_DEADLINE
    sock = engine_socket(environ, home)
    while True:
        if _child_ended(child):
            raise LaunchError("docker ended before the container started; nothing was run")
        if time.monotonic() > deadline:
            raise LaunchError(
                f"the container did not start within {START_DEADLINE:g} s; nothing was run"
            )
        pid = 0
        if sock is None:
            code, text = _cli(
                ["docker", "inspect", "--format", "{{.State.Running}} {{.State.Pid}}", spec.name],
                environ,
            )
            running = code == 0 and text.startswith("true ")
            pid = int(text.split()[1]) if running else 0
        else:
            try:
                from ._engineapi import container_state  # noqa: PLC0415 - lean start-up

                state = container_state(sock, spec.name)
            except OSError as exc:
                raise LaunchError(f"lost the Docker engine while starting ({exc})") from None
            running = bool(state and state.get("Running"))
            pid = int(state.get("Pid") or 0) if running else 0
            if state and state.get("Status") in ("exited", "dead"):
                raise LaunchError("the container ended before it got its start; nothing was run")
        if running:
            break
        time.sleep(0.01)
    # The gate: the command has not run yet; its mounts must be what was vetted.
    verify_pins(spec, pid)
    payload = spec.start_payload()
    if sock is None:
        code = _cli_input(
            ["docker", "exec", "-i", "--user", spec.user, spec.name, *DELIVER_COMMAND],
            environ,
            payload,
        )
    else:
        from ._engineapi import exec_with_input  # noqa: PLC0415 - lean start-up

        try:
            code = exec_with_input(sock, spec.name, list(DELIVER_COMMAND), spec.user, payload)
        except OSError as exc:
            raise LaunchError(f"could not hand the start to the container ({exc})") from None
    if code != 0:
        raise LaunchError(f"could not hand the start to the container (exit {code})")


def _cli_input(argv: list[str], environ: Mapping[str, str], data: bytes) -> int:
    import subprocess  # noqa: PLC0415 - only for engines behind the docker CLI

    done = subprocess.run(
        argv, env=dict(environ), input=data, capture_output=True, timeout=60, check=False
    )
    return done.returncode


def _kill_container(name: str, environ: Mapping[str, str], home: str) -> None:
    """Stop a container that could not be given its start (it would wait, then end)."""
    sock = engine_socket(environ, home)
    try:
        if sock is None:
            _cli(["docker", "kill", name], environ)
        else:
            request(sock, "POST", f"/containers/{name}/kill")
    except (OSError, LaunchError):
        pass


def _size(number: int) -> str:
    from ._runspec import format_memory  # noqa: PLC0415 - only for a message

    return format_memory(number)


# ---------------------------------------------------------------- the egress proxy


def _proxy_engine(spec: RunSpec, environ: Mapping[str, str], home: str) -> Any:
    from ._network import UnixEngine  # noqa: PLC0415 - only with network: allowlist

    sock = engine_socket(environ, home)
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
    try:
        done = ensure(engine, spec.proxy, spec.labels)
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
        sys.stdout.write(command_help("run"))
        return 0
    if command:
        flags = dict(flags, command=command)
    return _run(options, flags)


def _prepare(spec: RunSpec, host: Host, login: Optional[str] = None) -> RunSpec:
    """The host side of a run: the agents' state directories (their logins imported
    from the host's files on first use) and the container's passwd and group; for an
    ephemeral run, the host's logins to seed its tmpfs state through the start channel
    (never written on the host). Returns the run with its seed files."""
    try:
        notices = _agents.prepare(spec, login)
        seeds = _agents.seed_files(spec)
        # Through sudo: devenv's own sources, created just now, pinned like the others.
        spec = pin_own(spec, host)
    except OSError as exc:
        raise LaunchError(
            f"the agents' state under {spec.data_dir} could not be prepared ({exc}). "
            "Nothing was started."
        ) from None
    for notice in notices:
        _err(f"note: {notice}")
    return spec.replace(seed_files=seeds) if seeds else spec


def _run(options: dict[str, Any], flags: dict[str, Any], login: Optional[str] = None) -> int:
    host = Host.current()
    user_env, engine_env, engine_home = _sides(host)
    settings = default_workdir(load_settings(flags, host, user_env), host)
    # 1. Everything validated before anything is fetched or started: one RunSpec.
    spec = resolve(settings, host)
    if login and spec.ephemeral:
        raise LaunchError(
            "login keeps the agent's login in devenv's state, which an ephemeral run "
            "discards: run it without --ephemeral (and without ephemeral: true)",
            EXIT_USAGE,
        )
    _report(spec)
    # 2. Engine and image (and the egress proxy), before any secret is fetched; then the
    # host side of the run.
    image_id = ""
    proxy_engine = None
    if not options["dry_run"]:
        image_id = check_engine(spec, engine_env, engine_home)
        if spec.proxy is not None:
            proxy_engine = ensure_proxy(spec, engine_env, engine_home)
        spec = _prepare(spec, host, login)
    # 3. Secrets, attached to the same spec.
    if settings["secrets"] and not options["no_secrets"]:
        spec = spec.with_secrets(_fetch_secrets(settings["secrets"], host))
    tty = os.isatty(0) and os.isatty(1)
    argv = spec.docker_argv(tty=tty, interactive=True)
    if options["dry_run"]:
        import shlex  # noqa: PLC0415 - dry runs only

        sys.stdout.write(shlex.join(argv) + "\n")
        env_names = " ".join(spec.env) or "(none)"
        secret_names = " ".join(spec.secrets) or "(none)"
        sys.stdout.write(
            f"# from the environment by name: {env_names}; "
            f"in the start payload: {secret_names} (values not shown)\n"
        )
        if spec.proxy is not None:
            allowed = ", ".join(spec.proxy.describe()["allow"]) or "(nothing)"
            sys.stdout.write(
                f"# network allowlist: through the egress proxy {spec.proxy.proxy} on "
                f"{spec.network} (started when needed); allowed: {allowed}\n"
            )
        return 0
    # The docker CLI gets the engine side's environment without Infisical credentials,
    # plus the configured variables' values (read by `--env NAME`). Secrets never reach
    # it: they go to the container in the start payload (deliver_start()).
    env = {k: v for k, v in engine_env.items() if not k.upper().startswith("INFISICAL_")}
    env.update(spec.secret_env())
    if proxy_engine is None:
        code = run_docker(argv, env, spec, engine_home, engine_env)
    else:
        import time  # noqa: PLC0415 - lean start-up

        since = time.time()
        try:
            code = run_docker(argv, env, spec, engine_home, engine_env)
        finally:
            report_proxy(proxy_engine, spec, since, config_paths(user_env, host.home)[0])
    audit(host, spec, image_id, code)
    return code


# A fixed PATH for what the launcher starts as root (the docker CLI) or as the user.
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _sides(host: Host) -> tuple[Mapping[str, str], Mapping[str, str], str]:
    """(the user's environment, the engine side's environment, the engine side's home).
    Started as the user, all three are this process's. Started as root through sudo, the
    user's side is what sudo kept (SUDO_KEPT_ENV) and the engine side is root's own,
    with a fixed PATH: nothing of the user's environment steers the engine."""
    if not host.sudo:
        return os.environ, os.environ, host.home
    import pwd  # noqa: PLC0415 - only through sudo

    root_home = pwd.getpwuid(0).pw_dir
    user_env = dict(host.environ)
    if "DEVENV_CONFIG" in os.environ:  # pinned by the installed program, not the user's
        user_env["DEVENV_CONFIG"] = os.environ["DEVENV_CONFIG"]
    engine_env = {"PATH": SAFE_PATH, "HOME": root_home}
    engine_env.update((k, host.environ[k]) for k in ("TERM", "LANG", "LC_ALL") if k in host.environ)
    return user_env, engine_env, root_home


def _fetch_secrets(config: Mapping[str, Any], host: Host) -> dict[str, str]:
    """The secrets, from the Infisical CLI started as the user: through sudo with the
    user's ids and a clean environment that holds only their token and who they are."""
    from . import _infisical  # noqa: PLC0415 - lean start-up: only runs with secrets

    environ: Mapping[str, str] = os.environ
    identity = None
    if host.sudo:
        environ = {
            "PATH": SAFE_PATH,
            "HOME": host.home,
            "USER": host.login,
            "LOGNAME": host.login,
            **{k: v for k, v in host.environ.items() if k.startswith("INFISICAL_")},
        }
        identity = (host.uid, host.gid, os.getgrouplist(host.login, host.gid))
    source, hidden = _infisical.token_source(environ)
    for name in hidden:
        _err(f"note: {name} is set, but the Infisical CLI uses {source} (read first)")
    try:
        return _infisical.fetch_secrets(config, environ=environ, identity=identity)
    except _infisical.SecretsError as exc:
        raise LaunchError(
            f"secrets: {exc}. Nothing was started (--no-secrets starts without them)."
        ) from None
    except _infisical.Stopped as exc:
        raise LaunchError(
            f"stopped by signal {exc.signum} while fetching secrets; the Infisical CLI was "
            "ended and nothing was started",
            128 + exc.signum,
        ) from None


def cmd_login(args: list[str]) -> int:
    """`devenv login AGENT [RUN OPTIONS]`: the agent's own login flow, in a run."""
    if any(a in ("-h", "--help") for a in args):  # login takes no command to hold one
        sys.stdout.write(command_help("login"))
        return 0
    names = ", ".join(a.name for a in _agents.AGENTS)
    if not args or args[0] not in _agents.BY_NAME:
        raise UsageError(f"login needs the agent to log in: {names}")
    agent = _agents.BY_NAME[args[0]]
    options, flags, command = parse_run_args(args[1:])
    if command:
        raise UsageError("login runs the agent's own login flow; it takes no command")
    if not options["dry_run"] and not (os.isatty(0) and os.isatty(1)):
        raise LaunchError(
            f"login is a conversation with {agent.title} (it shows a URL and asks for a "
            "code): run it in a terminal",
            EXIT_USAGE,
        )
    flags = dict(flags, command=list(agent.login_command))
    return _run(options, flags, login=agent.name)


def _state_args(args: list[str]) -> tuple:
    """`state [reset [AGENT]] [--yes] [RUN OPTIONS]` -> (reset, agents, yes, flags)."""
    yes = any(a in ("--yes", "-y") for a in args)
    args = [a for a in args if a not in ("--yes", "-y")]
    reset = bool(args) and args[0] == "reset"
    if reset:
        args = args[1:]
    agents = list(_agents.AGENTS)
    if reset and args and not args[0].startswith("-"):
        if args[0] not in _agents.BY_NAME:
            known = ", ".join(a.name for a in _agents.AGENTS)
            raise UsageError(f"state reset: no agent {args[0]!r} (known: {known})")
        agents = [_agents.BY_NAME[args[0]]]
        args = args[1:]
    options, flags, command = parse_run_args(args)
    if command or options["dry_run"] or options["no_secrets"]:
        raise UsageError("state takes `reset [AGENT]`, --yes and the run's setting options")
    return reset, agents, yes, flags


def _state_size(host: Host, path: str) -> str:
    """The size of a state directory, measured as its owner; "" when there is none."""
    size = _agents.as_user(host.uid, host.gid, _agents.tree_size, path)
    return _agents.format_size(size) if size is not None else ""


def cmd_state(args: list[str]) -> int:
    if any(a in ("-h", "--help") for a in args):  # state takes no command to hold one
        sys.stdout.write(command_help("state"))
        return 0
    reset, agents, yes, flags = _state_args(args)
    host = Host.current()
    user_env, engine_env, engine_home = _sides(host)
    settings = default_workdir(load_settings(flags, host, user_env), host)
    spec = resolve(settings.replace("ephemeral", False, settings.source("ephemeral")), host)
    state = {name: path for name, path, _target, _source in spec.state}
    if not reset:
        return _show_state(settings, spec, host, agents, state)
    sizes = {a.name: _state_size(host, state[a.name]) for a in agents}
    targets = [(a, state[a.name], sizes[a.name]) for a in agents if sizes[a.name]]
    if not targets:
        sys.stdout.write("nothing to reset: no agent state there yet\n")
        return 0
    busy = _containers_using([path for _a, path, _s in targets], engine_env, engine_home)
    if busy:
        raise LaunchError(
            f"{len(busy)} running devenv container(s) use this state ({', '.join(busy)}); "
            "end them first"
        )
    for agent, path, size in targets:
        if yes or _confirmed(
            f"Delete {agent.title}'s state in {path} ({size}): its login, settings and "
            "sessions? [y/N] "
        ):
            _reset_state(host, agent, path)
    return 0


def _show_state(settings: Settings, spec: RunSpec, host: Host, agents: list, state: dict) -> int:
    out = sys.stdout
    mode = settings["agent_state"]
    where = "one for all your runs"
    if mode == "code_dir":
        where = "one for " + os.path.realpath(expand_home(settings["code_dir"], host.home))
    out.write(f"agent state ({mode}: {where}); the host's own agent files are never changed\n")
    for agent in agents:
        path = state[agent.name]
        out.write(f"  {agent.name:<7} {path}  {_state_size(host, path) or 'not created yet'}\n")
    root = os.path.join(spec.data_dir, "state")
    total = _state_size(host, root)
    if total:
        out.write(f"all agent state: {root}  {total}\n")
    if settings["ephemeral"]:
        out.write("ephemeral is set: runs use a private tmpfs instead, discarded at exit\n")
    return 0


def _confirmed(question: str) -> bool:
    """A yes from the terminal; without one, refused (state reset says --yes)."""
    if not os.isatty(0):
        raise LaunchError(
            "state reset asks before deleting; answer in a terminal or add --yes", EXIT_USAGE
        )
    sys.stdout.write(question)
    sys.stdout.flush()
    if sys.stdin.readline().strip().lower() in ("y", "yes"):
        return True
    sys.stdout.write("kept\n")
    return False


def _reset_state(host: Host, agent: Any, path: str) -> None:
    try:
        _agents.as_user(host.uid, host.gid, _agents.remove_tree, path)
    except OSError as exc:
        raise LaunchError(f"state reset: {path} could not be deleted ({exc})") from None
    sys.stdout.write(
        f"deleted {path}; the next run starts {agent.title} afresh (and imports the "
        "host's login again, if it has one)\n"
    )


def _containers_using(paths: list[str], environ: Mapping[str, str], home: str) -> list[str]:
    """Names of running containers with one of `paths` mounted (asked of the engine;
    an engine that does not answer has none running that could be checked)."""
    filters = json.dumps({"volume": paths, "label": ["io.kuatecno.devenv.managed=true"]})
    sock = engine_socket(environ, home)
    if sock is not None:
        from urllib.parse import quote  # noqa: PLC0415 - only for `state reset`

        try:
            status, body = request(sock, "GET", f"/containers/json?filters={quote(filters)}")
        except OSError:
            return []
        try:
            found = json.loads(body) if status == 200 else []
        except ValueError:
            return []
        return [(c.get("Names") or ["?"])[0].lstrip("/") for c in found if isinstance(c, dict)]
    argv = [
        "docker",
        "ps",
        "--format",
        "{{.Names}}",
        "--filter",
        "label=io.kuatecno.devenv.managed=true",
    ]
    for path in paths:
        argv += ["--filter", f"volume={path}"]
    code, text = _cli(argv, environ)
    return text.split() if code == 0 else []


def cmd_config(args: list[str]) -> int:
    if _wants_help(args):
        sys.stdout.write(command_help("config"))
        return 0
    if args[:1] == ["--check"]:
        if len(args) != 2:
            raise UsageError("config --check needs exactly one FILE", "config")
        return check_file(args[1])
    if args:
        raise UsageError(f"unknown argument {args[0]!r} for config", "config")
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


def cmd_completion(args: list[str]) -> int:
    if _wants_help(args):
        sys.stdout.write(command_help("completion"))
        return 0
    if len(args) != 1 or args[0] not in ("bash", "zsh"):
        raise UsageError("completion needs the shell: bash or zsh", "completion")
    sys.stdout.write(completion_script(args[0]))
    return 0


def cmd_help(args: list[str]) -> int:
    if _wants_help(args):
        sys.stdout.write(command_help("help"))
        return 0
    if len(args) > 1:
        raise UsageError("help takes at most one COMMAND", "help")
    sys.stdout.write(command_help(args[0]) if args else main_help())
    return 0


def _wants_help(args: list[str]) -> bool:
    return args[:1] in (["-h"], ["--help"])


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


def _own_containers(host: Host) -> tuple[list, Mapping[str, str], str]:
    """The caller's running devenv containers (by the owner label the spec sets)."""
    from urllib.parse import quote  # noqa: PLC0415 - ps/stop only

    from ._engineapi import request_json  # noqa: PLC0415 - ps/stop only
    from ._runspec import OWNER_LABEL  # noqa: PLC0415 - ps/stop only

    _user_env, engine_env, engine_home = _sides(host)
    sock = engine_socket(engine_env, engine_home)
    if sock is None:
        raise LaunchError("devenv ps and stop need the engine's unix socket")
    labels = [f"{MANAGED_LABEL_KEY}=true", f"{OWNER_LABEL}={host.uid}"]
    query = quote(json.dumps({"label": labels}))
    try:
        status, found = request_json(sock, "GET", f"/containers/json?filters={query}")
    except OSError as exc:
        raise LaunchError(f"the Docker engine is not reachable ({exc})") from None
    if status != 200 or not isinstance(found, list):
        raise LaunchError(f"the Docker engine could not list containers (HTTP {status})")
    return found, engine_env, sock


def cmd_doctor(args: list[str]) -> int:
    if any(a in ("-h", "--help") for a in args):
        sys.stdout.write(command_help("doctor"))
        return 0
    from . import _doctor  # noqa: PLC0415 - doctor only

    return _doctor.main(sys.modules[__name__], args)


def cmd_ps(args: list[str]) -> int:
    if _wants_help(args):
        sys.stdout.write(command_help("ps"))
        return 0
    if args:
        raise UsageError(f"unknown argument {args[0]!r} for ps", "ps")
    found, _env, _sock = _own_containers(Host.current())
    rows = [("NAME", "IMAGE", "STATUS")]
    rows += [((c.get("Names") or ["?"])[0].lstrip("/"), c.get("Image", ""), c.get("Status", ""))
             for c in found]  # fmt: skip
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    for name, image, status in rows:
        sys.stdout.write(f"{name:<{width[0]}}  {image:<{width[1]}}  {status}\n")
    return 0


def cmd_stop(args: list[str]) -> int:
    if _wants_help(args):
        sys.stdout.write(command_help("stop"))
        return 0
    if len(args) != 1 or args[0].startswith("-"):
        raise UsageError("stop needs exactly one container NAME (see devenv ps)", "stop")
    host = Host.current()
    found, _env, sock = _own_containers(host)
    names = {n.lstrip("/") for c in found for n in c.get("Names") or []}
    if args[0] not in names:
        raise LaunchError(f"no running devenv container of yours is called {args[0]!r} (devenv ps)")
    status, _body = request(sock, "POST", f"/containers/{args[0]}/stop?t=10", timeout=30)
    if status not in (204, 304):
        raise LaunchError(f"the Docker engine could not stop {args[0]} (HTTP {status})")
    sys.stdout.write(f"stopped {args[0]}\n")
    return 0


def _dispatch(args: list[str]) -> int:
    if not args:
        sys.stderr.write(main_help())
        return EXIT_USAGE
    if args[0] in ("-h", "--help"):
        sys.stdout.write(main_help())
        return 0
    if args[0] == "--version":
        sys.stdout.write(f"devenv {VERSION} (kuatecno.devenv)\n")
        return 0
    if args[0].startswith("-"):
        raise UsageError(f"unknown option {args[0]!r}; the command comes first", None)
    name = _command(args[0])[0]
    return globals()["cmd_" + name](args[1:])


def main(argv: Optional[list[str]] = None) -> int:
    """The `devenv` program; argv without the program name. Returns the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        return _dispatch(args)
    except UsageError as exc:
        if exc.command is None:
            hint = "usage: devenv COMMAND [ARGS...]; `devenv help` lists the commands"
        else:
            row = _command(exc.command)
            hint = f"{_synopsis(row).splitlines()[0]} ...\n`devenv help {row[0]}` shows its options"
        _err(f"{exc}\n{hint}")
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


# ---------------------------------------------------------------- shell completion
#
# Generated from the command table and the settings table, so a new command, option or
# flag completes without further work. Static scripts (no devenv start per TAB); they
# use only the shells' own builtins (bash: complete/compgen, bash 3.2 included; zsh:
# its completion system, started with compinit when the user's setup has not).


def _option_rows(row: tuple) -> list[tuple[list[str], Optional[str], str]]:
    """(names, metavar or None, help) of a command's options, the help switch included."""
    out = []
    for option, doc in [*row[4](), _HELP_SWITCH]:
        *names, last = option.split(", ")
        name, _sep, metavar = last.partition(" ")
        out.append(([*names, name], metavar or None, doc))
    return out


def _bash_completion() -> str:
    cases = []
    for row in _COMMANDS:
        rows = _option_rows(row)
        opts = " ".join(n for names, _m, _d in rows for n in names)
        values = " ".join(n for names, metavar, _d in rows if metavar for n in names)
        kind = row[5]
        words = (
            " ".join(r[0] for r in _COMMANDS)
            if kind == "commands"
            else " ".join(kind)
            if isinstance(kind, tuple)
            else kind or ""
        )
        cases.append(f'        {row[0]}) opts="{opts}" values="{values}" words="{words}" ;;')
    commands = " ".join(row[0] for row in _COMMANDS)
    return f"""# bash completion for devenv and dev (kuatecno.devenv {VERSION}), generated by
# `devenv completion bash`. Builtins only: complete and compgen.
_devenv_complete() {{
    local line="${{COMP_LINE:0:$COMP_POINT}}" cmd start i word cur opts values words
    local -a w
    read -r -a w <<< "$line"
    case "$line" in *[[:space:]]) w[${{#w[@]}}]="" ;; esac
    cur="${{w[${{#w[@]}}-1]}}"
    COMPREPLY=()
    if [ "${{w[0]##*/}}" = dev ]; then
        cmd=run start=1
    elif [ "${{#w[@]}}" -le 2 ]; then
        case "$cur" in
            -*) COMPREPLY=($(compgen -W "--help --version" -- "$cur")) ;;
            *) COMPREPLY=($(compgen -W "{commands}" -- "$cur")) ;;
        esac
        return 0
    else
        cmd="${{w[1]}}" start=2
    fi
    case "$cmd" in
{chr(10).join(cases)}
        *) return 0 ;;
    esac
    # The value of an option (--memory 2g): nothing to offer but file names.
    for word in $values; do
        [ "${{w[${{#w[@]}}-2]}}" = "$word" ] && return 0
    done
    case "$cur" in *=*) return 0 ;; esac
    if [ "$words" = command ]; then
        # Options stop at -- or at the first word that is neither an option nor its value.
        i=$start
        while [ "$i" -lt $((${{#w[@]}} - 1)) ]; do
            word="${{w[$i]}}"
            case "$word" in
                --)
                    [ "$i" -eq $((${{#w[@]}} - 2)) ] && COMPREPLY=($(compgen -c -- "$cur"))
                    return 0 ;;
                -*=*) ;;
                -*) case " $values " in *" $word "*) i=$((i + 1)) ;; esac ;;
                *) return 0 ;;
            esac
            i=$((i + 1))
        done
        case "$cur" in
            ""|-*) COMPREPLY=($(compgen -W "$opts --" -- "$cur")) ;;
            *) COMPREPLY=($(compgen -c -- "$cur")) ;;
        esac
        return 0
    fi
    case "$cur" in
        -*) COMPREPLY=($(compgen -W "$opts" -- "$cur")) ;;
        *)
            if [ -n "$words" ] && [ "${{#w[@]}}" -eq $((start + 1)) ]; then
                COMPREPLY=($(compgen -W "$words" -- "$cur"))
            fi ;;
    esac
    return 0
}}
complete -o default -F _devenv_complete devenv dev
"""


def _zsh_quote(text: str) -> str:
    """Text for a zsh _arguments spec in single quotes: [ ] : and \\ escaped."""
    for char in ("\\", "[", "]", ":"):
        text = text.replace(char, "\\" + char)
    return text.replace("'", "'\\''")


def _zsh_completion() -> str:
    functions = []
    for row in _COMMANDS:
        specs = []
        for names, metavar, doc in _option_rows(row):
            action = "_files" if metavar == "FILE" else " "
            value = "" if metavar is None else f":{metavar}:{action}"
            sep = "=" if metavar and row[5] == "command" else ""
            exclusive = "(- *)" if "--help" in names else ""
            for name in names:
                specs.append(f"'{exclusive}{name}{sep}[{_zsh_quote(doc)}]{value}'")
        kind = row[5]
        if kind == "command":
            specs.append("'*::command line:_normal'")
            head = "_arguments -S -A '-*'"
        else:
            head = "_arguments"
            if kind == "commands":
                specs.append("'1:command:(" + " ".join(r[0] for r in _COMMANDS) + ")'")
            elif isinstance(kind, tuple):
                specs.append("'1:" + row[0] + ":(" + " ".join(kind) + ")'")
        body = " \\\n    ".join([head, *specs])
        functions.append(f"_devenv_{row[0]}() {{\n  {body}\n}}\n")
    described = " ".join("'{}:{}'".format(r[0], r[1].replace("'", "'\\''")) for r in _COMMANDS)
    calls = "\n".join(f"        {r[0]}) _devenv_{r[0]} ;;" for r in _COMMANDS)
    return f"""#compdef devenv dev
# zsh completion for devenv and dev (kuatecno.devenv {VERSION}), generated by
# `devenv completion zsh`. Starts zsh's completion system if the setup has not.
(( $+functions[compdef] )) || {{ autoload -Uz compinit && compinit -i }}

{chr(10).join(functions)}
_devenv() {{
  if [[ $service == dev ]]; then
    _devenv_run
    return
  fi
  local -a commands
  commands=({described})
  local state
  _arguments -C \\
    '(- *)--version[print the version and exit]' \\
    '(- *)'{{-h,--help}}'[show the list of commands and exit]' \\
    '1: :->command' \\
    '*:: :->args'
  case $state in
    command) _describe -t commands 'devenv command' commands ;;
    args)
      case $words[1] in
{calls}
      esac ;;
  esac
}}

compdef _devenv devenv dev
"""


def completion_script(shell: str) -> str:
    """The completion script for `devenv` and `dev` in bash or zsh."""
    return _bash_completion() if shell == "bash" else _zsh_completion()
