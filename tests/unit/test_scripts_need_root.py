"""The README's two commands, started by someone who is not root: they stop before
anything is installed or created and say how to run them (sudo, or su where sudo is not
installed). Run on a copy of scripts/ that anyone may read (outside pytest's own
temporary directory, which only its owner may enter), as nobody when the suite is root
(as in CI)."""

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from people import as_person  # noqa: E402


def as_someone_else():
    return as_person(pwd.getpwnam("nobody")) if os.geteuid() == 0 else []


@pytest.fixture
def open_dir():
    path = Path(tempfile.mkdtemp(prefix="devenv-need-root-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.mark.parametrize("script", ["scripts/test.sh", "scripts/provision.sh"])
def test_started_by_a_user_it_stops_before_anything_and_says_how(open_dir, script):
    repo = open_dir / "repo"
    shutil.copytree(ROOT / "scripts", repo / "scripts")
    for path in [*repo.rglob("*"), repo]:
        path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
    done = subprocess.run(
        [*as_someone_else(), str(repo / script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": os.environ["PATH"], "HOME": str(open_dir)},
    )
    assert done.returncode != 0
    assert f"ERROR: {script} must run as root" in done.stderr
    if shutil.which("sudo"):
        assert f"run sudo {script}" in done.stderr
    else:
        assert f"run su -c '{repo}/{script}'" in done.stderr
        assert "sudo is not installed here" in done.stderr
    # Nothing was created: no environment, no state, no log.
    assert sorted(p.name for p in repo.iterdir()) == ["scripts"]
    assert done.stdout == ""
