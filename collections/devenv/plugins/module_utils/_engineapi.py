# Copyright (c) devenv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small Docker Engine API client over the engine's unix socket, for the launcher.

Standard library only, Python 3.9+ (the launcher carries a byte-identical copy). The
docker CLI stays the launcher's way to run an interactive container (it handles the
terminal); this client asks the engine the few things the launcher needs around that run
without the CLI's start-up cost: is the image there, is the container running, its `oom`
event, and the exec that carries the start payload (_runspec.START_SCRIPT) on its
standard input, a stream the engine never stores.
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only; typing costs start-up time
    from collections.abc import Mapping
    from typing import Any, Optional

ENGINE_TIMEOUT = 5.0
DEFAULT_SOCKET = "/var/run/docker.sock"


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def docker_context(environ: Mapping[str, str], home: str) -> Optional[str]:
    """The docker CLI's current context (DOCKER_CONTEXT, else the config's); None: the
    default engine."""
    context = environ.get("DOCKER_CONTEXT")
    if not context:
        config_dir = environ.get("DOCKER_CONFIG") or os.path.join(home, ".docker")
        config = _read_json(os.path.join(config_dir, "config.json"))
        context = config.get("currentContext") if isinstance(config, dict) else None
    return None if not context or context == "default" else context


def engine_socket(environ: Mapping[str, str], home: str) -> Optional[str]:
    """The engine's unix socket when it can be talked to directly (the docker CLI's own
    order: DOCKER_HOST, DOCKER_CONTEXT, the config's current context), else None: then
    the docker CLI itself is asked (TCP, SSH, unreadable contexts)."""
    docker_host = environ.get("DOCKER_HOST")
    if docker_host:
        return docker_host[len("unix://") :] if docker_host.startswith("unix://") else None
    config_dir = environ.get("DOCKER_CONFIG") or os.path.join(home, ".docker")
    context = docker_context(environ, home)
    if context is None:
        return DEFAULT_SOCKET
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


def _connect(sock_path: str, timeout: float) -> Any:
    import socket  # noqa: PLC0415 - lean start-up: only when the engine is asked

    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(sock_path)
    except BaseException:
        conn.close()
        raise
    return conn


def _head(method: str, path: str, body: Optional[bytes], extra: str = "") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: docker", "User-Agent: devenv"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    head = "\r\n".join(lines) + "\r\n" + extra
    return head.encode("ascii")


def _status(head: bytes) -> int:
    try:
        return int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def request(
    sock_path: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    timeout: float = ENGINE_TIMEOUT,
) -> tuple[int, bytes]:
    """One request; returns the HTTP status and the body. Raises OSError when the engine
    cannot be reached (PermissionError when the socket is not the user's to open)."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    conn = _connect(sock_path, timeout)
    try:
        conn.sendall(_head(method, path, data, "Connection: close\r\n\r\n") + (data or b""))
        chunks = []
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        conn.close()
    head, _sep, rest = b"".join(chunks).partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        rest = _unchunk(rest)
    return _status(head), rest


def _unchunk(data: bytes) -> bytes:
    out, index = [], 0
    while index < len(data):
        line_end = data.find(b"\r\n", index)
        if line_end < 0:
            break
        size = int(data[index:line_end].split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out.append(data[line_end + 2 : line_end + 2 + size])
        index = line_end + 2 + size + 2
    return b"".join(out)


def request_json(sock_path: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    status, data = request(sock_path, method, path, body)
    try:
        return status, json.loads(data) if data else None
    except ValueError:
        return status, None


def container_state(sock_path: str, name: str) -> Optional[dict]:
    """The container's State (Running, Pid, Status, ...), or None while it does not exist."""
    status, info = request_json(sock_path, "GET", f"/containers/{name}/json")
    if status == 404 or not isinstance(info, dict):
        return None
    return info.get("State") or {}


def exec_with_input(
    sock_path: str,
    container: str,
    command: list,
    user: str,
    data: bytes,
    *,
    timeout: float = 30.0,
) -> int:
    """Run `command` in the container with `data` on its standard input (then EOF);
    returns its exit status. The data passes through the engine as a stream only."""
    status, created = request_json(
        sock_path,
        "POST",
        f"/containers/{container}/exec",
        {
            "AttachStdin": True,
            "AttachStdout": True,
            "AttachStderr": True,
            "Tty": False,
            "User": user,
            "Cmd": list(command),
        },
    )
    if status != 201 or not isinstance(created, dict) or "Id" not in created:
        raise OSError(f"the engine refused the exec (HTTP {status})")
    exec_id = created["Id"]
    body = json.dumps({"Detach": False, "Tty": False}).encode("ascii")
    upgrade = "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
    conn = _connect(sock_path, timeout)
    try:
        conn.sendall(_head("POST", f"/exec/{exec_id}/start", body, upgrade) + body)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                break
            head += chunk
        if _status(head) not in (101, 200):
            raise OSError(f"the engine refused to start the exec (HTTP {_status(head)})")
        conn.sendall(data)
        import socket  # noqa: PLC0415 - already loaded by _connect

        conn.shutdown(socket.SHUT_WR)
        while conn.recv(65536):
            pass
    finally:
        conn.close()
    for _attempt in range(50):
        status, info = request_json(sock_path, "GET", f"/exec/{exec_id}/json")
        if isinstance(info, dict) and not info.get("Running"):
            code = info.get("ExitCode")
            return code if isinstance(code, int) else -1
        import time  # noqa: PLC0415 - rarely reached: the exec has normally ended

        time.sleep(0.02)
    return -1
