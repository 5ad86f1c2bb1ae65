# Copyright (c) devenv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The devenv_image role's checks of its settings, and how long a step took.

Documentation: agent_pin_problems.yml, custom_image_problems.yml and duration.yml next to
this file.
"""

from __future__ import annotations

import re

from ansible_collections.kuatecno.devenv.plugins.plugin_utils._filter_input import (
    a_list,
    a_mapping,
    fail,
)


def _matches(pattern, value):
    return isinstance(value, str) and re.match(pattern, value) is not None


def agent_pin_problems(agents, name_pattern, version_pattern):
    """One line per agent that is not an npm package name pinned to an exact version."""
    agents = a_mapping(agents, "agent_pin_problems", "the agents")
    problems = []
    for name, version in agents.items():
        if not _matches(name_pattern, name):
            problems.append(f"{name!r} (not an npm package name)")
        elif not _matches(version_pattern, str(version)):
            problems.append(f"{name}: {version!r} (not an exact version)")
    return problems


def custom_image_problems(images, base_name, name_pattern, version_pattern):
    """One line per custom image definition that is incomplete, naming what it needs."""
    problems = []
    for index, image in enumerate(a_list(images, "custom_image_problems", "the images"), 1):
        if not isinstance(image, dict):
            problems.append(f"entry {index} must be a mapping with name, version, instructions")
            continue
        wanted = []
        name = image.get("name")
        if not _matches(name_pattern, name):
            wanted.append("a name that is a Docker repository name")
        elif name == base_name:
            wanted.append(f"a name other than {base_name}")
        if not _matches(version_pattern, image.get("version")):
            wanted.append("a quoted semantic version")
        instructions = image.get("instructions")
        if isinstance(instructions, str) or not isinstance(instructions, list) or not instructions:
            wanted.append("a list of Dockerfile instructions")
        if isinstance(image.get("verify_commands", []), str):
            wanted.append("verify_commands as a list of argument lists")
        if wanted:
            problems.append(f"entry {index} ({name or '(no name)'}) needs {', '.join(wanted)}")
    return problems


def duration(seconds):
    """Seconds as a person reads them: "42s", "2m 05s"."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        try:
            seconds = float(seconds)
        except (TypeError, ValueError):
            fail("duration", f"expected a number of seconds, got {seconds!r}")
    whole = max(0, round(seconds))
    return f"{whole // 60}m {whole % 60:02d}s" if whole >= 60 else f"{whole}s"


class FilterModule:
    def filters(self):
        return {
            "agent_pin_problems": agent_pin_problems,
            "custom_image_problems": custom_image_problems,
            "duration": duration,
        }
