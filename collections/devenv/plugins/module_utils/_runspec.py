# Copyright (c) devenv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run specification: the one place that decides how an agent container runs.

Standard library only, Python 3.9+, no Ansible import: the `devenv` launcher installed on
a host carries a byte-identical copy of this file (see docs/architecture.md).

`build_spec()` validates a plain dict of settings completely and returns a frozen
`RunSpec`; the two adapters only translate it: `RunSpec.docker_argv()` for the docker CLI
(launcher), `RunSpec.engine_create_body()` for the Engine API (module). Nothing else may
add, remove or change a flag that affects isolation.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

__all__ = [
    "MANAGED_LABEL",
    "SETTINGS_DEFAULTS",
    "TEST_LABEL",
    "Host",
    "Mount",
    "RunSpec",
    "RunSpecError",
    "build_spec",
    "check_settings",
    "format_memory",
    "parse_memory",
    "validate_env",
]

MANAGED_LABEL = "io.kuatecno.devenv.managed"
TEST_LABEL = "io.kuatecno.devenv.test"

# Defaults of every setting build_spec() understands. The launcher's config file and the
# module's parameters use these names. `secrets` is read by the secrets fetcher, not here.
SETTINGS_DEFAULTS: dict[str, Any] = {
    "image": "devenv:latest",
    "command": None,
    "default_command": ["bash"],
    "memory": "4g",
    "memory_swap": None,
    "cpus": 2,
    "pids_limit": 100,
    "limits_max": None,
    "ssh": "auto",
    "read_only_rootfs": True,
    "run_as_root": False,
    "user": None,
    "code_dir": "~/Coding",
    "workdir": "/app",
    "container_home": "/home/dev",
    "home_size": "1g",
    "tmp_size": "1g",
    "credentials": [],
    "gitconfig": "~/.gitconfig",
    "mounts": [],
    "env": {},
    "labels": {},
    "secrets": None,
    "users": {},
}

CREDENTIAL_KEYS = ("source", "target", "required")
MOUNT_KEYS = ("source", "target", "read_only")
# Keys a `users.<login>` entry may override.
PER_USER_KEYS = ("code_dir", "credentials", "gitconfig", "ssh", "mounts")

SSH_MODES = ("auto", "agent", "keys", "none")
CODE_TARGET = "/app"
TMP_TARGET = "/tmp"  # noqa: S108 - the container's own private tmpfs
SSH_AGENT_TARGET = "/run/devenv/ssh-agent.sock"

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENV_VALUE_MAX = 64 * 1024
# The whole environment handed to the docker CLI must stay far below the kernel's
# ARG_MAX (2 MiB on Linux, shared with the argv).
ENV_TOTAL_MAX = 1024 * 1024
# Names devenv sets or that would change how the container starts. Secrets travel in the
# docker CLI's own environment (`--env NAME`), so the variables the docker CLI and the Go
# runtime read are refused too: a secret named DOCKER_HOST would send every secret (and
# the run) to another engine.
RESERVED_ENV = frozenset(
    (
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "NODE_OPTIONS",
        "SSH_AUTH_SOCK",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "GODEBUG",
        "GOGC",
        "GOMAXPROCS",
        "GOMEMLIMIT",
        "GOTRACEBACK",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "TMPDIR",
    )
)
RESERVED_ENV_PREFIXES = ("INFISICAL_", "LD_", "DOCKER_")

# Host paths that must never be a mount source, nor contain one, nor be inside one.
SYSTEM_DIRS = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
    "/var/run",
    "/var/lib/docker",
    "/var/lib/containerd",
    # macOS
    "/System",
    "/private/etc",
    "/private/var/run",
    "/private/var/db",
)
# Engine sockets; a source that is one (after symlinks) or contains one is refused.
ENGINE_SOCKETS = (
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/var/run/containerd/containerd.sock",
)
ENGINE_SOCKET_NAMES = ("docker.sock", "containerd.sock", "podman.sock")
# Container paths a user mount may not cover.
FORBIDDEN_TARGETS = ("/", "/proc", "/sys", "/dev", "/etc", "/usr", "/bin", "/sbin", "/lib")

# docker's own minimum memory limit is 6 MiB.
MEMORY_MIN = 6 * 1024 * 1024
MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmg]?)\s*$", re.IGNORECASE)
MEMORY_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
CPUS_MIN = 0.01
CPUS_CEILING = 1024
PIDS_MAX = 4194304  # the kernel's pid_max ceiling

