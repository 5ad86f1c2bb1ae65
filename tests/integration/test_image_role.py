"""The devenv_image role against the real engine and the real npm registry.

One real image (Claude Code and Gemini CLI, on the local Debian 13 base, with the host's
extra CA certificates) is built once for the module and shared by every test; the role
is driven through ansible-playbook as a user would. Outcomes are checked independently
with the docker CLI: labels, layers, files and users inside the image, tags on a second
(nested) engine after a push and pull through a real registry, or after an offline load.

The image layers are kept after the session under the tag devenv-test-image/cache:latest,
so a later run reuses them (the legacy builder takes any local layer as cache); everything
else the tests create is removed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import bcrypt
import pytest
from waiting import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "tests/integration/playbooks/image_role.yml"
ANSIBLE_PLAYBOOK = next(
    (
        str(path)
        for path in (
            Path(sys.executable).with_name("ansible-playbook"),
            ROOT / ".venv/bin/ansible-playbook",
        )
        if path.exists()
    ),
    "ansible-playbook",
)
BASE = "devenv-test/debian:13"
OLD_BASE = "devenv-test/debian:12"
NESTED_IMAGE = "devenv-test/debian-docker:13"
# Names unique to this session, so concurrent runs of the suite cannot touch each other's tags.
SESSION = uuid.uuid4().hex[:8]
PREFIX = f"devenv-test-image/{SESSION}"
NAME = f"{PREFIX}-devenv"
VERSION = "0.1.0"
REF = f"{NAME}:v{VERSION}"
CACHE = "devenv-test-image/cache:latest"
CUSTOM = f"{PREFIX}-custom"
BUMP = f"{PREFIX}-bump"
OLD = f"{PREFIX}-old"
DIST = f"{PREFIX}-dist"
# The egress proxy image the role builds next to every agent image of this session.
PROXY = f"{PREFIX}-proxy"
PROXY_VERSION = "0.1.0"
PROXY_REF = f"{PROXY}:v{PROXY_VERSION}"
REPOSITORIES = (NAME, CUSTOM, BUMP, OLD, DIST, PROXY)
TEST_LABEL = "io.kuatecno.devenv.test"
AGENTS = {"@anthropic-ai/claude-code": "2.0.76", "@google/gemini-cli": "0.22.4"}
CA_DIR = Path(os.environ.get("DEVENV_TEST_CA_DIR", "/usr/local/share/ca-certificates"))
# A value that must never reach the image: present in the build's environment and vars.
CANARY = "devenv-canary-" + uuid.uuid4().hex
BUILD_TASK = "TASK [kuatecno.devenv.devenv_image : Build the image"
RECAP = re.compile(
    r"^localhost\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", re.M
)


# --------------------------------------------------------------------------- helpers


def docker(*args, host=None, check=True, capture=True, timeout=600):
    cmd = ["docker"] + (["-H", host] if host else []) + list(args)
    return subprocess.run(cmd, check=check, capture_output=capture, text=True, timeout=timeout)


def image_id(ref, host=None):
    result = docker("image", "inspect", "--format", "{{.Id}}", ref, host=host, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def labels(ref):
    return json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", ref).stdout)


def tags_of(repository, host=None):
    out = docker("image", "ls", "--format", "{{.Tag}}", repository, host=host).stdout
    return sorted(line for line in out.split() if line and line != "<none>")


def remove_tags(repository, host=None):
    for tag in tags_of(repository, host=host):
        docker("image", "rm", f"{repository}:{tag}", host=host, check=False)


def stream_lacks(needle, stream):
    """Asserts that needle is nowhere in the stream (also across chunk borders)."""
    tail, total = b"", 0
    while chunk := stream.read(1 << 20):
        assert needle not in tail + chunk, "the canary is inside the image"
        tail = chunk[-len(needle) :]
        total += len(chunk)
    return total


def assert_no_credential_left(registry):
    """The engine client's configuration (where docker login writes) keeps no login for
    the registry, and no file there holds the password."""
    config_dir = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    config = config_dir / "config.json"
    auths = json.loads(config.read_text()).get("auths", {}) if config.exists() else {}
    for address in (registry["push"], registry["pull"]):
        assert address not in auths, f"a login for {address} was left in {config}"
    for path in config_dir.rglob("*") if config_dir.exists() else ():
        if path.is_file():
            data = path.read_bytes()
            assert registry["password"].encode() not in data, path
            assert base64.b64encode(b"devenv-pusher:" + registry["password"].encode()) not in data


def ca_files():
    return sorted(str(p) for p in CA_DIR.glob("*.crt"))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(host, port, seconds=20):
    def listening():
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            return False

    message = f"nothing listens on {host}:{port} after {seconds}s"
    assert wait_for(listening, seconds, step=0.2), message


class Play:
    def __init__(self, proc, seconds):
        self.rc = proc.returncode
        self.out = proc.stdout + proc.stderr
        self.seconds = seconds
        match = RECAP.search(proc.stdout)
        self.changed = int(match.group(1)) if match else None
        self.failed = int(match.group(2)) if match else None

    def __repr__(self):
        # The failed task first: pytest shortens a long message in the middle.
        lines = self.out.splitlines()
        failures = [line for line in lines if line.startswith(("fatal:", "failed:"))]
        head = "\n".join(line[:2000] for line in failures)
        return f"Play(rc={self.rc}, changed={self.changed})\n{head}\n{self.out[-6000:]}"


def play(workdir, variables, *, check=False, env=None):
    """Runs the role through ansible-playbook with the variables as extra vars."""
    vars_file = Path(tempfile.mkstemp(dir=workdir, suffix=".json")[1])
    vars_file.write_text(json.dumps(variables))
    cmd = [ANSIBLE_PLAYBOOK, str(PLAYBOOK), "-e", f"@{vars_file}"]
    if check:
        cmd.append("--check")
    environ = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    environ.update(env or {})
    start = time.monotonic()
    proc = subprocess.run(
        cmd, check=False, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=1500
    )
    return Play(proc, time.monotonic() - start)


def role_vars(workdir, **overrides):
    variables = {
        "devenv_image_base": BASE,
        "devenv_image_name": NAME,
        "devenv_image_version": VERSION,
        "devenv_image_agents": dict(AGENTS),
        "devenv_image_infisical": False,
        "devenv_image_ca_certificates": ca_files(),
        "devenv_image_build_dir": str(Path(workdir) / "build"),
        "devenv_image_container_labels": {TEST_LABEL: "1"},
        "devenv_image_revision": "test-revision",
        "devenv_image_proxy_name": PROXY,
        "devenv_image_proxy_version": PROXY_VERSION,
    }
    variables.update(overrides)
    return variables


def run_in(ref, script, *, user=None, host=None):
    """A plain, labelled, removed container for independent checks of the image."""
    args = ["run", "--rm", "--label", f"{TEST_LABEL}=1", "--network", "none"]
    if user:
        args += ["--user", user, "--env", "HOME=/tmp/home"]
    args += ["--entrypoint", "sh", ref, "-c", script]
    return docker(*args, host=host, check=False)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The real image, built once by the role (with a canary in env and vars), then exported."""
    assert image_id(BASE), f"{BASE} is missing: scripts/test.sh builds it"
    assert ca_files(), f"no extra CA certificates in {CA_DIR}: npm is behind a TLS proxy"
    workdir = tmp_path_factory.mktemp("image")
    variables = role_vars(
        workdir,
        devenv_image_registry_password=CANARY,
        devenv_test_canary=CANARY,
    )
    first = play(workdir, variables, env={"DEVENV_TEST_CANARY": CANARY})
    try:
        assert first.rc == 0, first
        print(f"\nimage build by the role: {first.seconds:.0f}s")
        yield {"workdir": workdir, "vars": variables, "first": first}
    finally:
        if image_id(REF):
            docker("tag", REF, CACHE, check=False)
        for repository in REPOSITORIES:
            remove_tags(repository)


