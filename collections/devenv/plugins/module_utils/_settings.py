# Copyright (c) devenv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The settings of a run: one declarative table, parsed once.

Standard library only, Python 3.9+, no Ansible import (the `devenv` launcher carries a
byte-identical copy). Every setting is declared once, in SETTINGS: its parser, default,
who may set it and one line of documentation. From the table come the parsing of each
configuration layer with the source of each value (`parse()`), the per-user merge, the
launcher's flags, the module's options (`module_options()`) and docs/settings.md.

What needs the host (paths, the user, the CPUs) is decided later, by
`_runspec.resolve(settings, host)`; here every value is only checked for what it is.
Start-up matters (the launcher runs this on every `dev`): no dataclasses, no typing at
run time, regular expressions compiled on first use.
"""

from __future__ import annotations

import math
import re

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only; typing costs start-up time
    from collections.abc import Iterable
    from typing import Any, Callable, Optional

__all__ = [
    "SCOPES",
    "SECRET_SETTINGS",
    "SETTINGS",
    "RunSpecError",
    "Setting",
    "Settings",
    "flag_names",
    "is_switch",
    "module_options",
    "parse",
    "parse_memory",
    "parse_secrets",
    "validate_env",
]

# Who may set a setting, and where. The names are the layers' scopes.
SYSTEM = "system"  # the administrator's file, /etc/devenv/config.json
PER_USER = "per_user"  # users.<login> in the administrator's file
USER = "user"  # the user's own ~/.config/devenv/config.json
FLAG = "flag"  # a `devenv run` option
MODULE = "module"  # an option of the secure_run module
SCOPES = (SYSTEM, PER_USER, USER, FLAG, MODULE)
_SCOPE_WORDS = {
    SYSTEM: "the system file",
    PER_USER: "users.<login>",
    USER: "the user file",
    FLAG: "a flag",
    MODULE: "the module",
}


class RunSpecError(ValueError):
    """A setting is invalid; the message names the field (never a secret value)."""


# ---------------------------------------------------------------- value rules

ENV_VALUE_MAX = 64 * 1024
# The whole environment handed to the docker CLI must stay far below the kernel's
# ARG_MAX (2 MiB on Linux, shared with the argv).
ENV_TOTAL_MAX = 1024 * 1024
# Names a secret or a configured variable may not have: the ones devenv sets, and the
# ones that change how programs in the container start or whom they trust. It is a
# deny-list because secret names are the team's own (an allow-list would refuse real
# secrets); it covers the documented start-up and trust hooks of the shells, interpreters
# and tools in the image. A value stored under such a name in a shared secrets store
# would otherwise run code in every container that fetches it. Configured variables also
# pass through the docker CLI's environment (`--env NAME`), so what the docker CLI and the
# Go runtime read is refused too: DOCKER_HOST would send the run to another engine.
RESERVED_ENV = frozenset(
    (
        # set by devenv, or by the shell's own login
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "TMPDIR",
        "SSH_AUTH_SOCK",
        "CLAUDE_CONFIG_DIR",
        "GEMINI_CLI_SYSTEM_SETTINGS_PATH",
        # the network: the way out of the container
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        # Set by devenv for `network: allowlist` (the image's ssh configuration reads it).
        "DEVENV_PROXY",
        # shells: files and commands run at start or at each prompt
        "BASH_ENV",
        "ENV",
        "PROMPT_COMMAND",
        "PS4",
        "SHELLOPTS",
        "BASHOPTS",
        "IFS",
        "ZDOTDIR",
        # interpreters: code loaded before the program's own
        "NODE_OPTIONS",
        "NODE_PATH",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "PYTHONINSPECT",
        "PERL5LIB",
        "PERL5OPT",
        "PERLLIB",
        "RUBYLIB",
        "RUBYOPT",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        # git and ssh: programs they run, and configuration they take from the env
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_ASKPASS",
        "SSH_ASKPASS",
        "GIT_EXEC_PATH",
        "GIT_PROXY_COMMAND",
        "GIT_EDITOR",
        "GIT_PAGER",
        "GIT_TEMPLATE_DIR",
        "GIT_SSL_NO_VERIFY",
        "GIT_SSL_CAINFO",
        "GIT_SSL_CAPATH",
        # programs other tools run for the user
        "EDITOR",
        "VISUAL",
        "PAGER",
        "MANPAGER",
        "BROWSER",
        "LESSOPEN",
        "LESSCLOSE",
        # whom TLS trusts
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "NODE_EXTRA_CA_CERTS",
        "NODE_TLS_REJECT_UNAUTHORIZED",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        # the Go runtime of the docker CLI
        "GODEBUG",
        "GOGC",
        "GOMAXPROCS",
        "GOMEMLIMIT",
        "GOTRACEBACK",
        # set by devenv for the agents: no updates, no telemetry, no browser
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
        "DISABLE_AUTOUPDATER",
        "NO_BROWSER",
    )
)
# Whole families: Infisical's own credentials, the dynamic loader (LD_PRELOAD), the
# docker CLI, git's configuration from the environment (GIT_CONFIG_COUNT/_KEY_n/_VALUE_n,
# GIT_CONFIG_GLOBAL), and bash functions exported through the environment.
RESERVED_ENV_PREFIXES = ("INFISICAL_", "LD_", "DOCKER_", "GIT_CONFIG", "BASH_FUNC_")

SSH_MODES = ("auto", "agent", "keys", "none")
# Network modes, narrowest first: a user may choose one at most as wide as the
# administrator's (unless the administrator sets network_widen).
NETWORK_MODES = ("none", "allowlist", "open")
# What the agents and their users need (docs/settings.md lists them): the model APIs and
# their login hosts, the npm registry, PyPI and GitHub (HTTPS, and SSH on port 22).
NETWORK_ALLOW_DEFAULT = [
    "api.anthropic.com:443",
    "console.anthropic.com:443",
    "claude.ai:443",
    "generativelanguage.googleapis.com:443",
    "cloudcode-pa.googleapis.com:443",
    "oauth2.googleapis.com:443",
    "accounts.google.com:443",
    "www.googleapis.com:443",
    "registry.npmjs.org:443",
    "pypi.org:443",
    "files.pythonhosted.org:443",
    "github.com:443",
    "github.com:22",
    "api.github.com:443",
    "codeload.github.com:443",
    "objects.githubusercontent.com:443",
    "raw.githubusercontent.com:443",
]
NETWORK_ALLOW_MAX = 256
AGENT_STATE_MODES = ("user", "code_dir")
# Isolation of a run, weakest first: runc shares the host's kernel; gvisor runs the
# container on gVisor's user-space kernel (the engine's runsc runtime). A user may always
# choose the stronger one; the weaker only where the administrator allows it.
ISOLATION_MODES = ("runc", "gvisor")
# docker's own minimum memory limit is 6 MiB.
MEMORY_MIN = 6 * 1024 * 1024
MEMORY_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
CPUS_MIN = 0.01
CPUS_CEILING = 1024
PIDS_MAX = 4194304  # the kernel's pid_max ceiling
LIMIT_KEYS = ("memory", "cpus", "pids_limit")
CREDENTIAL_KEYS = ("source", "target", "required")
MOUNT_KEYS = ("source", "target", "read_only")
# Container paths a user mount may not cover.
FORBIDDEN_TARGETS = ("/", "/proc", "/sys", "/dev", "/etc", "/usr", "/bin", "/sbin", "/lib")
CODE_TARGET = "/app"
TMP_TARGET = "/tmp"  # noqa: S108 - the container's own private tmpfs
MANAGED_LABEL = "io.kuatecno.devenv.managed"
OWNER_LABEL_KEY = "io.kuatecno.devenv.uid"
# What the launcher role's `absent` state removes (the egress proxies and networks, see
# _network.PROXY_LABEL): a run may not carry it.
PROXY_LABEL_KEY = "io.kuatecno.devenv.proxy"
TIMEOUT_MAX = 600
# Characters the engine's --mount / --tmpfs syntax cannot carry unambiguously.
_MOUNT_BAD_CHARS = (",", "=", '"')

_PATTERNS = {
    "env_name": r"^[A-Za-z_][A-Za-z0-9_]*$",
    # ASCII digits only: int() and float() also take "1_000" and non-ASCII digits.
    "memory": r"^[ \t]*([0-9]+(?:\.[0-9]+)?)[ \t]*([bkmg]?)[ \t]*$",
    "integer": r"^[ \t]*[+-]?[0-9]+[ \t]*$",
    "decimal": r"^[ \t]*[0-9]+(?:\.[0-9]+)?[ \t]*$",
    "label_key": r"^[a-z0-9](?:[a-z0-9.\-/]{0,126}[a-z0-9])?$",
    "control": r"[\x00-\x1f\x7f]",
    "slug": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
    "secret_path": r"^/(?:[A-Za-z0-9_.-]+/?)*$",
    "domain": r"^https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/-]*)?$",
    "dns_label": r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$",
    "network_name": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
}
# docker reference grammar (distribution/reference), anchored.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = (
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)"
)
_PATTERNS["image"] = (
    r"^(?:" + _DOMAIN + r"/)?" + _COMPONENT + r"(?:/" + _COMPONENT + r")*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)
_compiled: dict = {}


def pattern(name: str, flags: int = 0) -> re.Pattern:
    """The named regular expression, compiled once on first use."""
    found = _compiled.get(name)
    if found is None:
        found = _compiled[name] = re.compile(_PATTERNS[name], flags)
    return found


def show(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def format_number(number: float) -> str:
    return (f"{number:g}") if number != int(number) else str(int(number))


def parse_memory(value: Any, field_name: str = "memory") -> int:
    """docker's memory syntax: a number with an optional unit b, k, m, g (any case;
    binary multiples). Returns bytes; refuses less than docker's minimum of 6m."""
    if isinstance(value, bool) or value is None:
        raise RunSpecError(f"{field_name}: expected a size such as 4g or 512m")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        match = pattern("memory", re.IGNORECASE).match(value)
        if not match:
            raise RunSpecError(
                f"{field_name}: {value!r} is not a size; "
                "use a number with a unit b, k, m or g (e.g. 4g)"
            )
        number = int(float(match.group(1)) * MEMORY_UNITS[match.group(2).lower()])
    else:
        raise RunSpecError(f"{field_name}: expected a size such as 4g or 512m")
    if number < MEMORY_MIN:
        raise RunSpecError(f"{field_name}: {show(value)} is too small; the allowed minimum is 6m")
    return number