# docker reference grammar (distribution/reference), anchored.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = (
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)"
)
IMAGE_RE = re.compile(
    r"^(?:" + _DOMAIN + r"/)?" + _COMPONENT + r"(?:/" + _COMPONENT + r")*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)
LABEL_KEY_RE = re.compile(r"^[a-z0-9](?:[a-z0-9.\-/]{0,126}[a-z0-9])?$")
LOGIN_SAFE_RE = re.compile(r"[^a-zA-Z0-9_.-]")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Characters the engine's --mount / --tmpfs syntax cannot carry unambiguously.
_MOUNT_BAD_CHARS = (",", "=", '"')


class RunSpecError(ValueError):
    """A setting is invalid; the message names the field (never a secret value)."""


@dataclass(frozen=True)
class Host:
    """Facts about the invoking side; tests inject their own."""

    uid: int
    gid: int
    login: str
    home: str
    cpu_count: int
    environ: Mapping[str, str]

    @classmethod
    def current(cls) -> Host:
        import pwd  # noqa: PLC0415 - imported only when needed; keeps start-up lean

        uid = os.getuid()
        try:
            entry = pwd.getpwuid(uid)
            login, home = entry.pw_name, entry.pw_dir
        except KeyError:
            login, home = str(uid), os.environ.get("HOME", "/")
        return cls(
            uid=uid,
            gid=os.getgid(),
            login=login,
            home=home,
            cpu_count=os.cpu_count() or 1,
            environ=dict(os.environ),
        )


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = True

    def cli(self) -> str:
        opts = ["type=bind", "source=" + self.source, "target=" + self.target]
        if self.read_only:
            opts.append("readonly")
        opts.append("bind-propagation=rprivate")
        return ",".join(opts)

    def api(self) -> dict[str, Any]:
        return {
            "Type": "bind",
            "Source": self.source,
            "Target": self.target,
            "ReadOnly": self.read_only,
            "BindOptions": {"Propagation": "rprivate"},
        }


@dataclass(frozen=True)
class RunSpec:
    image: str
    command: tuple[str, ...]
    workdir: str
    uid: int
    gid: int
    home: str
    mounts: tuple[Mount, ...]
    tmpfs: tuple[tuple[str, str], ...]
    # Fixed, non-secret variables (HOME, SSH_AUTH_SOCK): fine on a command line.
    plain_env: tuple[tuple[str, str], ...]
    memory: int
    memory_swap: int
    nano_cpus: int
    pids_limit: int
    read_only_rootfs: bool
    labels: tuple[tuple[str, str], ...]
    name: str
    ssh: str
    warnings: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()
    # Secrets and configured env: passed by name only on command lines. Kept out of repr.
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def user(self) -> str:
        return f"{self.uid}:{self.gid}"

    @property
    def secret_names(self) -> tuple[str, ...]:
        return tuple(self.secrets)

    @property
    def cpus(self) -> float:
        return self.nano_cpus / 1e9

    def secret_env(self) -> dict[str, str]:
        """Name -> value of the secret variables, to merge into the docker CLI's env."""
        return dict(self.secrets)

    def docker_argv(self, *, tty: bool, interactive: bool, docker: str = "docker") -> list[str]:
        """The `docker run` argv. Secret values never appear: only `--env NAME`, whose
        value the docker CLI reads from its own environment (see secret_env())."""
        argv = [
            docker,
            "run",
            "--rm",
            "--init",
            "--pull",
            "never",
            "--name",
            self.name,
            "--user",
            self.user,
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--memory",
            str(self.memory),
            "--memory-swap",
            str(self.memory_swap),
            "--cpus",
            _format_cpus(self.nano_cpus),
            "--pids-limit",
            str(self.pids_limit),
            # No copy of the session's output on the engine's disk (json-file logs).
            "--log-driver",
            "none",
        ]
        if self.read_only_rootfs:
            argv.append("--read-only")
        for target, options in self.tmpfs:
            argv += ["--tmpfs", target + ":" + options]
        for mount in self.mounts:
            argv += ["--mount", mount.cli()]
        argv += ["--workdir", self.workdir]
        for name, value in self.plain_env:
            argv += ["--env", name + "=" + value]
        for name in self.secrets:
            argv += ["--env", name]
        for key, value in self.labels:
            argv += ["--label", key + "=" + value]
        if interactive:
            argv.append("--interactive")
        if tty:
            argv.append("--tty")
        argv.append("--")
        argv.append(self.image)
        argv += list(self.command)
        return argv

    def engine_create_body(self, *, tty: bool = False, interactive: bool = False) -> dict[str, Any]:
        """The Engine API `ContainerCreate` body. The name is a query parameter of that
        call: use `self.name`. Secret values are in `Env`: the caller must treat the body
        as secret (no_log) and never log it."""
        env = [n + "=" + v for n, v in self.plain_env]
        env += [n + "=" + v for n, v in self.secrets.items()]
        return {
            "Image": self.image,
            "Cmd": list(self.command),
            "WorkingDir": self.workdir,
            "User": self.user,
            "Env": env,
            "Labels": dict(self.labels),
            "Tty": tty,
            "OpenStdin": interactive,
            "StdinOnce": interactive,
            "AttachStdin": interactive,
            "AttachStdout": True,
            "AttachStderr": True,
            "NetworkDisabled": False,
            "ExposedPorts": {},
            "HostConfig": {
                "AutoRemove": True,
                "Init": True,
                "Privileged": False,
                "CapDrop": ["ALL"],
                "CapAdd": [],
                "SecurityOpt": ["no-new-privileges"],
                "ReadonlyRootfs": self.read_only_rootfs,
                "Memory": self.memory,
                "MemorySwap": self.memory_swap,
                "NanoCpus": self.nano_cpus,
                "PidsLimit": self.pids_limit,
                "Tmpfs": dict(self.tmpfs),
                "Mounts": [m.api() for m in self.mounts],
                "Binds": [],
                "Devices": [],
                "PortBindings": {},
                "PublishAllPorts": False,
                "RestartPolicy": {"Name": "no"},
                "NetworkMode": "default",
            },
        }

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly view without secret values (for dry runs and check mode)."""
        return {
            "image": self.image,
            "command": list(self.command),
            "workdir": self.workdir,
            "user": self.user,
            "home": self.home,
            "mounts": [
                {"source": m.source, "target": m.target, "read_only": m.read_only}
                for m in self.mounts
            ],
            "tmpfs": dict(self.tmpfs),
            "memory": self.memory,
            "memory_swap": self.memory_swap,
            "cpus": self.cpus,
            "pids_limit": self.pids_limit,
            "read_only_rootfs": self.read_only_rootfs,
            "labels": dict(self.labels),
            "name": self.name,
            "ssh": self.ssh,
            "secret_names": list(self.secret_names),
            "warnings": list(self.warnings),
            "notices": list(self.notices),
        }


# ---------------------------------------------------------------- value parsers


def _format_cpus(nano: int) -> str:
    text = "%.9f" % (nano / 1e9)
    return text.rstrip("0").rstrip(".")


def parse_memory(value: Any, field_name: str = "memory") -> int:
    """docker's memory syntax: a number with an optional unit b, k, m, g (any case;
    binary multiples). Returns bytes; refuses less than docker's minimum of 6m."""
    if isinstance(value, bool) or value is None:
        raise RunSpecError(f"{field_name}: expected a size such as 4g or 512m")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        match = MEMORY_RE.match(value)
        if not match:
            raise RunSpecError(
                f"{field_name}: {value!r} is not a size; "
                "use a number with a unit b, k, m or g (e.g. 4g)"
            )
        number = int(float(match.group(1)) * MEMORY_UNITS[match.group(2).lower()])
    else:
        raise RunSpecError(f"{field_name}: expected a size such as 4g or 512m")
    if number < MEMORY_MIN:
        raise RunSpecError(f"{field_name}: {_show(value)} is too small; the allowed minimum is 6m")
    return number


