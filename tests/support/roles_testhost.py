"""Disposable Debian test hosts (containers) for running a role with ansible-playbook.

Used by tests/integration/test_launcher_role.py and test_secrets_role.py. The host is a
plain `devenv-test/debian:13` container reached with the community.docker.docker
connection; every container carries io.kuatecno.devenv.test=1 and a per-run label, and
is removed by `TestHost.remove()` (call it in `finally`).
"""

import json
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "devenv-test/debian:13"
TEST_LABEL = "io.kuatecno.devenv.test=1"
RUN_LABEL = "io.kuatecno.devenv.testrun"
RECAP_RE = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


def docker(*args, check=True, timeout=120):
    return subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


class PlaybookRun:
    def __init__(self, done):
        self.rc = done.returncode
        self.output = done.stdout + done.stderr
        found = RECAP_RE.search(done.stdout)
        self.recap = (
            {k: int(v) for k, v in found.groupdict().items() if k != "host"} if found else {}
        )

    @property
    def changed(self):
        return self.recap.get("changed")

    def changed_tasks(self):
        """Names of the tasks that reported a change (for failure messages)."""
        names, task = [], None
        for line in self.output.splitlines():
            if line.startswith("TASK ["):
                task = line[6:].split("]")[0]
            elif line.startswith("changed:") and task and task not in names:
                names.append(task)
        return names

    def __repr__(self):
        failed = [
            line for line in self.output.splitlines() if line.startswith(("fatal:", "failed:"))
        ]
        return (
            f"PlaybookRun(rc={self.rc}, recap={self.recap}, changed={self.changed_tasks()})\n"
            + "\n".join(failed)[-4000:]
        )


class TestHost:
    """One container; `sh()` runs a shell command inside it as root."""

    __test__ = False  # not a pytest test class

    def __init__(self, purpose, *, image=IMAGE, run_args=()):
        self.name = f"devenv-test-{purpose}-{uuid.uuid4().hex[:8]}"
        self.run_id = uuid.uuid4().hex
        docker(
            "run",
            "--detach",
            "--name",
            self.name,
            "--label",
            TEST_LABEL,
            "--label",
            f"{RUN_LABEL}={self.run_id}",
            "--network",
            "bridge",
            *run_args,
            image,
            "sleep",
            "infinity",
        )

    def remove(self):
        docker("rm", "--force", "--volumes", self.name, check=False)

    def sh(self, script, check=True, user=None):
        args = ["exec"]
        if user:
            args += ["--user", user]
        done = docker(*args, self.name, "sh", "-c", script, check=False)
        if check and done.returncode != 0:
            raise AssertionError(
                f"in {self.name}: {script!r} exited {done.returncode}\n{done.stdout}{done.stderr}"
            )
        return done

    def out(self, script, user=None):
        return self.sh(script, user=user).stdout

    def exists(self, path):
        return (
            self.sh(
                f"test -e {shlex.quote(path)} || test -L {shlex.quote(path)}", check=False
            ).returncode
            == 0
        )

    def stat(self, path):
        """owner, group and octal mode, e.g. ("root", "root", "755")."""
        return tuple(self.out(f"stat -c '%U %G %a' {shlex.quote(path)}").split())

    def read(self, path):
        return self.out(f"cat {shlex.quote(path)}")

    def apt_install(self, *packages):
        self.sh(
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
            "--no-install-recommends " + " ".join(packages) + " >/dev/null"
        )

    def copy_in(self, source, dest):
        docker("cp", str(source), f"{self.name}:{dest}")

    def files_under(self, *roots):
        """Every path below the roots (for before/after comparisons)."""
        listing = self.out(
            "find " + " ".join(shlex.quote(r) for r in roots) + " -xdev 2>/dev/null | sort"
        )
        return set(listing.splitlines())

    def playbook(
        self,
        playbook,
        extra_vars,
        workdir,
        *,
        check=False,
        diff=False,
        args=(),
        cwd=None,
        ansible_config=None,
        extra_env=None,
    ):
        """Run tests/integration/playbooks/<playbook> (or a playbook given by its absolute
        path) against this host, by default from the project root with its ansible.cfg;
        `cwd`, `ansible_config` and `extra_env` run it as a user elsewhere would. Extra
        vars go through a JSON file (typed values)."""
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        inventory = workdir / "inventory.json"
        inventory.write_text(
            json.dumps(
                {
                    "all": {
                        "hosts": {
                            self.name: {
                                "ansible_connection": "community.docker.docker",
                                "ansible_python_interpreter": "/usr/bin/python3",
                            }
                        }
                    }
                }
            )
        )
        variables = workdir / f"vars-{uuid.uuid4().hex[:6]}.json"
        variables.write_text(json.dumps(extra_vars))
        venv_playbook = Path(sys.executable).with_name("ansible-playbook")
        command = [
            str(venv_playbook) if venv_playbook.exists() else "ansible-playbook",
            "-i",
            str(inventory),
            "-e",
            f"@{variables}",
            str(ROOT / "tests" / "integration" / "playbooks" / playbook),  # absolute: as is
            *args,
        ]
        if check:
            command.append("--check")
        if diff:
            command.append("--diff")
        env = dict(os.environ, ANSIBLE_PIPELINING="1", ANSIBLE_NOCOLOR="1")
        env["ANSIBLE_CONFIG"] = str(ansible_config or ROOT / "ansible.cfg")
        env.update(extra_env or {})
        done = subprocess.run(
            command,
            cwd=cwd or ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        return PlaybookRun(done)


# A test host with its own Docker engine (the recipe of docs/test-environment: no
# --privileged here; every capability but one, seccomp and AppArmor unconfined, the
# cgroup tree writable, an anonymous volume for the engine's storage).
NESTED_ENGINE_IMAGE = "devenv-test/debian-docker:13"
# Debian 12's engine, 20.10: the version of the project's build machines.
NESTED_ENGINE_20_10 = "devenv-test/debian-docker:12"
NESTED_ENGINE_ARGS = (
    "--cap-add=ALL",
    "--cap-drop=SYS_RESOURCE",
    "--security-opt=seccomp=unconfined",
    "--security-opt=apparmor=unconfined",
    "--volume=/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--mount=type=volume,target=/var/lib/docker",
    "--env=DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1",
)


class EngineHost(TestHost):
    """A TestHost that runs its own dockerd; `load(*images)` copies images of this
    machine's engine into it (docker save | docker load), so nothing is pulled."""

    __test__ = False

    def __init__(self, purpose, *, run_args=(), image=NESTED_ENGINE_IMAGE):
        super().__init__(purpose, image=image, run_args=(*NESTED_ENGINE_ARGS, *run_args))
        self.sh("rm -f /var/run/docker.pid")
        docker("exec", "--detach", self.name, "sh", "-c", "dockerd >/var/log/dockerd.log 2>&1")
        for _ in range(120):
            if self.sh("docker info >/dev/null 2>&1", check=False).returncode == 0:
                return
            time.sleep(0.5)
        raise AssertionError(
            f"the engine in {self.name} did not start:\n"
            + self.out("tail -n 30 /var/log/dockerd.log")
        )

    def load(self, *images):
        """Copy images in, in one archive (layers they share are sent once)."""
        save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE)
        done = subprocess.run(
            ["docker", "exec", "-i", self.name, "docker", "load", "-q"],
            stdin=save.stdout,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        save.stdout.close()
        save.wait(timeout=60)
        assert done.returncode == 0 and save.returncode == 0, done.stderr
