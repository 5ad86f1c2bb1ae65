# Copyright: kuatecno devenv maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``secure_run`` module's glue: its options, and one run from them.

The options that are settings come from the settings table (``_settings``), so the
module and the launcher take the same settings under the same names and rules. A run:
parse the options once (one layer), resolve once for the host running the module (one
RunSpec), connect once, check the image once, fetch secrets, attach them to the same
spec, and let ``_engine`` carry out the run.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
import time
from typing import Any, NoReturn, Optional

from ansible_collections.kuatecno.devenv.plugins.module_utils import _agents, _infisical
from ansible_collections.kuatecno.devenv.plugins.module_utils._engine import (
    Engine,
    SecureRunError,
    redact_body,
)
from ansible_collections.kuatecno.devenv.plugins.module_utils._runspec import (
    Host,
    RunSpec,
    RunSpecError,
    audit,
    check_engine_info,
    resolve,
)
from ansible_collections.kuatecno.devenv.plugins.module_utils._settings import (
    MODULE,
    SECRET_SETTINGS,
    format_memory,
    module_options,
    parse,
)

SIGKILL_STATUS = 128 + 9
# Module options that are run specification settings, under the same names.
SETTING_OPTIONS = tuple(module_options())
# The `infisical` option's keys that are `secrets` settings (all but the token).
INFISICAL_SETTINGS = tuple(module_options(SECRET_SETTINGS))


def argument_spec() -> dict[str, dict]:
    """The module's argument spec: the settings' options from the table, then the
    options only the module has."""
    spec = module_options()
    spec["secrets"] = {"type": "dict", "default": {}, "no_log": True}
    infisical = module_options(SECRET_SETTINGS)
    infisical["token"] = {"type": "str", "no_log": True}
    spec["infisical"] = {"type": "dict", "options": infisical}
    spec["expected_rc"] = {"type": "list", "elements": "int", "default": [0]}
    spec["output_limit"] = {"type": "int", "default": 1048576}
    spec["timeout"] = {"type": "int", "default": 3600}
    spec["docker_host"] = {"type": "str"}
    spec["private_dir"] = {"type": "path"}
    return spec


def settings_from_params(params: dict) -> dict[str, Any]:
    """The settings layer of the module's parameters. Unset options are ``None``, so
    the table's (module) defaults apply."""
    settings = {key: params.get(key) for key in SETTING_OPTIONS}
    if settings.get("command") is not None:
        settings["command"] = command_argv(settings["command"])
    infisical = params.get("infisical")
    if infisical:
        settings["secrets"] = {key: infisical.get(key) for key in INFISICAL_SETTINGS}
    return settings


def merge_secrets(given: dict[str, str], fetched: dict[str, str]) -> dict[str, str]:
    """Secrets from the ``secrets`` option and from Infisical; a name in both is an error."""
    both = sorted(set(given) & set(fetched))
    if both:
        raise SecureRunError(
            "secrets: {} given in the secrets option and also fetched from Infisical; "
            "remove one".format(", ".join(both))
        )
    return dict(given, **fetched)


def planned(spec: RunSpec) -> dict[str, Any]:
    """The planned run without secret values (for check mode and the result)."""
    view = spec.describe()
    view["body"] = redact_body(spec.engine_create_body(), spec.secret_names)
    return view


def _fetch(secrets: dict[str, Any], infisical: dict[str, Any]) -> dict[str, str]:
    environ = dict(os.environ)
    if infisical.get("token"):
        # The token reaches the infisical process only through its environment, in every
        # variable the CLI reads, so a token of the module's own environment
        # (INFISICAL_UNIVERSAL_AUTH_ACCESS_TOKEN is read before INFISICAL_TOKEN) can never
        # take its place.
        environ = _infisical.environ_with_token(environ, infisical["token"])
    return _infisical.fetch_secrets(secrets, environ=environ)


def command_argv(value: Any) -> list[str]:
    """The `command` option as the argument list of the run: a list as given (numbers
    become text, as Ansible does for a list of strings); a string split into words the
    way a POSIX shell splits them (quotes, backslashes), never on commas, and without a
    shell (no variables, globs, pipes or redirections, as ansible.builtin.command)."""
    if isinstance(value, str):
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise RunSpecError(
                f"command: {value!r} cannot be split into words ({exc}); close the quote, "
                "or give the command as a list"
            ) from None
        if not words:
            raise RunSpecError("command: the string holds no command; give the program to run")
        return words
    if not isinstance(value, (list, tuple)):
        raise RunSpecError("command: give a list of arguments or a string")
    words = []
    for index, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise RunSpecError(
                f"command[{index}]: expected a string, got {type(item).__name__}; quote it"
            )
        words.append(item if isinstance(item, str) else str(item))
    return words