def format_memory(number: int) -> str:
    for unit, size in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if number % size == 0:
            return f"{number // size}{unit}"
    return f"{number}b"


def _parse_cpus(
    value: Any, host_cpus: int, maximum: Optional[float], field_name: str = "cpus"
) -> int:
    upper = float(host_cpus) if maximum is None else min(float(host_cpus), maximum)
    allowed = f"allowed: {CPUS_MIN} to {_format_number(upper)}"
    if isinstance(value, bool) or value is None:
        raise RunSpecError(f"{field_name}: expected a number ({allowed})")
    try:
        number = float(value) if isinstance(value, (int, float, str)) else float("nan")
    except ValueError:
        raise RunSpecError(f"{field_name}: {value!r} is not a number ({allowed})") from None
    if math.isnan(number) or math.isinf(number):
        raise RunSpecError(f"{field_name}: {value!r} is not a number ({allowed})")
    if number < CPUS_MIN:
        raise RunSpecError(f"{field_name}: {_show(value)} is too small ({allowed})")
    if number > host_cpus:
        raise RunSpecError(
            f"{field_name}: {_show(value)} is more than this host's {host_cpus} CPUs ({allowed})"
        )
    if maximum is not None and number > maximum:
        raise RunSpecError(
            f"{field_name}: {_show(value)} is above the administrator's maximum ({allowed})"
        )
    return round(number * 1e9)


def _parse_positive_int(value: Any, field_name: str, upper: int) -> int:
    allowed = f"allowed: 1 to {upper}"
    if isinstance(value, bool) or value is None:
        raise RunSpecError(f"{field_name}: expected a positive integer ({allowed})")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.match(r"^\s*[+-]?\d+\s*$", value):
        number = int(value)
    else:
        raise RunSpecError(f"{field_name}: {value!r} is not an integer ({allowed})")
    if number < 1 or number > upper:
        raise RunSpecError(f"{field_name}: {number} is out of range ({allowed})")
    return number


