# Copyright (c) devenv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run specification: the one place that decides how an agent container runs.

Standard library only, Python 3.9+, no Ansible import: the `devenv` launcher installed on
a host carries a byte-identical copy of this file (see docs/architecture.md).

    Settings (_settings.parse)  --resolve(settings, host)-->  RunSpec
    RunSpec.with_secrets(...)   the same run with the secrets attached
    RunSpec.docker_argv()       the docker CLI's argv (the launcher)
    RunSpec.engine_create_body()  the Engine API's create body (the module)

Both adapters are built from one mapping, `RunSpec.properties()`: each property of a run
with its docker CLI flag and its Engine API field. Nothing else may add, remove or change
a flag that affects isolation.
"""

from __future__ import annotations

import os
import stat

from . import _network
from ._settings import (
    CODE_TARGET,
    MANAGED_LABEL,
    PER_USER_KEYS,
    SYSTEM,
    TMP_TARGET,
    RunSpecError,
    Settings,
    check_chars,
    format_memory,
    is_within,
    parse,
    parse_cpus,
    parse_memory,
    relative_target,
    show,
    validate_env,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only; typing costs start-up time
    from collections.abc import Mapping
    from typing import Any, Callable, ClassVar, Optional

__all__ = [
    "MANAGED_LABEL",
    "PER_USER_KEYS",
    "TEST_LABEL",
    "Host",
    "Mount",
    "RunSpec",
    "RunSpecError",
    "build_spec",
    "check_config",
    "format_memory",
    "parse_memory",
    "resolve",
    "validate_env",
]

TEST_LABEL = "io.kuatecno.devenv.test"
SSH_AGENT_TARGET = "/run/devenv/ssh-agent.sock"

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
# The uid a configuration check resolves for when no login is named.
NOBODY = 65534


class _Record:
    """A small immutable record (dataclasses cost the launcher start-up time).
    Subclasses list `_fields`; `_defaults` holds optional ones, `_hidden` those kept out
    of repr and equality (secret values)."""

    __slots__ = ()
    _fields: ClassVar[tuple] = ()
    _defaults: ClassVar[dict] = {}
    _hidden: ClassVar[tuple] = ()
    __hash__ = None  # type: ignore[assignment] - records hold mappings (environ, env)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(self._fields):
            raise TypeError(f"{type(self).__name__}: too many arguments")
        values = dict(self._defaults)
        values.update(zip(self._fields, args))
        values.update(kwargs)
        unknown = set(values) - set(self._fields)
        missing = [f for f in self._fields if f not in values]
        if unknown or missing:
            raise TypeError(f"{type(self).__name__}: unknown {unknown or ''} missing {missing}")
        for name in self._fields:
            object.__setattr__(self, name, values[name])

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; use replace()")

    def _shown(self) -> tuple:
        return tuple((f, getattr(self, f)) for f in self._fields if f not in self._hidden)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._shown() == other._shown()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._shown())
        return f"{type(self).__name__}({inner})"

    def replace(self, **changes: Any) -> Any:
        values = {f: getattr(self, f) for f in self._fields}
        values.update(changes)
        return type(self)(**values)


def _usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), which is also what the engine
    counts on the same host; the machine's total where affinity is unknown (macOS)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class Host(_Record):
    """Facts about the invoking side: uid, gid, login, home, cpu_count, environ."""

    __slots__ = ("cpu_count", "environ", "gid", "home", "login", "uid")
    _fields = ("uid", "gid", "login", "home", "cpu_count", "environ")

    @classmethod
    def current(cls) -> Host:
        import pwd  # noqa: PLC0415 - imported only when needed; keeps start-up lean

        uid = os.getuid()
        try:
            entry = pwd.getpwuid(uid)
            login, home = entry.pw_name, entry.pw_dir
        except KeyError:
            login, home = str(uid), os.environ.get("HOME", "/")
        return cls(uid, os.getgid(), login, home, _usable_cpus(), dict(os.environ))

    @classmethod
    def for_login(cls, login: Optional[str]) -> Host:
        """The host as `login` would see it, for a configuration check (no environment).
        Without a login: an unprivileged user with no home."""
        if login is None:
            return cls(NOBODY, NOBODY, "", "/nonexistent", _usable_cpus(), {})
        import pwd  # noqa: PLC0415 - only for configuration checks

        try:
            entry = pwd.getpwnam(login)
        except KeyError:
            raise RunSpecError(f"users.{login}: no such user on this host") from None
        return cls(entry.pw_uid, entry.pw_gid, login, entry.pw_dir, _usable_cpus(), {})


class Mount(_Record):
    """A bind mount; `source` is already resolved (realpath) and vetted."""

    __slots__ = ("read_only", "source", "target")
    _fields = ("source", "target", "read_only")
    _defaults: ClassVar[dict] = {"read_only": True}

    def cli(self) -> str:
        opts = ["type=bind", "source=" + self.source, "target=" + self.target]
        if self.read_only:
            opts.append("readonly")
        opts.append("bind-propagation=rprivate")
        return ",".join(opts)

    def api(self) -> dict:
        return {
            "Type": "bind",
            "Source": self.source,
            "Target": self.target,
            "ReadOnly": self.read_only,
            "BindOptions": {"Propagation": "rprivate"},
        }


# What the docker CLI sends to the engine when no flag says otherwise; the Engine API body
# states it outright, so nothing is left to the engine's defaults.
_ENGINE_DEFAULTS = {
    "AttachStdout": True,
    "AttachStderr": True,
    "NetworkDisabled": False,
    "ExposedPorts": {},
}
_HOST_DEFAULTS = {
    "Privileged": False,
    "CapAdd": [],
    "Binds": [],
    "Devices": [],
    "PortBindings": {},
    "PublishAllPorts": False,
    "RestartPolicy": {"Name": "no"},
}


class RunSpec(_Record):
    """A complete, validated run. `env` (configured variables) and `secrets` reach
    command lines by name only and are kept out of repr and equality."""

    __slots__ = (
        "command",
        "dns_options",
        "env",
        "gid",
        "home",
        "image",
        "labels",
        "memory",
        "memory_swap",
        "mounts",
        "name",
        "nano_cpus",
        "network",
        "network_policy",
        "notices",
        "pids_limit",
        "plain_env",
        "proxy",
        "read_only_rootfs",
        "secrets",
        "ssh",
        "tmpfs",
        "uid",
        "warnings",
        "workdir",
    )
    _fields = (
        "image",
        "command",
        "workdir",
        "uid",
        "gid",
        "home",
        "mounts",
        "tmpfs",
        # Fixed, non-secret variables (HOME, SSH_AUTH_SOCK): fine on a command line.
        "plain_env",
        "memory",
        "memory_swap",
        "nano_cpus",
        "pids_limit",
        "read_only_rootfs",
        "labels",
        "name",
        "ssh",
        # The engine's network mode ("default": Docker's bridge, "none", or the internal
        # network of `proxy`), the policy it comes from, and the resolver's options.
        "network",
        "network_policy",
        "proxy",
        "dns_options",
        "warnings",
        "notices",
        "env",
        "secrets",
    )
    _defaults: ClassVar[dict] = {
        "network": "default",
        "network_policy": "open",
        "proxy": None,
        "dns_options": (),
        "warnings": (),
        "notices": (),
        "env": {},
        "secrets": {},
    }
    _hidden = ("env", "secrets")

    @property
    def user(self) -> str:
        return f"{self.uid}:{self.gid}"

    @property
    def secret_names(self) -> tuple:
        return (*self.env, *self.secrets)

    @property
    def cpus(self) -> float:
        return self.nano_cpus / 1e9

    def secret_env(self) -> dict:
        """Name -> value of the variables passed by name (configured env and secrets),
        to merge into the docker CLI's environment."""
        return dict(self.env, **self.secrets)

    def with_secrets(self, secrets: Any) -> RunSpec:
        """The same run with `secrets` (a mapping or (name, value) pairs) attached, each
        validated with validate_env()."""
        values = validate_env(secrets or {}, field_name="secrets")
        for name in values:
            if name in self.env:
                raise RunSpecError(f"secrets: {name} is also set in env; remove one")
        return self.replace(secrets=values)

    # -------------------------------------------------------- the one mapping

    def properties(self, *, tty: bool = False, interactive: bool = False) -> tuple:
        """Every property of the run as (docker CLI flag, CLI values, Engine API fields,
        API value). CLI values None make a switch, given when the API value is true;
        an empty list gives no flag (the CLI's default is the API value). The name has
        no API field: it is the create call's query parameter."""
        host = "HostConfig"
        env_api = [n + "=" + v for n, v in self.plain_env]
        env_api += [n + "=" + v for n, v in self.secret_env().items()]
        env_cli = [n + "=" + v for n, v in self.plain_env] + list(self.secret_names)
        stdin = (("OpenStdin",), ("StdinOnce",), ("AttachStdin",))
        return (
            ("--rm", None, ((host, "AutoRemove"),), True),
            ("--init", None, ((host, "Init"),), True),
            ("--name", [self.name], (), self.name),
            ("--user", [self.user], (("User",),), self.user),
            ("--cap-drop", ["ALL"], ((host, "CapDrop"),), ["ALL"]),
            (
                "--security-opt",
                ["no-new-privileges"],
                ((host, "SecurityOpt"),),
                ["no-new-privileges"],
            ),
            ("--memory", [str(self.memory)], ((host, "Memory"),), self.memory),
            ("--memory-swap", [str(self.memory_swap)], ((host, "MemorySwap"),), self.memory_swap),
            ("--cpus", [_format_cpus(self.nano_cpus)], ((host, "NanoCpus"),), self.nano_cpus),
            ("--pids-limit", [str(self.pids_limit)], ((host, "PidsLimit"),), self.pids_limit),
            # No copy of the session's output on the engine's disk (json-file logs); the
            # module reads the output through attach, which needs no log.
            ("--log-driver", ["none"], ((host, "LogConfig"),), {"Type": "none", "Config": {}}),
            (
                "--network",
                [] if self.network == "default" else [self.network],
                ((host, "NetworkMode"),),
                self.network,
            ),
            (
                "--dns-option",
                list(self.dns_options),
                ((host, "DnsOptions"),),
                list(self.dns_options),
            ),
            ("--read-only", None, ((host, "ReadonlyRootfs"),), self.read_only_rootfs),
            ("--tmpfs", [t + ":" + o for t, o in self.tmpfs], ((host, "Tmpfs"),), dict(self.tmpfs)),
            (
                "--mount",
                [m.cli() for m in self.mounts],
                ((host, "Mounts"),),
                [m.api() for m in self.mounts],
            ),
            ("--workdir", [self.workdir], (("WorkingDir",),), self.workdir),
            ("--env", env_cli, (("Env",),), env_api),
            ("--label", [k + "=" + v for k, v in self.labels], (("Labels",),), dict(self.labels)),
            ("--interactive", None, stdin, interactive),
            ("--tty", None, (("Tty",),), tty),
        )

    def docker_argv(self, *, tty: bool, interactive: bool, docker: str = "docker") -> list:
        """The `docker run` argv. Secret values never appear: only `--env NAME`, whose
        value the docker CLI reads from its own environment (see secret_env())."""
        # `--pull never` has no API field: the API's create never pulls, the CLI would.
        argv = [docker, "run", "--pull", "never"]
        for flag, values, _fields, value in self.properties(tty=tty, interactive=interactive):
            if values is None:
                if value:
                    argv.append(flag)
            else:
                for item in values:
                    argv += [flag, item]
        return [*argv, "--", self.image, *self.command]

    def engine_create_body(self, *, tty: bool = False, interactive: bool = False) -> dict:
        """The Engine API `ContainerCreate` body. The name is a query parameter of that
        call: use `self.name`. Secret values are in `Env`: the caller must treat the body
        as secret (no_log) and never log it."""
        body: dict = {"Image": self.image, "Cmd": list(self.command)}
        body.update((k, _fresh(v)) for k, v in _ENGINE_DEFAULTS.items())
        body["HostConfig"] = {k: _fresh(v) for k, v in _HOST_DEFAULTS.items()}
        for _flag, _values, fields, value in self.properties(tty=tty, interactive=interactive):
            for path in fields:
                target = body
                for key in path[:-1]:
                    target = target[key]
                target[path[-1]] = value
        return body

    def describe(self) -> dict:
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
            "network": self.network_policy,
            "network_mode": self.network,
            "proxy": self.proxy.describe() if self.proxy else None,
            "secret_names": list(self.secret_names),
            "warnings": list(self.warnings),
            "notices": list(self.notices),
        }


