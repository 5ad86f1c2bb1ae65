# Copyright (c) devenv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`devenv doctor`: every control a `dev` run depends on, checked on this host.

Standard library only, Python 3.9+ (the launcher carries a byte-identical copy). The
automated form of the reference's troubleshooting section: one line per check, with the
fix for each failure, then one real container started the way `dev` starts it, whose
runtime properties are asserted from outside (`docker inspect`) and from inside (a probe
script) with the very functions the integration tests use (`inspect_problems`,
`inside_problems`; tests/support/container_security.py wraps them).
"""

from __future__ import annotations

import json
import os
import stat
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only; typing costs start-up time
    from collections.abc import Iterable, Mapping
    from typing import Any, Callable, Optional

# The host directories the container must never have as a bind source.
SENSITIVE_SOURCES = ("/", "/boot", "/dev", "/etc", "/lib", "/proc", "/sys", "/usr")
# The credential files the devenv_secrets role locks down (its default
# devenv_secrets_credential_paths, held equal by tests/unit/test_doctor.py), relative to
# the home: directories 0700, files 0600, the user's own.
CREDENTIAL_PATHS = (
    (".config/infisical", "directory"),
    ("infisical/.env", "file"),
    (".claude", "directory"),
    (".claude/.credentials.json", "file"),
    (".claude.json", "file"),
    (".gemini", "directory"),
    (".gemini/oauth_creds.json", "file"),
    (".gemini/google_accounts.json", "file"),
)
# Labels of the agent image (the devenv_image role): io.kuatecno.devenv.agent.<package
# name> = the pinned version; the command that reports it, by package name.
AGENT_LABEL_PREFIX = "io.kuatecno.devenv.agent."
AGENT_COMMANDS = {"claude-code": "claude", "gemini-cli": "gemini"}
# The first line gVisor's kernel prints in a sandbox (what `dmesg` shows inside it).
GVISOR_DMESG = "Starting gVisor"
CANARY_NAME = "DEVENV_DOCTOR_CANARY"
PROBE_SECONDS = 120
OK, FAIL, WARN, SKIP = "ok", "FAIL", "warn", "skip"


class Check:
    """One line of the report: what was checked, how it went, and the fix."""

    __slots__ = ("detail", "fix", "name", "status")

    def __init__(self, name: str, status: str, detail: str, fix: str = "") -> None:
        self.name, self.status, self.detail, self.fix = name, status, detail, fix

    def as_dict(self) -> dict:
        return {"check": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


# ---------------------------------------------------------------- runtime properties


def inspect_problems(
    info: Mapping[str, Any],
    *,
    memory: Optional[int] = None,
    read_only_rootfs: bool = True,
    runtime: Optional[str] = None,
) -> list:
    """What is wrong with a running devenv container, from its `docker inspect`: the
    runtime properties of security-notes.md. Empty when every one holds."""
    host = info.get("HostConfig") or {}
    config = info.get("Config") or {}
    problems = []

    def want(ok: Any, what: str) -> None:
        if not ok:
            problems.append(what)

    want(host.get("Privileged") is False, "the container is privileged")
    want(host.get("CapDrop") == ["ALL"], f"capabilities not all dropped ({host.get('CapDrop')})")
    want(not host.get("CapAdd"), f"capabilities added ({host.get('CapAdd')})")
    options = host.get("SecurityOpt") or []
    want("no-new-privileges" in options, "no-new-privileges is not set")
    want(not any("unconfined" in o for o in options), f"a profile is unconfined ({options})")
    if memory is not None:
        want(host.get("Memory") == memory, f"memory limit {host.get('Memory')}, not {memory}")
    want(bool(host.get("Memory")), "no memory limit")
    want(host.get("MemorySwap") == host.get("Memory"), "swap is not limited to the memory")
    want((host.get("NanoCpus") or 0) > 0, "no CPU limit")
    want(host.get("PidsLimit") not in (None, 0, -1), "no process limit")
    for key in ("NetworkMode", "PidMode", "IpcMode", "UTSMode", "UsernsMode"):
        want(host.get(key, "") != "host", f"{key} is the host's")
    for mount in info.get("Mounts") or []:
        source = str(mount.get("Source", ""))
        want(mount.get("Type") == "bind", f"mount {mount.get('Destination')} is not a bind mount")
        want("docker.sock" not in source, f"the engine's socket is mounted ({source})")
        want(source not in SENSITIVE_SOURCES, f"the host's {source} is mounted")
        want(mount.get("Propagation") == "rprivate", f"mount {source} propagates")
    want(not host.get("Devices"), "host devices are mapped in")
    want(not host.get("PortBindings") and not host.get("PublishAllPorts"), "ports are published")
    want(not (info.get("NetworkSettings") or {}).get("Ports"), "ports are published")
    want((host.get("RestartPolicy") or {}).get("Name") in ("", "no"), "a restart policy is set")
    want(host.get("AutoRemove") is True, "the engine does not remove it on exit")
    user = str(config.get("User") or "")
    want(
        user not in ("", "0", "root", "0:0") and not user.startswith(("0:", "root:")),
        f"it runs as root ({user or 'no user set'})",
    )
    want(
        host.get("ReadonlyRootfs") is read_only_rootfs,
        f"read-only root filesystem is {host.get('ReadonlyRootfs')}, not {read_only_rootfs}",
    )
    want(host.get("Init") is True, "no init process (signals, zombies)")
    want(
        (config.get("Labels") or {}).get("io.kuatecno.devenv.managed") == "true",
        "not labelled as a devenv container",
    )
    if runtime is not None:
        found = host.get("Runtime") or "runc"
        want(found == runtime, f"runtime {found}, not {runtime}")
    return problems


# The probe: what a container's own processes see, one `key=value` per line, then it
# waits for its standard input to close (so the container can be inspected meanwhile).
# POSIX sh and the base's coreutils; bash only for the proxy's answer (/dev/tcp).
PROBE_SCRIPT = r"""set -u
say() { printf '%s=%s\n' "$1" "$2"; }
writable() { { : >"$1"; } 2>/dev/null && rm -f "$1"; }
say uid "$(id -u)"
say gid "$(id -g)"
say whoami "$(whoami 2>/dev/null)"
while IFS=: read -r key value; do
  case "$key" in
  NoNewPrivs | CapEff | CapPrm | CapAmb | Seccomp) say "$key" "$(echo $value)" ;;
  esac
