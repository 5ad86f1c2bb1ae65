# Copyright: kuatecno devenv maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker SDK adapter of the secure run (used by the ``secure_run`` module).

It carries out a run that ``_runspec`` has already decided: every isolation setting comes
from ``RunSpec.engine_create_body()`` and is passed to the engine untouched. This file only
orders the Engine API calls so that nothing is pulled, no output is lost and no container
is left behind:

1. the image must already be present (``inspect_image``; never ``pull``);
2. ``create`` with the spec's body (``HostConfig.AutoRemove`` is set by the spec, so the
   daemon removes the container after it has run, even if this process is killed);
3. ``inspect`` reads back the effective settings;
4. the event stream (``oom``, ``die``, ``destroy``) and the output stream are attached
   *before* ``start``: with auto-removal the logs vanish with the container;
5. ``start``; wait for ``destroy`` with a deadline; on timeout ``kill`` (then the daemon
   removes it).

A container that was created but never started is not auto-removed by the daemon. A
``finally`` clause and handlers for SIGTERM, SIGINT and SIGHUP remove it; for SIGKILL,
which no handler sees, a small detached watchdog (``_WATCHDOG``) removes it by name.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone

try:
    import docker
    from docker import errors as docker_errors

    HAS_DOCKER_SDK = True
    DOCKER_SDK_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the target host
    docker = None
    docker_errors = None
    HAS_DOCKER_SDK = False
    DOCKER_SDK_IMPORT_ERROR = exc

from ansible_collections.kuatecno.devenv.plugins.module_utils import _infisical
from ansible_collections.kuatecno.devenv.plugins.module_utils._runspec import (
    RunSpecError,
    build_spec,
    format_memory,
)

REDACTED = "**REDACTED**"
DEFAULT_API_TIMEOUT = 60
SIGKILL_STATUS = 128 + 9
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


def missing_sdk_message():
    return (
        "the Docker SDK for Python is not installed for the interpreter running this module "
        f"({sys.executable}): install the 'docker' package (pip install docker) on the target "
        f"host ({DOCKER_SDK_IMPORT_ERROR})"
    )


def connect(docker_host=None, api_timeout=DEFAULT_API_TIMEOUT):
    """A low-level client that has answered once, or a clear SecureRunError."""
    if not HAS_DOCKER_SDK:
        raise SecureRunError(missing_sdk_message())
    base_url = docker_host or os.environ.get("DOCKER_HOST") or None
    try:
        # DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH as the docker CLI reads them.
        kwargs = docker.utils.kwargs_from_env()
        if docker_host:
            kwargs["base_url"] = docker_host
        return docker.APIClient(version="auto", timeout=api_timeout, **kwargs)
    except docker_errors.DockerException as exc:
        raise SecureRunError(
            f"the Docker engine at {base_url or 'the default socket'} is unreachable ({exc}); "
            "start it (or fix docker_host) and retry"
        ) from exc


def require_image(api, image):
    """Fail unless the image is present locally; a run never pulls."""
    try:
        api.inspect_image(image)
    except docker_errors.ImageNotFound as exc:
        raise SecureRunError(
            f"image '{image}' is not present on this host and is never pulled at run time: "
            "build it (role kuatecno.devenv.devenv_image) or pull it explicitly first"
        ) from exc
    except docker_errors.APIError as exc:
        raise SecureRunError(f"cannot inspect image '{image}': {exc.explanation or exc}") from exc


def redact_env(env, names):
    """``NAME=value`` entries with the values of ``names`` replaced."""
    names = set(names)
    out = []
    for item in env or []:
        key, sep, _value = item.partition("=")
        out.append(f"{key}={REDACTED}" if sep and key in names else item)
    return out


def redact_body(body, names):
    """A copy of an engine create body with the values of ``names`` redacted."""
    body = dict(body)
    if "Env" in body:
        body["Env"] = redact_env(body["Env"], names)
    return body


def effective_settings(info, names):
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

    def __init__(self, limit):
        self.limit = limit
        self.parts = []
        self.size = 0
        self.dropped = 0

    def add(self, data):
        room = self.limit - self.size
        if room > 0:
            self.parts.append(data[:room])
            self.size += min(room, len(data))
        self.dropped += max(0, len(data) - max(room, 0))

    def text(self):
        return b"".join(self.parts).decode("utf-8", errors="replace")