def _fresh(value: Any) -> Any:
    return value.copy() if isinstance(value, (dict, list)) else value


def _format_cpus(nano: int) -> str:
    text = "%.9f" % (nano / 1e9)
    return text.rstrip("0").rstrip(".")


# ---------------------------------------------------------------- host paths


def _expand(path: str, home: str, field_name: str) -> str:
    if path == "~" or path.startswith("~/"):
        return home + path[1:]
    if path.startswith("~"):
        raise RunSpecError(
            f"{field_name}: {path!r}: only ~ (the invoking user's home) can be expanded"
        )
    return path


def expand_home(path: str, home: str) -> str:
    """`~` and `~/...` as the user's home; anything else unchanged."""
    return home + path[1:] if path == "~" or path.startswith("~/") else path


def _engine_sockets(environ: Mapping[str, str]) -> list:
    sockets = list(ENGINE_SOCKETS)
    docker_host = environ.get("DOCKER_HOST", "")
    if docker_host.startswith("unix://"):
        sockets.append(docker_host[len("unix://") :])
    xdg = environ.get("XDG_RUNTIME_DIR")
    if xdg:
        sockets.append(os.path.join(xdg, "docker.sock"))
    return [os.path.realpath(s) for s in sockets]


class _Sources:
    """Vets host paths for one resolve(); in a configuration check a missing path is a
    notice, not an error (the user's files may not exist yet at provisioning time)."""

    def __init__(self, host: Host, check: bool) -> None:
        self.host = host
        self.check = check
        self.notices: list = []
        self._sockets: Optional[list] = None

    def sockets(self) -> list:
        if self._sockets is None:
            self._sockets = _engine_sockets(self.host.environ)
        return self._sockets

    def vet(
        self, raw: Any, field_name: str, *, kind: str = "any", required: bool = True
    ) -> Optional[str]:
        """Resolve and vet a host path. Returns its real path, or None if it is missing
        and not required. kind: any (file or directory), dir, socket."""
        host = self.host
        if not isinstance(raw, str) or not raw:
            raise RunSpecError(f"{field_name}: expected a host path")
        check_chars(raw, field_name)
        path = _expand(raw, host.home, field_name)
        if not os.path.isabs(path):
            raise RunSpecError(f"{field_name}: {raw!r} must be an absolute path (or start with ~/)")
        # Symlinks are resolved first, so a link to the engine socket or to / is caught too.
        real = os.path.realpath(path)
        written = os.path.normpath(path)
        check_chars(real, field_name)
        if real == "/" or is_within(os.path.realpath(host.home), real):
            raise RunSpecError(
                f"{field_name}: {raw!r} is the filesystem root or the whole home directory "
                "(or above it); mount a specific subdirectory instead"
            )
        sockets = self.sockets()
        if (
            real in sockets
            or os.path.basename(real) in ENGINE_SOCKET_NAMES
            or any(is_within(s, real) for s in sockets)
        ):
            raise RunSpecError(
                f"{field_name}: {raw!r} is or contains the container engine's socket, "
                "which would give the container root on the host"
            )
        # Both the path as written and its target: on macOS /etc resolves to /private/etc.
        for system in SYSTEM_DIRS:
            if any(is_within(p, system) or is_within(system, p) for p in (real, written)):
                # An SSH agent socket commonly lives in the user's own /run/user/<uid>/.
                if kind == "socket" and is_within(real, f"/run/user/{host.uid}"):
                    continue
                raise RunSpecError(
                    f"{field_name}: {raw!r} is, or contains, the system directory {system}; "
                    "it cannot be mounted"
                )
        try:
            mode = os.stat(real).st_mode
        except FileNotFoundError:
            if required and not self.check:
                raise RunSpecError(
                    f"{field_name}: {raw!r} does not exist; create it or fix the configuration"
                ) from None
            if required:
                self.notices.append(f"{field_name}: {raw} does not exist yet")
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


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