done </proc/self/status
# gVisor's /proc does not show NoNewPrivs: ask the kernel (PR_GET_NO_NEW_PRIVS).
nnp='import ctypes; print(ctypes.CDLL(None).prctl(39, 0, 0, 0, 0))'
grep -q '^NoNewPrivs:' /proc/self/status || say NoNewPrivs "$(python3 -c "$nnp" 2>/dev/null)"
if [ -r /proc/self/limits ]; then
  while read -r a b c rest; do
    [ "$a $b" = "Max processes" ] && say nproc "$c"
  done </proc/self/limits
else
  say nproc "$(bash -c 'ulimit -u' 2>/dev/null)"
fi
for f in /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max; do
  if [ -r "$f" ]; then say pids_max "$(cat "$f")"; break; fi
done
for f in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do
  if [ -r "$f" ]; then say memory_max "$(cat "$f")"; break; fi
done
while read -r key value unit; do
  [ "$key" = "MemTotal:" ] && say memtotal "$((value * 1024))"
done </proc/meminfo
# /var/tmp is open to every user: on a writable root, the write works; read-only: EROFS.
probe=/var/tmp/.devenv-doctor-$$
[ -d /var/tmp ] || probe=/.devenv-doctor-$$
if err=$({ : >"$probe"; } 2>&1); then
  say rootfs writable
  rm -f "$probe"
else
  say rootfs "$err"
fi
probe=/app/.devenv-doctor-$$
if { : >"$probe"; } 2>/dev/null; then
  say app "$(stat -c %u:%g "$probe")"
  rm -f "$probe"
else
  say app none
fi
if writable "$HOME/.devenv-doctor-$$"; then say home writable; else say home read-only; fi
say canary "${DEVENV_DOCTOR_CANARY:-}"
say kernel "$(uname -r)"
say dmesg "$(dmesg 2>/dev/null | head -n 1)"
say interfaces "$(sed -n '3,$s/:.*//p' /proc/net/dev 2>/dev/null | tr -d ' ' | sort | tr '\n' ' ')"
# The default route's gateway (little-endian hex in /proc/net/route), and whether
# anything answers there: refused means reachable.
gateway=$(while read -r iface dest gw rest; do
  if [ "$dest" = 00000000 ]; then
    for at in 7 5 3 1; do printf '%d.' "0x$(echo "$gw" | cut -c$at-$((at + 1)))"; done
    break
  fi
done </proc/net/route 2>/dev/null)
gateway=${gateway%.}
if [ -n "$gateway" ]; then
  out=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/9"' devenv-doctor "$gateway" 2>&1)
  say gateway "$gateway rc=$? $(echo $out)"
