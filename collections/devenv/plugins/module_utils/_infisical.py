# Copyright (c) devenv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secrets from the Infisical CLI, read with `infisical export --format json`.

Standard library only, Python 3.9+. Only the JSON format is used: the dotenv format's
quoting does not survive Docker's env-file parser, and `--output-file` creates a
world-readable file. The token travels only in the environment, never on a command line.
Nothing fetched is written anywhere; on any failure the output is discarded whole.

Which token the CLI uses (its GetInfisicalToken): the --token flag (never used here),
then INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN, then INFISICAL_TOKEN, then its own login
(`infisical login`). A token of the first variable therefore hides one of the second.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess

from ._settings import RunSpecError, parse_secrets, validate_env

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only; typing costs start-up time
    from collections.abc import Mapping
    from typing import Any, Callable, Optional

    # (argv, env, timeout) -> (returncode, stdout, stderr); raises TimeoutError on timeout.
    Runner = Callable[[list, dict, float], tuple[int, bytes, bytes]]

__all__ = [
    "TOKEN_VARIABLES",
    "SecretsError",
    "Stopped",
    "build_argv",
    "environ_with_token",
    "fetch_secrets",
    "parse_export",
    "token_source",
]

# The environment variables the Infisical CLI reads a token from, in its own order.
TOKEN_VARIABLES = ("INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN", "INFISICAL_TOKEN")

OUTPUT_MAX = 16 * 1024 * 1024
STDERR_SHOWN = 300

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class SecretsError(RuntimeError):
    """Fetching secrets failed; the message never holds a secret value."""