# ---------------------------------------------------------------- resolve


def _user_entry(user: str) -> tuple:
    import pwd  # noqa: PLC0415 - only needed when `user` is set; keeps start-up lean
    import re  # noqa: PLC0415 - likewise

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


def _resolve_user(settings: Settings, host: Host) -> tuple:
    """The host-side identity (for ~), warnings, and the container's uid and gid."""
    user = settings["user"]
    if user is not None:
        uid, gid, login, home = _user_entry(user)
        host = Host(uid, gid, login, home or host.home, host.cpu_count, host.environ)
    if settings["run_as_root"]:
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


def _limits(settings: Settings, host: Host) -> tuple:
    """memory, memory_swap (bytes), nano CPUs, pids limit, within the administrator's
    maxima and the host."""
    maxima = settings["limits_max"]
    memory = settings["memory"]
    top = maxima.get("memory")
    if top is not None and memory > top:
        raise RunSpecError(
            f"memory: {show(settings.raw('memory'))} is above the administrator's maximum "
            f"(allowed: 6m to {format_memory(top)})"
        )
    memory_swap = settings["memory_swap"]
    if memory_swap is None:
        memory_swap = memory
    else:
        if memory_swap < memory:
            raise RunSpecError(
                f"memory_swap: must be at least memory ({format_memory(memory)}); "
                "it is memory plus swap"
            )
        if top is not None and memory_swap > top:
            raise RunSpecError(
                f"memory_swap: {show(settings.raw('memory_swap'))} is above the "
                f"administrator's maximum {format_memory(top)}"
            )
    ceiling = maxima.get("cpus")
    cpus = settings["cpus"]
    if settings.source("cpus") == "default":
        # The default (2) must not fail on a smaller host: take what the host has.
        cpus = min(float(cpus), float(host.cpu_count), ceiling or float(cpus))
    upper = float(host.cpu_count) if ceiling is None else min(float(host.cpu_count), ceiling)
    nano_cpus = round(parse_cpus(cpus, upper, "cpus", host.cpu_count) * 1e9)
    pids = settings["pids_limit"]
    pids_top = maxima.get("pids_limit")
    if pids_top is not None and pids > pids_top:
        raise RunSpecError(f"pids_limit: {pids} is out of range (allowed: 1 to {pids_top})")
    return memory, memory_swap, nano_cpus, pids


