"""The runtime properties of security-notes.md, asserted on a running container.

Shared by the launcher's and the module's integration tests, so both adapters are held
to the very same list, and by `devenv doctor`: the checks themselves are the collection's
(`_doctor.inspect_problems` on `docker inspect`, `_doctor.inside_problems` on what the
doctor's probe sees inside), so the tests and a user's host run the same code.
"""

from ansible_collections.kuatecno.devenv.plugins.module_utils._doctor import (
    PROBE_SCRIPT,
    inside_problems,
    inspect_problems,
    parse_probe,
)

__all__ = ["PROBE_SCRIPT", "assert_inside", "assert_runtime_properties", "parse_probe"]


def assert_runtime_properties(info, *, memory, read_only_rootfs=True, runtime=None):
    problems = inspect_problems(
        info, memory=memory, read_only_rootfs=read_only_rootfs, runtime=runtime
    )
    assert problems == []


def assert_inside(text, **expected):
    """The probe's output (PROBE_SCRIPT run in the container) against the run's limits:
    uid, memory, pids_limit, read_only_rootfs, isolation."""
    facts = parse_probe(text)
    assert facts.get("end") == "1", text
    assert inside_problems(facts, **expected) == [], facts
    return facts
