# Copyright: kuatecno devenv maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Engine API choreography of one secure run (used by the ``secure_run`` module).

It carries out a run that ``_runspec`` has already decided: every isolation setting comes
from ``RunSpec.engine_create_body()`` and is passed to the engine untouched. This file only
orders the Engine API calls so that nothing is pulled, no output is lost and no container
is left behind:

1. the image must already be present (``Engine.require_image``; never ``pull``), checked
   before the caller fetches any secret;
2. ``create`` with the spec's body (``HostConfig.AutoRemove`` is set by the spec, so the
   daemon removes the container after it has run, even if this process is killed);
3. ``inspect`` reads back the effective settings;
4. the event stream (``oom``, ``die``, ``destroy``) and the output stream are attached
   *before* ``start``: with auto-removal the output vanishes with the container;
5. ``start``; a run with secrets (or files to seed) then waits in its start step until
   ``deliver`` writes the start payload to the standard input of an exec: a stream the
   engine never stores, so no secret is part of the container's configuration;
6. wait for ``destroy`` with a deadline; on timeout ``kill`` (then the daemon removes it).

A container that was created but never started is not auto-removed by the daemon. A
``finally`` clause and handlers for SIGTERM, SIGINT and SIGHUP remove it; for SIGKILL,
which no handler sees, a small detached watchdog (``_WATCHDOG``) removes it by name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, Callable, Optional

try:
    import docker
    from docker import errors as docker_errors

    HAS_DOCKER_SDK = True
    DOCKER_SDK_IMPORT_ERROR: Optional[ImportError] = None
except ImportError as exc:  # pragma: no cover - depends on the target host
    docker = None
    docker_errors = None
    HAS_DOCKER_SDK = False
    DOCKER_SDK_IMPORT_ERROR = exc

from ansible_collections.kuatecno.devenv.plugins.module_utils import _network
from ansible_collections.kuatecno.devenv.plugins.module_utils._runspec import (
    DELIVER_COMMAND,
    RunSpec,
)

REDACTED = "**REDACTED**"
DEFAULT_API_TIMEOUT = 60
# After the command ends the daemon removes the container; this bounds that wait.
_REMOVAL_GRACE = 30
# Seconds the watchdog keeps looking for a container whose create request was in flight.
_WATCHDOG_SEARCH = 10

# Run by a detached ``python -c`` child. It reads the container name and then "done" from
# its stdin. If stdin reaches EOF before "done" (the module died between create and start,
# SIGKILL included), it removes the never-started container by name.
_WATCHDOG = r"""
import sys, time
name = sys.stdin.readline().strip()
state = sys.stdin.readline().strip()
if name and state != "done":
    import docker
    kwargs = docker.utils.kwargs_from_env()
    if sys.argv[1]:
        kwargs["base_url"] = sys.argv[1]
    api = docker.APIClient(version="auto", timeout=30, **kwargs)
    deadline = time.monotonic() + float(sys.argv[2])
    while True:
        try:
            api.remove_container(name, force=True)
            break
        except docker.errors.NotFound:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
"""


class SecureRunError(Exception):
    """A run could not be carried out; the message says why and what to do."""


def missing_sdk_message() -> str:
    return (
        "the Docker SDK for Python is not installed for the interpreter running this module "
        f"({sys.executable}): install the 'docker' package (pip install docker) on the target "
        f"host ({DOCKER_SDK_IMPORT_ERROR})"
    )


def redact_env(env: Optional[Iterable[str]], names: Iterable[str]) -> list[str]:
    """``NAME=value`` entries with the values of ``names`` replaced."""
    hidden = set(names)
    out = []
    for item in env or []:
        key, sep, _value = item.partition("=")
        out.append(f"{key}={REDACTED}" if sep and key in hidden else item)
    return out


def redact_body(body: dict, names: Iterable[str]) -> dict:
    """A copy of an engine create body with the values of ``names`` redacted."""
    body = dict(body)
    if "Env" in body:
        body["Env"] = redact_env(body["Env"], names)
    return body