fi
# The proxy must refuse a host that is not allowed (the read is retried: a socket on
# gVisor's host network may answer a blocking read with EAGAIN).
connect='exec 3<>"/dev/tcp/${1%:*}/${1##*:}" || exit 1
printf "CONNECT devenv-doctor.invalid:443 HTTP/1.1\r\nHost: devenv-doctor.invalid\r\n\r\n" >&3
for try in 1 2 3 4 5 6 7 8 9 10; do read -r line <&3 && break; sleep 0.3; done
printf %s "$line"'
case "${HTTPS_PROXY:-}" in
http://*)
  hp=${HTTPS_PROXY#http://}
  say proxy_refuses "$(bash -c "$connect" devenv-doctor "${hp%/}" 2>/dev/null | tr -d '\r')"
  ;;
esac
for agent in "$@"; do
  say "agent.$agent" "$("$agent" --version 2>&1 | head -n 1)"
done
say end 1
read -r _ || true
"""


def parse_probe(text: str) -> dict:
    """The probe's `key=value` lines as a mapping."""
    facts = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            facts[key] = value
    return facts


def inside_problems(
    facts: Mapping[str, str],
    *,
    uid: int,
    memory: int,
    pids_limit: int,
    read_only_rootfs: bool = True,
    isolation: str = "runc",
) -> list:
    """What is wrong as the container's own processes see it (the probe's facts)."""
    problems = []

    def want(ok: Any, what: str) -> None:
        if not ok:
            problems.append(what)

    want(facts.get("uid") == str(uid), f"runs as uid {facts.get('uid')}, not {uid}")
    want(facts.get("whoami"), "the user has no name (no passwd entry)")
    want(facts.get("NoNewPrivs") == "1", f"NoNewPrivs is {facts.get('NoNewPrivs')}, not 1")
    for key in ("CapEff", "CapPrm", "CapAmb"):
        value = facts.get(key)
        want(value is None or not value.strip("0"), f"{key} is {value}: capabilities remain")
    if isolation == "gvisor":
        # The sandbox's own kernel keeps the process limit (RLIMIT_NPROC) and reports
        # the memory it was given; the host's cgroups hold the sandbox as a whole.
        want(facts.get("nproc") == str(pids_limit), f"process limit {facts.get('nproc')}")
        total = int(facts.get("memtotal") or 0)
        want(0 < total <= memory, f"sees {total} bytes of memory, more than the limit {memory}")
        want(
            facts.get("dmesg", "").endswith(GVISOR_DMESG + "..."),
            "the kernel is not gVisor's: no kernel boundary",
        )
    else:
        want(facts.get("pids_max") == str(pids_limit), f"pids.max is {facts.get('pids_max')}")
        want(facts.get("memory_max") == str(memory), f"memory limit {facts.get('memory_max')}")
    rootfs = facts.get("rootfs", "")
    if read_only_rootfs:
        want("Read-only file system" in rootfs, f"the root filesystem is writable ({rootfs})")
    want(facts.get("home") == "writable", "HOME is not writable")
    return problems


# ---------------------------------------------------------------- files on the host


def loose_files(home: str, relative: Iterable[tuple]) -> list:
    """(path, mode, wanted) of credential files that exist with more than their owner's
    access, or are not the owner's; followed links are not (a link is reported)."""
    found = []
    uid = os.geteuid()
    for path, kind in relative:
        full = os.path.join(home, path)
        try:
            info = os.lstat(full)
        except OSError:
            continue
        want = 0o700 if kind == "directory" else 0o600
        if stat.S_ISLNK(info.st_mode):
            found.append((full, "a symbolic link", f"a {kind} of yours"))
        elif info.st_uid != uid:
            found.append((full, f"owned by uid {info.st_uid}", f"yours, {want:04o}"))
        elif stat.S_IMODE(info.st_mode) & 0o077:
            found.append((full, f"{stat.S_IMODE(info.st_mode):04o}", f"{want:04o}"))
    return found


def ssh_keys(home: str) -> list:
    """~/.ssh and its private keys, as (path, kind) for loose_files (keys by their
    header, as the devenv_secrets role finds them)."""
    directory = os.path.join(home, ".ssh")
    found = [(".ssh", "directory")]
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return found
    for name in names:
        path = os.path.join(directory, name)
        if name.endswith(".pub") or os.path.islink(path) or not os.path.isfile(path):
            continue
        try:
            with open(path, "rb") as handle:
                head = handle.read(64)
        except OSError:
            continue
        if head.startswith(b"-----BEGIN") and b"PRIVATE KEY" in head:
            found.append((os.path.join(".ssh", name), "file"))
    return found


def loose_state(root: str, limit: int = 5000) -> list:
    """Paths under devenv's own directory that another user could read, write or enter:
    the directory itself when it is open to them, and below it whatever is open and
    reached through directories that are open too (a 0644 file in a 0700 directory is
    private)."""
    found: list = []
    if not os.path.isdir(root) or os.path.islink(root):
        return found
    open_dirs = set()
    for directory, dirs, files in os.walk(root):
        here_open = directory == root or directory in open_dirs
        for name in ["", *dirs, *files][:limit]:
            path = os.path.join(directory, name) if name else directory
            if name and not here_open:
                break
            try:
                info = os.lstat(path)
            except OSError:
                continue
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISLNK(info.st_mode) or not mode & 0o077:
                continue
            if stat.S_ISDIR(info.st_mode):
                if mode & 0o011:
                    open_dirs.add(path)
                if path != directory or directory == root:
                    found.append((path, f"{mode:04o}"))
            elif mode & 0o066:
                found.append((path, f"{mode:04o}"))
        if directory == root and root not in open_dirs:
            break
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(directory, d))]
    return found