@pytest.fixture
def nested(tmp_path_factory):
    """A second, separate Docker engine in a container; its socket is in a shared directory
    bind-mounted at the same path, so host paths given to the role exist for both engines."""
    assert image_id(NESTED_IMAGE), f"{NESTED_IMAGE} is missing: scripts/test.sh builds it"
    shared = Path(tempfile.mkdtemp(prefix="devenv-image-nested-"))
    gateway = "172.17.0.1"
    port = free_port()
    tag = uuid.uuid4().hex[:10]
    volume = f"devenv-test-image-nested-{tag}"
    name = f"devenv-test-image-nested-{tag}"
    docker("volume", "create", "--label", f"{TEST_LABEL}=1", volume)
    try:
        docker(
            "run",
            "-d",
            "--name",
            name,
            "--label",
            f"{TEST_LABEL}=1",
            "--cap-add",
            "ALL",
            "--cap-drop",
            "SYS_RESOURCE",
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "apparmor=unconfined",
            "-v",
            "/sys/fs/cgroup:/sys/fs/cgroup:rw",
            "-v",
            f"{volume}:/var/lib/docker",
            "-v",
            f"{shared}:{shared}",
            "-e",
            "DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1",
            NESTED_IMAGE,
            "sh",
            "-c",
            f"rm -f /var/run/docker.pid; exec dockerd -H unix://{shared}/docker.sock"
            f" --insecure-registry {gateway}:{port} >{shared}/dockerd.log 2>&1",
        )
        host = f"unix://{shared}/docker.sock"
        started = wait_for(lambda: docker("info", host=host, check=False).returncode == 0, 60, 0.5)
        assert started, (shared / "dockerd.log").read_text()[-3000:]
        yield {"host": host, "shared": shared, "registry_host": gateway, "registry_port": port}
    finally:
        docker("rm", "-f", "-v", name, check=False)
        docker("volume", "rm", "-f", volume, check=False)
        shutil.rmtree(shared, ignore_errors=True)


