# Copyright (c) devenv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""User records, accounts and per-user launcher settings, shared by the roles.

Documentation: user_records.yml, user_accounts.yml and user_overrides.yml next to this file.
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible_collections.kuatecno.devenv.plugins.module_utils._settings import PER_USER_KEYS
from ansible_collections.kuatecno.devenv.plugins.plugin_utils._filter_input import (
    a_list,
    a_mapping,
    fail,
    login,
    mappings,
)

# Fields of a getent passwd entry (ansible.builtin.getent): password, uid, gid, gecos, home, shell.
_PW_GID = 2
_PW_HOME = 4
_PW_SHELL = 5


def user_records(users):
    """A plain login name becomes {"name": login}; a record stays as it is."""
    return [
        user if isinstance(user, Mapping) else {"name": user}
        for user in a_list(users, "user_records", "the users")
    ]


def _passwd_entry(database, user):
    """The user's getent passwd fields, or None when the user is not in the database."""
    entry = database.get(user)
    if not entry:
        return None
    fields = a_list(entry, "user_accounts", f"the passwd entry of {user}")
    if len(fields) <= _PW_SHELL:
        fail("user_accounts", f"the passwd entry of {user} has too few fields: {entry!r}")
    return fields


def user_accounts(records, passwd, home_base, user_group=None, keep=None):
    """Each record with its home, primary group and login shell.

    From the passwd database (`passwd`, the getent_passwd fact) where the user is in it,
    else `home_base`/<login> and `user_group`. A record's own `home` wins. `keep` maps
    further record keys to their defaults; each account carries them.
    """
    name = "user_accounts"
    database = a_mapping({} if passwd is None else passwd, name, "passwd")
    keep = a_mapping({} if keep is None else keep, name, "keep")
    accounts = []
    for record in mappings(records, name, "user records"):
        user = login(record, name)
        entry = _passwd_entry(database, user)
        if "home" in record:
            home = record["home"]
        else:
            home = entry[_PW_HOME] if entry else f"{home_base}/{user}"
        account = {
            "name": user,
            "home": home,
            "group": entry[_PW_GID] if entry else user_group,
            "shell": entry[_PW_SHELL] if entry else "",
        }
        for key, default in keep.items():
            account[key] = record.get(key, default)
        accounts.append(account)
    return accounts


def user_overrides(records):
    """{login: {key: value}}: the per-user keys each record sets; users without any are left out."""
    name = "user_overrides"
    overrides = {}
    for record in mappings(records, name, "user records"):
        own = {key: record[key] for key in PER_USER_KEYS if key in record}
        if own:
            overrides[login(record, name)] = own
    return overrides


class FilterModule:
    def filters(self):
        return {
            "user_records": user_records,
            "user_accounts": user_accounts,
            "user_overrides": user_overrides,
        }
