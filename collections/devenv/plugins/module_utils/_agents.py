# Copyright (c) devenv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agents' own state, kept by devenv on the host, and the files a run needs there.

Standard library only, Python 3.9+, no Ansible import (the launcher carries a
byte-identical copy). Claude Code and Gemini CLI write their state (login, settings,
sessions) on every start, so a read-only copy of the host's files makes them fail, and a
writable host `~/.claude` would let a container plant hooks that run on the host. So
each agent gets a directory that devenv owns,

    <data>/state/user/<agent>                    agent_state: user (the default)
    <data>/state/code/<name>-<hash>/<agent>      agent_state: code_dir

(<data> = $XDG_DATA_HOME/devenv or ~/.local/share/devenv, every level 0700), mounted
read-write where the agent keeps its state in the container. The host's own agent files
are only ever read: on first use their login is copied in once (`import_login`).

`resolve()` (in _runspec) decides the paths; `prepare(spec)` creates them, imports the
logins and writes the generated files (the container's passwd and group), as the user
whose state it is (`as_user`), before the container starts.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only; typing costs start-up time
    from collections.abc import Mapping
    from typing import Any, Callable, Optional


class Agent:
    """One agent: where its state lives in the container (relative to HOME), the
    variables that point it there, its host files, what a login consists of, and its
    own login flow."""

    __slots__ = (
        "config_env",
        "credentials",
        "host_dir",
        "host_files",
        "json_keys",
        "login_command",
        "login_setting",
        "name",
        "target",
        "title",
    )

    def __init__(self, name: str, title: str, target: str, **facts: Any) -> None:
        self.name = name
        self.title = title
        self.target = target
        # The variable naming the state directory (value: its container path), if any.
        self.config_env: Optional[str] = facts.get("config_env")
        # The host directory of the agent's own files (relative to the host home), and
        # a variable that moves it on the host.
        self.host_dir: tuple = facts["host_dir"]
        # Further host files the agent reads (relative to the home), never writable.
        self.host_files: tuple = facts.get("host_files", ())
        # What a login is: files copied from host_dir into the state (the first one
        # decides whether the state has a login), and JSON keys copied from a host file
        # into a state file: (host path relative to the home or host_dir, state file,
        # key paths).
        self.credentials: tuple = facts["credentials"]
        self.json_keys: tuple = facts.get("json_keys", ())
        self.login_command: tuple = facts["login_command"]
        # Written into the state before the login flow, so it starts at once:
        # (state file, key path, value).
        self.login_setting: tuple = facts["login_setting"]


AGENTS = (
    Agent(
        "claude",
        "Claude Code",
        ".claude",
        # Moves ~/.claude.json into the directory too, so one mount holds all of it.
        config_env="CLAUDE_CONFIG_DIR",
        host_dir=(".claude", "CLAUDE_CONFIG_DIR"),
        host_files=(".claude.json",),
        credentials=(".credentials.json",),
        json_keys=(
            (
                "~/.claude.json",
                ".claude.json",
                (
                    ("oauthAccount",),
                    ("userID",),
                    ("hasCompletedOnboarding",),
                    ("lastOnboardingVersion",),
                ),
            ),
        ),
        # Its own login flow: it prints a URL and asks for the code shown after signing
        # in. With onboarding marked done it goes there at once (onboarding would first
        # check that api.anthropic.com answers, which is the login's job).
        login_command=("claude", "/login"),
        login_setting=(".claude.json", ("hasCompletedOnboarding",), True),
    ),
    Agent(
        "gemini",
        "Gemini CLI",
        ".gemini",
        host_dir=(".gemini", None),
        credentials=("oauth_creds.json", "google_accounts.json"),
        # Which way it logs in, so the imported Google login is used without asking.
        json_keys=(("settings.json", "settings.json", (("security", "auth", "selectedType"),)),),
        # The Google login, which with NO_BROWSER=true prints a URL and asks for the code.
        login_command=("gemini",),
        login_setting=("settings.json", ("security", "auth", "selectedType"), "oauth-personal"),
    ),
)
BY_NAME = {a.name: a for a in AGENTS}


def data_dir(home: str, environ: Mapping[str, str]) -> str:
    """devenv's own directory of the user: $XDG_DATA_HOME/devenv or ~/.local/share/devenv."""
    xdg = environ.get("XDG_DATA_HOME", "")
    base = xdg if xdg.startswith("/") else os.path.join(home, ".local", "share")
    return os.path.join(base, "devenv")


def state_dir(data: str, mode: str, code_real: str = "") -> str:
    """The directory holding one state (one subdirectory per agent)."""
    if mode == "user":
        return os.path.join(data, "state", "user")
    import hashlib  # noqa: PLC0415 - only for per-code-directory state

    digest = hashlib.sha256(code_real.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    name = "".join(
        c if c.isascii() and (c.isalnum() or c in "_.-") else "_"
        for c in os.path.basename(code_real.rstrip("/"))
    )
    return os.path.join(data, "state", "code", f"{name[:40] or 'root'}-{digest}")


def host_dir(agent: Agent, home: str, environ: Mapping[str, str]) -> str:
    relative, variable = agent.host_dir
    moved = environ.get(variable, "") if variable else ""
    return moved if moved.startswith("/") else os.path.join(home, relative)


def host_paths(home: str, environ: Mapping[str, str]) -> list:
    """The host's own agent files: read at most, never writable from a container."""
    paths = []
    for agent in AGENTS:
        paths.append(host_dir(agent, home, environ))
        paths += [os.path.join(home, f) for f in agent.host_files]
    return paths


# ---------------------------------------------------------------- on the host


def _private_dirs(path: str, top: str) -> None:
    """`path` and every missing directory above it, up to and including `top`, created
    0700; the levels from `top` down are made 0700 if they are not (devenv's own)."""
    missing = []
    probe = path
    while not os.path.isdir(probe):
        missing.append(probe)
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
    probe = path
    while True:
        info = os.lstat(probe)
        if info.st_mode & 0o077:
            os.chmod(probe, 0o700)
        if probe == top or len(probe) <= len(top):
            break
        probe = os.path.dirname(probe)


def _write_private(path: str, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` atomically with `data`, created with `mode` (never wider)."""
    temporary = f"{path}.devenv-{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def _read(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def _json_object(data: Optional[bytes]) -> Optional[dict]:
    import json  # noqa: PLC0415 - only when a login is imported

    if data is None:
        return None
    try:
        value = json.loads(data.decode("utf-8"))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _dig(value: Any, path: tuple) -> tuple:
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return False, None
        value = value[key]
    return True, value


def _merged_json(data: Optional[bytes], values: list) -> bytes:
    """A JSON object (from `data`, or a new one) with (key path, value) pairs set."""
    import json  # noqa: PLC0415 - only when a login is imported or started

    merged = _json_object(data) or {}
    for key_path, value in values:
        place = merged
        for key in key_path[:-1]:
            if not isinstance(place.get(key), dict):
                place[key] = {}
            place = place[key]
        place[key_path[-1]] = value
    return (json.dumps(merged, indent=2) + "\n").encode("utf-8")


def set_json(path: str, values: list) -> None:
    """Set (key path, value) pairs in a JSON object file of the state (0600), keeping the
    rest of it; an unreadable file is started afresh."""
    _write_private(path, _merged_json(_read(path), values))


def _host_json(agent: Agent, host_file: str, home: str, source: str) -> str:
    """A host file of `json_keys`: `~/...` is in the home, unless the agent's own variable
    moved its files (then it is in that directory, as the agent itself looks for it)."""
    if not host_file.startswith("~/"):
        return os.path.join(source, host_file)
    if source != os.path.join(home, agent.host_dir[0]):
        return os.path.join(source, os.path.basename(host_file))
    return os.path.join(home, host_file[2:])


def login_files(agent: Agent, home: str, source: str, state: str = "") -> list:
    """The host's login of `agent` (its files in `source`) as the files it makes in the
    agent's state: [(name, bytes)], the file that decides "logged in" last; the JSON
    files hold the login's keys, merged into the state's own file when `state` has one.
    Empty when the host has no login. Only reads."""
    first = agent.credentials[0]
    login = _read(os.path.join(source, first))
    if login is None:
        return []
    files = []
    for name in agent.credentials[1:]:
        data = _read(os.path.join(source, name))
        if data is not None:
            files.append((name, data))
    for host_file, state_file, keys in agent.json_keys:
        found = _json_object(_read(_host_json(agent, host_file, home, source)))
        if found is None:
            continue
        values = []
        for key_path in keys:
            present, value = _dig(found, key_path)
            if present:
                values.append((key_path, value))
        if values:
            own = _read(os.path.join(state, state_file)) if state else None
            files.append((state_file, _merged_json(own, values)))
    files.append((first, login))
    return files


def import_login(agent: Agent, state: str, home: str, source: str) -> bool:
    """Copy the host's login of `agent` (its files in `source`) into its state directory
    `state`, once: only when the state has no login and the host has one. Files are
    written 0600; nothing is ever written to the host's side. Returns whether anything
    was imported."""
    if os.path.lexists(os.path.join(state, agent.credentials[0])):
        return False
    files = login_files(agent, home, source, state)
    # In order: the login file itself last, as its presence means "already imported".
    for name, data in files:
        _write_private(os.path.join(state, name), data)
    return bool(files)


def _seed(spec: Any) -> tuple:
    seeds = []
    for name, state, _target, source in spec.state:
        if state:
            continue
        agent = BY_NAME[name]
        for file, data in login_files(agent, spec.host_home, source):
            seeds.append((f"{agent.target}/{file}", 0o600, data))
    return tuple(seeds)


def seed_files(spec: Any) -> tuple:
    """The host's logins for the agents whose state is a tmpfs of this run, read as the
    owner of the state, as the start channel's seed files: ((path relative to HOME,
    mode, bytes), ...). Secret: they go only into the start payload."""
    if not spec.ephemeral:
        return ()
    return as_user(spec.host_uid, spec.host_gid, _seed, spec)


def _write_generated(path: str, content: str) -> None:
    """A generated, non-secret file (passwd, group): rewritten only when it differs."""
    data = content.encode("utf-8")
    if _read(path) != data:
        _write_private(path, data, 0o644)


def _prepare(spec: Any) -> list:
    """The host side of a run, as the owner of the state: directories, logins, files."""
    notices = []
    data = spec.data_dir
    for path, _content in spec.generated:
        _private_dirs(os.path.dirname(path), data or os.path.dirname(path))
    for name, state, _target, source in spec.state:
        if not state:
            continue  # ephemeral: a tmpfs in the container
        _private_dirs(state, data)
        agent = BY_NAME[name]
        if import_login(agent, state, spec.host_home, source):
            notices.append(
                f"imported your {agent.title} login from {source} into devenv's state "
                "(once; the host's own files are never changed)"
            )
    for path, content in spec.generated:
        _write_generated(path, content)
    return notices


class EffectiveUser:
    """`with EffectiveUser(uid, gid, groups):` acts as that user (effective uid, gid and
    supplementary groups, a list or a function giving it) and back to root afterwards.
    Does nothing unless `active`, or when this process already is that user."""

    def __init__(self, uid: int, gid: int, groups: Any, *, active: bool = True) -> None:
        self.uid, self.gid, self.groups, self.active = uid, gid, groups, active
        self.saved: Optional[list] = None

    def __enter__(self) -> None:
        if not self.active or self.saved is not None or os.geteuid() == self.uid:
            return
        self.saved = os.getgroups()
        os.setgroups(self.groups() if callable(self.groups) else self.groups)
        os.setegid(self.gid)
        os.seteuid(self.uid)

    def __exit__(self, *_exc: Any) -> None:
        if self.saved is None:
            return
        os.seteuid(0)
        os.setegid(0)
        os.setgroups(self.saved)
        self.saved = None


def as_user(uid: int, gid: int, func: Callable[..., Any], *args: Any) -> Any:
    """`func(*args)` as uid:gid: directly when that is who runs it; as root, with the
    user's effective ids (and only the user's group), so nothing in the user's home is
    created, read or followed with root's rights."""
    if os.geteuid() == uid:
        return func(*args)
    if os.geteuid() != 0:
        raise PermissionError(f"cannot prepare the files of uid {uid} as uid {os.geteuid()}")
    with EffectiveUser(uid, gid, [gid]):
        return func(*args)


def _prepare_login(spec: Any, name: str) -> list:
    notices = _prepare(spec)
    agent = BY_NAME[name]
    state = next(host for n, host, _target, _source in spec.state if n == name)
    file, key_path, value = agent.login_setting
    set_json(os.path.join(state, file), [(key_path, value)])
    return notices


def prepare(spec: Any, login: Optional[str] = None) -> list:
    """Create the state directories of `spec`, import the host's logins into them once,
    write its generated files; as the owner of the state. `login` (an agent's name)
    also readies that agent's state for its own login flow. Returns notices."""
    if login:
        return as_user(spec.host_uid, spec.host_gid, _prepare_login, spec, login)
    if not spec.state and not spec.generated:
        return []
    return as_user(spec.host_uid, spec.host_gid, _prepare, spec)


# ---------------------------------------------------------------- devenv state


def tree_size(path: str) -> Optional[int]:
    """Bytes in the regular files under path (symlinks not followed); None when path is
    not a directory."""
    if os.path.islink(path) or not os.path.isdir(path):
        return None
    total = 0
    for directory, dirs, files in os.walk(path):
        for name in files:
            try:
                info = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            total += info.st_size
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(directory, d))]
    return total


def format_size(size: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def remove_tree(path: str) -> None:
    """Remove a state directory and everything below it (symlinks are removed, never
    followed)."""
    import shutil  # noqa: PLC0415 - only for `devenv state reset`

    if os.path.islink(path) or not os.path.isdir(path):
        if os.path.lexists(path):
            os.unlink(path)
        return
    shutil.rmtree(path)
