# Copyright (c) devenv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of the input of the collection's filter plugins, so a wrong value fails with an
error that names the filter and the value instead of a Python traceback."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError


def fail(filter_name, message):
    raise AnsibleFilterError(f"kuatecno.devenv.{filter_name}: {message}")


def a_list(value, filter_name, what):
    """`value` as a list; strings and mappings are refused (they are not lists of items)."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        fail(filter_name, f"{what} must be a list, got {type(value).__name__}: {value!r}")
    return list(value)


def a_mapping(value, filter_name, what):
    if not isinstance(value, Mapping):
        fail(filter_name, f"{what} must be a mapping, got {type(value).__name__}: {value!r}")
    return value


def mappings(value, filter_name, what, required=()):
    """A list of mappings, each with the `required` keys."""
    items = a_list(value, filter_name, f"the {what}")
    for item in items:
        a_mapping(item, filter_name, f"each entry of the {what}")
        missing = [key for key in required if key not in item]
        if missing:
            fail(filter_name, f"an entry of the {what} has no {', '.join(missing)}: {item!r}")
    return items


def login(record, filter_name, what="user record"):
    """The login of a user record: a non-empty string."""
    name = record.get("name")
    if not isinstance(name, str) or not name:
        fail(filter_name, f"a {what} needs a login name (a non-empty string): {record!r}")
    return name
