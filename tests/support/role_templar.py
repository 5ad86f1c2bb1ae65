"""Evaluate a role's variables and templates with Ansible's own templating, no host.

Loads defaults/main.yml and vars/main.yml of a role (in that order, as Ansible's
precedence does), adds the given facts and variables, and templates expressions the way
a play would. Used by the role unit tests (tests/unit/test_role_*.py).

The collection's filters (kuatecno.devenv.*) resolve as in a play: importing this module
sets up Ansible's collection loader for the source tree (ansible.cfg's collections_path).
tests/conftest.py imports it before any test imports the collection, so every test loads
the collection's Python files through that one loader.
"""

from pathlib import Path

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template
from ansible.utils.collection_loader import AnsibleCollectionConfig

ROOT = Path(__file__).resolve().parents[2]
ROLES_DIR = ROOT / "collections" / "devenv" / "roles"
COLLECTIONS_PATH = ROOT / "collections"


def install_collection_loader():
    """Once per process; a second loader would load the collection's modules again."""
    if AnsibleCollectionConfig.collection_finder is None:
        init_plugin_loader([str(COLLECTIONS_PATH)])


install_collection_loader()


def _trusted(value):
    # Role files are trusted templates in a play; plain YAML loading does not mark them.
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [_trusted(v) for v in value]
    if isinstance(value, dict):
        return {k: _trusted(v) for k, v in value.items()}
    return value


def role_file(role, relative):
    return yaml.safe_load((ROLES_DIR / role / relative).read_text(encoding="utf-8")) or {}


class RoleVars:
    """`RoleVars("devenv_launcher", os_family="Debian", devenv_users=[...])["_x"]`."""

    def __init__(self, role, *, os_family="Debian", facts=None, **variables):
        self.role = role
        merged = {}
        merged.update(_trusted(role_file(role, "defaults/main.yml")))
        merged.update(_trusted(role_file(role, "vars/main.yml")))
        merged["role_path"] = str(ROLES_DIR / role)
        merged["ansible_facts"] = dict({"os_family": os_family}, **(facts or {}))
        merged["ansible_check_mode"] = False
        merged["ansible_managed"] = "Ansible managed"
        merged.update(variables)
        self.variables = merged
        self.templar = Templar(loader=DataLoader(), variables=merged)

    def __getitem__(self, name):
        return self.expr(name)

    def expr(self, expression):
        return self.templar.template(trust_as_template("{{ " + expression + " }}"))

    def template(self, text):
        """Template a string from a role file (such as a task's argument) as a play would."""
        return self.templar.template(trust_as_template(text))

    def render(self, template):
        """Render templates/<template> of the role."""
        text = (ROLES_DIR / self.role / "templates" / template).read_text(encoding="utf-8")
        return self.templar.template(trust_as_template(text))
