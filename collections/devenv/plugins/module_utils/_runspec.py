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
import sys

from . import _network
from ._agents import AGENTS, EffectiveUser, data_dir, host_dir, host_paths, state_dir
from ._engineapi import docker_context, engine_socket
from ._settings import (
    CODE_TARGET,
    MANAGED_LABEL,
    OWNER_LABEL_KEY,
    PER_USER_KEYS,
    PIDS_MAX,
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
    "audit",
    "build_spec",
    "check_config",
    "format_memory",
    "parse_memory",
    "pin_own",
    "resolve",
    "validate_env",
]

TEST_LABEL = "io.kuatecno.devenv.test"
# gVisor's runtime, as the devenv_engine role registers it with the engine.
GVISOR_RUNTIME = "runsc"
GVISOR_HINT = "devenv_engine_gvisor: true"
# The host's process limit of a gVisor sandbox: its kernel's own threads, plus host
# processes per process of the container (RunSpec.host_pids_limit).
GVISOR_PIDS_BASE = 128
GVISOR_PIDS_PER_PROCESS = 8
# Whose container it is (the invoking user's uid): `devenv ps` and `stop` go by it.
OWNER_LABEL = OWNER_LABEL_KEY
SSH_AGENT_TARGET = "/run/devenv/ssh-agent.sock"
# The host's known hosts, trusted in the container next to ~/.ssh/known_hosts (the
# image's ssh_config names both), so host keys are checked as on the host.
KNOWN_HOSTS_TARGET = "/run/devenv/known_hosts"
# Docker Desktop (and OrbStack) forward the Mac's SSH agent to this socket in their VM;
# the Mac's own socket cannot be mounted into a container there.
DESKTOP_SSH_SOCK = "/run/host-services/ssh-auth.sock"
# Where the engine's socket lives when it is Docker Desktop's or OrbStack's (on a Mac).
DESKTOP_SOCKET_PARTS = ("/.docker/run/", "/Library/Containers/com.docker.docker/", "/.orbstack/")
DESKTOP_CONTEXTS = ("desktop-linux", "orbstack")
PASSWD_TARGET = "/etc/passwd"  # noqa: S105 - a path, not a password
GROUP_TARGET = "/etc/group"
LOGIN_SHELL = "/bin/bash"

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

# ---- the start channel
# Secrets never become part of the container's configuration (the engine keeps that on
# disk while the container runs, and containerd's metadata keeps it afterwards). A run
# that has secrets (or a gate, or files to seed) starts with START_SCRIPT as its first
# step: it makes a FIFO in a private tmpfs and waits for the start payload, which the
# launcher or the module writes through the standard input of an exec (DELIVER_COMMAND),
# a stream the engine never stores; it then exports the variables, writes the seed files
# into HOME and execs the command. Nothing lands in a file: the FIFO only passes data.
START_DIR = "/run/devenv"
START_FIFO = START_DIR + "/start"
START_WAIT = 60  # seconds the container waits for its start; then it ends, having run nothing
START_FORMAT = "devenv-start 1"
START_EXIT = 125  # the start step failed: the command never ran
# The exec may start before START_SCRIPT has made the FIFO (the container is "running"
# as soon as its first process is): it waits for the FIFO, and never writes to anything
# else (a plain file made by `cat >` would take the payload and leave the start waiting).
DELIVER_COMMAND = (
    "/bin/sh",
    "-c",
    f"f={START_FIFO}; n=0; until [ -p $f ]; do "
    "[ -e $f ] && exit 3; n=$((n+1)); [ $n -gt 1000 ] && exit 4; sleep 0.01; done; "
    "exec cat >$f",
)
# POSIX sh (dash, busybox ash) with coreutils' mkfifo, timeout, base64: every Debian or
# Ubuntu image has them. Values are base64 (no quoting problem, newlines kept); names
# and paths were vetted by the run specification and are checked again here.
START_SCRIPT = r"""set -u
fail() { echo "devenv: $*; the command was not run" >&2; exit 125; }
fifo=/run/devenv/start
umask 077
mkfifo "$fifo" || fail "cannot prepare the start channel in /run/devenv"
payload=$(timeout 60 cat "$fifo") || fail "no start from the launcher within 60 s"
rm -f "$fifo"
ok=
IFS='
'
set -f
for line in $payload; do
  case "$line" in
    "devenv-start 1") ;;
    END) ok=1 ;;
    "E "*)
      rest=${line#E }; name=${rest%% *}; data=${rest#* }
      case "$name" in ''|[!A-Za-z_]*|*[!A-Za-z0-9_]*) fail "a bad variable name" ;; esac
      value=$(printf '%s' "$data" | base64 -d && printf x) || fail "a bad value for $name"
      export "$name=${value%x}" ;;
    "F "*)
      rest=${line#F }; mode=${rest%% *}; rest=${rest#* }; path=${rest%% *}; data=${rest#* }
      case "$path" in ''|/*|..|../*|*/..|*/../*) fail "a bad file path" ;; esac
      case "$path" in */*) mkdir -p "$HOME/${path%/*}" || fail "cannot seed $path" ;; esac
      { printf '%s' "$data" | base64 -d >"$HOME/$path" && chmod "$mode" "$HOME/$path"; } ||
        fail "cannot seed $path" ;;
    *) fail "a start payload it cannot read" ;;
  esac
done
[ -n "$ok" ] || fail "a start payload that was cut short"
unset payload line rest name data value mode path ok IFS
set +f
exec "$@"
"""


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