class _Interrupted(BaseException):
    """Raised in the main thread by the signal handlers installed during a run."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _install_signal_handlers():
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum, _frame):
        raise _Interrupted(signum)

    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        previous[signum] = signal.signal(signum, handler)
    return previous


def _restore_signal_handlers(previous):
    for signum, old in previous.items():
        signal.signal(signum, old)


def _start_watchdog(docker_host, name):
    """A detached child that removes ``name`` if this process dies before start."""
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WATCHDOG,
                docker_host or "",
                str(_WATCHDOG_SEARCH),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except OSError:
        return None
    try:
        proc.stdin.write(f"{name}\n".encode())
        proc.stdin.flush()
    except OSError:
        return None
    return proc


def _release_watchdog(proc):
    """Tell the watchdog the container is taken care of (started, or removed here)."""
    if proc is None:
        return
    try:
        proc.stdin.write(b"done\n")
        proc.stdin.close()
    except OSError:
        pass
    # It exits at once; reap it so no zombie is left.
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def run(
    body,
    *,
    name,
    image,
    docker_host=None,
    timeout=3600,
    output_limit=1024 * 1024,
    redact_names=(),
    api_timeout=DEFAULT_API_TIMEOUT,
    api=None,
    stream_api=None,
):
    """Create, start and wait for one container described by ``body``.

    ``body`` is ``RunSpec.engine_create_body()`` and is sent as is. Returns a dict with
    ``rc``, ``stdout``, ``stderr``, ``stdout_truncated``, ``stderr_truncated``,
    ``oom_killed``, ``timed_out`` (the container was killed at the deadline), ``removed``
    and ``container`` (effective settings, the values of ``redact_names`` redacted).
    Raises SecureRunError when the run could not be carried out.
    """
    if api is None:
        api = connect(docker_host, api_timeout)
    if stream_api is None:
        # Output and events may be silent for longer than any request timeout.
        stream_api = connect(docker_host, None)
    require_image(api, image)
    one = _Run(api, stream_api, output_limit)
    previous = _install_signal_handlers()
    watchdog = _start_watchdog(docker_host, name)
    try:
        container = one.create(body, name, redact_names)
        one.attach()
        one.start()
        _release_watchdog(watchdog)
        watchdog = None
        timed_out = one.wait(timeout)
    except _Interrupted as exc:
        if one.started:
            _kill(api, one.container_id)
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

    def __init__(self, api, stream_api, output_limit):
        self.api = api
        self.stream_api = stream_api
        self.out = _Bounded(output_limit)
        self.err = _Bounded(output_limit)
        self.state = {"rc": None, "oom": False, "removed": False, "error": None}
        self.finished = threading.Event()
        self.name = None
        self.container_id = None
        self.created = None
        self.started = False
        self.streams = []
        self.output_thread = None

    def create(self, body, name, redact_names):
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

    def attach(self):
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
        self.output_thread = threading.Thread(
            target=_read_output, args=(output, self.out, self.err), daemon=True
        )
        events_thread = threading.Thread(
            target=_read_events, args=(events, self.state, self.finished), daemon=True
        )
        self.output_thread.start()
        events_thread.start()

    def start(self):
        try:
            self.api.start(self.container_id)
        except docker_errors.APIError as exc:
            raise SecureRunError(
                f"the engine could not start the container: {exc.explanation or exc}"
            ) from exc
        self.started = True

    def wait(self, timeout):
        """Wait for the removal; kill at the deadline. True when it timed out."""
        timed_out = not self.finished.wait(timeout)
        if timed_out:
            _kill(self.api, self.container_id)
            self.finished.wait(_REMOVAL_GRACE)
        self.output_thread.join(_REMOVAL_GRACE)
        return timed_out

    def close(self):
        if self.name and not self.started:
            # Never started: the daemon's auto-removal does not apply. By name when a
            # signal came while the create request was in flight (the name is unique).
            _remove(self.api, self.container_id or self.name)
        for stream in self.streams:
            try:
                stream.close()
            except Exception:  # noqa: S110 - closing a dead stream may fail; harmless
                pass


def _timestamp(created):
    """The engine's RFC 3339 ``Created`` time as whole Unix seconds (rounded down)."""
    if not created:
        return int(time.time()) - 60
    seconds = datetime.strptime(created.split(".")[0].rstrip("Z"), "%Y-%m-%dT%H:%M:%S")
    return int(seconds.replace(tzinfo=timezone.utc).timestamp())


def _read_output(output, out, err):
    try:
        for stdout, stderr in output:
            if stdout:
                out.add(stdout)
            if stderr:
                err.add(stderr)
    except Exception:  # noqa: S110 - the stream ends when the container goes away
        pass


def _read_events(events, state, finished):
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


def _kill(api, container_id):
    try:
        api.kill(container_id)
    except docker_errors.APIError:
        pass


def _remove(api, container_id):
    try:
        api.remove_container(container_id, force=True)
    except docker_errors.APIError:
        pass


# ---------------------------------------------------------------- the module's glue

# Module options that are run specification settings, under the same names.
SETTING_OPTIONS = (
    "image",
    "command",
    "workdir",
    "code_dir",
    "container_home",
    "mounts",
    "credentials",
    "gitconfig",
    "ssh",
    "memory",
    "memory_swap",
    "cpus",
    "pids_limit",
    "read_only_rootfs",
    "run_as_root",
    "user",
    "labels",
    "env",
)
INFISICAL_SETTINGS = ("project_id", "environment", "path", "domain", "timeout", "allow_empty")