def _ssh(settings: Settings, sources: _Sources, home: str) -> tuple:
    """The effective SSH mode, its mounts and its fixed env."""
    host = sources.host
    ssh = settings["ssh"]
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
            if sources.check:  # a configuration check has no agent to look at
                return ssh, [], []
            raise RunSpecError("ssh: agent requested but SSH_AUTH_SOCK is not set")
        real = sources.vet(agent_sock, "ssh (SSH_AUTH_SOCK)", kind="socket")
        if real is None:
            return ssh, [], []
        return ssh, [Mount(real, SSH_AGENT_TARGET)], [("SSH_AUTH_SOCK", SSH_AGENT_TARGET)]
    if ssh == "keys":
        real = sources.vet(ssh_dir, "ssh (~/.ssh)", kind="dir")
        return ssh, ([Mount(real, home + "/.ssh")] if real else []), []
    return ssh, [], []


def _mounts(settings: Settings, sources: _Sources, home: str) -> tuple:
    """All bind mounts (code, SSH, credentials, gitconfig, extra), the SSH mode and env,
    and notices."""
    notices = []
    code = sources.vet(settings["code_dir"], "code_dir", kind="dir")
    mounts = [Mount(code, CODE_TARGET, False)] if code else []
    ssh, ssh_mounts, ssh_env = _ssh(settings, sources, home)
    mounts += ssh_mounts
    for index, (source, relative, required) in enumerate(settings["credentials"]):
        where = f"credentials[{index}]"
        target = relative_target(relative, where + ".target", home)
        real = sources.vet(source, where + ".source", required=required)
        if real is None:
            if not required:
                notices.append(f"{where}: {source} does not exist; not mounted")
            continue
        mounts.append(Mount(real, target))
    if settings["gitconfig"]:
        real = sources.vet(settings["gitconfig"], "gitconfig", required=False)
        if real is not None:
            mounts.append(Mount(real, home + "/.gitconfig"))
    for index, (source, target, read_only) in enumerate(settings["mounts"]):
        real = sources.vet(source, f"mounts[{index}].source")
        if real is not None:
            mounts.append(Mount(real, target, read_only))
    return mounts, ssh, ssh_env, notices


