"""The roles' checks of their own variables name only the settings that are wrong.

Each case runs a role's check tasks (no engine, no host change) through ansible-playbook
on localhost; all cases in one playbook run (a block with a rescue per case), so the
test costs one Ansible start.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

# (role, task file, variables, settings the message must name, settings it must not name)
CASES = {
    "image-one-bad-version": (
        "devenv_image",
        "validate.yml",
        {"devenv_image_version": "1.0"},
        ["devenv_image_version", '(got "1.0")'],
        ["devenv_image_source", "devenv_image_name", "devenv_image_agents", "registry"],
    ),
    "image-two-wrong": (
        "devenv_image",
        "validate.yml",
        {
            "devenv_image_push": True,
            "devenv_image_agents": {
                "@anthropic-ai/claude-code": "^2.0.0",
                "@google/gemini-cli": "0.22.4",
            },
        },
        ["devenv_image_push needs devenv_image_registry", "@anthropic-ai/claude-code: '^2.0.0'"],
        ["devenv_image_version", "gemini", "devenv_image_source", "archive"],
    ),
    "image-custom-entry": (
        "devenv_image",
        "validate.yml",
        {"devenv_image_custom_images": [{"name": "tools", "version": "1.0.0"}]},
        ["entry 1 (tools) needs a list of Dockerfile instructions"],
        ["a quoted semantic version", "devenv_image_version"],
    ),
    "image-defaults": ("devenv_image", "validate.yml", {}, [], []),
    "secrets-binary-without-checksum": (
        "devenv_secrets",
        "checks.yml",
        {"devenv_secrets_install_method": "binary"},
        ["devenv_secrets_binary_checksum", "checksums.txt", "cli_0.43.94_linux_"],
        ["devenv_secrets_binary_url must", "apt_key_checksum", "infisical_version"],
    ),
    "secrets-defaults": ("devenv_secrets", "checks.yml", {}, [], []),
    "engine-bad-platform": (
        "devenv_engine",
        "validate.yml",
        {"devenv_engine_gvisor": True, "devenv_engine_gvisor_platform": "vm"},
        ['devenv_engine_gvisor_platform must be one of ptrace, kvm, systrap (got "vm")'],
        ["devenv_engine_source", "extra_args", "Linux hosts only", "devenv_engine_gvisor must"],
    ),
    "engine-bad-flags": (
        "devenv_engine",
        "validate.yml",
        {"devenv_engine_gvisor_extra_args": ["--debug", "rm -rf"]},
        ["devenv_engine_gvisor_extra_args must be a list of runsc flags", '"rm -rf"'],
        ["devenv_engine_gvisor_platform", "devenv_engine_source"],
    ),
    "engine-defaults": ("devenv_engine", "validate.yml", {}, [], []),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    work = tmp_path_factory.mktemp("role-checks")
    results = work / "results.json"
    tasks = [{"name": "Start with no outcome", "ansible.builtin.set_fact": {"outcomes": {}}}]
    for case, (role, tasks_from, variables, _named, _not_named) in CASES.items():
        record = {"outcomes": f"{{{{ outcomes | combine({{'{case}': MSG}}) }}}}"}
        tasks.append(
            {
                "name": f"Case {case}",
                "block": [
                    {
                        "name": f"Run the checks of {role}",
                        "ansible.builtin.include_role": {
                            "name": f"kuatecno.devenv.{role}",
                            "tasks_from": tasks_from,
                        },
                        "vars": variables,
                    },
                    {
                        "name": "Record the pass",
                        "ansible.builtin.set_fact": {
                            "outcomes": record["outcomes"].replace("MSG", "'passed'")
                        },
                    },
                ],
                "rescue": [
                    {
                        "name": "Record the message",
                        "ansible.builtin.set_fact": {
                            "outcomes": record["outcomes"].replace(
                                "MSG", "ansible_failed_result.msg"
                            )
                        },
                    }
                ],
            }
        )
    tasks.append(
        {
            "name": "Write the outcomes",
            "ansible.builtin.copy": {
                "content": "{{ outcomes | to_json }}",
                "dest": str(results),
                "mode": "0600",
            },
        }
    )
    play = [{"name": "Role checks", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    playbook = work / "checks.yml"
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))
    inventory = work / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        "localhost": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": sys.executable,
                        }
                    }
                }
            }
        )
    )
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i",
            str(inventory),
            str(playbook),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return json.loads(results.read_text())


@pytest.mark.parametrize("case", CASES)
def test_checks_name_only_the_wrong_settings(outcomes, case):
    _role, _tasks_from, _variables, named, not_named = CASES[case]
    message = outcomes[case]
    if not named:
        assert message == "passed"
        return
    assert message != "passed"
    for text in named:
        assert text in message, (text, message)
    for text in not_named:
        assert text not in message, (text, message)