@pytest.fixture
def registry(tmp_path, nested):
    """Debian's docker-registry: one store served on loopback (this engine pushes there; the
    engine treats 127.0.0.0/8 as insecure) and on the bridge gateway (for the nested engine)."""
    processes = []
    store = tmp_path / "registry"
    # It wants a login (htpasswd), so the role's login and logout are exercised.
    password = "pw-" + uuid.uuid4().hex
    htpasswd = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    htpasswd.write_text(f"devenv-pusher:{hashed}\n")
    listen = [("127.0.0.1", free_port()), (nested["registry_host"], nested["registry_port"])]
    try:
        for address, port in listen:
            config = tmp_path / f"registry-{port}.yml"
            config.write_text(
                "version: 0.1\nlog:\n  level: warn\n"
                f"storage:\n  filesystem:\n    rootdirectory: {store}\n"
                "  delete:\n    enabled: true\n"
                f"http:\n  addr: {address}:{port}\n"
                f"auth:\n  htpasswd:\n    realm: devenv-test\n    path: {htpasswd}\n"
            )
            log = (tmp_path / f"registry-{port}.log").open("w")
            processes.append(
                subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=log)
            )
            wait_port(address, port)
        yield {
            "push": f"127.0.0.1:{listen[0][1]}",
            "pull": f"{listen[1][0]}:{listen[1][1]}",
            "login": {
                "devenv_image_registry_username": "devenv-pusher",
                "devenv_image_registry_password": password,
            },
            "password": password,
        }
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=20)


# --------------------------------------------------------------------------- the image


ELAPSED = r" in \d+(m \d\ds|s)\."