def _network_of(settings: Settings) -> tuple:
    """network_policy, the engine's network mode, the proxy's plan, fixed env, DNS
    options."""
    policy = settings["network"]
    if policy == "open":
        return policy, "default", None, (), ()
    if policy == "none":
        return policy, "none", None, (), ()
    plan = _network.plan(
        settings["network_allow"], settings["network_egress"], settings["network_proxy_image"]
    )
    return policy, plan.network, plan, plan.environment(), _network.DNS_OPTIONS


def _unique_name(login: str) -> str:
    safe = "".join(c if (c.isalnum() and c.isascii()) or c in "_.-" else "_" for c in login)
    return f"devenv-{safe[:32] or 'user'}-{os.urandom(4).hex()}"


def resolve(settings: Settings, host: Host, *, check: bool = False) -> RunSpec:
    """Decide the run for `host`: the user, limits within the maxima and the host, every
    host path resolved and vetted, the container's paths. Raises RunSpecError.
    `check` (a configuration check at provisioning time) lets missing paths and a
    missing SSH agent pass as notices."""
    host, warnings, uid, gid = _resolve_user(settings, host)
    memory, memory_swap, nano_cpus, pids_limit = _limits(settings, host)
    home = settings["container_home"]
    workdir = settings["workdir"]
    sources = _Sources(host, check)
    mounts, ssh, ssh_env, notices = _mounts(settings, sources, home)
    seen = {home, TMP_TARGET}
    for mount in mounts:
        if mount.target in seen:
            raise RunSpecError(f"mounts: the container path {mount.target!r} is used twice")
        seen.add(mount.target)
    if not any(is_within(workdir, t) for t in seen | {CODE_TARGET}):
        raise RunSpecError(f"workdir: {workdir!r} must be inside /app, the HOME, /tmp or a mount")
    tmp_size, home_size = settings["tmp_size"], settings["home_size"]
    policy, network, proxy, proxy_env, dns_options = _network_of(settings)
    return RunSpec(
        image=settings["image"],
        command=settings["command"] or settings["default_command"],
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
        plain_env=(("HOME", home), *ssh_env, *proxy_env),
        memory=memory,
        memory_swap=memory_swap,
        nano_cpus=nano_cpus,
        pids_limit=pids_limit,
        read_only_rootfs=settings["read_only_rootfs"],
        labels=((MANAGED_LABEL, "true"), *settings["labels"]),
        name=_unique_name(host.login),
        ssh=ssh,
        network=network,
        network_policy=policy,
        proxy=proxy,
        dns_options=dns_options,
        warnings=tuple(warnings),
        notices=tuple(notices + sources.notices),
        env=dict(settings["env"]),
    )