def effective_settings(info: dict, names: Iterable[str]) -> dict:
    """The effective settings of a container as read back from the engine (redacted)."""
    config = info.get("Config") or {}
    keep = ("Image", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "Tty", "OpenStdin")
    result_config = {key: config.get(key) for key in keep}
    result_config["Env"] = redact_env(config.get("Env"), names)
    return {
        "id": info.get("Id"),
        "name": (info.get("Name") or "").lstrip("/"),
        "image_id": info.get("Image"),
        "config": result_config,
        "host_config": info.get("HostConfig") or {},
        "mounts": info.get("Mounts") or [],
    }


class _Bounded:
    """Keeps the first ``limit`` bytes of a stream and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self.limit - self.size
        if room > 0:
            self.parts.append(data[:room])
            self.size += min(room, len(data))
        self.dropped += max(0, len(data) - max(room, 0))

    def text(self) -> str:
        return b"".join(self.parts).decode("utf-8", errors="replace")


class _Interrupted(BaseException):
    """Raised in the main thread by the signal handlers installed during a run."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _install_signal_handlers() -> dict:
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, _frame: Any) -> None:
        raise _Interrupted(signum)

    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        previous[signum] = signal.signal(signum, handler)
    return previous


def _restore_signal_handlers(previous: dict) -> None:
    for signum, old in previous.items():
        signal.signal(signum, old)


def _start_watchdog(docker_host: Optional[str], name: str) -> Optional[subprocess.Popen]:
    """A detached child that removes ``name`` if this process dies before start."""
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, docker_host or "", str(_WATCHDOG_SEARCH)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except OSError:
        return None
    try:
        proc.stdin.write(f"{name}\n".encode())  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
    except OSError:
        return None
    return proc


def _release_watchdog(proc: Optional[subprocess.Popen]) -> None:
    """Tell the watchdog the container is taken care of (started, or removed here)."""
    if proc is None:
        return
    try:
        proc.stdin.write(b"done\n")  # type: ignore[union-attr]
        proc.stdin.close()  # type: ignore[union-attr]
    except OSError:
        pass
    # It exits at once; reap it so no zombie is left.
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


class _SdkTransport:
    """The docker SDK's client as the transport ``_network`` calls (the launcher uses
    its own over the unix socket): same requests, same code, either adapter."""

    def __init__(self, api: Any) -> None:
        self.api = api

    def call(
        self,
        method: str,
        path: str,
        query: Optional[dict] = None,
        body: Any = None,
        timeout: Optional[float] = None,
    ) -> tuple:
        response = self.api.request(
            method,
            self.api._url(path),
            params=query,
            json=body,
            timeout=timeout or DEFAULT_API_TIMEOUT,
        )
        return response.status_code, response.content


