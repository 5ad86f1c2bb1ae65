# Copyright (c) devenv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The devenv_launcher role's per-user files: shell startup files and code directories.

Documentation: rc_files.yml and code_dirs.yml next to this file.
"""

from __future__ import annotations

import posixpath

from ansible_collections.kuatecno.devenv.plugins.plugin_utils._filter_input import (
    a_list,
    a_mapping,
    fail,
    mappings,
)

_BOTH = ("bash", "zsh")


def rc_files(accounts, rc_names, state="present", zsh_installed=False):
    """One entry per account and shell startup file: the account plus `file`.

    bash always; zsh too where it is the login shell or installed. A record's `shells`
    list decides instead; removal (`state` absent) looks at both.
    """
    name = "rc_files"
    if state not in ("present", "absent"):
        fail(name, f"state must be present or absent, got {state!r}")
    rc_names = a_mapping(rc_names, name, "rc_names")
    files = []
    for account in mappings(accounts, name, "accounts", required=("name", "shell")):
        if state == "absent":
            shells = _BOTH
        elif account.get("shells") is not None:
            shells = a_list(account["shells"], name, f"the shells of {account['name']}")
        elif posixpath.basename(account["shell"] or "") == "zsh" or zsh_installed:
            shells = _BOTH
        else:
            shells = ("bash",)
        for shell in shells:
            if shell not in rc_names:
                fail(
                    name,
                    f"user {account['name']} has an unknown shell {shell!r} "
                    f"(known: {', '.join(rc_names)})",
                )
            files.append(dict(account, file=rc_names[shell]))
    return files


def code_dirs(accounts):
    """[{name, group, path}] for each account with a code_dir; "~/" is the account's home."""
    dirs = []
    for account in mappings(accounts, "code_dirs", "accounts", required=("name", "home", "group")):
        code_dir = account.get("code_dir")
        if not code_dir:
            continue
        if not isinstance(code_dir, str):
            fail("code_dirs", f"the code_dir of {account['name']} must be a string: {code_dir!r}")
        path = f"{account['home']}{code_dir[1:]}" if code_dir.startswith("~/") else code_dir
        dirs.append({"name": account["name"], "group": account["group"], "path": path})
    return dirs


class FilterModule:
    def filters(self):
        return {"rc_files": rc_files, "code_dirs": code_dirs}