def _physical_memory() -> int:
    """The machine's memory in bytes (0 where it cannot be told)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return 0


# What of the caller's environment the launcher takes when sudo started it (the sudoers
# rule keeps these and resets the rest): the Infisical token, the SSH agent's socket
# (vetted as the user like any path), and the terminal's type and language.
SUDO_KEPT_ENV = (
    "INFISICAL_TOKEN",
    "INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN",
    "SSH_AUTH_SOCK",
    "TERM",
    "LANG",
    "LC_ALL",
)


class Host(_Record):
    """Facts about the invoking side: uid, gid, login, home, cpu_count, environ, memory
    (bytes; 0: unknown, no ceiling), and `sudo`: the launcher runs as root through the
    administrator's sudo rule for this user, so it reads the user's side as the user
    (identity()) and pins what it vetted (see RunSpec.pins); `platform` is sys.platform
    (linux, darwin)."""

    __slots__ = (
        "cpu_count",
        "environ",
        "gid",
        "home",
        "login",
        "memory",
        "platform",
        "sudo",
        "uid",
    )
    _fields = ("uid", "gid", "login", "home", "cpu_count", "environ", "memory", "sudo", "platform")
    _defaults: ClassVar[dict] = {"memory": 0, "sudo": False, "platform": sys.platform}

    @classmethod
    def current(cls) -> Host:
        import pwd  # noqa: PLC0415 - imported only when needed; keeps start-up lean

        if os.geteuid() == 0 and "SUDO_UID" in os.environ:
            return cls._through_sudo(pwd)
        uid = os.getuid()
        try:
            entry = pwd.getpwuid(uid)
            login, home = entry.pw_name, entry.pw_dir
        except KeyError:
            login, home = str(uid), os.environ.get("HOME", "/")
        return cls(
            uid,
            os.getgid(),
            login,
            home,
            _usable_cpus(),
            dict(os.environ),
            _physical_memory(),
            platform=sys.platform,
        )

    @classmethod
    def _through_sudo(cls, pwd: Any) -> Host:
        """The user sudo says invoked us; nothing else of their environment is taken."""
        text = os.environ.get("SUDO_UID", "")
        if not (text.isascii() and text.isdigit()):
            raise RunSpecError("sudo: SUDO_UID is not a user id; run devenv through dev")
        try:
            entry = pwd.getpwuid(int(text))
        except KeyError:
            raise RunSpecError(f"sudo: no user has the id {text}") from None
        if entry.pw_uid == 0:
            raise RunSpecError(
                "sudo: root started devenv through sudo; run dev as the person who works "
                "in the container"
            )
        if os.environ.get("SUDO_USER") != entry.pw_name:
            raise RunSpecError("sudo: SUDO_USER and SUDO_UID disagree; run devenv through dev")
        environ = {k: os.environ[k] for k in SUDO_KEPT_ENV if k in os.environ}
        return cls(
            entry.pw_uid,
            entry.pw_gid,
            entry.pw_name,
            entry.pw_dir,
            _usable_cpus(),
            environ,
            _physical_memory(),
            True,
        )

    def identity(self) -> EffectiveUser:
        """`with host.identity():` acts as the invoking user (effective ids and groups)
        when the launcher runs as root through sudo; otherwise it changes nothing."""
        return _identity_of(self)

    @classmethod
    def for_login(cls, login: Optional[str]) -> Host:
        """The host as `login` would see it, for a configuration check (no environment).
        Without a login: an unprivileged user with no home."""
        if login is None:
            return cls(NOBODY, NOBODY, "", "/nonexistent", _usable_cpus(), {}, _physical_memory())
        import pwd  # noqa: PLC0415 - only for configuration checks

        try:
            entry = pwd.getpwnam(login)
        except KeyError:
            raise RunSpecError(f"users.{login}: no such user on this host") from None
        return cls(
            entry.pw_uid, entry.pw_gid, login, entry.pw_dir, _usable_cpus(), {}, _physical_memory()
        )


def _identity_of(host: Host) -> EffectiveUser:
    """Switches the effective uid, gid and groups to the host's user and back, when the
    launcher runs as root through sudo."""
    return EffectiveUser(
        host.uid, host.gid, lambda: os.getgrouplist(host.login, host.gid), active=host.sudo
    )


def _pin(path: str, field_name: str) -> tuple:
    """(st_dev, st_ino) of what `path` is now, walked one component at a time without
    following any symlink: what was vetted by its path is exactly this object, or the
    path changed while it was checked (refused)."""
    flags = getattr(os, "O_PATH", os.O_RDONLY) | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open("/", flags)
    try:
        for part in path.strip("/").split("/"):
            if not part:
                continue
            try:
                step = os.open(part, flags, dir_fd=fd)
            except OSError as exc:
                raise RunSpecError(
                    f"{field_name}: {path} changed while it was checked ({exc.strerror}); "
                    "nothing was started"
                ) from None
            os.close(fd)
            fd = step
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise RunSpecError(
                    f"{field_name}: {path} changed while it was checked (a symlink appeared); "
                    "nothing was started"
                )
        info = os.fstat(fd)
        return info.st_dev, info.st_ino
    finally:
        os.close(fd)


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
        "data_dir",
        "dns_options",
        "env",
        "gated",
        "generated",
        "gid",
        "home",
        "host_gid",
        "host_home",
        "host_uid",
        "image",
        "labels",
        "memory",
        "memory_swap",
        "mounts",
        "name",
        "nano_cpus",
        "needs_userns",
        "network",
        "network_policy",
        "notices",
        "pids_limit",
        "pins",
        "plain_env",
        "proxy",
        "read_only_rootfs",
        "runtime",
        "secrets",
        "seed_files",
        "ssh",
        "state",
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
        # The agents' state: (agent, host directory or "" for a tmpfs, container path,
        # the host's own agent directory its login is imported from).
        "state",
        # Files devenv writes on the host before the start and mounts read-only:
        # (host path, content); not secret (the container's passwd and group).
        "generated",
        # The owner of the state and of the generated files, and devenv's directory.
        "host_uid",
        "host_gid",
        "host_home",
        "data_dir",
        # The engine's network mode ("default": Docker's bridge, "none", or the internal
        # network of `proxy`), the policy it comes from, and the resolver's options.
        "network",
        "network_policy",
        "proxy",
        "dns_options",
        "warnings",
        "notices",
        # The command waits for the launcher's go before it runs (see START_SCRIPT).
        "gated",
        # Files written into HOME at start: (path relative to HOME, mode, bytes).
        "seed_files",
        # Root in the container: only on an engine that remaps users (check_engine_info).
        "needs_userns",
        # The engine's runtime: runc, or gVisor's runsc (isolation: gvisor), which the
        # engine must have (check_engine_info).
        "runtime",
        # (container path, st_dev, st_ino) of each bind mount's vetted source: the gate
        # checks the running container got exactly these (verify_pins).
        "pins",
        "env",
        "secrets",
    )
    _defaults: ClassVar[dict] = {
        "state": (),
        "generated": (),
        "host_uid": -1,
        "host_gid": -1,
        "host_home": "",
        "data_dir": "",
        "network": "default",
        "network_policy": "open",
        "proxy": None,
        "dns_options": (),
        "warnings": (),
        "notices": (),
        "gated": False,
        "seed_files": (),
        "needs_userns": False,
        "runtime": "runc",
        "pins": (),
        "env": {},
        "secrets": {},
    }
    _hidden = ("env", "secrets", "seed_files")

    @property
    def user(self) -> str:
        return f"{self.uid}:{self.gid}"

    @property
    def secret_names(self) -> tuple:
        return (*self.env, *self.secrets)

    @property
    def cpus(self) -> float:
        return self.nano_cpus / 1e9

    @property
    def gvisor(self) -> bool:
        return self.runtime == GVISOR_RUNTIME

    @property
    def needs_engine_info(self) -> bool:
        """Whether the engine's /info must be asked before the start (check_engine_info)."""
        return self.needs_userns or self.runtime != "runc"

    @property
    def host_pids_limit(self) -> int:
        """The engine's process limit. Under gVisor the sandbox's own kernel keeps
        pids_limit (RLIMIT_NPROC, which counts threads as pids.max does), while the
        host's cgroup holds the whole sandbox, whose kernel needs host threads and, with
        the ptrace platform, a few host processes per process of the container (seen
        here: 43 host tasks for one process, 554 for 100): that limit bounds the sandbox
        as a whole instead."""
        if not self.gvisor:
            return self.pids_limit
        return min(PIDS_MAX, GVISOR_PIDS_BASE + GVISOR_PIDS_PER_PROCESS * self.pids_limit)

    @property
    def ephemeral(self) -> bool:
        return any(not host for _name, host, _target, _source in self.state)

    def secret_env(self) -> dict:
        """Name -> value of the configured variables, passed by name on the docker CLI's
        command line, to merge into its environment. Secrets are not among them: they
        travel in the start payload."""
        return dict(self.env)

    @property
    def uses_start(self) -> bool:
        """Whether the command waits for a start payload (see START_SCRIPT)."""
        return bool(self.secrets or self.seed_files or self.gated)

    def container_command(self) -> tuple:
        if not self.uses_start:
            return self.command
        return ("/bin/sh", "-c", START_SCRIPT, "devenv-start", *self.command)

    def start_payload(self) -> bytes:
        """What the start step reads: the secrets and the seed files, base64-encoded.
        Secret: never log, store or put it on a command line."""
        import base64  # noqa: PLC0415 - only for runs with a start payload

        lines = [START_FORMAT]
        for name, value in self.secrets.items():
            encoded = base64.b64encode(value.encode("utf-8", "surrogateescape")).decode()
            lines.append(f"E {name} {encoded}")
        for path, mode, data in self.seed_files:
            lines.append(f"F {mode:04o} {path} {base64.b64encode(data).decode()}")
        lines.append("END")
        return ("\n".join(lines) + "\n").encode("ascii")

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
        env_api += [n + "=" + v for n, v in self.env.items()]
        env_cli = [n + "=" + v for n, v in self.plain_env] + list(self.env)
        stdin = (("OpenStdin",), ("StdinOnce",), ("AttachStdin",))
        # Under gVisor the process limit is the sandbox kernel's (see host_pids_limit).
        nproc = [self.pids_limit] if self.gvisor else []
        ulimits = [{"Name": "nproc", "Hard": n, "Soft": n} for n in nproc]
        tmpfs = list(self.tmpfs)
        if self.uses_start:
            tmpfs.append(
                (
                    START_DIR,
                    f"rw,nosuid,nodev,noexec,size=64k,uid={self.uid},gid={self.gid},mode=0700",
                )
            )
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
            ("--runtime", [self.runtime], ((host, "Runtime"),), self.runtime),
            (
                "--pids-limit",
                [str(self.host_pids_limit)],
                ((host, "PidsLimit"),),
                self.host_pids_limit,
            ),
            ("--ulimit", [f"nproc={n}:{n}" for n in nproc], ((host, "Ulimits"),), ulimits),
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
            ("--tmpfs", [t + ":" + o for t, o in tmpfs], ((host, "Tmpfs"),), dict(tmpfs)),
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
        """The `docker run` argv. No value of a variable appears: configured ones are
        `--env NAME`, read by the docker CLI from its own environment (secret_env());
        secrets are not in it at all (start_payload())."""
        # `--pull never` has no API field: the API's create never pulls, the CLI would.
        argv = [docker, "run", "--pull", "never"]
        for flag, values, _fields, value in self.properties(tty=tty, interactive=interactive):
            if values is None:
                if value:
                    argv.append(flag)
            else:
                for item in values:
                    argv += [flag, item]
        return [*argv, "--", self.image, *self.container_command()]

    def engine_create_body(self, *, tty: bool = False, interactive: bool = False) -> dict:
        """The Engine API `ContainerCreate` body. The name is a query parameter of that
        call: use `self.name`. It holds no secret (they travel in start_payload()); the
        values of configured `env` are in `Env`."""
        body: dict = {"Image": self.image, "Cmd": list(self.container_command())}
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
            "runtime": self.runtime,
            "read_only_rootfs": self.read_only_rootfs,
            "labels": dict(self.labels),
            "name": self.name,
            "ssh": self.ssh,
            "agent_state": [
                {"agent": name, "source": host or "tmpfs", "target": target}
                for name, host, target, _source in self.state
            ],
            "network": self.network_policy,
            "network_mode": self.network,
            "proxy": self.proxy.describe() if self.proxy else None,
            "secret_names": list(self.secret_names),
            "warnings": list(self.warnings),
            "notices": list(self.notices),
        }