def _run_message(result: dict[str, Any], expected: list[int], memory: Optional[int] = None) -> str:
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


def execute(module: Any) -> NoReturn:
    """Validate, (in check mode) report the plan, else fetch secrets and run. Never returns."""
    # A private directory of this run: the container's generated passwd and group, and,
    # without a code directory, a fresh empty one, so nothing of the host is writable.
    private = tempfile.mkdtemp(prefix="devenv-secure-run-", dir=module.params.get("private_dir"))
    try:
        _execute(module, private)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _host(params: dict[str, Any]) -> Host:
    """This host as the run sees it; the engine named by docker_host is the one whose
    socket no mount may reach."""
    host = Host.current()
    if params.get("docker_host"):
        host = host.replace(environ=dict(host.environ, DOCKER_HOST=params["docker_host"]))
    return host


def _agent_state(module: Any, spec: RunSpec) -> RunSpec:
    """The agents' state of a run on this host, as the launcher keeps it."""
    if not spec.ephemeral:
        # Kept in the user's devenv directory (created as that user, the host's login
        # imported once).
        for notice in _agents.prepare(spec.replace(generated=())):
            module.warn(notice)
        return spec
    # The login of the user running the module, seeded into the tmpfs state through the
    # start channel (written nowhere on the host). Run as root for another user, nobody's
    # login is taken along unless asked (ephemeral: false).
    if os.geteuid() == spec.host_uid:
        return spec.replace(seed_files=_agents.seed_files(spec))
    return spec


def _before_run(module: Any, engine: Engine, spec: RunSpec, settings: Any) -> RunSpec:
    """What must hold before the container starts (root only where the engine remaps
    users, gVisor's runtime where asked for, the egress proxy running), then the
    secrets, attached to the same spec."""
    if spec.needs_engine_info:
        check_engine_info(spec, engine.api.info())
    if spec.proxy is not None:
        engine.ensure_proxy(spec)
    spec = _agent_state(module, spec)
    if not settings["secrets"]:
        return spec
    fetched = _fetch(settings["secrets"], module.params["infisical"])
    # Ansible masks these in every returned string, like no_log options.
    module.no_log_values.update(value for value in fetched.values() if value)
    return spec.with_secrets(merge_secrets(dict(spec.secrets), fetched))


def _execute(module: Any, private: str) -> NoReturn:
    params = module.params
    scratch = None
    if not params.get("code_dir"):
        scratch = os.path.join(private, "code")
        os.mkdir(scratch, 0o700)
    files = os.path.join(private, "files")
    try:
        layer = settings_from_params(params)
        if scratch:
            layer["code_dir"] = scratch
        settings = parse([("module options", MODULE, layer)], module=True)
        host = _host(params)
        spec = resolve(settings, host, files_dir=files)
        spec = spec.with_secrets(params.get("secrets") or {})
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
    os.mkdir(files, 0o700)
    for path, content in spec.generated:
        with open(path, "x", encoding="utf-8") as handle:
            handle.write(content)
        os.chmod(path, 0o644)

    try:
        # Engine and image first: nothing is fetched for a run that cannot start.
        engine = Engine.connect(params.get("docker_host"))
        image_id = engine.require_image(spec.image)
        spec = _before_run(module, engine, spec, settings)
        since = time.time()
        result = engine.run(spec, timeout=params["timeout"], output_limit=params["output_limit"])
        if spec.proxy is not None:
            result.update(engine.proxy_report(spec, since))
    except (SecureRunError, RunSpecError, _infisical.SecretsError, OSError) as exc:
        module.fail_json(msg=str(exc), ran=False, spec=planned(spec))
    except _infisical.Stopped as exc:
        module.fail_json(
            msg=f"stopped by signal {exc.signum} while fetching secrets; nothing was started",
            ran=False,
            spec=planned(spec),
        )
    audit(host, spec, image_id, result["rc"], via="secure_run")

    expected = params["expected_rc"]
    msg = _run_message(result, expected, spec.memory)
    failed = result["timed_out"] or result["rc"] not in expected
    if result.get("network_refused"):
        shown = ", ".join(item["destination"] for item in result["network_refused"])
        msg += f"; the network policy refused: {shown}"
    if result.get("proxy_stopped"):
        msg += f"; the egress proxy stopped during the run ({result['proxy_stopped']})"
    # As ansible.builtin.command: the output also as lists of lines.
    lines = {f"{name}_lines": result[name].splitlines() for name in ("stdout", "stderr")}
    # changed: the command ran (the module cannot know what it changed; see the docs).
    module.exit_json(
        changed=True, failed=failed, ran=True, msg=msg, spec=planned(spec), **result, **lines
    )
