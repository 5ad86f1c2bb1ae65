# Copyright (c) devenv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sort version strings (image version tags such as v1.2.3-rc.1) by semantic-version precedence.

Documentation: semver_sort.yml next to this file.
"""

from __future__ import annotations

import re

from ansible_collections.kuatecno.devenv.plugins.plugin_utils._filter_input import a_list, fail

# SemVer 2.0.0 with an optional leading "v"; build metadata is accepted and, as SemVer
# says, ignored for precedence. Digits-only pre-release identifiers compare as numbers.
_VERSION = re.compile(
    r"^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)


def _precedence(version):
    match = _VERSION.match(version) if isinstance(version, str) else None
    if match is None:
        fail("semver_sort", f"not a semantic version (like v1.2.3 or 1.2.3-rc.1): {version!r}")
    major, minor, patch, prerelease = match.groups()
    if prerelease is None:
        # A release is newer than any of its pre-releases.
        return (int(major), int(minor), int(patch), 1, ())
    # Numeric identifiers sort before alphanumeric ones; a longer list of otherwise equal
    # identifiers is newer (tuples compare the same way).
    identifiers = tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in prerelease.split(".")
    )
    return (int(major), int(minor), int(patch), 0, identifiers)


def semver_sort(versions, reverse=False):
    """`versions` oldest first (newest first with `reverse`); equal ones keep their order."""
    if not isinstance(reverse, bool):
        fail("semver_sort", f"reverse must be true or false, got {reverse!r}")
    return sorted(a_list(versions, "semver_sort", "the versions"), key=_precedence, reverse=reverse)


class FilterModule:
    def filters(self):
        return {"semver_sort": semver_sort}