def format_memory(number: int) -> str:
    for unit, size in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if number % size == 0:
            return f"{number // size}{unit}"
    return f"{number}b"


def parse_cpus(value: Any, upper: float, field_name: str = "cpus", host: int = 0) -> float:
    """A CPU count from 0.01 to `upper`; `host` (when given) names the host's CPUs as the
    reason for the upper bound."""
    allowed = f"allowed: {CPUS_MIN} to {format_number(upper)}"
    if isinstance(value, bool) or value is None:
        raise RunSpecError(f"{field_name}: expected a number ({allowed})")
    if isinstance(value, str) and not pattern("decimal").match(value):
        raise RunSpecError(f"{field_name}: {value!r} is not a number ({allowed})")
    number = float(value) if isinstance(value, (int, float, str)) else float("nan")
    if math.isnan(number) or math.isinf(number):
        raise RunSpecError(f"{field_name}: {value!r} is not a number ({allowed})")
    if number < CPUS_MIN:
        raise RunSpecError(f"{field_name}: {show(value)} is too small ({allowed})")
    if host and number > host:
        raise RunSpecError(
            f"{field_name}: {show(value)} is more than this host's {host} CPUs ({allowed})"
        )
    if number > upper:
        raise RunSpecError(
            f"{field_name}: {show(value)} is above the administrator's maximum ({allowed})"
        )
    return number