def test_build_is_verified_and_labelled(built):
    out = built["first"].out
    for package, version in AGENTS.items():
        assert f"{package} {version}" in out, "the role did not verify every agent"
    # The long steps say what they do before they start, and how long they took.
    assert f"Building {REF} from {BASE}: system packages, Node.js, then one npm install" in out
    assert "A first build takes several minutes" in out
    assert out.index(f"Building {REF}") < out.index(BUILD_TASK)
    assert re.search(f"Built {re.escape(REF)}{ELAPSED}", out), out[-3000:]
    assert f"Verifying {REF}: each agent's --version (claude-code 2.0.76, gemini-cli 0.22.4)" in out
    pinned = re.escape("claude-code 2.0.76, gemini-cli 0.22.4")
    assert re.search(f"Verified {pinned} in {re.escape(REF)}{ELAPSED}", out), out[-3000:]
    found = labels(REF)
    assert found["org.opencontainers.image.version"] == VERSION
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", found["org.opencontainers.image.created"])
    assert found["org.opencontainers.image.revision"] == "test-revision"
    assert found["io.kuatecno.devenv.agent.claude-code"] == "2.0.76"
    assert found["io.kuatecno.devenv.agent.gemini-cli"] == "0.22.4"
    assert re.match(r"^[0-9a-f]{64}$", found["io.kuatecno.devenv.build-hash"])
    assert image_id(f"{NAME}:latest") == image_id(REF)


def test_image_works_for_an_arbitrary_user_with_a_runtime_home(built):
    # The role verified both agents as 1000:1000 through the secure run; this checks
    # another UID:GID, unknown to the image, with a plain run (Gemini CLI is slow to start).
    result = run_in(
        REF,
        "mkdir -p $HOME && claude --version && node -p process.versions.node && id -u",
        user="4242:4343",
    )
    assert result.returncode == 0, result.stderr
    claude, node, uid = result.stdout.splitlines()
    assert claude.split()[0] == "2.0.76"
    assert int(node.split(".")[0]) >= 20
    assert uid == "4242"


def test_image_keeps_no_package_lists_npm_cache_or_extra_setuid(built):
    script = (
        "ls -A /var/lib/apt/lists | grep -v -e '^partial$' -e '^lock$' || true; echo ---;"
        " ls -A /tmp; test ! -e /root/.npm || echo /root/.npm; echo ---;"
        " find / -xdev -perm -4000 -type f 2>/dev/null | sort; echo ---;"
        " printenv NODE_EXTRA_CA_CERTS;"
        " ls /usr/local/share/ca-certificates/devenv"
    )
    result = run_in(REF, script)
    lists, caches, setuid, tail = result.stdout.split("---\n")
    assert lists.strip() == "", "apt package lists were left in the image"
    assert caches.strip() == "", "an npm cache or temp file was left in the image"
    base_setuid = run_in(BASE, "find / -xdev -perm -4000 -type f 2>/dev/null | sort").stdout.split()
    assert set(setuid.split()) <= set(base_setuid), "setuid binaries beyond the base's own"
    env, *certs = tail.split()
    assert env == "/etc/ssl/certs/ca-certificates.crt"
    assert sorted(certs) == sorted(Path(f).name for f in ca_files())


def test_one_layer_per_agent_installed_last(built):
    history = docker(
        "history", "--no-trunc", "--format", "{{.CreatedBy}}", REF
    ).stdout.splitlines()[::-1]
    runs = [line for line in history if "#(nop)" not in line]
    assert "npm install -g" in runs[-1] and "@google/gemini-cli@0.22.4" in runs[-1]
    assert "npm install -g" in runs[-2] and "@anthropic-ai/claude-code@2.0.76" in runs[-2]
    assert all("npm install" not in line for line in runs[:-2])


def test_no_secret_in_layers_history_or_metadata(built):
    history = docker("history", "--no-trunc", REF).stdout
    inspect = docker("image", "inspect", REF).stdout
    assert CANARY not in history and CANARY not in inspect
    needle = CANARY.encode()
    with subprocess.Popen(["docker", "save", REF], stdout=subprocess.PIPE) as save:
        total = stream_lacks(needle, save.stdout)
    assert save.returncode == 0 and total > 100_000_000


# --------------------------------------------------------------------------- idempotence


