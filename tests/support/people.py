"""Unprivileged test users, as the people on a host are: created for a test module, in
the docker group when they reach the engine directly, removed afterwards.

    with person("devdr123") as entry:      # a pwd entry; ~/Coding exists, 0700
        subprocess.run([*as_person(entry), "devenv", "run", ...])
"""

import contextlib
import os
import pwd
import subprocess
from pathlib import Path


@contextlib.contextmanager
def person(login, *, docker_group=True):
    """A new user with a home and a private ~/Coding; removed with its home at the end."""
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", login], check=True)
    try:
        if docker_group:
            subprocess.run(["usermod", "-aG", "docker", login], check=True)
        entry = pwd.getpwnam(login)
        code = Path(entry.pw_dir) / "Coding"
        code.mkdir(mode=0o700)
        os.chown(code, entry.pw_uid, entry.pw_gid)
        yield entry
    finally:
        subprocess.run(["userdel", "--remove", login], check=False, capture_output=True)


def as_person(entry):
    """The argv prefix that runs a command as that user (their uid, gid and groups)."""
    return [
        "setpriv",
        f"--reuid={entry.pw_uid}",
        f"--regid={entry.pw_gid}",
        "--init-groups",
        "--",
    ]