def agent_identities(path: str, timeout: float = 3.0) -> int:
    """How many identities the SSH agent at `path` holds (the agent protocol's
    REQUEST_IDENTITIES). Raises OSError when it does not answer as an agent."""
    import socket  # noqa: PLC0415 - doctor only
    import struct  # noqa: PLC0415 - doctor only

    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(path)
        conn.sendall(struct.pack(">IB", 1, 11))
        head = b""
        while len(head) < 9:
            chunk = conn.recv(9 - len(head))
            if not chunk:
                break
            head += chunk
    finally:
        conn.close()
    if len(head) < 9 or head[4] != 12:
        raise OSError("the socket does not answer as an SSH agent")
    return struct.unpack(">I", head[5:9])[0]


# ---------------------------------------------------------------- the engine


class Engine:
    """The few questions doctor asks the engine: over its unix socket, or through the
    docker CLI where the engine is only reachable that way (TCP, SSH contexts)."""

    def __init__(self, environ: Mapping[str, str], home: str, cli: Callable) -> None:
        from ._engineapi import engine_socket  # noqa: PLC0415

        self.environ, self.home, self._cli = environ, home, cli
        self.socket = engine_socket(environ, home)

    def where(self) -> str:
        if self.socket:
            return f"unix://{self.socket}"
        return self.environ.get("DOCKER_HOST") or "the docker CLI's context"

    def _get(self, path: str, argv: list) -> tuple:
        """(status, JSON) of GET path, or of the CLI command's JSON output."""
        if self.socket:
            from ._engineapi import request_json  # noqa: PLC0415

            return request_json(self.socket, "GET", path)
        code, text = self._cli(["docker", *argv], self.environ)
        if code != 0:
            if "no such" in text.lower():
                return 404, None
            raise OSError(text or "the docker CLI failed")
        found = json.loads(text)
        return 200, found[0] if isinstance(found, list) and found else found

    def version(self) -> dict:
        status, found = self._get("/version", ["version", "--format", "{{json .Server}}"])
        if status != 200 or not isinstance(found, dict):
            raise OSError(f"the engine answered HTTP {status}")
        return found

    def info(self) -> dict:
        status, found = self._get("/info", ["info", "--format", "{{json .}}"])
        return found if status == 200 and isinstance(found, dict) else {}

    def image(self, ref: str) -> Optional[dict]:
        status, found = self._get(f"/images/{ref}/json", ["image", "inspect", ref])
        return found if status == 200 and isinstance(found, dict) else None

    def container(self, name: str) -> Optional[dict]:
        status, found = self._get(f"/containers/{name}/json", ["container", "inspect", name])
        return found if status == 200 and isinstance(found, dict) else None


def engine_access(host: Any, engine: Engine) -> str:
    """How this user reaches the engine, in words."""
    where = engine.where()
    if host.sudo:
        return "through the administrator's sudo rule (devenv group); you never open its socket"
    try:
        info = os.stat(engine.socket) if engine.socket else None
    except OSError:
        info = None
    if info is None:
        how = f"at {where}"
    elif host.uid == 0:
        how = "as root"
    elif info.st_uid == host.uid:
        how = f"your own engine ({where})"
    elif info.st_gid in os.getgroups():
        import grp  # noqa: PLC0415 - doctor only

        try:
            group = grp.getgrgid(info.st_gid).gr_name
        except KeyError:
            group = str(info.st_gid)
        how = f"as a member of the {group} group, which is root-equivalent on this host"
    else:
        how = f"at {where}"
    return how if engine.socket else f"through the docker CLI ({where})"


def image_pins(image: Mapping[str, Any]) -> dict:
    """The agent versions the image was built with (its labels): command -> version."""
    labels = (image.get("Config") or {}).get("Labels") or {}
    pins = {}
    for key, value in sorted(labels.items()):
        if key.startswith(AGENT_LABEL_PREFIX):
            package = key[len(AGENT_LABEL_PREFIX) :]
            command = AGENT_COMMANDS.get(package, package)
            if command.replace("-", "").replace("_", "").isalnum():
                pins[command] = value
    return pins


def reported_version(text: str) -> str:
    """The first x.y.z[-suffix] in an agent's --version output."""
    import re  # noqa: PLC0415

    found = re.search(r"[0-9]+\.[0-9]+\.[0-9]+[0-9A-Za-z.-]*", text)
    return found.group(0) if found else ""


# ---------------------------------------------------------------- the report


