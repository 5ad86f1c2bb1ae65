"""Outcome of site.yml on a fleet: one build host pushes, two workers pull and run dev."""

import json
import os

import pytest

PINNED = {"claude": "2.0.76", "gemini": "0.22.4"}
REGISTRY = os.environ.get("DEVENV_TEST_REGISTRY_NAME", "devenv-test-registry") + ":5000"


def _is_worker(host):
    return "devenv_fleet_workers" in host.ansible.get_variables()["group_names"]


def test_every_host_has_the_image_under_its_local_name(host):
    local = host.check_output("docker image inspect --format '{{.Id}}' devenv:v1.0.0")
    assert local == host.check_output("docker image inspect --format '{{.Id}}' devenv:latest")
    labels = json.loads(
        host.check_output("docker image inspect --format '{{json .Config.Labels}}' devenv:latest")
    )
    assert labels["org.opencontainers.image.version"] == "1.0.0"


def test_image_came_from_where_the_host_role_says(host):
    history = host.check_output("docker history -q devenv:v1.0.0").split()
    if _is_worker(host):
        # Pulled: the registry's digest is recorded, and no layer was built here.
        digests = host.check_output(
            "docker image inspect --format '{{json .RepoDigests}}' devenv:v1.0.0"
        )
        assert ":5000/fleet/devenv@sha256:" in digests
        assert set(history[1:]) == {"<missing>"}
    else:
        # Built here (every layer has a local id) and pushed: the registry lists both tags.
        assert "<missing>" not in history[: len(PINNED) + 1]
        tags = host.check_output(
            "python3 -c 'import sys, urllib.request; "
            "print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' "
            f"http://{REGISTRY}/v2/fleet/devenv/tags/list"
        )
        assert {"v1.0.0", "latest"} <= set(json.loads(tags)["tags"])


@pytest.mark.parametrize("agent", sorted(PINNED))
def test_dev_runs_the_pinned_agent(host, agent):
    out = host.run("su - alice -c %s", f"bash -ic 'dev -- {agent} --version' </dev/null")
    assert out.rc == 0, out.stderr
    assert PINNED[agent] in out.stdout