def test_second_run_changes_nothing(built):
    before = image_id(REF)
    again = play(built["workdir"], built["vars"])
    assert again.rc == 0, again
    assert again.changed == 0, again
    assert image_id(REF) == before


def test_check_mode_reports_a_new_version_without_building(built):
    same = play(built["workdir"], built["vars"], check=True)
    assert same.rc == 0 and same.changed == 0, same
    bumped = play(built["workdir"], dict(built["vars"], devenv_image_version="0.1.1"), check=True)
    assert bumped.rc == 0, bumped
    assert bumped.changed > 0, bumped
    assert f"{NAME}:v0.1.1" in bumped.out
    assert image_id(f"{NAME}:v0.1.1") is None
    # A host that never built: no build context exists, and check mode writes none.
    fresh = Path(built["workdir"]) / "never-built"
    first = play(
        built["workdir"],
        dict(built["vars"], devenv_image_version="0.1.2", devenv_image_build_dir=str(fresh)),
        check=True,
    )
    assert first.rc == 0, first
    assert f"Would build {NAME}:v0.1.2 from {BASE} (check mode builds nothing)." in first.out
    assert not fresh.exists() and image_id(f"{NAME}:v0.1.2") is None


def test_agent_bump_rebuilds_only_its_layer_retags_and_prunes_in_semver_order(built):
    """A third, small agent appended to the map; bumping it (with a new image version)
    reuses every earlier layer. Older version tags are pruned in semantic-version order."""
    bump = BUMP
    docker("tag", BASE, f"{bump}:v0.2.0")  # an older release already on the host
    variables = dict(
        built["vars"],
        devenv_image_name=bump,
        devenv_image_keep_versions=2,
        devenv_image_export=False,
    )
    first = play(
        built["workdir"],
        dict(
            variables,
            devenv_image_version="0.9.0",
            devenv_image_agents=dict(AGENTS, prettier="3.3.2"),
            devenv_image_verify=False,
        ),
    )
    assert first.rc == 0, first
    second = play(
        built["workdir"],
        dict(
            variables,
            devenv_image_version="0.10.0",
            devenv_image_agents=dict(AGENTS, prettier="3.3.3"),
        ),
    )
    assert second.rc == 0, second
    assert "prettier 3.3.3" in second.out

    def steps(ref):
        out = docker("history", "--no-trunc", "--format", "{{.ID}}\t{{.CreatedBy}}", ref).stdout
        return [line.split("\t", 1) for line in out.splitlines()[::-1]]

    old, new = steps(f"{bump}:v0.9.0"), steps(f"{bump}:v0.10.0")
    gemini_old = next(i for i, (_, by) in enumerate(old) if "@google/gemini-cli@" in by)
    assert old[: gemini_old + 1] == new[: gemini_old + 1], "earlier layers were rebuilt"
    prettier_old = next(step for step in old if "prettier@3.3.2" in step[1])
    prettier_new = next(step for step in new if "prettier@3.3.3" in step[1])
    assert prettier_old[0] != prettier_new[0]
    assert labels(f"{bump}:v0.10.0")["io.kuatecno.devenv.agent.prettier"] == "3.3.3"
    assert image_id(f"{bump}:latest") == image_id(f"{bump}:v0.10.0")
    # keep 2: v0.10.0 and v0.9.0 stay (a lexical sort would have dropped v0.10.0).
    assert tags_of(bump) == ["latest", "v0.10.0", "v0.9.0"]


# --------------------------------------------------------------------------- custom images