def parse_positive_int(value: Any, field_name: str, upper: int) -> int:
    allowed = f"allowed: 1 to {upper}"
    if isinstance(value, bool) or value is None:
        raise RunSpecError(f"{field_name}: expected a positive integer ({allowed})")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and pattern("integer").match(value):
        number = int(value)
    else:
        raise RunSpecError(f"{field_name}: {value!r} is not an integer ({allowed})")
    if number < 1 or number > upper:
        raise RunSpecError(f"{field_name}: {number} is out of range ({allowed})")
    return number


def validate_env(mapping: Any, *, field_name: str = "env") -> dict[str, str]:
    """Validate secret/env names and values. Accepts a dict or a sequence of (name, value)
    pairs (so duplicates can be detected). Errors name the key, never the value."""
    if isinstance(mapping, dict):
        pairs = list(mapping.items())
    elif isinstance(mapping, (list, tuple)):
        pairs = list(mapping)
    else:
        raise RunSpecError(f"{field_name}: expected a mapping of names to values")
    result: dict[str, str] = {}
    total = 0
    name_re, control_re = pattern("env_name"), pattern("control")
    for pair in pairs:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise RunSpecError(f"{field_name}: expected (name, value) pairs")
        name, value = pair
        if not isinstance(name, str) or not name_re.match(name):
            shown = name if isinstance(name, str) and not control_re.search(name) else None
            raise RunSpecError(
                "{}: invalid variable name {}; names must match ^[A-Za-z_][A-Za-z0-9_]*$".format(
                    field_name, repr(shown) if shown is not None else "(unprintable)"
                )
            )
        if name.upper() in RESERVED_ENV or name.upper().startswith(RESERVED_ENV_PREFIXES):
            raise RunSpecError(
                f"{field_name}: {name} is a reserved name that devenv sets or protects; rename it"
            )
        if name in result:
            raise RunSpecError(f"{field_name}: {name} is defined twice")
        if not isinstance(value, str):
            raise RunSpecError(f"{field_name}: the value of {name} is not a string")
        # Values travel in the environment, never in a file: newlines (PEM keys, JSON
        # documents) are fine there; only NUL cannot be in an environment string.
        if "\x00" in value:
            raise RunSpecError(
                f"{field_name}: the value of {name} contains a NUL character, which no "
                "environment variable can hold"
            )
        size = len(value.encode("utf-8", "surrogateescape"))
        if size > ENV_VALUE_MAX:
            raise RunSpecError(
                f"{field_name}: the value of {name} is longer than 64 KiB ({size} bytes)"
            )
        total += size + len(name) + 2
        result[name] = value
    if total > ENV_TOTAL_MAX:
        raise RunSpecError(f"{field_name}: the variables together exceed 1 MiB")
    return result


def check_chars(path: str, field_name: str, *, container: bool = False) -> None:
    if pattern("control").search(path):
        raise RunSpecError(f"{field_name}: the path contains a control character")
    bad = [c for c in _MOUNT_BAD_CHARS + ((":",) if container else ()) if c in path]
    if bad:
        raise RunSpecError(
            "{}: {!r} contains {}, which the engine's mount syntax cannot carry".format(
                field_name, path, " ".join(repr(c) for c in bad)
            )
        )