def _config(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The `secrets` setting (or settings holding one), parsed by the settings table."""
    if isinstance(settings, dict) and isinstance(settings.get("secrets"), dict):
        settings = settings["secrets"]
    try:
        return parse_secrets(settings)
    except RunSpecError as exc:
        raise SecretsError(str(exc)) from None


def build_argv(settings: Mapping[str, Any]) -> list[str]:
    """The export command line. `--flag=value` so no value can be read as a flag."""
    config = _config(settings)
    argv = [
        config["binary"],
        "export",
        "--format=json",
        "--env=" + config["environment"],
        "--path=" + config["path"],
        "--projectId=" + config["project_id"],
    ]
    if config["domain"]:
        argv.append("--domain=" + config["domain"])
    return argv


def token_source(environ: Mapping[str, str]) -> tuple[Optional[str], list[str]]:
    """The variable whose token the CLI will use (None: its own login) and the token
    variables that are set but hidden by it."""
    present = [name for name in TOKEN_VARIABLES if environ.get(name, "").strip()]
    return (present[0] if present else None), present[1:]


def environ_with_token(environ: Mapping[str, str], token: str) -> dict[str, str]:
    """The CLI's environment with `token` in every variable it reads a token from, so
    no token already in `environ` can take precedence over the one given."""
    env = dict(environ)
    for name in TOKEN_VARIABLES:
        env[name] = token
    return env


class Stopped(BaseException):
    """A TERM or HUP ended the fetch (the CLI and everything it started were killed)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _warden(group: int) -> tuple[int, int]:
    """A forked child that SIGKILLs the CLI's process group should this process die
    before it says the fetch is over: a SIGKILL cannot be handled, but the end of a pipe
    it held can be read. Returns (warden pid, the pipe's write end)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the warden: no Python clean-up, nothing printed
        try:
            os.close(write)
            os.setsid()  # not in the terminal's group: a Ctrl-C is not for it
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
                signal.signal(signum, signal.SIG_IGN)
            os.closerange(0, read)
            os.closerange(read + 1, 4096)
            if os.read(read, 1) == b"":
                os.killpg(group, signal.SIGKILL)
        except BaseException:  # noqa: S110 - the warden must exit in every case
            pass
        os._exit(0)
    os.close(read)
    return pid, write


def _run(
    argv: list, env: dict, timeout: float, identity: Optional[tuple] = None
) -> tuple[int, bytes, bytes]:
    """Run the CLI (as `identity` = (uid, gid, groups) when given) in its own process
    group, so a timeout, Ctrl-C, TERM, HUP - or this process's death, through the warden
    - kills the CLI and anything it started; a terminal's Ctrl-C reaches us (who clean
    up) rather than the CLI alone."""
    extra = {}
    if identity is not None:
        extra = {"user": identity[0], "group": identity[1], "extra_groups": list(identity[2])}
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
        **extra,
    )
    warden, lifeline = _warden(proc.pid)
    previous = {}
    if threading_main():

        def stop(signum: int, _frame: Any) -> None:
            raise Stopped(signum)

        for signum in (signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, stop)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:  # TimeoutExpired, KeyboardInterrupt, Stopped: leave no child
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.kill()
        try:  # a grandchild that left the group could hold the pipes open: bounded
            proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.write(lifeline, b"d")  # the fetch is over: the warden leaves the group alone
        os.close(lifeline)
        os.waitpid(warden, 0)
    return proc.returncode, out, err


def threading_main() -> bool:
    """Signal handlers can only be set in the main thread."""
    import threading  # noqa: PLC0415 - already imported by subprocess

    return threading.current_thread() is threading.main_thread()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _strict_object(pairs: list) -> dict:
    keys = [k for k, _value in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate field in an object")
    return dict(pairs)


def parse_export(output: bytes, *, allow_empty: bool = False) -> dict[str, str]:
    """Parse `infisical export --format json` output strictly: a JSON list of objects,
    each with string `key` and `value`; every entry validated (see validate_env)."""
    try:
        text = output.decode("utf-8")
        data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_strict_object)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise SecretsError(
            "Infisical returned output that is not valid JSON; nothing was used"
        ) from None
    if not isinstance(data, list):
        raise SecretsError("Infisical returned JSON that is not a list of secrets; nothing used")
    pairs = []
    for index, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise SecretsError(f"Infisical entry {index} has no string `key`; nothing was used")
        if not isinstance(item.get("value"), str):
            raise SecretsError(f"Infisical entry {index} has no string `value`; nothing was used")
        pairs.append((item["key"], item["value"]))
    try:
        secrets = validate_env(pairs, field_name="secrets")
    except RunSpecError as exc:
        raise SecretsError(f"Infisical returned a secret devenv cannot pass: {exc}") from None
    if not secrets and not allow_empty:
        raise SecretsError(
            "Infisical returned no secrets (check project_id, environment and path, or "
            "set secrets.allow_empty)"
        )
    return secrets


def _stderr_hint(err: bytes) -> str:
    text = err.decode("utf-8", "replace").strip()
    text = _CONTROL_RE.sub("", text).replace("\n", " ")
    if len(text) > STDERR_SHOWN:
        text = text[:STDERR_SHOWN] + "..."
    return f": {text}" if text else ""


def fetch_secrets(
    settings: Mapping[str, Any],
    *,
    environ: Optional[Mapping[str, str]] = None,
    runner: Optional[Runner] = None,
    identity: Optional[tuple] = None,
) -> dict[str, str]:
    """Run the Infisical CLI (as `identity` = (uid, gid, groups) when given) and return
    validated {name: value}. Raises SecretsError with one clear message (never a value);
    lets KeyboardInterrupt and Stopped (TERM, HUP) through after the CLI and everything
    it started have been killed. `settings` is the `secrets` mapping (or settings holding
    one); `environ` is the CLI's whole environment."""
    config = _config(settings)
    argv = build_argv(config)
    env = dict(os.environ if environ is None else environ)
    try:
        if runner is not None:
            code, out, err = runner(argv, env, float(config["timeout"]))
        else:
            code, out, err = _run(argv, env, float(config["timeout"]), identity)
    except FileNotFoundError:
        raise SecretsError(
            f"the Infisical CLI ({config['binary']}) is not installed or not on PATH"
        ) from None
    except PermissionError:
        raise SecretsError(f"the Infisical CLI ({config['binary']}) cannot be run") from None
    except (subprocess.TimeoutExpired, TimeoutError):
        raise SecretsError(
            f"Infisical did not answer within {config['timeout']} s (secrets.timeout); "
            "it was stopped"
        ) from None
    if code != 0:
        del out  # some versions print errors on stdout: never use partial output
        raise SecretsError(f"Infisical failed (exit {code}){_stderr_hint(err)}")
    if len(out) > OUTPUT_MAX:
        raise SecretsError("Infisical returned more than 16 MiB; nothing was used")
    return parse_export(out, allow_empty=config["allow_empty"])