def _fresh(value: Any) -> Any:
    return value.copy() if isinstance(value, (dict, list)) else value


def _files_pid(spec: RunSpec, pid: int) -> int:
    """The host process whose root is the container's file tree with its mounts: the
    container's init under runc. Under gVisor `pid` is the sandbox, which sees only an
    empty root; the files are served by its gofer, the sandbox's sibling (one shim per
    container starts both), whose root holds the very mounts."""
    if not spec.gvisor:
        return pid

    def parent(of: str) -> str:
        with open(f"/proc/{of}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[1].decode()

    try:
        shim = parent(str(pid))
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or entry == str(pid):
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    argv0 = handle.read().split(b"\0", 1)[0]
                if argv0 == b"runsc-gofer" and parent(entry) == shim:
                    return int(entry)
            except (OSError, IndexError):
                continue
    except (OSError, IndexError):
        pass
    raise RunSpecError("the gVisor sandbox's file server was not found; it was stopped")


def verify_pins(spec: RunSpec, pid: int) -> None:
    """In the gate (the command has not run yet): every bind mount of the container whose
    init is `pid` is the very object that was vetted. A source swapped for a link to
    something else between the check and the engine's mount is refused."""
    if spec.pins:
        pid = _files_pid(spec, pid)
    for target, dev, ino in spec.pins:
        try:
            info = os.stat(f"/proc/{pid}/root{target}", follow_symlinks=False)
        except OSError as exc:
            raise RunSpecError(
                f"the container's {target} cannot be checked ({exc.strerror}); it was stopped"
            ) from None
        if (info.st_dev, info.st_ino) != (dev, ino):
            raise RunSpecError(
                f"the source of {target} changed between its check and the engine's mount; "
                "the container was stopped before anything ran"
            )


def audit(host: Host, spec: RunSpec, image_id: str, code: Any, via: str = "") -> None:
    """One line per run in the system log (syslog's authpriv on Linux): who, when (the
    log's own time), image and digest, limits, mounts, secret names, exit status."""
    try:
        import syslog  # noqa: PLC0415 - after the run only
    except ImportError:  # not on every platform
        return
    syslog.openlog("devenv", syslog.LOG_PID, getattr(syslog, "LOG_AUTHPRIV", syslog.LOG_AUTH))
    syslog.syslog(syslog.LOG_INFO, audit_line(host, spec, image_id, code, via))
    syslog.closelog()


def audit_line(host: Host, spec: RunSpec, image_id: str, code: Any, via: str = "") -> str:
    """The audit line: key=JSON-value pairs, no secret value (secrets by name only)."""
    import json  # noqa: PLC0415 - after the run only

    mounts = ",".join(f"{m.source}:{m.target}:{'ro' if m.read_only else 'rw'}" for m in spec.mounts)
    fields = {
        "user": host.login,
        "uid": host.uid,
        "via": via or ("sudo" if host.sudo else "direct"),
        "container": spec.name,
        "image": spec.image,
        "image_id": image_id or "unknown",
        "memory": spec.memory,
        "cpus": _format_cpus(spec.nano_cpus),
        "pids": spec.pids_limit,
        "runtime": spec.runtime,
        "mounts": mounts,
        "secrets": ",".join(spec.secrets),
        "exit": code,
    }
    return "run " + " ".join(f"{k}={json.dumps(v)}" for k, v in fields.items())


def check_engine_info(spec: RunSpec, info: Any) -> None:
    """What only the engine can tell (its `/info`), checked before anything starts: the
    runtime the run asks for, and for root in the container an engine that maps it to
    an unprivileged host user."""
    if spec.runtime != "runc":
        runtimes = sorted((info or {}).get("Runtimes") or {})
        if spec.runtime not in runtimes:
            raise RunSpecError(
                f"isolation: gvisor needs gVisor's runtime ({spec.runtime}) on this engine, "
                f"which has {', '.join(runtimes) or 'no runtime listed'}; set "
                f"{GVISOR_HINT} for this host and run the devenv_engine role, or choose "
                "isolation runc where the administrator allows it"
            )
    if not spec.needs_userns:
        return
    options = (info or {}).get("SecurityOptions") or []
    if not any(str(o) == "name=userns" or str(o).startswith("name=userns,") for o in options):
        raise RunSpecError(
            "run_as_root: this engine does not remap users (userns-remap, the devenv_engine "
            "role's devenv_engine_userns_remap), so root in the container would be root on "
            "the host's files in /app; enable userns-remap, or set root_without_userns in "
            "the system file to accept that risk"
        )


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


def is_docker_desktop(host: Host) -> bool:
    """Is the engine Docker Desktop's (or OrbStack's, which forwards the agent the same
    way) on a Mac? Told by the socket the docker CLI would use (after symlinks: Docker
    Desktop links /var/run/docker.sock to its own) or by the context's name."""
    if host.platform != "darwin":
        return False
    if not host.environ.get("DOCKER_HOST"):  # DOCKER_HOST wins over any context
        if docker_context(host.environ, host.home) in DESKTOP_CONTEXTS:
            return True
    sock = engine_socket(host.environ, host.home)
    if sock is None:
        return False
    real = os.path.realpath(sock)
    return any(part in real for part in DESKTOP_SOCKET_PARTS)


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
        # real path -> (st_dev, st_ino) of what was vetted, when started through sudo.
        self.pins: dict = {}

    def sockets(self) -> list:
        if self._sockets is None:
            self._sockets = _engine_sockets(self.host.environ)
        return self._sockets

    def _refuse_engine_and_system(
        self, raw: str, real: str, written: str, field_name: str, kind: str, *, system: bool
    ) -> None:
        """The engine's socket, and (unless `system` is false) system directories, as
        written and as resolved."""
        host = self.host
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
        for directory in SYSTEM_DIRS if system else ():
            if any(is_within(p, directory) or is_within(directory, p) for p in (real, written)):
                # An SSH agent socket commonly lives in the user's own /run/user/<uid>/.
                if kind == "socket" and is_within(real, f"/run/user/{host.uid}"):
                    continue
                raise RunSpecError(
                    f"{field_name}: {raw!r} is, or contains, the system directory "
                    f"{directory}; it cannot be mounted"
                )

    def vet(
        self,
        raw: Any,
        field_name: str,
        *,
        kind: str = "any",
        required: bool = True,
        write: bool = False,
        own: bool = False,
    ) -> Optional[str]:
        """Resolve and vet a host path. Returns its real path, or None if it is missing
        and not required. kind: any (file or directory), dir, socket; `write`: the
        container may write it. `own`: a directory devenv creates itself (the agents'
        state): it may be missing (its real path is returned all the same; pinned once
        created, see pin_own()), and inside the user's own home it is the user's, even
        where that home is a system directory (root's)."""
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
        home_real = os.path.realpath(host.home)
        if real == "/" or is_within(home_real, real):
            raise RunSpecError(
                f"{field_name}: {raw!r} is the filesystem root or the whole home directory "
                "(or above it); mount a specific subdirectory instead"
            )
        mine = own and home_real != "/" and is_within(real, home_real)
        self._refuse_engine_and_system(raw, real, written, field_name, kind, system=not mine)
        mode = self._mode(raw, real, field_name, required=required and not own, quiet=own)
        if mode is None:
            return real if own else None
        expected = {
            "dir": (stat.S_ISDIR(mode), "a directory"),
            "socket": (stat.S_ISSOCK(mode), "a socket"),
            "any": (stat.S_ISDIR(mode) or stat.S_ISREG(mode), "a regular file or a directory"),
        }[kind]
        if not expected[0]:
            raise RunSpecError(f"{field_name}: {raw!r} is not {expected[1]}")
        if host.sudo:
            self._user_may_open(raw, real, field_name, mode, write or kind == "socket")
            self.pins[real] = _pin(real, field_name)
        return real

    def _mode(
        self, raw: str, real: str, field_name: str, *, required: bool, quiet: bool = False
    ) -> Any:
        """The file mode of `real`, or None when it is missing and not required or, in a
        configuration check, out of the checking user's sight (noted unless `quiet`)."""
        try:
            return os.stat(real).st_mode
        except FileNotFoundError:
            if required and not self.check:
                raise RunSpecError(
                    f"{field_name}: {raw!r} does not exist; create it or fix the configuration"
                ) from None
            if required:
                self.notices.append(f"{field_name}: {raw} does not exist yet")
            return None
        except OSError as exc:
            if self.check:
                # Checking the administrator's file as one user: another user's files may
                # be closed to them; that user's own run checks them.
                if not quiet:
                    self.notices.append(
                        f"{field_name}: {raw} cannot be looked at by this user "
                        f"({exc.strerror}); checked when its owner runs devenv"
                    )
                return None
            raise RunSpecError(f"{field_name}: {raw!r} cannot be read ({exc.strerror})") from None

    @staticmethod
    def _user_may_open(raw: str, real: str, field_name: str, mode: int, write: bool) -> None:
        """Through sudo the engine (root) mounts what the user names: only what the user
        could open themselves (read; list a directory; write where the container may)."""
        wanted = os.R_OK | (os.X_OK if stat.S_ISDIR(mode) else 0) | (os.W_OK if write else 0)
        if not os.access(real, wanted, effective_ids=True):
            what = "write" if write and os.access(real, os.R_OK, effective_ids=True) else "open"
            raise RunSpecError(
                f"{field_name}: {raw!r} is not yours to {what}; mount only what you can "
                f"{what} yourself"
            )


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


# ---------------------------------------------------------------- resolve


def _user_entry(user: str) -> tuple:
    import pwd  # noqa: PLC0415 - only needed when `user` is set; keeps start-up lean
    import re  # noqa: PLC0415 - likewise

    match = re.match(r"^([0-9]+):([0-9]+)$", user)
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
        host = host.replace(uid=uid, gid=gid, login=login, home=home or host.home)
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
    _within_host_memory(settings, host, ("memory", "memory_swap", "home_size", "tmp_size"))
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


def _within_host_memory(settings: Settings, host: Host, names: tuple) -> None:
    """Sizes (limits, tmpfs) above the host's memory are refused: they would promise
    what the host cannot give (and a tmpfs that large can take the host down)."""
    if not host.memory:
        return
    for name in names:
        value = settings[name]
        if value is not None and value > host.memory:
            raise RunSpecError(
                f"{name}: {show(settings.raw(name))} is more than this host's memory "
                f"({format_memory(_round_down(host.memory))}); give at most that"
            )


def _round_down(number: int) -> int:
    return number - number % (1024**2)


def _fit_defaults(settings: Settings, host: Host) -> Settings:
    """Sizes left at their defaults (memory 4g, HOME and /tmp 1g each) fit a smaller host:
    no more than its memory, as the CPU default takes no more than its CPUs. A size
    that was set stays as set, and is refused when the host cannot give it."""
    if not host.memory:
        return settings
    for name in ("memory", "home_size", "tmp_size"):
        if settings.source(name) == "default" and settings[name] > host.memory:
            fitted = format_memory(_round_down(host.memory))
            settings = settings.replace(name, fitted, "default (this host's memory)")
    return settings


def _image_allowed(settings: Settings) -> str:
    image = settings["image"]
    allowed = settings["images_allowed"]
    if allowed is not None:
        import fnmatch  # noqa: PLC0415 - only with an allow-list

        if not any(fnmatch.fnmatchcase(image, p) for p in allowed):
            raise RunSpecError(
                f"image: {image} is not among the images the administrator allows "
                f"({', '.join(allowed)}; images_allowed in {settings.source('images_allowed')})"
            )
    return image


def _ssh(settings: Settings, sources: _Sources) -> tuple:
    """The effective SSH mode, its mounts, its fixed env and notices. `auto` forwards the
    agent when one runs and gives nothing otherwise; keys only when asked for."""
    host = sources.host
    ssh = settings["ssh"]
    notices = []
    agent_sock = host.environ.get("SSH_AUTH_SOCK", "")
    running = bool(agent_sock) and _is_socket(agent_sock)
    desktop = ssh in ("auto", "agent") and is_docker_desktop(host)
    if ssh == "auto":
        if running and (host.platform != "darwin" or desktop):
            ssh = "agent"
        else:
            if running:
                notices.append(
                    "ssh: an SSH agent runs, but this engine is not Docker Desktop or "
                    "OrbStack, whose VM cannot reach the Mac's sockets; it is not forwarded "
                    "(set ssh: agent to try, or none to silence this)"
                )
            ssh = "none"
    if ssh == "agent":
        if desktop:
            # A path in the engine's VM, where Docker Desktop forwards the Mac's agent.
            mounts = [Mount(DESKTOP_SSH_SOCK, SSH_AGENT_TARGET)]
        elif not agent_sock:
            if sources.check:  # a configuration check has no agent to look at
                return ssh, [], [], notices
            raise RunSpecError("ssh: agent requested but SSH_AUTH_SOCK is not set")
        else:
            real = sources.vet(agent_sock, "ssh (SSH_AUTH_SOCK)", kind="socket", write=True)
            if real is None:
                return ssh, [], [], notices
            mounts = [Mount(real, SSH_AGENT_TARGET)]
        known = sources.vet(
            os.path.join(host.home, ".ssh", "known_hosts"),
            "ssh (~/.ssh/known_hosts)",
            required=False,
        )
        if known:
            mounts.append(Mount(known, KNOWN_HOSTS_TARGET))
        return ssh, mounts, [("SSH_AUTH_SOCK", SSH_AGENT_TARGET)], notices
    if ssh == "keys":
        real = sources.vet(os.path.join(host.home, ".ssh"), "ssh (~/.ssh)", kind="dir")
        return (
            ssh,
            ([Mount(real, settings["container_home"] + "/.ssh")] if real else []),
            [],
            notices,
        )
    return ssh, [], [], notices


def _state(
    settings: Settings, sources: _Sources, home: str, *, code: str, data: str, uid_gid: tuple
) -> tuple:
    """The agents' state: entries of RunSpec.state, their bind mounts and tmpfs, env."""
    host = sources.host
    entries, mounts, tmpfs, env = [], [], [], []
    where = None
    if not settings["ephemeral"]:
        where = state_dir(data, settings["agent_state"], code)
    for agent in AGENTS:
        target = home + "/" + agent.target
        source = os.path.realpath(host_dir(agent, host.home, host.environ))
        if where is None:
            tmpfs.append((target, _tmpfs_options(settings["home_size"], uid_gid, True)))
            entries.append((agent.name, "", target, source))
        else:
            path = sources.vet(
                os.path.join(where, agent.name), "agent state", kind="dir", write=True, own=True
            )
            mounts.append(Mount(path, target, False))
            entries.append((agent.name, path, target, source))
        if agent.config_env:
            env.append((agent.config_env, target))
    return entries, mounts, tmpfs, env


def _tmpfs_options(size: int, uid_gid: tuple, private: bool) -> str:
    # exec: agents install tools in HOME; noexec would only break tools, not add a barrier.
    owner = ",uid={},gid={},mode=0700".format(*uid_gid) if private else ""
    return f"rw,nosuid,nodev,exec,size={size}{owner}"


def _protect(named: list, host: Host, data: str, state_targets: dict) -> None:
    """No writable mount is, holds or lies inside the host's own agent files, or holds
    devenv's own directory; no mount lands inside an agent's state."""
    guarded = [os.path.realpath(p) for p in host_paths(host.home, host.environ)]
    data_real = os.path.realpath(data) if data else ""
    for field, mount in named:
        for target, title in state_targets.items():
            if is_within(mount.target, target):
                raise RunSpecError(
                    f"{field}: {mount.target} is where devenv keeps {title}'s own state "
                    "(writable, apart from the host's files, which are imported on first "
                    "use); remove this entry"
                )
        if mount.read_only:
            continue
        for path in guarded:
            if is_within(mount.source, path) or is_within(path, mount.source):
                raise RunSpecError(
                    f"{field}: {mount.source} is or holds the host's own agent files "
                    f"({path}), which are never writable from a container; mount it "
                    "read-only or choose another directory"
                )
        if data_real and is_within(data_real, mount.source):
            raise RunSpecError(
                f"{field}: {mount.source} holds devenv's own directory {data} (the agents' "
                "state of every run); choose a directory inside it or elsewhere"
            )


def _mounts(settings: Settings, sources: _Sources, home: str) -> tuple:
    """The configured bind mounts (code, SSH, credentials, gitconfig, extra) as (field,
    Mount) pairs, the SSH mode and env, and notices."""
    named = []
    code = sources.vet(settings["code_dir"], "code_dir", kind="dir", write=True)
    if code:
        named.append(("code_dir", Mount(code, CODE_TARGET, False)))
    ssh, ssh_mounts, ssh_env, notices = _ssh(settings, sources)
    named += [("ssh", m) for m in ssh_mounts]
    for index, (source, relative, required) in enumerate(settings["credentials"]):
        where = f"credentials[{index}]"
        target = relative_target(relative, where + ".target", home)
        real = sources.vet(source, where + ".source", required=required)
        if real is None:
            if not required:
                notices.append(f"{where}: {source} does not exist; not mounted")
            continue
        named.append((where, Mount(real, target)))
    if settings["gitconfig"]:
        real = sources.vet(settings["gitconfig"], "gitconfig", required=False)
        if real is not None:
            named.append(("gitconfig", Mount(real, home + "/.gitconfig")))
    for index, (source, target, read_only) in enumerate(settings["mounts"]):
        where = f"mounts[{index}]"
        real = sources.vet(source, where + ".source", write=not read_only)
        if real is not None:
            named.append((where, Mount(real, target, read_only)))
    return named, code, ssh, ssh_env, notices


def _identity(login: str, uid: int, gid: int, home: str) -> tuple:
    """The container's /etc/passwd and /etc/group: root, nobody and the user, so that
    `whoami`, `getent` and ssh find the user. No password hashes, nothing personal."""
    import grp  # noqa: PLC0415 - the group's name, once per run
    import re  # noqa: PLC0415 - likewise

    name_ok = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
    if uid == 0:
        login = "root"
    elif not name_ok.match(login) or login in ("root", "nobody"):
        login = "dev"
    try:
        group = grp.getgrgid(gid).gr_name
    except (KeyError, OverflowError):
        group = login
    if gid != 0 and (not name_ok.match(group) or group in ("root", "nogroup")):
        group = login if login not in ("root",) else "dev"
    users = [("root", 0, 0, "/root")] if uid != 0 else []
    users.append((login, uid, gid, home))
    if uid != NOBODY:
        users.append(("nobody", NOBODY, NOBODY, "/nonexistent"))
    groups = [("root", 0)] + ([(group, gid)] if gid != 0 else [])
    if gid != NOBODY:
        groups.append(("nogroup", NOBODY))
    passwd = "".join(
        f"{n}:x:{u}:{g}:{n}:{h}:{'/usr/sbin/nologin' if n == 'nobody' else LOGIN_SHELL}\n"
        for n, u, g, h in users
    )
    return login, passwd, "".join(f"{n}:x:{g}:\n" for n, g in groups)


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


def resolve(
    settings: Settings, host: Host, *, check: bool = False, files_dir: Optional[str] = None
) -> RunSpec:
    """Decide the run for `host`: the user, limits within the maxima and the host, every
    host path resolved and vetted, the container's paths. Raises RunSpecError.
    `check` (a configuration check at provisioning time) lets missing paths and a
    missing SSH agent pass as notices. `files_dir`: where the generated files go
    (default: devenv's directory in the user's home; the module uses a private
    temporary directory)."""
    host, warnings, uid, gid = _resolve_user(settings, host)
    settings = _fit_defaults(settings, host)
    memory, memory_swap, nano_cpus, pids_limit = _limits(settings, host)
    home = settings["container_home"]
    workdir = settings["workdir"]
    sources = _Sources(host, check)
    data = data_dir(host.home, host.environ)
    with host.identity():  # the user's paths, read with the user's rights
        named, code, ssh, ssh_env, notices = _mounts(settings, sources, home)
        code_real = code or os.path.realpath(expand_home(settings["code_dir"], host.home))
        state, state_mounts, state_tmpfs, agent_env = _state(
            settings, sources, home, code=code_real, data=data, uid_gid=(uid, gid)
        )
        _protect(named, host, data, {home + "/" + a.target: a.title for a in AGENTS})
        where = files_dir or sources.vet(os.path.join(data, "identity"), "identity", own=True)
    login, passwd, group = _identity(host.login, uid, gid, home)
    generated = ((os.path.join(where, "passwd"), passwd), (os.path.join(where, "group"), group))
    mounts = [m for _field, m in named] + state_mounts
    mounts += [Mount(generated[0][0], PASSWD_TARGET), Mount(generated[1][0], GROUP_TARGET)]
    seen = {home, TMP_TARGET}
    for mount in mounts:
        if mount.target in seen:
            raise RunSpecError(f"mounts: the container path {mount.target!r} is used twice")
        seen.add(mount.target)
    places = seen - {PASSWD_TARGET, GROUP_TARGET}
    if not any(is_within(workdir, t) for t in places | {CODE_TARGET}):
        raise RunSpecError(f"workdir: {workdir!r} must be inside /app, the HOME, /tmp or a mount")
    policy, network, proxy, proxy_env, dns_options = _network_of(settings)
    plain_env = [("HOME", home), ("USER", login), ("LOGNAME", login), *agent_env]
    # The image is read-only: an agent that updates itself can only fail.
    plain_env.append(("DISABLE_AUTOUPDATER", "1"))
    if not settings["claude_nonessential_traffic"]:
        plain_env.append(("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"))
    # No browser in a container: the agents' logins print a URL and ask for the code.
    plain_env.append(("NO_BROWSER", "true"))
    return RunSpec(
        image=_image_allowed(settings),
        command=settings["command"] or settings["default_command"],
        workdir=workdir,
        uid=uid,
        gid=gid,
        home=home,
        mounts=tuple(mounts),
        tmpfs=(
            (TMP_TARGET, _tmpfs_options(settings["tmp_size"], (uid, gid), False)),
            (home, _tmpfs_options(settings["home_size"], (uid, gid), True)),
            *state_tmpfs,
        ),
        plain_env=(*plain_env, *ssh_env, *proxy_env),
        memory=memory,
        memory_swap=memory_swap,
        nano_cpus=nano_cpus,
        pids_limit=pids_limit,
        read_only_rootfs=settings["read_only_rootfs"],
        labels=((MANAGED_LABEL, "true"), (OWNER_LABEL, str(host.uid)), *settings["labels"]),
        name=_unique_name(host.login),
        ssh=ssh,
        network=network,
        network_policy=policy,
        proxy=proxy,
        dns_options=dns_options,
        state=tuple(state),
        generated=generated,
        host_uid=host.uid,
        host_gid=host.gid,
        host_home=host.home,
        data_dir=data,
        warnings=tuple(warnings),
        notices=tuple(notices + sources.notices),
        env=dict(settings["env"]),
        needs_userns=bool(settings["run_as_root"] and not settings["root_without_userns"]),
        runtime=GVISOR_RUNTIME if settings["isolation"] == "gvisor" else "runc",
        gated=host.sudo,
        pins=tuple((m.target, *sources.pins[m.source]) for m in mounts if m.source in sources.pins),
    )


def pin_own(spec: RunSpec, host: Host) -> RunSpec:
    """Through sudo, once the host side is prepared: pin devenv's own mount sources (the
    agents' state directories, the generated passwd and group), which need not exist when
    the run is resolved. Walked as the user without following a link, and the user's own:
    anything else is refused (the gate then checks the container got exactly these)."""
    if not host.sudo:
        return spec
    own = {p for _name, p, _target, _source in spec.state if p} | {p for p, _c in spec.generated}
    pins = {target: (target, dev, ino) for target, dev, ino in spec.pins}
    with host.identity():
        for mount in spec.mounts:
            if mount.source not in own:
                continue
            pinned = _pin(mount.source, "agent state")
            if os.lstat(mount.source).st_uid != host.uid:
                raise RunSpecError(f"agent state: {mount.source} is not yours; nothing was started")
            pins[mount.target] = (mount.target, *pinned)
    return spec.replace(pins=tuple(pins.values()))


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