def build_spec(
    settings: Mapping[str, Any],
    *,
    secrets: Any = None,
    host: Optional[Host] = None,
    module: bool = False,
) -> RunSpec:
    """One layer of settings (as an administrator's file would hold them) parsed,
    resolved for `host` (default: the current one) and given `secrets`."""
    host = host or Host.current()
    parsed = parse([("settings", SYSTEM, settings)], login=host.login, module=module)
    spec = resolve(parsed, host)
    return spec.with_secrets(secrets) if secrets else spec


def check_config(
    data: Any,
    *,
    source: str,
    host_for: Callable[[Optional[str]], Host] = Host.for_login,
) -> list:
    """The configuration check of an administrator's file: parse it, then resolve it for
    every login it configures (and for a user it does not name), as a run would, with
    missing paths passing as notices. Returns the notices; raises RunSpecError."""
    base = parse([(source, SYSTEM, data)], system_file=source)
    notices = []
    for login in (None, *base["users"]):
        where = source if login is None else f"{source} (users.{login})"
        settings = (
            base
            if login is None
            else parse([(source, SYSTEM, data)], login=login, system_file=source)
        )
        try:
            spec = resolve(settings, host_for(login), check=True)
        except RunSpecError as exc:
            raise RunSpecError(f"{where}: {exc}") from None
        notices += [f"{login or 'any user'}: {n}" for n in spec.notices]
    return notices
