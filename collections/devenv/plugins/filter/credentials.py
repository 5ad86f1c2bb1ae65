# Copyright (c) devenv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The devenv_secrets role's credential paths and what its stat and find results say.

Documentation: credential_paths.yml, safe_paths.yml, ssh_dirs.yml, found_files.yml and
left_alone.yml next to this file.
"""

from __future__ import annotations

from ansible_collections.kuatecno.devenv.plugins.plugin_utils._filter_input import (
    a_list,
    a_mapping,
    fail,
    mappings,
)

_SSH_DIR = {"path": ".ssh", "kind": "directory"}


def credential_paths(accounts, manage_ssh=True):
    """One entry per account and credential path (plus ~/.ssh when managed).

    {user, group, kind, path, parents}: `parents` are the directories between the home
    and the path, outermost first.
    """
    name = "credential_paths"
    entries = []
    for account in mappings(
        accounts, name, "accounts", required=("name", "home", "group", "credential_paths")
    ):
        wanted = mappings(
            account["credential_paths"],
            name,
            f"credential paths of {account['name']}",
            required=("path", "kind"),
        )
        if manage_ssh:
            wanted = [*wanted, _SSH_DIR]
        home = account["home"]
        for credential in wanted:
            relative = credential["path"]
            if not isinstance(relative, str):
                fail(name, f"a credential path must be a string: {credential!r}")
            parts = relative.strip("/").split("/")
            entries.append(
                {
                    "user": account["name"],
                    "group": account["group"],
                    "kind": credential["kind"],
                    "path": f"{home}/{'/'.join(parts)}",
                    "parents": [f"{home}/{'/'.join(parts[:i])}" for i in range(1, len(parts))],
                }
            )
    return entries


def safe_paths(paths, real_parents):
    """The `path` of each entry whose `parents` are all in `real_parents`."""
    real = set(a_list(real_parents, "safe_paths", "real_parents"))
    return [
        entry["path"]
        for entry in mappings(paths, "safe_paths", "paths", required=("path", "parents"))
        if set(a_list(entry["parents"], "safe_paths", f"the parents of {entry['path']}")) <= real
    ]


def _stat_results(results, name):
    """Loop results of ansible.builtin.stat over path entries: each has item.path."""
    checked = mappings(results, name, "stat results", required=("item",))
    for result in checked:
        a_mapping(result["item"], name, "the item of a stat result")
        if "path" not in result["item"]:
            fail(name, f"the item of a stat result has no path: {result!r}")
    return checked


def ssh_dirs(stat_results, safe):
    """The items whose path ends in /.ssh, is a real directory and is in `safe`."""
    safe = a_list(safe, "ssh_dirs", "safe")
    return [
        result["item"]
        for result in _stat_results(stat_results, "ssh_dirs")
        if result["item"]["path"].endswith("/.ssh")
        and (result.get("stat") or {}).get("exists")
        and result["stat"].get("isdir")
        and result["item"]["path"] in safe
    ]


def found_files(find_results):
    """[{path, user, group}] of every file that looped ansible.builtin.find found, owned by
    the loop item's user and group; skipped or failed results are left out."""
    name = "found_files"
    found = []
    for result in mappings(find_results, name, "find results"):
        if "files" not in result:
            continue
        item = a_mapping(result.get("item"), name, "the item of a find result")
        for file in mappings(result["files"], name, "found files", required=("path",)):
            found.append(
                {"path": file["path"], "user": item.get("user"), "group": item.get("group")}
            )
    return found


def left_alone(stat_results, safe):
    """'<path> (<reason>)' for each existing path that is not protected, and why."""
    safe = a_list(safe, "left_alone", "safe")
    notes = []
    for result in _stat_results(stat_results, "left_alone"):
        item, stat = result["item"], result.get("stat")
        path = item["path"]
        if stat is None or (stat.get("exists") and path not in safe):
            notes.append(f"{path} (a parent is a symlink or not a directory)")
        elif not stat.get("exists"):
            continue
        elif stat.get("islnk"):
            notes.append(f"{path} (symlink)")
        elif item.get("kind") == "directory" and not stat.get("isdir"):
            notes.append(f"{path} (not a directory)")
        elif item.get("kind") == "file" and not stat.get("isreg"):
            notes.append(f"{path} (not a regular file)")
    return notes


class FilterModule:
    def filters(self):
        return {
            "credential_paths": credential_paths,
            "safe_paths": safe_paths,
            "ssh_dirs": ssh_dirs,
            "found_files": found_files,
            "left_alone": left_alone,
        }
