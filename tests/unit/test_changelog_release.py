"""A trial release of the collection's changelog, in a copy of the collection.

`antsibull-changelog release` (the pinned one) turns the fragments into
changelogs/changelog.yaml and CHANGELOG.rst; the release files must pass the project's
own yamllint (the configuration asks for changelog_nice_yaml), and every fragment must
reach the release notes.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "collections" / "devenv"
BIN = Path(sys.executable).parent


def tool(name):
    path = BIN / name
    return str(path) if path.exists() else name


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    collection = tmp_path_factory.mktemp("trial") / "ansible_collections" / "kuatecno" / "devenv"
    shutil.copytree(
        SOURCE,
        collection,
        ignore=shutil.ignore_patterns("__pycache__", ".plugin-cache.yaml", "output"),
    )
    fragments = [
        yaml.safe_load(f.read_text())
        for f in sorted((collection / "changelogs" / "fragments").glob("*.yml"))
    ]
    assert fragments, "no changelog fragments to release"
    (collection / "changelogs" / "fragments" / "trial-release.yml").write_text(
        "---\nrelease_summary: Trial release made by the test suite.\n"
    )
    version = yaml.safe_load((collection / "galaxy.yml").read_text())["version"]
    done = subprocess.run(
        [tool("antsibull-changelog"), "release", "--version", version, "--date", "2026-12-01"],
        cwd=collection,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return collection, version, fragments


def test_the_release_files_pass_the_project_s_yamllint(released):
    collection, _version, _fragments = released
    changes = collection / "changelogs" / "changelog.yaml"
    done = subprocess.run(
        [tool("yamllint"), "--strict", "-c", str(ROOT / ".yamllint"), str(changes)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert changes.read_text().startswith("---\n")


def test_every_fragment_reaches_the_release(released):
    collection, version, fragments = released
    changes = yaml.safe_load((collection / "changelogs" / "changelog.yaml").read_text())
    release = changes["releases"][version]
    assert release["release_date"] == "2026-12-01"
    assert release["changes"]["release_summary"] == "Trial release made by the test suite."
    notes = (collection / "CHANGELOG.rst").read_text()
    assert f"v{version}" in notes
    for fragment in fragments:
        for section, entries in fragment.items():
            for entry in entries:
                assert entry in release["changes"][section]
                assert entry.split(" - ")[0] in notes
    # The fragments are consumed by the release (keep_fragments: false).
    assert not list((collection / "changelogs" / "fragments").glob("*.yml"))


def test_the_fragments_of_the_source_tree_lint():
    done = subprocess.run(
        [tool("antsibull-changelog"), "lint"],
        cwd=SOURCE,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr
