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
import shutil
import tempfile
import time
from typing import Any, NoReturn, Optional

from ansible_collections.kuatecno.devenv.plugins.module_utils import _infisical
from ansible_collections.kuatecno.devenv.plugins.module_utils._engine import (
    Engine,
    SecureRunError,
    redact_body,
)
from ansible_collections.kuatecno.devenv.plugins.module_utils._runspec import (
    Host,
    RunSpec,
    RunSpecError,
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
    return spec


def settings_from_params(params: dict) -> dict[str, Any]:
    """The settings layer of the module's parameters. Unset options are ``None``, so
    the table's (module) defaults apply."""
    settings = {key: params.get(key) for key in SETTING_OPTIONS}
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
        # The token reaches the infisical process only through its environment.
        environ["INFISICAL_TOKEN"] = infisical["token"]
    return _infisical.fetch_secrets(secrets, environ=environ)


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
    scratch = None
    if not module.params.get("code_dir"):
        # No code directory given: a fresh empty one, so nothing of the host is writable.
        scratch = tempfile.mkdtemp(prefix="devenv-secure-run-")
    try:
        _execute(module, scratch)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def _execute(module: Any, scratch: Optional[str]) -> NoReturn:
    params = module.params
    layer = settings_from_params(params)
    if scratch:
        layer["code_dir"] = scratch
    try:
        settings = parse([("module options", MODULE, layer)], module=True)
        spec = resolve(settings, Host.current()).with_secrets(params.get("secrets") or {})
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
        engine = Engine.connect(params.get("docker_host"))
        engine.require_image(spec.image)
        if spec.proxy is not None:
            engine.ensure_proxy(spec)
        if settings["secrets"]:
            fetched = _fetch(settings["secrets"], params["infisical"])
            # Ansible masks these in every returned string, like no_log options.
            module.no_log_values.update(value for value in fetched.values() if value)
            spec = spec.with_secrets(merge_secrets(dict(spec.secrets), fetched))
        since = time.time()
        result = engine.run(spec, timeout=params["timeout"], output_limit=params["output_limit"])
        if spec.proxy is not None:
            result.update(engine.proxy_report(spec, since))
    except (SecureRunError, RunSpecError, _infisical.SecretsError) as exc:
        module.fail_json(msg=str(exc), ran=False, spec=planned(spec))

    expected = params["expected_rc"]
    msg = _run_message(result, expected, spec.memory)
    failed = result["timed_out"] or result["rc"] not in expected
    if result.get("network_refused"):
        shown = ", ".join(item["destination"] for item in result["network_refused"])
        msg += f"; the network policy refused: {shown}"
    if result.get("proxy_stopped"):
        msg += f"; the egress proxy stopped during the run ({result['proxy_stopped']})"
    module.exit_json(changed=True, failed=failed, ran=True, msg=msg, spec=planned(spec), **result)
