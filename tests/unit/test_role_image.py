"""The devenv_image role's prune choice, evaluated with Ansible's templating (no engine).

Which version tags the prune removes: all but the newest devenv_image_keep_versions in
semantic-version order (kuatecno.devenv.semver_sort, tested in test_filters.py); never the
current version, never a tag that is not an image version, never another image's tag.
And every task that talks to the engine gets devenv_image_docker_host from one place.
"""

import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.community import docker as community_docker

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from role_templar import ROLES_DIR, RoleVars, role_file  # noqa: E402

ROLE = "devenv_image"


def _prune_choice():
    (task,) = [
        task
        for task in role_file(ROLE, "tasks/prune_image.yml")
        if "_devenv_image_prune_tags" in task.get("ansible.builtin.set_fact", {})
    ]
    return task["ansible.builtin.set_fact"]["_devenv_image_prune_tags"]


def pruned(tags, keep=2, version="0.10.0", name="devenv-test/devenv"):
    images = [
        {"RepoTags": [f"{name}:{tag}" for tag in tags]},
        {"RepoTags": [f"{name}-other:v0.0.1"]},  # another repository that shares the prefix
        {"RepoTags": None},  # an untagged image
    ]
    role_vars = RoleVars(
        ROLE,
        _devenv_image_host={"images": images},
        _devenv_image_prune={"name": name, "version": version},
        devenv_image_keep_versions=keep,
    )
    return role_vars.template(_prune_choice())


@pytest.mark.parametrize(
    ("tags", "keep", "version", "removed"),
    [
        # The integration test's case: a lexical sort would have dropped v0.10.0.
        (["v0.2.0", "v0.9.0", "v0.10.0", "latest"], 2, "0.10.0", ["v0.2.0"]),
        (["v0.2.0", "v0.9.0", "v0.10.0"], 1, "0.10.0", ["v0.9.0", "v0.2.0"]),
        (["v0.2.0", "v0.9.0", "v0.10.0"], 5, "0.10.0", []),
        # A release is newer than its pre-releases; numeric identifiers compare as numbers.
        (["v1.0.0-rc.2", "v1.0.0-rc.10", "v1.0.0"], 2, "1.0.0", ["v1.0.0-rc.2"]),
        # The current version stays even when older than the ones kept (a rollback).
        (["v0.9.0", "v1.0.0", "v1.1.0"], 1, "0.9.0", ["v1.0.0"]),
        # Only image version tags count.
        (["v1.0.0", "v2.0.0", "latest", "1.0.0", "v1.0", "v1.0.0-a..b", "dev"], 1, "2.0.0",
         ["v1.0.0"]),
    ],
)  # fmt: skip
def test_prune_removes_the_oldest_version_tags(tags, keep, version, removed):
    assert pruned(tags, keep=keep, version=version) == removed


def test_prune_needs_no_tags():
    assert pruned([]) == []


def _tasks(tasks):
    for task in tasks:
        yield task
        for section in ("block", "rescue", "always"):
            yield from _tasks(task.get(section, []))


def _engine_tasks():
    """(file, module, arguments) of every task of the role that talks to the engine."""
    for path in sorted((ROLES_DIR / ROLE / "tasks").glob("*.yml")):
        for task in _tasks(role_file(ROLE, f"tasks/{path.name}")):
            for module, arguments in task.items():
                if module.startswith(("community.docker.", "kuatecno.devenv.")):
                    yield path.name, module, arguments


def test_docker_host_is_set_once_for_every_engine_task():
    main = role_file(ROLE, "tasks/main.yml")
    (engine_block,) = [task for task in main if "block" in task]
    assert engine_block["module_defaults"] == {
        "group/kuatecno.devenv.docker": {
            "docker_host": "{{ devenv_image_docker_host | default(omit, true) }}"
        }
    }
    # Everything but the validation runs inside that block.
    assert [task for task in main if "block" not in task] == main[:1]
    group = yaml.safe_load(
        (Path(community_docker.__path__[0]) / "meta" / "runtime.yml").read_text()
    )["action_groups"]["docker"]
    engine_tasks = list(_engine_tasks())
    assert len(engine_tasks) > 10
    for file, module, arguments in engine_tasks:
        assert "docker_host" not in arguments, f"{file}: {module} sets docker_host itself"
        collection, name = module.rsplit(".", 1)
        assert (collection, name) == ("kuatecno.devenv", "secure_run") or (
            collection == "community.docker" and name in group
        ), f"{file}: {module} is not in the action group kuatecno.devenv.docker"