class Engine:
    """One engine connection: ``api`` for requests (with a timeout) and ``stream_api``
    for the output and event streams, which may be silent longer than any timeout."""

    def __init__(self, api: Any, stream_api: Any = None, docker_host: Optional[str] = None):
        self.api = api
        self.stream_api = stream_api
        self.docker_host = docker_host

    @classmethod
    def connect(
        cls, docker_host: Optional[str] = None, api_timeout: int = DEFAULT_API_TIMEOUT
    ) -> Engine:
        """A client that has answered once (it negotiates the API version), or a clear
        SecureRunError. The stream client reuses that version: no second round trip."""
        if not HAS_DOCKER_SDK:
            raise SecureRunError(missing_sdk_message())
        base_url = docker_host or os.environ.get("DOCKER_HOST") or None
        try:
            # DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH as the docker CLI reads them.
            kwargs = docker.utils.kwargs_from_env()
            if docker_host:
                kwargs["base_url"] = docker_host
            api = docker.APIClient(version="auto", timeout=api_timeout, **kwargs)
            stream_api = docker.APIClient(version=api.api_version, timeout=None, **kwargs)
        except docker_errors.DockerException as exc:
            raise SecureRunError(
                f"the Docker engine at {base_url or 'the default socket'} is unreachable "
                f"({exc}); start it (or fix docker_host) and retry"
            ) from exc
        return cls(api, stream_api, docker_host)

    def require_image(self, image: str) -> str:
        """Fail unless the image is present locally (a run never pulls); its id."""
        try:
            return (self.api.inspect_image(image) or {}).get("Id") or ""
        except docker_errors.ImageNotFound as exc:
            raise SecureRunError(
                f"image '{image}' is not present on this host and is never pulled at run "
                "time: build it (role kuatecno.devenv.devenv_image) or pull it explicitly first"
            ) from exc
        except docker_errors.APIError as exc:
            raise SecureRunError(
                f"cannot inspect image '{image}': {exc.explanation or exc}"
            ) from exc

    def ensure_proxy(self, spec: RunSpec) -> str:
        """The run's egress proxy running (network: allowlist), created when missing;
        the same code the launcher runs. Fail closed: SecureRunError without it."""
        try:
            return _network.ensure(_SdkTransport(self.api), spec.proxy, spec.labels)
        except _network.ProxyError as exc:
            raise SecureRunError(f"{exc}; nothing was started (network: allowlist)") from None

    def proxy_report(self, spec: RunSpec, since: float) -> dict:
        """After a run: the destinations the proxy refused for it, and whether the proxy
        stopped while it ran."""
        done = _network.after_run(_SdkTransport(self.api), spec.proxy, spec.name, since)
        return {
            "network_refused": [
                {"destination": dest, "count": count}
                for dest, count in sorted(done["refused"].items())
            ],
            "proxy_stopped": done["stopped"],
        }

    def run(self, spec: RunSpec, *, timeout: float = 3600, output_limit: int = 1024 * 1024) -> dict:
        """Create, start and wait for the container of ``spec`` (its image checked by
        ``require_image`` before). Returns ``rc``, ``stdout``, ``stderr``,
        ``stdout_truncated``, ``stderr_truncated``, ``oom_killed``, ``timed_out`` (killed
        at the deadline), ``removed`` and ``container`` (effective settings, secret values
        redacted). Raises SecureRunError when the run could not be carried out."""
        one = _Run(self.api, self.stream_api or self.api, output_limit)
        previous = _install_signal_handlers()
        watchdog = _start_watchdog(self.docker_host, spec.name)
        try:
            container = one.create(spec.engine_create_body(), spec.name, spec.secret_names)
            one.attach()
            one.start()
            _release_watchdog(watchdog)
            watchdog = None
            if spec.uses_start:
                one.deliver(spec)
            timed_out = one.wait(timeout)
        except _Interrupted as exc:
            if one.started:
                _kill(self.api, one.container_id)
            raise SecureRunError(
                f"interrupted by signal {exc.signum}; the container was stopped"
            ) from None
        finally:
            one.close()
            _release_watchdog(watchdog)
            _restore_signal_handlers(previous)

        state = one.state
        if state["error"] is not None and state["rc"] is None:
            raise SecureRunError(f"lost the engine's event stream: {state['error']}")
        return {
            "rc": state["rc"],
            "stdout": one.out.text(),
            "stderr": one.err.text(),
            "stdout_truncated": one.out.dropped > 0,
            "stderr_truncated": one.err.dropped > 0,
            "oom_killed": state["oom"],
            "timed_out": timed_out,
            "removed": state["removed"],
            "container": container,
        }