def _format_number(number: float) -> str:
    return (f"{number:g}") if number != int(number) else str(int(number))


def _show(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def _bool(settings: Mapping[str, Any], key: str) -> bool:
    value = settings[key]
    if not isinstance(value, bool):
        raise RunSpecError(f"{key}: expected true or false, got {value!r}")
    return value


# ---------------------------------------------------------------- environment


def validate_env(mapping: Any, *, field_name: str = "env") -> dict[str, str]:
    """Validate secret/env names and values. Accepts a dict or a sequence of (name, value)
    pairs (so duplicates can be detected). Errors name the key, never the value."""
    if isinstance(mapping, Mapping):
        pairs = list(mapping.items())
    elif isinstance(mapping, (list, tuple)):
        pairs = list(mapping)
    else:
        raise RunSpecError(f"{field_name}: expected a mapping of names to values")
    result: dict[str, str] = {}
    total = 0
    for pair in pairs:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise RunSpecError(f"{field_name}: expected (name, value) pairs")
        name, value = pair
        if not isinstance(name, str) or not ENV_NAME_RE.match(name):
            shown = name if isinstance(name, str) and not _CONTROL_RE.search(name) else None
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
        if "\x00" in value or "\n" in value or "\r" in value:
            raise RunSpecError(
                f"{field_name}: the value of {name} contains a NUL, newline or carriage return, "
                "which cannot be passed safely"
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


# ---------------------------------------------------------------- paths


def _check_chars(path: str, field_name: str, *, container: bool = False) -> None:
    if _CONTROL_RE.search(path):
        raise RunSpecError(f"{field_name}: the path contains a control character")
    bad = [c for c in _MOUNT_BAD_CHARS + ((":",) if container else ()) if c in path]
    if bad:
        raise RunSpecError(
            "{}: {!r} contains {}, which the engine's mount syntax cannot carry".format(
                field_name, path, " ".join(repr(c) for c in bad)
            )
        )


def _is_within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _expand(path: str, home: str, field_name: str) -> str:
    if path == "~" or path.startswith("~/"):
        return home + path[1:]
    if path.startswith("~"):
        raise RunSpecError(
            f"{field_name}: {path!r}: only ~ (the invoking user's home) can be expanded"
        )
    return path


def _engine_sockets(environ: Mapping[str, str]) -> list[str]:
    sockets = list(ENGINE_SOCKETS)
    docker_host = environ.get("DOCKER_HOST", "")
    if docker_host.startswith("unix://"):
        sockets.append(docker_host[len("unix://") :])
    xdg = environ.get("XDG_RUNTIME_DIR")
    if xdg:
        sockets.append(os.path.join(xdg, "docker.sock"))
    return [os.path.realpath(s) for s in sockets]


def _check_source(
    raw: Any, field_name: str, host: Host, *, kind: str = "any", required: bool = True
) -> Optional[str]:
    """Resolve and vet a host path. Returns its real path, or None if it is missing and
    not required. kind: any (file or directory), dir, socket."""
    if not isinstance(raw, str) or not raw:
        raise RunSpecError(f"{field_name}: expected a host path")
    _check_chars(raw, field_name)
    path = _expand(raw, host.home, field_name)
    if not os.path.isabs(path):
        raise RunSpecError(f"{field_name}: {raw!r} must be an absolute path (or start with ~/)")
    # Symlinks are resolved first, so a link to the engine socket or to / is caught too.
    real = os.path.realpath(path)
    written = os.path.normpath(path)
    _check_chars(real, field_name)
    if real == "/" or _is_within(os.path.realpath(host.home), real):
        raise RunSpecError(
            f"{field_name}: {raw!r} is the filesystem root or the whole home directory "
            "(or above it); mount a specific subdirectory instead"
        )
    sockets = _engine_sockets(host.environ)
    if (
        real in sockets
        or os.path.basename(real) in ENGINE_SOCKET_NAMES
        or any(_is_within(s, real) for s in sockets)
    ):
        raise RunSpecError(
            f"{field_name}: {raw!r} is or contains the container engine's socket, "
            "which would give the container root on the host"
        )
    # Both the path as written and its target: on macOS /etc resolves to /private/etc.
    for system in SYSTEM_DIRS:
        if any(_is_within(p, system) or _is_within(system, p) for p in (real, written)):
            # An SSH agent socket commonly lives in the user's own /run/user/<uid>/.
            if kind == "socket" and _is_within(real, f"/run/user/{host.uid}"):
                continue
            raise RunSpecError(
                f"{field_name}: {raw!r} is, or contains, the system directory {system}; "
                "it cannot be mounted"
            )
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        if required:
            raise RunSpecError(
                f"{field_name}: {raw!r} does not exist; create it or fix the configuration"
            ) from None
        return None
    except OSError as exc:
        raise RunSpecError(f"{field_name}: {raw!r} cannot be read ({exc.strerror})") from None
    expected = {
        "dir": (stat.S_ISDIR(mode), "a directory"),
        "socket": (stat.S_ISSOCK(mode), "a socket"),
        "any": (stat.S_ISDIR(mode) or stat.S_ISREG(mode), "a regular file or a directory"),
    }[kind]
    if not expected[0]:
        raise RunSpecError(f"{field_name}: {raw!r} is not {expected[1]}")
    return real


def _container_path(raw: Any, field_name: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise RunSpecError(f"{field_name}: expected an absolute container path")
    _check_chars(raw, field_name, container=True)
    if not raw.startswith("/"):
        raise RunSpecError(f"{field_name}: {raw!r} must be an absolute container path")
    parts = raw.split("/")
    if ".." in parts or "." in parts:
        raise RunSpecError(f"{field_name}: {raw!r} must not contain . or .. components")
    return "/" + "/".join(p for p in parts if p)


def _relative_target(raw: Any, field_name: str, home: str) -> str:
    if not isinstance(raw, str) or not raw or raw.startswith("/"):
        raise RunSpecError(
            f"{field_name}: {raw!r} must be a path relative to the container HOME (e.g. .claude)"
        )
    return _container_path(home.rstrip("/") + "/" + raw, field_name)


def _mapping_items(value: Any, field_name: str, allowed: tuple[str, ...]) -> list[Mapping]:
    if not isinstance(value, (list, tuple)):
        raise RunSpecError(f"{field_name}: expected a list of mappings ({', '.join(allowed)})")
    for index, item in enumerate(value):
        if not isinstance(item, Mapping) or "source" not in item:
            raise RunSpecError(f"{field_name}[{index}]: expected a mapping with a source")
        bad = sorted(str(k) for k in item if k not in allowed)
        if bad:
            raise RunSpecError(f"{field_name}[{index}]: unknown key(s) {', '.join(bad)}")
    return list(value)


# ---------------------------------------------------------------- settings and user


def _user_entry(user: str) -> tuple[int, int, str, Optional[str]]:
    import pwd  # noqa: PLC0415 - only needed when `user` is set; keeps start-up lean

    match = re.match(r"^(\d+):(\d+)$", user)
    if match:
        uid, gid = int(match.group(1)), int(match.group(2))
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:
            return uid, gid, str(uid), None
        return uid, gid, entry.pw_name, entry.pw_dir
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise RunSpecError(f"user: no such user {user!r}") from None
    return entry.pw_uid, entry.pw_gid, entry.pw_name, entry.pw_dir


def _resolve_user(settings: Mapping[str, Any], host: Host) -> tuple[Host, list[str], int, int]:
    """The host-side identity (for ~ and per-user settings), warnings, and the container's
    uid and gid."""
    run_as_root = settings.get("run_as_root", False)
    if not isinstance(run_as_root, bool):
        raise RunSpecError(f"run_as_root: expected true or false, got {run_as_root!r}")
    user = settings.get("user")
    if user is not None:
        if not isinstance(user, str) or not user:
            raise RunSpecError("user: expected a login name or UID:GID")
        uid, gid, login, home = _user_entry(user)
        host = Host(uid, gid, login, home or host.home, host.cpu_count, host.environ)
    if run_as_root:
        warning = (
            "run_as_root is set: the container runs as root (still without capabilities "
            "and with no-new-privileges); files it creates in /app belong to root"
        )
        return host, [warning], 0, 0
    if host.uid == 0:
        raise RunSpecError(
            "user: the invoking user is root; run devenv as your own user, set `user` to a "
            "login or UID:GID, or set run_as_root explicitly"
        )
    return host, [], host.uid, host.gid


def _merged(settings: Mapping[str, Any], login: str) -> dict[str, Any]:
    unknown = sorted(str(k) for k in settings if k not in SETTINGS_DEFAULTS)
    if unknown:
        raise RunSpecError(f"settings: unknown key(s) {', '.join(unknown)}")
    merged = dict(SETTINGS_DEFAULTS)
    merged["_cpus_default"] = settings.get("cpus") is None
    # null means "the default", except gitconfig where null means "none".
    merged.update({k: v for k, v in settings.items() if v is not None or k == "gitconfig"})
    users = merged["users"]
    if not isinstance(users, Mapping):
        raise RunSpecError("users: expected a mapping of login names to settings")
    own = users.get(login)
    if own is not None:
        if not isinstance(own, Mapping):
            raise RunSpecError(f"users.{login}: expected a mapping")
        bad = sorted(str(k) for k in own if k not in PER_USER_KEYS)
        if bad:
            raise RunSpecError(
                f"users.{login}: {', '.join(bad)} cannot be set per user "
                f"(allowed: {', '.join(PER_USER_KEYS)})"
            )
        merged.update(own)
    return merged


def _limits_max(value: Any, host: Host) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RunSpecError("limits_max: expected a mapping with memory, cpus, pids_limit")
    bad = sorted(str(k) for k in value if k not in ("memory", "cpus", "pids_limit"))
    if bad:
        raise RunSpecError(f"limits_max: unknown key(s) {', '.join(bad)}")
    result: dict[str, Any] = {}
    if value.get("memory") is not None:
        result["memory"] = parse_memory(value["memory"], "limits_max.memory")
    if value.get("cpus") is not None:
        # A ceiling may exceed this host's CPUs (one fleet-wide value); runs may not.
        result["cpus"] = _parse_cpus(value["cpus"], CPUS_CEILING, None, "limits_max.cpus") / 1e9
    if value.get("pids_limit") is not None:
        result["pids_limit"] = _parse_positive_int(
            value["pids_limit"], "limits_max.pids_limit", PIDS_MAX
        )
    return result


def _limits(s: Mapping[str, Any], host: Host) -> tuple[int, int, int, int]:
    """memory, memory_swap (bytes), nano CPUs, pids limit."""
    maxima = _limits_max(s["limits_max"], host)
    memory = parse_memory(s["memory"])
    top = maxima.get("memory")
    if top is not None and memory > top:
        raise RunSpecError(
            f"memory: {_show(s['memory'])} is above the administrator's maximum "
            f"(allowed: 6m to {format_memory(top)})"
        )
    memory_swap = memory
    if s["memory_swap"] is not None:
        memory_swap = parse_memory(s["memory_swap"], "memory_swap")
        if memory_swap < memory:
            raise RunSpecError(
                f"memory_swap: must be at least memory ({format_memory(memory)}); "
                "it is memory plus swap"
            )
        if top is not None and memory_swap > top:
            raise RunSpecError(
                f"memory_swap: {_show(s['memory_swap'])} is above the administrator's "
                f"maximum {format_memory(top)}"
            )
    cpus = s["cpus"]
    if s.get("_cpus_default"):
        # The default (2) must not fail on a smaller host: take what the host has.
        cpus = min(float(cpus), float(host.cpu_count), maxima.get("cpus", float(cpus)))
    nano_cpus = _parse_cpus(cpus, host.cpu_count, maxima.get("cpus"))
    pids = _parse_positive_int(s["pids_limit"], "pids_limit", maxima.get("pids_limit", PIDS_MAX))
    return memory, memory_swap, nano_cpus, pids


def _ssh_mode(value: Any) -> str:
    if value not in SSH_MODES:
        raise RunSpecError(f"ssh: {value!r} is not one of {', '.join(SSH_MODES)}")
    return value


def _ssh(s: Mapping[str, Any], host: Host, home: str) -> tuple[str, list[Mount], list]:
    """The effective SSH mode, its mounts and its fixed env."""
    ssh = _ssh_mode(s["ssh"])
    agent_sock = host.environ.get("SSH_AUTH_SOCK", "")
    ssh_dir = os.path.join(host.home, ".ssh")
    if ssh == "auto":
        if agent_sock and _is_socket(agent_sock):
            ssh = "agent"
        elif os.path.isdir(ssh_dir):
            ssh = "keys"
        else:
            ssh = "none"
    if ssh == "agent":
        if not agent_sock:
            raise RunSpecError("ssh: agent requested but SSH_AUTH_SOCK is not set")
        real = _check_source(agent_sock, "ssh (SSH_AUTH_SOCK)", host, kind="socket")
        return ssh, [Mount(real, SSH_AGENT_TARGET)], [("SSH_AUTH_SOCK", SSH_AGENT_TARGET)]
    if ssh == "keys":
        real = _check_source(ssh_dir, "ssh (~/.ssh)", host, kind="dir")
        return ssh, [Mount(real, home + "/.ssh")], []
    return ssh, [], []


def _credential_mounts(s: Mapping[str, Any], host: Host, home: str) -> tuple[list, list]:
    """Credentials (always read-only, into HOME) and gitconfig; mounts and notices."""
    mounts: list[Mount] = []
    notices: list[str] = []
    items = _mapping_items(s["credentials"], "credentials", CREDENTIAL_KEYS)
    for index, item in enumerate(items):
        where = f"credentials[{index}]"
        required = item.get("required", False)
        if not isinstance(required, bool):
            raise RunSpecError(f"{where}.required: expected true or false")
        target_raw = item.get("target") or os.path.basename(str(item["source"]).rstrip("/"))
        target = _relative_target(target_raw, where + ".target", home)
        real = _check_source(item["source"], where + ".source", host, required=required)
        if real is None:
            notices.append(f"{where}: {item['source']} does not exist; not mounted")
            continue
        mounts.append(Mount(real, target))
    if s["gitconfig"]:
        real = _check_source(s["gitconfig"], "gitconfig", host, required=False)
        if real is not None:
            mounts.append(Mount(real, home + "/.gitconfig"))
    return mounts, notices


def _extra_mounts(s: Mapping[str, Any], host: Host) -> list[Mount]:
    mounts = []
    items = _mapping_items(s["mounts"], "mounts", MOUNT_KEYS)
    for index, item in enumerate(items):
        where = f"mounts[{index}]"
        read_only = item.get("read_only", True)
        if not isinstance(read_only, bool):
            raise RunSpecError(f"{where}.read_only: expected true or false")
        target = _mount_target(item, where)
        real = _check_source(item["source"], where + ".source", host)
        mounts.append(Mount(real, target, read_only=read_only))
    return mounts


def _mount_target(item: Mapping[str, Any], where: str) -> str:
    if not isinstance(item.get("read_only", True), bool):
        raise RunSpecError(f"{where}.read_only: expected true or false")
    target = _container_path(item.get("target"), where + ".target")
    if target == "/" or any(_is_within(target, t) for t in FORBIDDEN_TARGETS[1:]):
        raise RunSpecError(f"{where}.target: {target!r} would cover a system directory")
    return target


def _labels(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise RunSpecError("labels: expected a mapping of label keys to strings")
    pairs = [(MANAGED_LABEL, "true")]
    for key, text in value.items():
        if not isinstance(key, str) or not LABEL_KEY_RE.match(key) or ".." in key:
            raise RunSpecError(
                f"labels: {key!r} is not a valid label key (lower-case letters, digits, . - /)"
            )
        if key == MANAGED_LABEL:
            raise RunSpecError(f"labels: {MANAGED_LABEL} is set by devenv itself")
        if not isinstance(text, str) or _CONTROL_RE.search(text) or len(text) > 1024:
            raise RunSpecError(f"labels: the value of {key} must be a short printable string")
        pairs.append((key, text))
    return tuple(pairs)


def _command(s: Mapping[str, Any]) -> tuple[str, ...]:
    command = s["command"]
    if command is None or command == []:
        command = s["default_command"]
    if isinstance(command, str) or not isinstance(command, (list, tuple)) or not command:
        raise RunSpecError("command: expected a non-empty list of strings")
    for part in command:
        if not isinstance(part, str) or "\x00" in part:
            raise RunSpecError("command: every item must be a string without NUL")
    return tuple(command)


def _unique_name(login: str) -> str:
    safe = LOGIN_SAFE_RE.sub("_", login)[:32] or "user"
    return f"devenv-{safe}-{os.urandom(4).hex()}"


# ---------------------------------------------------------------- build_spec


def build_spec(
    settings: Mapping[str, Any],
    *,
    secrets: Optional[Mapping[str, str]] = None,
    host: Optional[Host] = None,
) -> RunSpec:
    """Validate `settings` completely and return the RunSpec. Raises RunSpecError.
    `secrets` (name -> value, or (name, value) pairs) are validated with validate_env();
    they, and `env` from the settings, reach the container by name only on any command
    line."""
    if not isinstance(settings, Mapping):
        raise RunSpecError("settings: expected a mapping")
    host, warnings, uid, gid = _resolve_user(settings, host or Host.current())
    s = _merged(settings, host.login)

    image = s["image"]
    if not isinstance(image, str) or len(image) > 512 or not IMAGE_RE.match(image):
        raise RunSpecError(f"image: {image!r} is not a valid image reference (e.g. devenv:1.2.3)")
    memory, memory_swap, nano_cpus, pids_limit = _limits(s, host)

    home = _container_path(s["container_home"], "container_home")
    if home in ("/", CODE_TARGET, TMP_TARGET) or any(
        _is_within(home, t) for t in FORBIDDEN_TARGETS[1:]
    ):
        raise RunSpecError(f"container_home: {home!r} cannot be used as HOME")
    workdir = _container_path(s["workdir"], "workdir")
    home_size = parse_memory(s["home_size"], "home_size")
    tmp_size = parse_memory(s["tmp_size"], "tmp_size")

    mounts = [Mount(_check_source(s["code_dir"], "code_dir", host, kind="dir"), CODE_TARGET, False)]
    ssh, ssh_mounts, ssh_env = _ssh(s, host, home)
    credential_mounts, notices = _credential_mounts(s, host, home)
    mounts += ssh_mounts + credential_mounts + _extra_mounts(s, host)
    seen = {home, TMP_TARGET}
    for mount in mounts:
        if mount.target in seen:
            raise RunSpecError(f"mounts: the container path {mount.target!r} is used twice")
        seen.add(mount.target)
    if not any(_is_within(workdir, t) for t in seen):
        raise RunSpecError(f"workdir: {workdir!r} must be inside /app, the HOME, /tmp or a mount")

    # Configured env and secrets: both reach command lines by name only.
    env = validate_env(s["env"], field_name="env")
    for name, value in validate_env(secrets or {}, field_name="secrets").items():
        if name in env:
            raise RunSpecError(f"secrets: {name} is also set in env; remove one")
        env[name] = value

    return RunSpec(
        image=image,
        command=_command(s),
        workdir=workdir,
        uid=uid,
        gid=gid,
        home=home,
        mounts=tuple(mounts),
        tmpfs=(
            # HOME is exec (agents install tools there); noexec on /tmp would only break
            # tools, not add a barrier.
            (TMP_TARGET, f"rw,nosuid,nodev,exec,size={tmp_size}"),
            (home, f"rw,nosuid,nodev,exec,size={home_size},uid={uid},gid={gid},mode=0700"),
        ),
        plain_env=(("HOME", home), *ssh_env),
        memory=memory,
        memory_swap=memory_swap,
        nano_cpus=nano_cpus,
        pids_limit=pids_limit,
        read_only_rootfs=_bool(s, "read_only_rootfs"),
        labels=_labels(s["labels"]),
        name=_unique_name(host.login),
        ssh=ssh,
        warnings=tuple(warnings),
        notices=tuple(notices),
        secrets=env,
    )


def check_settings(settings: Mapping[str, Any], *, cpu_count: Optional[int] = None) -> None:
    """Validate what can be validated without a user or the filesystem (a system
    configuration file at provisioning time): keys, types, units and ranges, image,
    paths' syntax, env, labels and every users.<login> entry. Raises RunSpecError."""
    if not isinstance(settings, Mapping):
        raise RunSpecError("settings: expected a mapping")
    host = Host(1, 1, "", "/nonexistent", cpu_count or os.cpu_count() or 1, {})
    s = _merged(settings, "")
    _resolve_user({"run_as_root": s["run_as_root"]}, host)
    if s["user"] is not None and (not isinstance(s["user"], str) or not s["user"]):
        raise RunSpecError("user: expected a login name or UID:GID")
    image = s["image"]
    if not isinstance(image, str) or len(image) > 512 or not IMAGE_RE.match(image):
        raise RunSpecError(f"image: {image!r} is not a valid image reference (e.g. devenv:1.2.3)")
    _command(s)
    _limits(s, host)
    _bool(s, "read_only_rootfs")
    home = _container_path(s["container_home"], "container_home")
    _container_path(s["workdir"], "workdir")
    parse_memory(s["home_size"], "home_size")
    parse_memory(s["tmp_size"], "tmp_size")
    validate_env(s["env"], field_name="env")
    _labels(s["labels"])
    entries = [("", s)]
    for login in s["users"]:
        if not isinstance(login, str) or not login:
            raise RunSpecError("users: keys must be login names")
        entries.append((f"users.{login}.", _merged(settings, login)))
    for login, entry in entries:
        _ssh_mode(entry["ssh"])
        _check_host_path_syntax(entry["code_dir"], login + "code_dir")
        if entry["gitconfig"]:
            _check_host_path_syntax(entry["gitconfig"], login + "gitconfig")
        creds = _mapping_items(entry["credentials"], login + "credentials", CREDENTIAL_KEYS)
        for index, item in enumerate(creds):
            where = f"{login}credentials[{index}]"
            _check_host_path_syntax(item["source"], where + ".source")
            if not isinstance(item.get("required", False), bool):
                raise RunSpecError(f"{where}.required: expected true or false")
            if item.get("target") is not None:
                _relative_target(item["target"], where + ".target", home)
        for index, item in enumerate(_mapping_items(entry["mounts"], login + "mounts", MOUNT_KEYS)):
            where = f"{login}mounts[{index}]"
            _check_host_path_syntax(item["source"], where + ".source")
            _mount_target(item, where)


def _check_host_path_syntax(raw: Any, field_name: str) -> None:
    if not isinstance(raw, str) or not raw:
        raise RunSpecError(f"{field_name}: expected a host path")
    _check_chars(raw, field_name)
    if not (raw.startswith("/") or raw == "~" or raw.startswith("~/")):
        raise RunSpecError(f"{field_name}: {raw!r} must be an absolute path (or start with ~/)")
    if raw.startswith("/"):
        real = os.path.normpath(raw)
        if real == "/" or any(_is_within(real, d) for d in SYSTEM_DIRS):
            raise RunSpecError(f"{field_name}: {raw!r} is a system directory; it cannot be mounted")


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False
