"""Contracts every role of the collection keeps, present and future.

- meta/argument_specs.yml and defaults/main.yml agree in names, types and defaults,
  so the documented interface cannot drift from what the role really does.
- Public variables start with the role's name; internal ones (vars/) with an
  underscore; no name is defined in both defaults/ and vars/.
"""

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES_DIR = ROOT / "collections" / "devenv" / "roles"
ROLES = sorted(p.name for p in ROLES_DIR.iterdir() if (p / "tasks").is_dir())

TYPE_CHECKS = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "list": lambda v: isinstance(v, list),
    "dict": lambda v: isinstance(v, dict),
    "path": lambda v: isinstance(v, str),
    "raw": lambda v: True,
}


def _load(path):
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def _defaults(role):
    return _load(ROLES_DIR / role / "defaults" / "main.yml")


def _spec_options(role):
    specs = _load(ROLES_DIR / role / "meta" / "argument_specs.yml")["argument_specs"]
    return specs["main"]["options"]


def test_there_are_roles_to_check():
    assert "devenv_engine" in ROLES


@pytest.mark.parametrize("role", ROLES)
def test_every_role_has_an_argument_spec(role):
    assert (ROLES_DIR / role / "meta" / "argument_specs.yml").is_file()
    assert (ROLES_DIR / role / "defaults" / "main.yml").is_file()


@pytest.mark.parametrize("role", ROLES)
def test_argument_spec_names_equal_defaults(role):
    assert set(_spec_options(role)) == set(_defaults(role))


@pytest.mark.parametrize("role", ROLES)
def test_argument_spec_defaults_equal_defaults(role):
    defaults = _defaults(role)
    for name, option in _spec_options(role).items():
        assert "default" in option, f"{role}: {name} has no default in argument_specs.yml"
        assert option["default"] == defaults[name], f"{role}: {name} default differs"


@pytest.mark.parametrize("role", ROLES)
def test_argument_spec_types_match_defaults(role):
    defaults = _defaults(role)
    for name, option in _spec_options(role).items():
        kind = option.get("type", "str")
        assert kind in TYPE_CHECKS, f"{role}: {name} has unknown type {kind}"
        value = defaults[name]
        # A templated default (a Jinja string) is resolved at run time; null means unset
        # (Ansible's argument spec validation accepts None for every type, but not among
        # choices: a null default with choices fails every play).
        if value is None:
            assert "choices" not in option, f"{role}: {name} is null but has choices"
            continue
        if isinstance(value, str) and "{{" in value:
            continue
        assert TYPE_CHECKS[kind](value), f"{role}: {name} is {type(value).__name__}, spec {kind}"
        if kind == "list" and value and "elements" in option:
            check = TYPE_CHECKS[option["elements"]]
            assert all(check(v) for v in value), f"{role}: {name} elements are not {kind}"
        if "choices" in option:
            assert value in option["choices"], f"{role}: {name} default not among choices"


@pytest.mark.parametrize("role", ROLES)
def test_variable_names_are_prefixed(role):
    for name in _defaults(role):
        assert name.startswith(role + "_"), f"{role}: public variable {name} lacks the prefix"
    vars_file = ROLES_DIR / role / "vars" / "main.yml"
    internal = _load(vars_file) if vars_file.is_file() else {}
    for name in internal:
        assert name.startswith("_" + role + "_"), f"{role}: internal variable {name}"
    assert not set(internal) & set(_defaults(role))


def test_one_minimum_ansible_version_everywhere():
    runtime = _load(ROOT / "collections" / "devenv" / "meta" / "runtime.yml")
    minimum = runtime["requires_ansible"].lstrip(">=")
    major_minor = ".".join(minimum.split(".")[:2])
    for role in ROLES:
        meta = _load(ROLES_DIR / role / "meta" / "main.yml")
        assert str(meta["galaxy_info"]["min_ansible_version"]) == major_minor, role
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"ansible-core {minimum}" in readme
    pins = (ROOT / "requirements" / "requirements.txt").read_text(encoding="utf-8")
    pinned = next(line for line in pins.splitlines() if line.startswith("ansible-core=="))
    assert pinned.split("==")[1].startswith(major_minor + ".")


def _task_files(role):
    return sorted((ROLES_DIR / role).glob("*/*.yml"))


def _modules(tasks):
    """Fully qualified action names used by a list of tasks (blocks included)."""
    found = set()
    for task in tasks or []:
        for key in ("block", "rescue", "always"):
            found |= _modules(task.get(key))
        found |= {key for key in task if key.count(".") == 2}
    return found


@pytest.mark.parametrize("role", ROLES)
def test_modules_come_from_declared_collections_or_a_macos_only_include(role):
    """A Linux host must not need a collection the collection does not declare: a task file
    using one is reached only through include_tasks (never parsed where its condition is
    false) under a macOS-only condition."""
    galaxy = _load(ROOT / "collections" / "devenv" / "galaxy.yml")
    declared = {"ansible.builtin", "kuatecno.devenv", *galaxy.get("dependencies", {})}
    main = _load(ROLES_DIR / role / "tasks" / "main.yml") or []
    for path in _task_files(role):
        if path.parent.name not in ("tasks", "handlers"):
            continue
        used = {".".join(m.split(".")[:2]) for m in _modules(_load(path) or [])}
        extra = used - declared
        if not extra:
            continue
        includes = [
            t
            for t in main
            if (t.get("ansible.builtin.include_tasks") or {}).get("file") == path.name
        ]
        imports = [t for t in main if t.get("ansible.builtin.import_tasks") == path.name]
        assert includes and not imports, f"{role}/{path.name} needs {extra} on every host"
        for task in includes:
            condition = json.dumps(task.get("when"))
            assert "homebrew" in condition or "Darwin" in condition, (path.name, condition)


@pytest.mark.parametrize("role", ROLES)
def test_role_logic_lives_in_filter_plugins(role):
    # Jinja statement programs ({% for %}, {% set %}) in vars or tasks cannot be unit-tested
    # or documented; the collection's filters (plugins/filter/) hold that logic instead.
    for path in sorted((ROLES_DIR / role).glob("*/*.yml")):
        if path.parent.name in ("vars", "tasks", "defaults", "handlers"):
            assert "{%" not in path.read_text(encoding="utf-8"), f"{path.relative_to(ROOT)}"