def render(checks: list, as_json: bool) -> str:
    if as_json:
        ok = not any(c.status == FAIL for c in checks)
        return json.dumps({"ok": ok, "checks": [c.as_dict() for c in checks]}, indent=2) + "\n"
    return "".join(render_line(c) for c in checks)


def render_line(check: Check) -> str:
    line = f"{check.status:<4}  {check.name:<14} {check.detail}\n"
    if check.fix and check.status in (FAIL, WARN):
        line += f"{'':<6}{'':<14} fix: {check.fix}\n"
    return line


def summary(checks: list) -> str:
    failed = [c.name for c in checks if c.status == FAIL]
    if failed:
        return f"\n{len(failed)} check(s) failed: {', '.join(failed)}\n"
    return "\nall checks passed: dev runs as configured on this host\n"


def write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


# ---------------------------------------------------------------- the checks


class Doctor:
    """The checks in the order a run depends on them; each adds one line."""

    def __init__(self, launcher: Any, flags: Mapping[str, Any], as_json: bool) -> None:
        from ._runspec import Host  # noqa: PLC0415

        self.launcher = launcher
        self.flags = flags
        self.as_json = as_json
        self.checks: list = []
        self.host = Host.current()
        self.user_env, self.engine_env, self.engine_home = launcher._sides(self.host)
        self.engine = Engine(self.engine_env, self.engine_home, launcher._cli)
        self.settings: Any = None
        self.spec: Any = None
        self.image: Optional[dict] = None
        self.engine_ok = False

    def add(self, name: str, status: str, detail: str, fix: str = "") -> Check:
        check = Check(name, status, detail, fix)
        self.checks.append(check)
        if not self.as_json:
            write(render_line(check))
        return check

    def run(self) -> int:
        for step in (
            self.configuration,
            self.engine_reach,
            self.image_present,
            self.isolation_ready,
            self.credentials,
            self.agent_state,
            self.ssh_agent,
            self.infisical,
            self.network,
            self.container,
        ):
            step()
        write(render(self.checks, True) if self.as_json else summary(self.checks))
        return 1 if any(c.status == FAIL for c in self.checks) else 0

    # ---- configuration, engine, image

    def configuration(self) -> None:
        from ._runspec import resolve  # noqa: PLC0415
        from ._settings import RunSpecError  # noqa: PLC0415

        launcher = self.launcher
        system_path, user_path = launcher.config_paths(self.user_env, self.host.home)
        try:
            settings = launcher.load_settings(self.flags, self.host, self.user_env)
            self.settings = launcher.default_workdir(settings, self.host)
            self.spec = resolve(self.settings, self.host)
        except (launcher.LaunchError, RunSpecError) as exc:
            self.add(
                "configuration",
                FAIL,
                _cause(exc),
                f"correct that setting in the file it names ({system_path} is the "
                f"administrator's, {user_path} yours); `devenv config` shows every value "
                "and where it comes from",
            )
            return
        spec = self.spec
        self.add(
            "configuration",
            OK,
            f"valid ({system_path}, {user_path}): image {spec.image}, memory "
            f"{_memory(spec.memory)}, {spec.cpus:g} CPUs, {spec.pids_limit} processes, "
            f"network {spec.network_policy}, isolation {self.settings['isolation']}",
        )
        for warning in spec.warnings:
            self.add("configuration", WARN, warning)

    def engine_reach(self) -> None:
        fix = (
            "start the engine (`sudo systemctl start docker`; on a Mac start Docker Desktop, "
            "Colima or OrbStack), or correct DOCKER_HOST / the docker context"
        )
        try:
            version = self.engine.version()
        except PermissionError:
            self.add(
                "engine",
                FAIL,
                f"permission denied on {self.engine.where()}",
                "ask the administrator to add you to devenv_users (the devenv group; `dev` "
                "reaches the engine through sudo), then log in again",
            )
            return
        except (OSError, ValueError, self.launcher.LaunchError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            self.add("engine", FAIL, f"not reachable at {self.engine.where()} ({reason})", fix)
            return
        self.engine_ok = True
        access = engine_access(self.host, self.engine)
        status = WARN if "root-equivalent" in access else OK
        self.add(
            "engine",
            status,
            f"Docker {version.get('Version', '?')} answers, reached {access}",
            "on a shared host, let users reach the engine only through devenv "
            "(devenv_launcher_access: sudo) and take them out of the docker group",
        )

    def image_present(self) -> None:
        if not self._needs("image", engine=True):
            return
        hint = self.launcher.IMAGE_HINT
        try:
            self.image = self.engine.image(self.spec.image)
        except (OSError, ValueError) as exc:
            self.add("image", FAIL, f"the engine could not be asked for {self.spec.image} ({exc})")
            return
        if self.image is None:
            self.add(
                "image",
                FAIL,
                f"{self.spec.image} is not on this host (devenv never pulls at run time)",
                f"build or pull it: `{hint}`",
            )
            return
        pins = image_pins(self.image)
        shown = ", ".join(f"{c} {v}" for c, v in pins.items()) or "no agents pinned"
        image_id = str(self.image.get("Id", ""))[:19]
        self.add("image", OK, f"{self.spec.image} present ({image_id}; {shown})")

    def isolation_ready(self) -> None:
        if not self._needs("isolation", engine=True):
            return
        from ._runspec import GVISOR_RUNTIME, check_engine_info  # noqa: PLC0415
        from ._settings import RunSpecError  # noqa: PLC0415

        if self.spec.runtime != GVISOR_RUNTIME:
            self.add(
                "isolation",
                OK,
                "runc: the container shares the host's kernel (isolation: gvisor adds a "
                "kernel boundary where the devenv_engine role installed gVisor)",
            )
            return
        try:
            check_engine_info(self.spec, self.engine.info())
        except RunSpecError as exc:
            detail, _sep, fix = str(exc).partition("; ")
            self.add("isolation", FAIL, detail, fix)
            self.spec = None
            return
        self.add("isolation", OK, f"gvisor: the engine has the {GVISOR_RUNTIME} runtime")

    # ---- files on the host, as the user

    def credentials(self) -> None:
        home = self.host.home
        with self.host.identity():
            loose = loose_files(home, (*CREDENTIAL_PATHS, *ssh_keys(home)))
        if not loose:
            self.add(
                "credentials", OK, f"agent, Infisical and SSH credentials in {home} are private"
            )
            return
        for path, found, want in loose:
            self.add(
                "credentials",
                FAIL,
                f"{path} is {found}, not {want}: other users of this host can read it",
                f"`chmod {'700' if want.endswith('0700') else '600'} {path}` (the devenv_secrets "
                "role keeps them so)"
                if found[:1].isdigit()
                else f"replace {path} with a {want.split(',')[0]} (the devenv_secrets role "
                "leaves links and other users' files alone)",
            )

    def agent_state(self) -> None:
        if not self._needs("agent state"):
            return
        data = self.spec.data_dir
        with self.host.identity():
            loose = loose_state(data)
        if not os.path.isdir(data):
            self.add("agent state", OK, f"{data} not created yet (the first run creates it 0700)")
        elif loose:
            shown = ", ".join(f"{p} ({m})" for p, m in loose[:3])
            more = f" and {len(loose) - 3} more" if len(loose) > 3 else ""
            self.add(
                "agent state",
                FAIL,
                f"readable by others: {shown}{more}",
                f"`chmod -R go-rwx {data}` (devenv keeps its state 0700/0600)",
            )
        else:
            self.add("agent state", OK, f"{data} is yours alone")

    def ssh_agent(self) -> None:
        if not self._needs("ssh"):
            return
        from ._runspec import SSH_AGENT_TARGET  # noqa: PLC0415

        mode = self.settings["ssh"]
        forwarded = [m for m in self.spec.mounts if m.target == SSH_AGENT_TARGET]
        if not forwarded:
            text = {"none": "not used (ssh: none)", "keys": "keys mounted read-only (ssh: keys)"}
            detail = text.get(mode, "no SSH agent runs (SSH_AUTH_SOCK unset): runs get no SSH")
            status = WARN if mode == "auto" else OK
            self.add(
                "ssh",
                status,
                detail,
                "start an agent and add your key (`eval $(ssh-agent)`, `ssh-add`) before dev",
            )
            return
        source = forwarded[0].source
        try:
            with self.host.identity():
                keys = agent_identities(source)
        except OSError as exc:
            self.add(
                "ssh",
                FAIL,
                f"the SSH agent at {source} does not answer ({exc})",
                "start a new agent (`eval $(ssh-agent)`, `ssh-add`) or unset SSH_AUTH_SOCK",
            )
            return
        status = OK if keys else WARN
        self.add(
            "ssh",
            status,
            f"the agent at {source} holds {keys} key(s), forwarded read-only",
            "add your key to the agent (`ssh-add`)",
        )

    def infisical(self) -> None:
        if self.settings is None:
            self.add("secrets", SKIP, "needs a valid configuration")
            return
        config = self.settings["secrets"]
        if not config:
            self.add("secrets", SKIP, "no secrets configured (setting secrets)")
            return
        try:
            values = self.launcher._fetch_secrets(config, self.host)
        except self.launcher.LaunchError as exc:
            self.add(
                "secrets",
                FAIL,
                _cause(exc),
                "log in with `infisical login` (or export INFISICAL_TOKEN or "
                "INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN), and check secrets.project_id, "
                "environment and path",
            )
            return
        count = len(values)
        values.clear()
        self.add(
            "secrets",
            OK,
            f"Infisical answers: {count} secret(s) from project {config['project_id']}, "
            f"environment {config['environment']}, path {config['path']} (values not shown)",
        )

    # ---- the network and a real container

    def network(self) -> None:
        if not self._needs("network", engine=True):
            return
        spec = self.spec
        if spec.proxy is None:
            text = {
                "none": "none: loopback only",
                "open": "open: Docker's default bridge, no egress policy",
            }
            self.add("network", OK, text[spec.network_policy])
            return
        try:
            self.launcher.ensure_proxy(spec, self.engine_env, self.engine_home)
        except self.launcher.LaunchError as exc:
            self.add(
                "network",
                FAIL,
                _cause(exc),
                f"build the proxy image (`{self.launcher.IMAGE_HINT}`), or choose --network "
                "none for now",
            )
            self.spec = None
            return
        allowed = len(spec.proxy.describe()["allow"])
        self.add(
            "network",
            OK,
            f"allowlist: the egress proxy {spec.proxy.proxy} runs ({allowed} destinations)",
        )

    def container(self) -> None:
        if not self._needs("container", engine=True) or self.image is None:
            if self.spec is not None and self.image is None:
                self.add("container", SKIP, "needs the image")
            return
        from ._settings import RunSpecError  # noqa: PLC0415

        launcher = self.launcher
        pins = image_pins(self.image)
        try:
            spec = launcher._prepare(self.spec, self.host)
            facts, info, error = probe(launcher, spec, pins, self.engine, self.engine_env)
        except (launcher.LaunchError, RunSpecError, OSError) as exc:
            facts, info, error = {}, None, str(exc)
        if info is None or "end" not in facts:
            self.add(
                "container",
                FAIL,
                f"a container could not be started and probed ({error or 'no answer'})",
                "run `dev -- true` to see the whole error; `devenv run --dry-run` shows the "
                "docker command",
            )
            return
        self.report_container(spec, facts, info)

    def report_container(self, spec: Any, facts: dict, info: dict) -> None:
        from ._runspec import GVISOR_RUNTIME  # noqa: PLC0415

        gvisor = spec.runtime == GVISOR_RUNTIME
        fix = "reinstall the launcher (the devenv_launcher role) and run doctor again"
        outside = inspect_problems(
            info,
            memory=spec.memory,
            read_only_rootfs=spec.read_only_rootfs,
            runtime=spec.runtime or "runc",
        )
        self._result(
            "container",
            outside,
            f"{spec.name} started as dev starts it; docker inspect shows every runtime property",
            fix,
        )
        inside = inside_problems(
            facts,
            uid=spec.uid,
            memory=spec.memory,
            pids_limit=spec.pids_limit,
            read_only_rootfs=spec.read_only_rootfs,
            isolation="gvisor" if gvisor else "runc",
        )
        self._result(
            "inside",
            inside,
            f"as {facts.get('whoami')} ({facts.get('uid')}): no capabilities, no new "
            "privileges, the limits in force, read-only root, writable HOME",
            fix,
        )
        canary = facts.get("canary", "")
        stored = json.dumps(info)
        secrets = []
        if not canary.startswith("devenv-doctor-"):
            secrets.append("a test secret did not reach the command")
        elif canary in stored:
            secrets.append("a test secret is in the container's configuration")
        self._result(
            "secret path",
            secrets,
            "a test secret reached the command through the start channel and is nowhere in "
            "the container's configuration",
            fix,
        )
        if spec.proxy is not None or spec.network_policy == "none":
            self._result(
                "network inside",
                network_problems(facts, spec.network_policy),
                "no way out but the egress proxy, which refuses what is not allowed"
                if spec.proxy is not None
                else "loopback only",
                "recreate the proxy and network: `devenv_launcher_state: absent` then "
                "present (the role), or remove the devenv-proxy-* container",
            )
        self.agents(facts)
        if gvisor:
            self._result(
                "isolation",
                [] if facts.get("dmesg", "").find(GVISOR_DMESG) >= 0 else ["not gVisor's kernel"],
                f"kernel boundary active: gVisor's kernel ({facts.get('kernel')}) answers, "
                f"not the host's ({os.uname().release})",
                "check the runsc runtime: `docker run --rm --runtime runsc IMAGE dmesg`",
            )

    def agents(self, facts: dict) -> None:
        pins = image_pins(self.image or {})
        if not pins:
            self.add("agents", WARN, "the image pins no agent versions (not a devenv_image image?)")
            return
        wrong = []
        for command, pinned in pins.items():
            output = facts.get(f"agent.{command}", "")
            found = reported_version(output)
            if found != pinned:
                wrong.append(
                    f"{command} reports {found or output[:80] or 'nothing'}, {pinned} pinned"
                )
        shown = ", ".join(f"{c} {v}" for c, v in pins.items())
        self._result(
            "agents",
            wrong,
            f"{shown} run and report their pinned versions",
            f"rebuild the image with the pinned versions: `{self.launcher.IMAGE_HINT}`",
        )

    def _result(self, name: str, problems: list, detail: str, fix: str) -> None:
        if problems:
            self.add(name, FAIL, "; ".join(problems), fix)
        else:
            self.add(name, OK, detail)

    def _needs(self, name: str, *, engine: bool = False) -> bool:
        if self.spec is None:
            self.add(name, SKIP, "needs a valid configuration")
            return False
        if engine and not self.engine_ok:
            self.add(name, SKIP, "needs the engine")
            return False
        return True


def _cause(exc: BaseException) -> str:
    """A launcher's refusal without what it adds for a run ("Nothing was started ...")."""
    return str(exc).partition(" Nothing was started")[0].rstrip(".")


def network_problems(facts: Mapping[str, str], policy: str) -> list:
    """What is wrong with the network policy, as the container sees it."""
    problems = []
    if policy == "none":
        if facts.get("interfaces", "").split() != ["lo"]:
            problems.append(f"interfaces besides loopback: {facts.get('interfaces')}")
    elif policy == "allowlist":
        # A default route may exist (engine 20.10 gives one on an internal network), but
        # its gateway must not answer: no address, no way out without the proxy.
        gateway = facts.get("gateway", "")
        if "refused" in gateway.lower() or " rc=0" in gateway:
            problems.append(
                f"the gateway {gateway.split()[0]} answers: a way out without the proxy"
            )
        answer = facts.get("proxy_refuses", "")
        if " 403 " not in f" {answer} ":
            problems.append(f"the proxy did not refuse an unlisted host ({answer or 'no answer'})")
    return problems


def _memory(number: int) -> str:
    from ._settings import format_memory  # noqa: PLC0415

    return format_memory(number)


def probe(
    launcher: Any, spec: Any, pins: Mapping[str, str], engine: Engine, engine_env: Mapping
) -> tuple:
    """Start `spec` with the probe as its command, the way `dev` starts a run (the docker
    CLI, the start channel with a test secret, the gate); read what it sees; inspect it
    while it runs; then end it. Returns (facts, inspect result or None, error)."""
    import secrets  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    canary = "devenv-doctor-" + secrets.token_hex(12)
    spec = spec.replace(command=("/bin/sh", "-c", PROBE_SCRIPT, "devenv-doctor", *pins))
    spec = spec.with_secrets({CANARY_NAME: canary})
    env = {k: v for k, v in engine_env.items() if not k.upper().startswith("INFISICAL_")}
    env.update(spec.secret_env())
    pipe = subprocess.PIPE
    try:
        argv = spec.docker_argv(tty=False, interactive=True)
        proc = subprocess.Popen(argv, env=env, stdin=pipe, stdout=pipe, stderr=pipe)
    except FileNotFoundError:
        return {}, None, "the docker CLI is not installed or not on PATH"
    out, err, info = b"", b"", None
    try:
        if spec.uses_start:
            launcher.deliver_start(spec, proc.pid, engine_env, engine.home)
        out, err = _read_until_end(proc)
        if _ended(out):
            info = engine.container(spec.name)
    except launcher.LaunchError as exc:
        err += str(exc).encode()
    finally:
        _finish(proc, lambda: launcher._kill_container(spec.name, engine_env, engine.home))
    lines = err.decode("utf-8", "replace").strip().splitlines()
    return parse_probe(out.decode("utf-8", "replace")), info, lines[-1] if lines else ""


def _ended(out: bytes) -> bool:
    return b"\nend=1\n" in b"\n" + out


def _read_until_end(proc: Any) -> tuple:
    """The probe's output and errors, until it says `end` (or ends, or time is up)."""
    import selectors  # noqa: PLC0415
    import time  # noqa: PLC0415

    out, err = b"", b""
    deadline = time.monotonic() + PROBE_SECONDS
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        selector.register(proc.stderr, selectors.EVENT_READ)
        while not _ended(out) and selector.get_map() and time.monotonic() < deadline:
            for key, _mask in selector.select(timeout=1):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                elif key.fileobj is proc.stdout:
                    out += chunk
                else:
                    err += chunk
    return out, err


def _finish(proc: Any, kill: Callable) -> None:
    """End the probe (its standard input closes), or kill its container."""
    import subprocess  # noqa: PLC0415

    try:
        proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        kill()
        proc.kill()
        proc.wait()
    for stream in (proc.stdout, proc.stderr):
        stream.close()


def main(launcher: Any, args: list) -> int:
    """`devenv doctor [--json] [RUN OPTIONS]`."""
    as_json = "--json" in args
    options, flags, command = launcher.parse_run_args([a for a in args if a != "--json"])
    if command or options["dry_run"] or options["no_secrets"]:
        raise launcher.UsageError("doctor takes --json and the run's setting options", "doctor")
    return Doctor(launcher, flags, as_json).run()