def test_custom_image_is_built_from_the_release_verified_and_published(built):
    custom = {
        "name": CUSTOM,
        "version": "0.3.0",
        "instructions": [
            "RUN printf '#!/bin/sh\\necho project-tool 1.0\\n' > /usr/local/bin/project-tool"
            " && chmod 0755 /usr/local/bin/project-tool",
        ],
        "verify_commands": [["project-tool"]],
    }
    variables = dict(built["vars"], devenv_image_custom_images=[custom])
    result = play(built["workdir"], variables)
    assert result.rc == 0, result
    ref = f"{CUSTOM}:v0.3.0"
    assert f"CUSTOM={ref}" in result.out, result
    assert run_in(ref, "project-tool && claude --version", user="1000:1000").stdout.split()[:3] == [
        "project-tool",
        "1.0",
        "2.0.76",
    ]
    parents = docker("history", "-q", ref).stdout.split()
    assert image_id(REF).split(":")[1][:12] in parents, (
        "the custom image is not built FROM the release"
    )
    assert image_id(f"{CUSTOM}:latest") == image_id(ref)
    again = play(built["workdir"], variables)
    assert again.rc == 0 and again.changed == 0, again


# --------------------------------------------------------------------------- clear errors


def test_released_version_tag_is_immutable(built):
    before = image_id(REF)
    changed = dict(built["vars"], devenv_image_packages=["git", "less"])
    result = play(built["workdir"], changed)
    assert result.rc != 0
    assert "Released version tags are immutable" in result.out, result
    assert f"{REF} already exists with other content" in result.out
    assert image_id(REF) == before


def test_verification_mismatch_names_both_versions(built):
    wrong = dict(
        built["vars"],
        devenv_image_source="load",
        devenv_image_export=False,
        devenv_image_agents={"@anthropic-ai/claude-code": "2.0.75"},
        devenv_image_archive=str(built["workdir"] / "not-read.tar"),
    )
    result = play(built["workdir"], wrong)
    assert result.rc != 0
    expected = "@anthropic-ai/claude-code reports version 2.0.76 but 2.0.75 is pinned"
    assert expected in result.out, result


def test_too_old_nodejs_fails_before_building(built):
    old = dict(
        built["vars"],
        devenv_image_base=OLD_BASE,
        devenv_image_name=OLD,
        devenv_image_export=False,
    )
    result = play(built["workdir"], old)
    assert result.rc != 0
    assert f"The base image {OLD_BASE} provides Node.js 18" in result.out, result
    assert "devenv_image_nodejs_source=nodesource" in result.out
    assert BUILD_TASK not in result.out
    assert image_id(f"{OLD}:v0.1.0") is None


def test_missing_base_image_is_a_clear_error(built):
    missing = dict(
        built["vars"],
        devenv_image_base="devenv-test/no-such-base:1",
        devenv_image_name=OLD,
        devenv_image_export=False,
    )
    result = play(built["workdir"], missing)
    assert result.rc != 0
    expected = "devenv-test/no-such-base:1 is not on this host and could not be pulled"
    assert expected in result.out, result
    assert BUILD_TASK not in result.out


def test_unreachable_registry_is_a_clear_error(built):
    port = free_port()  # nothing listens there
    pull = dict(
        built["vars"],
        devenv_image_source="pull",
        devenv_image_version="9.9.9",
        devenv_image_registry=f"127.0.0.1:{port}",
        devenv_image_export=False,
    )
    result = play(built["workdir"], pull)
    assert result.rc != 0
    assert f"Could not pull 127.0.0.1:{port}/{NAME}:v9.9.9" in result.out, result
    assert "reachable" in result.out


# --------------------------------------------------------------------------- distribution


