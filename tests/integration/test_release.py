"""The release path, as a user meets it outside this repository.

Built with `ansible-galaxy collection build` from a copy of the collection littered with
the caches and environments a working tree collects (build_ignore must keep them out);
installed from the tarball into an empty collections path that holds nothing but the
collection's declared dependencies (Galaxy is not reachable here, so they are copied
from the pinned `ansible` package, dependencies of dependencies included); Python's own
site-packages collections are switched off, so an undeclared collection cannot be
found by accident. Then, from a directory outside the repository: `site.yml`
--syntax-check, a real converge of the launcher role on a test host, `ansible-doc` of
the module and every role, and `ansible-galaxy collection verify --offline`.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from roles_testhost import TestHost  # noqa: E402

SOURCE = ROOT / "collections" / "devenv"
GALAXY = yaml.safe_load((SOURCE / "galaxy.yml").read_text())
VERSION = GALAXY["version"]
ROLES = sorted(p.name for p in (SOURCE / "roles").iterdir() if (p / "tasks").is_dir())
BIN = Path(sys.executable).parent
# What a working tree collects; none of it may reach the tarball.
LITTER = (
    ".venv/bin/python",
    ".ansible/tmp/x",
    ".pytest_cache/v/cache/lastfailed",
    ".ruff_cache/0.1/x",
    ".mypy_cache/3.11/x.json",
    "plugins/module_utils/__pycache__/_launcher.cpython-311.pyc",
    "plugins/module_utils/.mypy_cache/x",
    "roles/devenv_launcher/.pytest_cache/x",
    "tests/output/junit/x.xml",
    "changelogs/.plugin-cache.yaml",
    "roles/devenv_image/tasks/main.yml.orig",
    "roles/devenv_image/tasks/.main.yml.swp",
)


def tool(name):
    path = BIN / name
    return str(path) if path.exists() else name


def run(argv, *, cwd, env, timeout=300):
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{argv}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def copy_dependencies(collections, env):
    """The declared dependencies and theirs, from the installed `ansible` package."""
    import ansible_collections  # the pinned ansible package's tree (and this one's)

    sources = [Path(p) for p in ansible_collections.__path__]
    wanted, seen = list(GALAXY["dependencies"]), set()
    while wanted:
        name = wanted.pop()
        if name in seen:
            continue
        seen.add(name)
        namespace, collection = name.split(".")
        source = next(
            s / namespace / collection for s in sources if (s / namespace / collection).is_dir()
        )
        shutil.copytree(source, collections / "ansible_collections" / namespace / collection)
        manifest = json.loads((source / "MANIFEST.json").read_text())
        wanted += list(manifest["collection_info"].get("dependencies") or {})
    return seen


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """Build, install into an empty collections path, and a project directory outside
    the repository using only that path."""
    work = tmp_path_factory.mktemp("release")
    tree = work / "src" / "devenv"
    shutil.copytree(SOURCE, tree, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for relative in LITTER:
        (tree / relative).parent.mkdir(parents=True, exist_ok=True)
        (tree / relative).write_text("litter\n")
    collections = work / "collections"
    project = work / "project"
    project.mkdir()
    (project / "ansible.cfg").write_text(
        f"[defaults]\ncollections_path = {collections}\ncollections_scan_sys_path = false\n"
        "interpreter_python = auto_silent\nretry_files_enabled = false\n"
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ANSIBLE_") and key != "PYTHONPATH"
    }
    (work / "home").mkdir()
    env.update(
        ANSIBLE_CONFIG=str(project / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        HOME=str(work / "home"),  # no ~/.ansible of this machine
    )
    built = run(
        [tool("ansible-galaxy"), "collection", "build", str(tree), "--output-path", str(work)],
        cwd=project,
        env=env,
    )
    tarball = work / f"kuatecno-devenv-{VERSION}.tar.gz"
    assert tarball.is_file(), built.stdout
    dependencies = copy_dependencies(collections, env)
    installed = run(
        [
            tool("ansible-galaxy"),
            "collection",
            "install",
            "--offline",
            str(tarball),
            "-p",
            str(collections),
        ],
        cwd=project,
        env=env,
    )
    shutil.copy(ROOT / "playbooks" / "site.yml", project / "site.yml")
    return {
        "work": work,
        "tarball": tarball,
        "collections": collections,
        "project": project,
        "env": env,
        "dependencies": dependencies,
        "install_output": installed.stdout,
    }


def test_the_tarball_holds_the_collection_and_nothing_of_the_working_tree(release):
    with tarfile.open(release["tarball"]) as archive:
        names = set(archive.getnames())
    for needed in (
        "MANIFEST.json",
        "FILES.json",
        "LICENSE",
        "README.md",
        "meta/runtime.yml",
        "changelogs/changelog.yaml",
        "changelogs/config.yaml",
        "plugins/modules/secure_run.py",
        *(f"roles/{role}/meta/argument_specs.yml" for role in ROLES),
    ):
        assert needed in names, needed
    for relative in LITTER:
        assert relative not in names, relative
    caches = {".venv", ".ansible", ".pytest_cache", ".ruff_cache", ".mypy_cache", "__pycache__"}
    assert not [n for n in names if caches & set(n.split("/"))]
    assert not [
        n for n in names if n.startswith("tests/output") or n.endswith((".pyc", ".orig", ".swp"))
    ]
    assert "GNU GENERAL PUBLIC LICENSE" in (SOURCE / "LICENSE").read_text()
    manifest = json.loads(
        tarfile.open(release["tarball"]).extractfile("MANIFEST.json").read().decode()
    )
    info = manifest["collection_info"]
    assert info["license"] == ["GPL-3.0-or-later"]
    # Metadata URLs a user can follow, or none.
    for key in ("repository", "documentation", "homepage", "issues"):
        assert not info.get(key) or "example" not in info[key], key


def test_it_installs_with_only_its_declared_dependencies(release):
    assert f"kuatecno.devenv:{VERSION} was installed successfully" in release["install_output"]
    listing = run(
        [tool("ansible-galaxy"), "collection", "list", "-p", str(release["collections"])],
        cwd=release["project"],
        env=release["env"],
    ).stdout
    found = {
        line.split()[0] for line in listing.splitlines() if line.count(".") >= 1 and " " in line
    }
    assert found >= {"kuatecno.devenv", *release["dependencies"]}
    assert "community.general" not in listing


def test_site_yml_passes_the_syntax_check_outside_the_repository(release):
    """All four roles, statically imported task files included; the macOS-only Homebrew
    file (community.general) is included dynamically and not needed here."""
    done = run(
        [tool("ansible-playbook"), "-i", "localhost,", "--syntax-check", "site.yml"],
        cwd=release["project"],
        env=release["env"],
    )
    assert "couldn't resolve" not in done.stdout + done.stderr
    text = (release["project"] / "site.yml").read_text()
    for role in ROLES:
        assert f"kuatecno.devenv.{role}" in text


FILTERS = sorted(p.stem for p in (ROOT / "collections/devenv/plugins/filter").glob("*.yml"))


def test_ansible_doc_shows_the_module_every_role_and_every_filter(release):
    commands = [["kuatecno.devenv.secure_run"]] + [
        ["-t", "role", f"kuatecno.devenv.{role}"] for role in ROLES
    ]
    commands += [["-t", "filter", f"kuatecno.devenv.{name}"] for name in FILTERS]
    assert len(FILTERS) >= 10
    for args in commands:
        done = run([tool("ansible-doc"), *args], cwd=release["project"], env=release["env"])
        assert args[-1] in done.stdout, args
        assert "ERROR" not in done.stderr and "WARNING" not in done.stderr, done.stderr
        assert "example.invalid" not in done.stdout
    module = run(
        [tool("ansible-doc"), "kuatecno.devenv.secure_run"],
        cwd=release["project"],
        env=release["env"],
    ).stdout
    assert "stdout_lines" in module and "https://docs.docker.com/" in module


def test_the_launcher_role_converges_from_the_installed_collection(release):
    """A real converge on a disposable Debian 13 host, run from outside the repository
    with only the installed collections: the person gets a working `devenv` and `dev`."""
    project = release["project"]
    (project / "launcher.yml").write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Install the devenv launcher",
                    "hosts": "all",
                    "roles": [{"role": "kuatecno.devenv.devenv_launcher"}],
                }
            ],
            sort_keys=False,
        )
    )
    host = TestHost("release")
    try:
        host.sh("useradd -m -s /bin/bash carol")
        converged = host.playbook(
            project / "launcher.yml",
            {"devenv_users": ["carol"]},
            release["work"] / "converge",
            cwd=project,
            ansible_config=project / "ansible.cfg",
            extra_env={
                "HOME": release["env"]["HOME"],
                "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
            },
        )
        assert converged.rc == 0, converged
        assert converged.changed > 0, converged
        installed = (
            release["collections"] / "ansible_collections/kuatecno/devenv/plugins/module_utils"
        )
        lib = "/usr/local/lib/devenv/devenv_lib"
        for name in ("_launcher.py", "_runspec.py", "_settings.py"):
            digest = host.out(f"sha256sum {lib}/{name}").split()[0]
            assert digest == _sha256(installed / name), name
        as_carol = "su - carol -c \"bash -ic '{}'\" 2>/dev/null"
        version = host.out(as_carol.format("devenv --version"))
        assert version.strip() == f"devenv {VERSION} (kuatecno.devenv)"
        dry = host.sh(as_carol.format("cd ~/Coding && dev --dry-run -- claude --version"))
        # The docker command (over several lines when the run has a start step), then
        # the names of what it passes.
        command = dry.stdout[: dry.stdout.index("\n# from the environment by name")]
        assert command.startswith("docker run --pull never --rm --init ")
        assert " -- devenv:latest " in command and command.endswith(" claude --version")
        again = host.playbook(
            project / "launcher.yml",
            {"devenv_users": ["carol"]},
            release["work"] / "converge",
            cwd=project,
            ansible_config=project / "ansible.cfg",
            extra_env={
                "HOME": release["env"]["HOME"],
                "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
            },
        )
        assert again.rc == 0 and again.changed == 0, again
    finally:
        host.remove()


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_verify_offline_accepts_the_install_and_catches_a_changed_file(release):
    verify = [
        tool("ansible-galaxy"),
        "collection",
        "verify",
        "--offline",
        "kuatecno.devenv",
        "-p",
        str(release["collections"]),
    ]
    done = run(verify, cwd=release["project"], env=release["env"])
    assert "Successfully verified" in done.stdout
    # A file changed after installation is found (last: this spoils the install).
    changed = release["collections"] / "ansible_collections/kuatecno/devenv/README.md"
    changed.write_text(changed.read_text() + "\nchanged\n")
    spoiled = subprocess.run(
        verify,
        cwd=release["project"],
        env=release["env"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert spoiled.returncode != 0
    assert "README.md" in spoiled.stdout + spoiled.stderr