class _Run:
    """The Engine API calls of one run, in the order that loses nothing."""

    def __init__(self, api: Any, stream_api: Any, output_limit: int) -> None:
        self.api = api
        self.stream_api = stream_api
        self.out = _Bounded(output_limit)
        self.err = _Bounded(output_limit)
        self.state: dict[str, Any] = {"rc": None, "oom": False, "removed": False, "error": None}
        self.finished = threading.Event()
        self.name: Optional[str] = None
        self.container_id: Optional[str] = None
        self.created: Optional[str] = None
        self.started = False
        self.streams: list[Any] = []
        self.output_thread: Optional[threading.Thread] = None

    def create(self, body: dict, name: str, redact_names: Iterable[str]) -> dict:
        self.name = name
        try:
            created = self.api.create_container_from_config(body, name=name)
        except docker_errors.APIError as exc:
            raise SecureRunError(
                f"the engine refused to create the container: {exc.explanation or exc}"
            ) from exc
        self.container_id = created["Id"]
        info = self.api.inspect_container(self.container_id)
        self.created = info.get("Created")
        return effective_settings(info, redact_names)

    def attach(self) -> None:
        """Events and output, both subscribed before start (auto-removal loses them)."""
        events = self.stream_api.events(
            # Replays from the creation second, so no event can slip past the subscription.
            since=_timestamp(self.created),
            filters={"type": "container", "container": self.container_id},
            decode=True,
        )
        self.streams.append(events)
        output = self.stream_api.attach(
            self.container_id, stdout=True, stderr=True, stream=True, demux=True
        )
        self.streams.append(output)
        self.output_thread = _daemon(_read_output, output, self.out, self.err)
        _daemon(_read_events, events, self.state, self.finished)

    def start(self) -> None:
        try:
            self.api.start(self.container_id)
        except docker_errors.APIError as exc:
            raise SecureRunError(
                f"the engine could not start the container: {exc.explanation or exc}"
            ) from exc
        self.started = True

    def deliver(self, spec: RunSpec) -> None:
        """The start payload, through an exec's standard input; the container is killed
        (and removed by the engine) when it cannot be handed over."""
        try:
            created = self.api.exec_create(
                self.container_id,
                list(DELIVER_COMMAND),
                stdin=True,
                stdout=False,
                stderr=False,
                user=spec.user,
            )
            stream = self.api.exec_start(created["Id"], socket=True)
            raw = getattr(stream, "_sock", stream)
            try:
                raw.sendall(spec.start_payload())
                raw.shutdown(socket.SHUT_WR)
                while raw.recv(65536):
                    pass
            finally:
                stream.close()
            code = self._exit_code(created["Id"])
        except (docker_errors.APIError, OSError) as exc:
            _kill(self.api, self.container_id)
            raise SecureRunError(f"could not hand the start to the container: {exc}") from exc
        if code != 0:
            _kill(self.api, self.container_id)
            raise SecureRunError(
                f"could not hand the start to the container (exit {code}); nothing was run"
            )

    def _exit_code(self, exec_id: str) -> Optional[int]:
        """The exec's exit status; the stream may close a moment before it has ended."""
        for _attempt in range(100):
            info = self.api.exec_inspect(exec_id)
            if not info.get("Running"):
                return info.get("ExitCode")
            time.sleep(0.02)
        return None

    def wait(self, timeout: float) -> bool:
        """Wait for the removal; kill at the deadline. True when it timed out."""
        timed_out = not self.finished.wait(timeout)
        if timed_out:
            _kill(self.api, self.container_id)
            self.finished.wait(_REMOVAL_GRACE)
        if self.output_thread is not None:
            self.output_thread.join(_REMOVAL_GRACE)
        return timed_out

    def close(self) -> None:
        if self.name and not self.started:
            # Never started: the daemon's auto-removal does not apply. By name when a
            # signal came while the create request was in flight (the name is unique).
            _remove(self.api, self.container_id or self.name)
        for stream in self.streams:
            try:
                stream.close()
            except Exception:  # noqa: S110 - closing a dead stream may fail; harmless
                pass


def _daemon(target: Callable[..., None], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _timestamp(created: Optional[str]) -> int:
    """The engine's RFC 3339 ``Created`` time as whole Unix seconds (rounded down)."""
    if not created:
        return int(time.time()) - 60
    seconds = datetime.strptime(created.split(".")[0].rstrip("Z"), "%Y-%m-%dT%H:%M:%S")
    return int(seconds.replace(tzinfo=timezone.utc).timestamp())


def _read_output(output: Iterable, out: _Bounded, err: _Bounded) -> None:
    try:
        for stdout, stderr in output:
            if stdout:
                out.add(stdout)
            if stderr:
                err.add(stderr)
    except Exception:  # noqa: S110 - the stream ends when the container goes away
        pass


def _read_events(events: Iterable, state: dict, finished: threading.Event) -> None:
    try:
        for event in events:
            action = event.get("Action") or event.get("status") or ""
            if action == "oom":
                state["oom"] = True
            elif action == "die":
                attributes = (event.get("Actor") or {}).get("Attributes") or {}
                try:
                    state["rc"] = int(attributes.get("exitCode"))
                except (TypeError, ValueError):
                    state["rc"] = -1
            elif action == "destroy":
                state["removed"] = True
                break
    except Exception as exc:  # reported by run()
        state["error"] = str(exc)
    finally:
        finished.set()


def _kill(api: Any, container_id: Optional[str]) -> None:
    try:
        api.kill(container_id)
    except docker_errors.APIError:
        pass


def _remove(api: Any, container_id: Optional[str]) -> None:
    try:
        api.remove_container(container_id, force=True)
    except docker_errors.APIError:
        pass