def test_push_then_pull_and_retag_on_a_second_engine_then_load_offline(
    built, nested, registry, request
):
    """Build and push here; pull, re-tag and verify on a second engine; then the offline path.
    The distributed image carries Claude Code only (its layers are the shared image's, from
    the build cache), to keep the transfer through the registry and the archive small."""
    dist = DIST
    ref = f"{dist}:v{VERSION}"
    agents = {"@anthropic-ai/claude-code": "2.0.76"}
    archive = built["workdir"] / "dist.tar"
    request.addfinalizer(lambda: remove_tags(f"{registry['push']}/{dist}"))
    push = dict(
        built["vars"],
        devenv_image_name=dist,
        devenv_image_agents=agents,
        devenv_image_push=True,
        devenv_image_export=True,
        devenv_image_archive=str(archive),
        devenv_image_registry=registry["push"],
        **registry["login"],
    )
    pushed = play(built["workdir"], push)
    assert pushed.rc == 0, pushed
    # Both images travel, and the messages name both.
    remote = re.escape(
        f"{registry['push']}/{dist}:v{VERSION} and {registry['push']}/{PROXY}:v{PROXY_VERSION}"
    )
    assert re.search(f"Pushed {remote}{ELAPSED}", pushed.out), pushed
    exported = re.escape(f"{ref} and {PROXY_REF}")
    assert re.search(f"Exported {exported}{ELAPSED}", pushed.out), pushed
    assert_no_credential_left(registry)
    assert "@anthropic-ai/claude-code 2.0.76" in pushed.out, "not verified after the build"
    built_id = image_id(ref)
    assert built_id and image_id(f"{registry['push']}/{dist}:v{VERSION}") == built_id
    assert archive.stat().st_size > 100_000_000
    # The egress proxy image travels with it: pushed, and in the same archive.
    proxy_id = image_id(PROXY_REF)
    assert proxy_id and image_id(f"{registry['push']}/{PROXY}:v{PROXY_VERSION}") == proxy_id
    request.addfinalizer(lambda: remove_tags(f"{registry['push']}/{PROXY}"))

    host = nested["host"]
    other = dict(
        built["vars"],
        devenv_image_name=dist,
        devenv_image_agents=agents,
        devenv_image_docker_host=host,
        devenv_image_build_dir=str(nested["shared"] / "build"),
    )
    pull = dict(
        other,
        devenv_image_source="pull",
        devenv_image_registry=registry["pull"],
        **registry["login"],
    )
    pulled = play(built["workdir"], pull)
    assert pulled.rc == 0, pulled
    assert f"Pulling {registry['pull']}/{dist}:v{VERSION} unless this host" in pulled.out
    pulled_refs = re.escape(
        f"{registry['pull']}/{dist}:v{VERSION} and {registry['pull']}/{PROXY}:v{PROXY_VERSION}"
    )
    assert re.search(f"Pulled {pulled_refs}{ELAPSED}", pulled.out), pulled
    assert_no_credential_left(registry)
    # A play that fails after the login (a version nobody pushed) logs out all the same.
    failed = play(built["workdir"], dict(pull, devenv_image_version="9.9.9"))
    assert failed.rc != 0 and "Could not pull" in failed.out, failed
    assert_no_credential_left(registry)
    assert "@anthropic-ai/claude-code 2.0.76" in pulled.out, "not verified on the second engine"
    assert image_id(ref, host=host) == built_id
    assert image_id(f"{dist}:latest", host=host) == built_id
    assert image_id(PROXY_REF, host=host) == proxy_id
    assert "configuration OK" in pulled.out, "the proxy image was not verified after the pull"
    again = play(built["workdir"], pull)
    assert again.rc == 0 and again.changed == 0, again
    assert f"{ref} was already on this host; nothing was pulled." in again.out

    # Offline: the second engine forgets the image and loads the exported archive.
    remove_tags(dist, host=host)
    remove_tags(f"{registry['pull']}/{dist}", host=host)
    remove_tags(PROXY, host=host)
    remove_tags(f"{registry['pull']}/{PROXY}", host=host)
    assert image_id(ref, host=host) is None
    loaded = play(
        built["workdir"],
        dict(other, devenv_image_source="load", devenv_image_archive=str(archive)),
    )
    assert loaded.rc == 0, loaded
    assert re.search(f"Loaded {re.escape(f'{ref} and {PROXY_REF}')}{ELAPSED}", loaded.out), loaded
    assert "@anthropic-ai/claude-code 2.0.76" in loaded.out, "not verified after the load"
    assert image_id(ref, host=host) == built_id
    assert image_id(f"{dist}:latest", host=host) == built_id
    assert image_id(PROXY_REF, host=host) == proxy_id