def is_within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def container_path(raw: Any, field_name: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise RunSpecError(f"{field_name}: expected an absolute container path")
    check_chars(raw, field_name, container=True)
    if not raw.startswith("/"):
        raise RunSpecError(f"{field_name}: {raw!r} must be an absolute container path")
    parts = raw.split("/")
    if ".." in parts or "." in parts:
        raise RunSpecError(f"{field_name}: {raw!r} must not contain . or .. components")
    return "/" + "/".join(p for p in parts if p)


def relative_target(raw: Any, field_name: str, home: str) -> str:
    if not isinstance(raw, str) or not raw or raw.startswith("/"):
        raise RunSpecError(
            f"{field_name}: {raw!r} must be a path relative to the container HOME (e.g. .claude)"
        )
    return container_path(home.rstrip("/") + "/" + raw, field_name)


# ---------------------------------------------------------------- parsers (value, where)


def _image(value: Any, where: str) -> str:
    if not isinstance(value, str) or len(value) > 512 or not pattern("image").match(value):
        raise RunSpecError(f"{where}: {value!r} is not a valid image reference (e.g. devenv:1.2.3)")
    return value


def _image_patterns(value: Any, where: str) -> tuple:
    if not isinstance(value, (list, tuple)) or not value:
        raise RunSpecError(f"{where}: expected a list of image references (e.g. devenv:*)")
    for item in value:
        if not isinstance(item, str) or not item or pattern("control").search(item):
            raise RunSpecError(f"{where}: {item!r} is not an image reference or pattern")
    return tuple(value)


def _command(value: Any, where: str) -> Optional[tuple]:
    if value == []:
        return None  # empty means "the default command"
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise RunSpecError(f"{where}: expected a non-empty list of strings")
    for part in value:
        if not isinstance(part, str) or "\x00" in part:
            raise RunSpecError(f"{where}: every item must be a string without NUL")
    return tuple(value)


def _size(value: Any, where: str) -> int:
    return parse_memory(value, where)


def _cpus(value: Any, where: str) -> Any:
    # The allowed range depends on the host: checked by resolve(), named there.
    return value


def _pids(value: Any, where: str) -> int:
    return parse_positive_int(value, where, PIDS_MAX)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise RunSpecError(f"{where}: expected true or false, got {value!r}")
    return value


def _choice(choices: tuple) -> Callable[[Any, str], str]:
    def parse_choice(value: Any, where: str) -> str:
        if value not in choices or isinstance(value, bool):
            raise RunSpecError(f"{where}: {value!r} is not one of {', '.join(choices)}")
        return value

    return parse_choice


def _user(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise RunSpecError(f"{where}: expected a login name or UID:GID")
    return value


def _host_path(value: Any, where: str) -> str:
    """A host path as written: a string, expanded and vetted by resolve()."""
    if not isinstance(value, str) or not value:
        raise RunSpecError(f"{where}: expected a host path")
    return value


def _gitconfig(value: Any, where: str) -> Optional[str]:
    if value is None or value == "":
        return None  # none mounted
    return _host_path(value, where)


def _container_path(value: Any, where: str) -> str:
    return container_path(value, where)


def _container_home(value: Any, where: str) -> str:
    home = container_path(value, where)
    if home in ("/", CODE_TARGET, TMP_TARGET) or any(
        is_within(home, t) for t in FORBIDDEN_TARGETS[1:]
    ):
        raise RunSpecError(f"{where}: {home!r} cannot be used as HOME")
    return home


def _items(value: Any, where: str, allowed: tuple) -> list:
    if not isinstance(value, (list, tuple)):
        raise RunSpecError(f"{where}: expected a list of mappings ({', '.join(allowed)})")
    for index, item in enumerate(value):
        if not isinstance(item, dict) or "source" not in item:
            raise RunSpecError(f"{where}[{index}]: expected a mapping with a source")
        bad = sorted(str(k) for k in item if k not in allowed)
        if bad:
            raise RunSpecError(f"{where}[{index}]: unknown key(s) {', '.join(bad)}")
    return list(value)


def _credentials(value: Any, where: str) -> tuple:
    """Read-only mounts into the container HOME: (source, relative target, required)."""
    result = []
    for index, item in enumerate(_items(value, where, CREDENTIAL_KEYS)):
        at = f"{where}[{index}]"
        source = _host_path(item["source"], at + ".source")
        required = item.get("required", False)
        if not isinstance(required, bool):
            raise RunSpecError(f"{at}.required: expected true or false")
        target = item.get("target") or source.rstrip("/").rsplit("/", 1)[-1]
        relative_target(target, at + ".target", "/home")  # syntax; the HOME comes later
        result.append((source, target, required))
    return tuple(result)


def _mounts(value: Any, where: str) -> tuple:
    """Extra bind mounts: (source, container target, read_only)."""
    result = []
    for index, item in enumerate(_items(value, where, MOUNT_KEYS)):
        at = f"{where}[{index}]"
        read_only = item.get("read_only", True)
        if not isinstance(read_only, bool):
            raise RunSpecError(f"{at}.read_only: expected true or false")
        target = container_path(item.get("target"), at + ".target")
        if target == "/" or any(is_within(target, t) for t in FORBIDDEN_TARGETS[1:]):
            raise RunSpecError(f"{at}.target: {target!r} would cover a system directory")
        result.append((_host_path(item["source"], at + ".source"), target, read_only))
    return tuple(result)


def _env(value: Any, where: str) -> dict:
    return validate_env(value, field_name=where)


def _labels(value: Any, where: str) -> tuple:
    if not isinstance(value, dict):
        raise RunSpecError(f"{where}: expected a mapping of label keys to strings")
    pairs = []
    for key, text in value.items():
        if not isinstance(key, str) or not pattern("label_key").match(key) or ".." in key:
            raise RunSpecError(
                f"{where}: {key!r} is not a valid label key (lower-case letters, digits, . - /)"
            )
        if key in (MANAGED_LABEL, OWNER_LABEL_KEY, PROXY_LABEL_KEY):
            raise RunSpecError(f"{where}: {key} is set by devenv itself")
        if not isinstance(text, str) or pattern("control").search(text) or len(text) > 1024:
            raise RunSpecError(f"{where}: the value of {key} must be a short printable string")
        pairs.append((key, text))
    return tuple(pairs)


def _limits_max(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise RunSpecError(f"{where}: expected a mapping with memory, cpus, pids_limit")
    bad = sorted(str(k) for k in value if k not in LIMIT_KEYS)
    if bad:
        raise RunSpecError(f"{where}: unknown key(s) {', '.join(bad)}")
    result: dict = {}
    if value.get("memory") is not None:
        result["memory"] = parse_memory(value["memory"], where + ".memory")
    if value.get("cpus") is not None:
        # A ceiling may exceed this host's CPUs (one fleet-wide value); runs may not.
        result["cpus"] = parse_cpus(value["cpus"], CPUS_CEILING, where + ".cpus")
    if value.get("pids_limit") is not None:
        result["pids_limit"] = parse_positive_int(
            value["pids_limit"], where + ".pids_limit", PIDS_MAX
        )
    return result


def _users(value: Any, where: str) -> dict:
    """users.<login>: each entry parsed with the per-user settings' own parsers."""
    if not isinstance(value, dict):
        raise RunSpecError(f"{where}: expected a mapping of login names to settings")
    allowed = PER_USER_KEYS
    result = {}
    for login, given in value.items():
        if not isinstance(login, str) or not login:
            raise RunSpecError(f"{where}: keys must be login names")
        at = f"{where}.{login}"
        entry = {} if given is None else given
        if not isinstance(entry, dict):
            raise RunSpecError(f"{at}: expected a mapping")
        bad = sorted(str(k) for k in entry if k not in allowed)
        if bad:
            raise RunSpecError(
                f"{at}: {', '.join(bad)} cannot be set per user (allowed: {', '.join(allowed)})"
            )
        parsed = {}
        for key, raw in entry.items():
            setting = BY_NAME[key]
            if raw is None and not setting.nullable:
                continue
            parsed[key] = (setting.parse(raw, f"{at}.{key}"), raw)
        result[login] = parsed
    return result


# ---------------------------------------------------------------- the network policy


def parse_destination(value: Any, where: str) -> tuple:
    """One allowed destination, HOST:PORT: a host name (`*.example.com` covers
    example.com and every name under it) and a port. Returns (host, port), the host in
    lower case. IP addresses are refused: the proxy allows names only."""
    hint = "expected HOST:PORT such as api.anthropic.com:443 (or *.example.com:443)"
    if not isinstance(value, str) or pattern("control").search(value):
        raise RunSpecError(f"{where}: {hint}")
    host, sep, port = value.strip().rpartition(":")
    port_ok = port.isascii() and port.isdigit()
    if not sep or not host or not port_ok or not 1 <= int(port) <= 65535:
        raise RunSpecError(f"{where}: {value!r}: {hint}")
    host = host.lower().rstrip(".")
    name = host[2:] if host.startswith("*.") else host
    labels = name.split(".")
    if len(name) > 253 or not all(pattern("dns_label").match(label) for label in labels):
        raise RunSpecError(f"{where}: {value!r} is not a host name; {hint}")
    if all(label.isdigit() for label in labels):
        raise RunSpecError(
            f"{where}: {value!r} is an IP address; name the host instead (the proxy "
            "allows host names, so an address cannot stand in for a name)"
        )
    return host, int(port)


def _network_allow(value: Any, where: str) -> tuple:
    """The allowed destinations: a list of HOST:PORT, kept in order, duplicates dropped."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise RunSpecError(f"{where}: expected a list of HOST:PORT entries")
    if len(value) > NETWORK_ALLOW_MAX:
        raise RunSpecError(f"{where}: at most {NETWORK_ALLOW_MAX} entries")
    result = []
    for index, item in enumerate(value):
        destination = parse_destination(item, f"{where}[{index}]")
        if destination not in result:
            result.append(destination)
    return tuple(result)


def format_destination(destination: tuple) -> str:
    return f"{destination[0]}:{destination[1]}"


def covers(wide: tuple, narrow: tuple) -> bool:
    """Whether the allowed destination `wide` includes `narrow` (same port; the same
    name, or a name under a `*.` entry)."""
    (host, port), (other, other_port) = wide, narrow
    if port != other_port:
        return False
    if not host.startswith("*."):
        return host == other
    base = host[2:]
    other = other[2:] if other.startswith("*.") else other
    return other == base or other.endswith("." + base)


def _weaker_isolation(ceiling: str, value: str) -> Optional[str]:
    if ISOLATION_MODES.index(value) < ISOLATION_MODES.index(ceiling):
        return f"{value!r} isolates less than the administrator's {ceiling!r}"
    return None


def _network_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not pattern("network_name").match(value):
        raise RunSpecError(f"{where}: {value!r} is not a Docker network name")
    if value in ("host", "none", "default", "container"):
        raise RunSpecError(f"{where}: {value!r} cannot carry the proxy's traffic; name a bridge")
    return value


def _wider_mode(ceiling: str, value: str) -> Optional[str]:
    if NETWORK_MODES.index(value) > NETWORK_MODES.index(ceiling):
        return f"{value!r} is wider than the administrator's {ceiling!r}"
    return None


def _wider_allow(ceiling: tuple, value: tuple) -> Optional[str]:
    outside = [d for d in value if not any(covers(c, d) for c in ceiling)]
    if outside:
        shown = ", ".join(format_destination(d) for d in outside)
        return f"{shown} {'is' if len(outside) == 1 else 'are'} not in the administrator's list"
    return None


# ---------------------------------------------------------------- secrets (Infisical)


def _slug(what: str, hint: str) -> Callable[[Any, str], str]:
    def parse_slug(value: Any, where: str) -> str:
        if not isinstance(value, str) or not pattern("slug").match(value):
            raise RunSpecError(f"{where}: {hint}")
        return value

    parse_slug.__doc__ = what
    return parse_slug


def _secret_path(value: Any, where: str) -> str:
    if not isinstance(value, str) or not pattern("secret_path").match(value) or "/../" in value:
        raise RunSpecError(f"{where}: expected a folder path such as / or /apps/api")
    return value


def _domain(value: Any, where: str) -> str:
    if not isinstance(value, str) or not pattern("domain").match(value):
        raise RunSpecError(f"{where}: expected an https:// URL of the Infisical server")
    return value


def _timeout(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RunSpecError(f"{where}: expected seconds (1 to {TIMEOUT_MAX})")
    if not 1 <= value <= TIMEOUT_MAX:
        raise RunSpecError(f"{where}: {value} is out of range (1 to {TIMEOUT_MAX})")
    return value


def _binary(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or value.startswith("-"):
        raise RunSpecError(f"{where}: expected the name or path of the infisical CLI")
    return value


def parse_secrets(value: Any, where: str = "secrets") -> dict:
    """The `secrets` setting: the Infisical source, complete with its defaults."""
    if not isinstance(value, dict):
        raise RunSpecError(f"{where}: expected a mapping with project_id, environment, path")
    if "token" in value:
        raise RunSpecError(
            f"{where}.token: a token never goes in the configuration; export "
            "INFISICAL_TOKEN (or INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN) instead"
        )
    known = {s.name: s for s in SECRET_SETTINGS}
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise RunSpecError(f"{where}: unknown key(s) {', '.join(unknown)}")
    config = {}
    for setting in SECRET_SETTINGS:
        raw = value.get(setting.name)
        config[setting.name] = (
            setting.default if raw is None else setting.parse(raw, f"{where}.{setting.name}")
        )
    if config["project_id"] is None:
        raise RunSpecError(f"{where}.project_id: set the Infisical project id (letters, digits, -)")
    return config


# ---------------------------------------------------------------- the table


class Setting:
    """One row of the table. `default` is written as a configuration file would write it
    (it goes through `parse` like any value); `scopes` says where it may be set (SCOPES);
    `module` holds the module option's Ansible type details (None: not a module
    option), and `module_default` the module's own default where it differs. `narrow`
    marks a setting a user may narrow but not widen (see parse())."""

    __slots__ = (
        "default",
        "doc",
        "flag",
        "merge",
        "metavar",
        "module",
        "module_default",
        "name",
        "narrow",
        "nullable",
        "parse",
        "scopes",
        "widen",
    )

    def __init__(
        self,
        name: str,
        parse: Callable[[Any, str], Any],
        default: Any,
        scopes: tuple,
        doc: str,
        *,
        flag: Optional[str] = None,
        metavar: str = "",
        module: Optional[dict] = None,
        module_default: Any = ...,
        nullable: bool = False,
        merge: bool = False,
        narrow: Optional[Callable[[Any, Any], Optional[str]]] = None,
        widen: str = "",
    ) -> None:
        self.name = name
        self.parse = parse
        self.default = default
        self.scopes = frozenset(scopes + ((FLAG,) if flag else ()) + ((MODULE,) if module else ()))
        self.doc = doc
        self.flag = flag
        self.metavar = metavar
        self.module = module
        if module_default is ...:
            module_default = module["default"] if module and "default" in module else default
        self.module_default = module_default
        # null is a value of its own (gitconfig: none), not "the default".
        self.nullable = nullable
        # A mapping merged key by key over the layer below (secrets).
        self.merge = merge
        # A user (user file, flag) may only narrow the administrator's value: narrow(the
        # administrator's value, the user's) says why a value is wider, or None.
        self.narrow = narrow
        # The administrator's setting that lets users widen it all the same.
        self.widen = widen

    def __repr__(self) -> str:
        return f"Setting({self.name!r})"


_ALL = (SYSTEM, USER)
_EVERYWHERE = (SYSTEM, PER_USER, USER)
_PATH_ITEM = {"type": "path", "required": True}

SETTINGS = (
    Setting(
        "image",
        _image,
        "devenv:latest",
        _ALL,
        "Image every run uses; present on the host, never pulled at run time.",
        flag="--image",
        metavar="REF",
        module={"type": "str", "required": True},
    ),
    Setting(
        "command",
        _command,
        None,
        (SYSTEM, USER, FLAG),  # the flag: what follows `devenv run [--]`
        "Command and arguments run without a shell; null: default_command.",
        # raw: the module splits a string itself, like a shell (Ansible would on commas).
        module={"type": "raw", "required": True},
    ),
    Setting(
        "default_command",
        _command,
        ["bash"],
        _ALL,
        "Command of a run that names none (an interactive shell).",
    ),
    Setting(
        "memory",
        _size,
        "4g",
        _ALL,
        "Memory limit (docker units: 512m, 4g).",
        flag="--memory",
        metavar="SIZE",
        module={"type": "str"},
    ),
    Setting(
        "memory_swap",
        _size,
        None,
        _ALL,
        "Memory plus swap; null: equal to memory (no hidden extra swap).",
        module={"type": "str"},
    ),
    Setting(
        "cpus",
        _cpus,
        2,
        _ALL,
        "CPUs of a run; left unset, 2 or the CPUs this process may use if fewer.",
        flag="--cpus",
        metavar="N",
        # raw: the table's parser judges the number (ASCII digits only), not Ansible's
        # float(), which takes "1_0" and non-ASCII digits.
        module={"type": "raw"},
    ),
    Setting(
        "pids_limit",
        _pids,
        100,
        _ALL,
        "Maximum number of processes in the container.",
        flag="--pids-limit",
        metavar="N",
        module={"type": "raw"},  # as cpus: ASCII digits only
    ),
    Setting(
        "limits_max",
        _limits_max,
        {},
        (SYSTEM,),
        "The administrator's ceiling for memory, cpus and pids_limit of any run.",
    ),
    Setting(
        "ssh",
        _choice(SSH_MODES),
        "auto",
        _EVERYWHERE,
        "SSH access: auto (the forwarded agent when one runs, else none), agent, keys "
        "(~/.ssh mounted read-only), none.",
        # Unlike the interactive launcher, the module gives no SSH access unless asked.
        module={"type": "str", "choices": list(SSH_MODES), "default": "none"},
    ),
    Setting(
        "network",
        _choice(NETWORK_MODES),
        "allowlist",
        _EVERYWHERE,
        "Network of a run: allowlist (only network_allow, through the host's egress proxy), "
        "none (loopback only), open (Docker's default bridge).",
        flag="--network",
        metavar="MODE",
        module={"type": "str", "choices": list(NETWORK_MODES)},
        narrow=_wider_mode,
        widen="network_widen",
    ),
    Setting(
        "network_allow",
        _network_allow,
        NETWORK_ALLOW_DEFAULT,
        _EVERYWHERE,
        "Destinations (HOST:PORT; *.example.com for a domain and its names) the proxy "
        "allows with network: allowlist.",
        module={"type": "list", "elements": "str"},
        narrow=_wider_allow,
        widen="network_widen",
    ),
    Setting(
        "network_widen",
        _bool,
        False,
        (SYSTEM, PER_USER),
        "Let users choose a wider network or destinations outside network_allow.",
    ),
    Setting(
        "network_egress",
        _network_name,
        "devenv-egress",
        (SYSTEM,),
        "Docker network through which the egress proxy reaches the outside (a bridge; "
        "created when missing).",
        module={"type": "str"},
    ),
    Setting(
        "network_proxy_image",
        _image,
        "devenv-proxy:latest",
        (SYSTEM,),
        "Image of the egress proxy (Squid, built by the devenv_image role); never pulled.",
        module={"type": "str"},
    ),
    Setting(
        "isolation",
        _choice(ISOLATION_MODES),
        "runc",
        _EVERYWHERE,
        "Kernel boundary of a run: runc (the host's kernel, namespaces and seccomp) or "
        "gvisor (gVisor's user-space kernel; the devenv_engine role's devenv_engine_gvisor).",
        flag="--isolation",
        metavar="MODE",
        module={"type": "str", "choices": list(ISOLATION_MODES)},
        narrow=_weaker_isolation,
        widen="isolation_widen",
    ),
    Setting(
        "isolation_widen",
        _bool,
        False,
        (SYSTEM, PER_USER),
        "Let users choose runc where the administrator set isolation: gvisor.",
    ),
    Setting(
        "read_only_rootfs",
        _bool,
        True,
        _ALL,
        "Read-only root filesystem (HOME and /tmp are private tmpfs).",
        module={"type": "bool"},
    ),
    # Identity and privilege: the administrator's alone (and the module's, which an
    # administrator runs), never a user file's or a flag's.
    Setting(
        "run_as_root",
        _bool,
        False,
        (SYSTEM,),
        "Run as root in the container (capabilities stay dropped); needs an engine that "
        "remaps users, or root_without_userns.",
        module={"type": "bool", "default": False},
    ),
    Setting(
        "root_without_userns",
        _bool,
        False,
        (SYSTEM,),
        "Accept run_as_root on an engine without userns-remap: root in the container can "
        "then create host files (a setuid file in /app) that a user can use to gain root.",
        module={"type": "bool", "default": False},
    ),
    Setting(
        "user",
        _user,
        None,
        (SYSTEM,),
        "Login or UID:GID the container runs as; null: the invoking user.",
        module={"type": "str"},
    ),
    Setting(
        "images_allowed",
        _image_patterns,
        None,
        (SYSTEM,),
        "Images a run may use (references, * matches within a name or tag); null: any "
        "image present on the host.",
    ),
    Setting(
        "code_dir",
        _host_path,
        "~/Coding",
        _EVERYWHERE,
        "Host directory mounted read-write at /app (~ is the user's home).",
        flag="--code-dir",
        metavar="DIR",
        module={"type": "path"},
    ),
    Setting(
        "workdir",
        _container_path,
        CODE_TARGET,
        _ALL,
        "Working directory in the container; inside /app, HOME, /tmp or a mount.",
        flag="--workdir",
        metavar="DIR",
        module={"type": "str"},
    ),
    Setting(
        "container_home",
        _container_home,
        "/home/dev",
        _ALL,
        "The user's HOME in the container (a private tmpfs).",
        module={"type": "str"},
    ),
    Setting("home_size", _size, "1g", _ALL, "Size of the HOME tmpfs."),
    Setting("tmp_size", _size, "1g", _ALL, "Size of the /tmp tmpfs."),
    Setting(
        "credentials",
        _credentials,
        [],
        _EVERYWHERE,
        "Files or directories mounted read-only into HOME: source, target, required.",
        module={
            "type": "list",
            "elements": "dict",
            "default": [],
            "options": {
                "source": _PATH_ITEM,
                "target": {"type": "str", "required": True},
                "required": {"type": "bool", "default": False},
            },
        },
    ),
    Setting(
        "agent_state",
        _choice(AGENT_STATE_MODES),
        "user",
        _EVERYWHERE,
        "The agents' own state (login, settings, sessions), kept by devenv under "
        "~/.local/share/devenv/state: user (one for all runs) or code_dir (one per code "
        "directory).",
        module={"type": "str", "choices": list(AGENT_STATE_MODES)},
    ),
    Setting(
        "ephemeral",
        _bool,
        False,
        _ALL,
        "Agents' state in a private tmpfs instead, discarded at exit.",
        flag="--ephemeral",
        # A module run is automation: it leaves no state behind unless asked.
        module={"type": "bool", "default": True},
    ),
    Setting(
        "claude_nonessential_traffic",
        _bool,
        False,
        _ALL,
        "Let Claude Code send non-essential traffic (telemetry, error reports); false sets "
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1. Auto-updates stay off either way.",
        module={"type": "bool"},
    ),
    Setting(
        "gitconfig",
        _gitconfig,
        "~/.gitconfig",
        _EVERYWHERE,
        "Git configuration mounted read-only as ~/.gitconfig; null or empty: none.",
        module={"type": "path"},
        module_default=None,
        nullable=True,
    ),
    Setting(
        "mounts",
        _mounts,
        [],
        _EVERYWHERE,
        "Extra bind mounts: source, target, read_only (default true).",
        module={
            "type": "list",
            "elements": "dict",
            "default": [],
            "options": {
                "source": _PATH_ITEM,
                "target": {"type": "str", "required": True},
                "read_only": {"type": "bool", "default": True},
            },
        },
    ),
    Setting(
        "env",
        _env,
        {},
        _ALL,
        "Further environment variables (not secret: they are part of the container's "
        "configuration).",
        module={"type": "dict", "default": {}, "no_log": True},
    ),
    Setting(
        "labels",
        _labels,
        {},
        _ALL,
        "Extra container labels.",
        module={"type": "dict", "default": {}},
    ),
    Setting(
        "secrets",
        parse_secrets,
        None,
        (SYSTEM, USER, MODULE),  # the module's option is called `infisical` (with a token)
        "Where secrets come from at the start of a run (Infisical; the module's option "
        "`infisical`); null: none.",
        merge=True,
    ),
    Setting(
        "users",
        _users,
        {},
        (SYSTEM,),
        "Per-login overrides of the per-user settings.",
    ),
)
BY_NAME = {s.name: s for s in SETTINGS}
PER_USER_KEYS = tuple(s.name for s in SETTINGS if PER_USER in s.scopes)

# The `secrets` setting's own keys (the module's `infisical` option, without `token`).
SECRET_SETTINGS = (
    Setting(
        "provider",
        _choice(("infisical",)),
        "infisical",
        _ALL,
        "The secrets provider (only infisical).",
    ),
    Setting(
        "project_id",
        _slug("project", "set the Infisical project id (letters, digits, -)"),
        None,
        _ALL,
        "Infisical project id.",
        module={"type": "str", "required": True},
    ),
    Setting(
        "environment",
        _slug("environment", "expected an environment slug such as dev"),
        "dev",
        _ALL,
        "Infisical environment slug.",
        module={"type": "str", "default": "dev"},
    ),
    Setting(
        "path",
        _secret_path,
        "/",
        _ALL,
        "Folder path of the secrets.",
        module={"type": "str", "default": "/"},
    ),
    Setting(
        "domain",
        _domain,
        None,
        _ALL,
        "URL of a self-hosted Infisical instance; null: Infisical's own.",
        module={"type": "str"},
    ),
    Setting(
        "timeout",
        _timeout,
        30,
        _ALL,
        "Seconds the infisical command may take.",
        module={"type": "int", "default": 30},
    ),
    Setting(
        "allow_empty",
        _bool,
        False,
        _ALL,
        "Accept an empty set of secrets instead of failing.",
        module={"type": "bool", "default": False},
    ),
    Setting(
        "binary",
        _binary,
        "infisical",
        _ALL,
        "Name or path of the infisical program.",
        module={"type": "str", "default": "infisical"},
    ),
)


def flag_names() -> dict[str, str]:
    """`devenv run` option -> setting name."""
    return {s.flag: s.name for s in SETTINGS if s.flag}


def is_switch(setting: Setting) -> bool:
    """A flag without a value (no metavar): given, it sets the setting to true."""
    return bool(setting.flag) and not setting.metavar


def module_options(table: Iterable[Setting] = SETTINGS) -> dict[str, dict]:
    """The module's options for the settings that are module options (an Ansible
    argument spec, without documentation)."""
    return {s.name: dict(s.module) for s in table if s.module}


# ---------------------------------------------------------------- parse(layers)


class Settings:
    """The effective settings of a run: every setting's parsed value, the value as
    written and where it came from. Immutable; `replace()` returns a new one."""

    __slots__ = ("_raw", "_sources", "_values")

    def __init__(self, values: dict, raw: dict, sources: dict) -> None:
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_raw", raw)
        object.__setattr__(self, "_sources", sources)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Settings are immutable; use replace()")

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    def source(self, name: str) -> str:
        return self._sources[name]

    def raw(self, name: str) -> Any:
        """The value as written in its layer (the default's own form for defaults)."""
        return self._raw[name]

    def names(self) -> tuple:
        return tuple(self._values)

    def replace(self, name: str, raw: Any, source: str) -> Settings:
        value = BY_NAME[name].parse(raw, name)
        return Settings(
            dict(self._values, **{name: value}),
            dict(self._raw, **{name: raw}),
            dict(self._sources, **{name: source}),
        )

    def __repr__(self) -> str:
        return f"Settings({self._sources!r})"


def _refusal(setting: Setting, scope: str, source: str, system_file: str) -> RunSpecError:
    if scope == PER_USER:
        allowed = ", ".join(PER_USER_KEYS)
        return RunSpecError(f"{source}: {setting.name} cannot be set per user (allowed: {allowed})")
    if SYSTEM in setting.scopes:
        return RunSpecError(
            f"{source}: {setting.name} can only be set by the administrator in {system_file}"
        )
    where = ", ".join(_SCOPE_WORDS[s] for s in SCOPES if s in setting.scopes)
    return RunSpecError(f"{source}: {setting.name} cannot be set here (only in {where})")


def parse(
    layers: Iterable[tuple],
    *,
    login: Optional[str] = None,
    module: bool = False,
    system_file: str = "the system file",
) -> Settings:
    """Parse configuration layers, lowest first, into Settings.

    Each layer is (source, scope, mapping): the source names it in messages and in
    `devenv config`, the scope (SCOPES) decides which settings it may set. A null value
    leaves the layer below in place (except for nullable settings). After a SYSTEM
    layer, its `users.<login>` entry applies as a layer of its own. `module` takes the
    module's defaults."""
    values = {}
    raw = {}
    sources = {}
    narrowed = [s for s in SETTINGS if s.narrow]
    for setting in SETTINGS:
        default = setting.module_default if module else setting.default
        values[setting.name] = None if default is None else setting.parse(default, setting.name)
        raw[setting.name] = default
        sources[setting.name] = "default"
    # What the administrator (or, without a system file, the defaults) allows.
    ceiling = {s.name: (values[s.name], sources[s.name]) for s in narrowed}
    for source, scope, data in layers:
        prefix = _apply_layer((values, raw, sources), source, scope, data, system_file)
        if scope == SYSTEM and login is not None:
            for key, (value, given) in values["users"].get(login, {}).items():
                values[key], raw[key] = value, given
                sources[key] = f"{source} (users.{login})"
        if scope == SYSTEM:
            ceiling = {s.name: (values[s.name], sources[s.name]) for s in narrowed}
        elif scope in (USER, FLAG):
            _check_narrowed(narrowed, ceiling, values, data, prefix=prefix, system_file=system_file)
    return Settings(values, raw, sources)


def _apply_layer(state: tuple, source: str, scope: str, data: Any, system_file: str) -> str:
    """One layer's values parsed into state (values, raw, sources). Returns the prefix
    its messages carry."""
    values, raw, sources = state
    if not isinstance(data, dict):
        raise RunSpecError(f"{source}: expected a mapping of settings")
    unknown = sorted(str(k) for k in data if k not in BY_NAME)
    if unknown:
        raise RunSpecError(f"{source}: unknown key(s) {', '.join(unknown)}")
    # Messages name the layer, except where there is only one (the module).
    prefix = {FLAG: "command line: ", MODULE: ""}.get(scope, f"{source}: ")
    for key, written in data.items():
        setting = BY_NAME[key]
        if scope not in setting.scopes:
            raise _refusal(setting, scope, source, system_file)
        if written is None and not setting.nullable:
            continue
        given = written
        if setting.merge and sources[key] != "default" and isinstance(written, dict):
            given = dict(raw[key], **written)
        try:
            value = setting.parse(given, key)
        except RunSpecError as exc:
            raise RunSpecError(f"{prefix}{exc}") from None
        values[key], raw[key], sources[key] = value, given, source
    return prefix


def _check_narrowed(
    narrowed: list, ceiling: dict, values: dict, data: dict, *, prefix: str, system_file: str
) -> None:
    """A user layer may narrow the network policy or strengthen the isolation, never
    the other way (unless the administrator sets the setting's `widen`)."""
    for setting in narrowed:
        if setting.name not in data or values[setting.widen]:
            continue
        top, where = ceiling[setting.name]
        why = setting.narrow(top, values[setting.name])
        if why:
            origin = "the default" if where == "default" else where
            raise RunSpecError(
                f"{prefix}{setting.name}: {why} ({origin}). A user may narrow it but "
                f"not widen it; the administrator sets it in {system_file} "
                f"({setting.widen}: true lets users widen it)"
            )