def settings_from_params(params):
    """The run specification settings for the module's parameters.

    Unset options stay ``None`` so the specification's own defaults apply; ``gitconfig``
    unset means no git configuration (``None`` is meaningful to the specification)."""
    settings = {key: params.get(key) for key in SETTING_OPTIONS}
    settings["mounts"] = [dict(item) for item in params.get("mounts") or []]
    settings["credentials"] = [dict(item) for item in params.get("credentials") or []]
    settings["labels"] = dict(params.get("labels") or {})
    settings["env"] = dict(params.get("env") or {})
    infisical = params.get("infisical")
    if infisical:
        secrets = {key: infisical.get(key) for key in INFISICAL_SETTINGS}
        secrets["provider"] = "infisical"
        secrets["binary"] = infisical.get("binary") or "infisical"
        settings["secrets"] = secrets
    return settings


def merge_secrets(given, fetched):
    """Secrets from the ``secrets`` option and from Infisical; a name in both is an error."""
    both = sorted(set(given) & set(fetched))
    if both:
        raise SecureRunError(
            "secrets: {} given in the secrets option and also fetched from Infisical; "
            "remove one".format(", ".join(both))
        )
    merged = dict(given)
    merged.update(fetched)
    return merged


def planned(spec):
    """The planned run without secret values (for check mode and the result)."""
    view = spec.describe()
    view["body"] = redact_body(spec.engine_create_body(), spec.secret_names)
    return view


def _fetch(settings, infisical):
    environ = dict(os.environ)
    if infisical.get("token"):
        # The token reaches the infisical process only through its environment.
        environ["INFISICAL_TOKEN"] = infisical["token"]
    return _infisical.fetch_secrets(settings, environ=environ)


def _run_message(result, expected, memory=None):
    rc = result["rc"]
    limit = f" ({format_memory(memory)})" if memory else ""
    if result["timed_out"]:
        return "the command did not finish within the timeout; the container was killed"
    if result["oom_killed"]:
        return f"memory limit reached{limit}: the engine killed the command (exit status {rc})"
    if rc == SIGKILL_STATUS and rc not in expected:
        # Some engines (cgroup v1 on recent kernels) never report OOMKilled.
        return (
            f"the command was killed (exit status {rc}, SIGKILL), most likely because it "
            f"reached the memory limit{limit}; the engine did not confirm an out-of-memory kill"
        )
    if rc not in expected:
        return "command exited with {} (expected {})".format(rc, ", ".join(map(str, expected)))
    return f"command exited with {rc}"


def execute(module):
    """Validate, (in check mode) report the plan, else fetch secrets and run. Never returns."""
    scratch = None
    if not module.params.get("code_dir"):
        # No code directory given: a fresh empty one, so nothing of the host is writable.
        scratch = tempfile.mkdtemp(prefix="devenv-secure-run-")
    try:
        _execute(module, scratch)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def _execute(module, scratch):
    params = module.params
    settings = settings_from_params(params)
    if scratch:
        settings["code_dir"] = scratch
    given = dict(params.get("secrets") or {})
    try:
        spec = build_spec(settings, secrets=given)
    except RunSpecError as exc:
        module.fail_json(msg=f"invalid run specification: {exc}", ran=False)
    for warning in spec.warnings:
        module.warn(warning)

    if module.check_mode:
        module.exit_json(
            changed=True, ran=False, spec=planned(spec), msg="check mode: nothing was run"
        )
    if scratch and os.geteuid() == 0:
        os.chown(scratch, spec.uid, spec.gid)

    try:
        # Engine and image first: nothing is fetched for a run that cannot start.
        api = connect(params.get("docker_host"))
        require_image(api, spec.image)
        if params.get("infisical"):
            fetched = _fetch(settings, params["infisical"])
            # Ansible masks these in every returned string, like no_log options.
            module.no_log_values.update(value for value in fetched.values() if value)
            spec = build_spec(settings, secrets=merge_secrets(given, fetched))
        result = run(
            spec.engine_create_body(),
            name=spec.name,
            image=spec.image,
            docker_host=params.get("docker_host"),
            timeout=params["timeout"],
            output_limit=params["output_limit"],
            redact_names=spec.secret_names,
            api=api,
        )
    except (SecureRunError, RunSpecError, _infisical.SecretsError) as exc:
        module.fail_json(msg=str(exc), ran=False, spec=planned(spec))

    expected = params["expected_rc"]
    msg = _run_message(result, expected, spec.memory)
    failed = result["timed_out"] or result["rc"] not in expected
    module.exit_json(changed=True, failed=failed, ran=True, msg=msg, spec=planned(spec), **result)
