"""The real agent CLIs doing real work through `dev`, as a person on a provisioned host.

An unprivileged test user who has used both agents on the host (a real ~/.claude,
~/.claude.json and ~/.gemini) runs the installed launcher against the real agent image.
The model APIs are stand-ins following the public contracts (tests/support/model_api.py),
one container on the default bridge; the agents are pointed at it with ANTHROPIC_BASE_URL
and GOOGLE_GEMINI_BASE_URL, their API keys come from the Infisical stand-in as secrets.
Every container carries io.kuatecno.devenv.test=1 and is removed in `finally`.

The tests of one module share the user, its state and the stand-in; they run in file
order (the last one checks the host's agent files after all of it).
"""

import fcntl
import hashlib
import json
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
import install_launcher  # noqa: E402
from model_api import texts_of  # noqa: E402
from people import as_person as as_user  # noqa: E402
from waiting import wait_for  # noqa: E402

LOGIN = f"devag{os.getpid() % 100000}"
RUN = uuid.uuid4().hex[:8]
RUN_LABEL = "io.kuatecno.devenv.testrun"
TEST_LABEL = "io.kuatecno.devenv.test"
ANTHROPIC_KEY = f"sk-ant-api03-standin-{RUN}"
GEMINI_KEY = f"AIza-standin-{RUN}"
# The host's own Claude Code login (OAuth tokens as Claude Code keeps them on Linux).
OAUTH_TOKEN = f"sk-ant-oat01-host-login-{RUN}"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0B\nAQEFAAS\n-----END PRIVATE KEY-----\n"
SSHD_IMAGE = "devenv-test/sshd:13"
GEMINI_MODEL = "gemini-2.5-flash"
MODULE = ROOT / "collections/devenv/plugins/modules/secure_run.py"


def docker(*args, check=True, timeout=60, input=None):
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=timeout,
        input=input,
    ).stdout  # fmt: skip


def tree(root):
    """{relative path: (mode, bytes)} under root: the host's agent files, byte for byte."""
    root = Path(root)
    found = {}
    for path in sorted([root, *root.rglob("*")]) if root.is_dir() else [root]:
        info = path.lstat()
        data = path.read_bytes() if stat.S_ISREG(info.st_mode) else b""
        found[str(path.relative_to(root.parent))] = (info.st_mode, info.st_uid, data)
    return found


# ---------------------------------------------------------------- the person and the host


def _host_agent_files(home, uid, gid):
    """What the agents leave in a home after use on the host (Linux)."""
    claude = home / ".claude"
    (claude / "projects" / "-home-x-Coding").mkdir(parents=True)
    (claude / "projects" / "-home-x-Coding" / "s1.jsonl").write_text('{"type":"user"}\n')
    expires = int((time.time() + 30 * 86400) * 1000)
    login = {
        "claudeAiOauth": {
            "accessToken": OAUTH_TOKEN,
            "refreshToken": f"sk-ant-ort01-host-refresh-{RUN}",
            "expiresAt": expires,
            "scopes": ["user:inference", "user:profile"],
            "subscriptionType": "pro",
        }
    }
    (claude / ".credentials.json").write_text(json.dumps(login))
    # A hook on the host: what a writable ~/.claude would let a container plant.
    (claude / "settings.json").write_text('{"hooks": {}, "model": "sonnet"}\n')
    (home / ".claude.json").write_text(
        json.dumps(
            {
                "numStartups": 12,
                "installMethod": "npm",
                "autoUpdates": False,
                "hasCompletedOnboarding": True,
                "lastOnboardingVersion": "2.0.76",
                "userID": hashlib.sha256(RUN.encode()).hexdigest(),
                "oauthAccount": {"accountUuid": "a-1", "emailAddress": f"{LOGIN}@example.com"},
                "projects": {str(home / "Coding"): {"allowedTools": [], "history": []}},
            },
            indent=2,
        )
    )
    gemini = home / ".gemini"
    (gemini / "tmp").mkdir(parents=True)
    (gemini / "oauth_creds.json").write_text(
        json.dumps({"access_token": "ya29.host", "refresh_token": "1//host", "expiry_date": 1})
    )
    (gemini / "google_accounts.json").write_text(json.dumps({"active": f"{LOGIN}@example.com"}))
    # This person switched Gemini CLI to an API key after logging in with Google once.
    (gemini / "settings.json").write_text(
        json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}}, "ui": {}})
    )
    (gemini / "installation_id").write_text(str(uuid.uuid4()))
    for path in [home / ".claude.json", *claude.rglob("*"), claude, *gemini.rglob("*"), gemini]:
        os.chown(path, uid, gid)
    for path in (claude / ".credentials.json", gemini / "oauth_creds.json"):
        path.chmod(0o600)


@pytest.fixture(scope="module")
def person():
    """An unprivileged user with a home, the docker group, and both agents used on the host."""
    if os.geteuid() != 0:
        pytest.skip("creates a test user: needs root (as in CI)")
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", LOGIN], check=True)
    try:
        entry = pwd.getpwnam(LOGIN)
        subprocess.run(["usermod", "-aG", "docker", LOGIN], check=True)
        home = Path(entry.pw_dir)
        (home / "Coding").mkdir()
        os.chown(home / "Coding", entry.pw_uid, entry.pw_gid)
        _host_agent_files(home, entry.pw_uid, entry.pw_gid)
        yield entry
    finally:
        subprocess.run(["userdel", "--remove", LOGIN], check=False, capture_output=True)


@pytest.fixture(scope="module")
def host_files(person):
    """The host's agent files as they were before any run."""
    home = Path(person.pw_dir)
    return {name: tree(home / name) for name in (".claude", ".claude.json", ".gemini")}


@pytest.fixture(scope="module")
def prefix(person):
    """The launcher (as the role installs it), the Infisical stand-in and the project's
    secrets, in a directory the person can read."""
    path = Path(tempfile.mkdtemp(prefix="devenv-agents-"))
    path.chmod(0o755)
    install_launcher.install(path, "/usr/bin/python3")
    shutil.copy(ROOT / "tests" / "support" / "infisical", path / "infisical")
    (path / "infisical").chmod(0o755)
    secrets = {"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "GEMINI_API_KEY": GEMINI_KEY, "DEVENV_PEM": PEM}
    (path / "project-secrets.json").write_text(json.dumps(secrets))
    (path / "project-secrets.json").chmod(0o644)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def cleanup():
    """Containers of this module, removed at its end."""
    yield
    ids = docker("ps", "-aq", "--filter", f"label={RUN_LABEL}={RUN}", check=False).split()
    if ids:
        docker("rm", "-f", *ids, check=False)


@pytest.fixture(scope="module")
def dev(person, prefix, agent_image, model_api, cleanup):
    """dev(*args, cwd=, env=, **settings) -> argv and environment of `devenv run ARGS`
    as the person, from their code directory (run it with .run() or in tmux)."""
    config = prefix / "config.json"
    home = Path(person.pw_dir)

    class Dev:
        def __init__(self):
            self.base = {
                "image": agent_image,
                "memory": "2g",
                "pids_limit": 200,
                "ssh": "none",
                # The API stand-in listens on this machine's bridge; the egress policy and
                # an agent through its proxy are tests/integration/test_network_policy.py.
                "network": "open",
                "gitconfig": None,
                "labels": {TEST_LABEL: "1", RUN_LABEL: RUN},
                "env": {
                    "ANTHROPIC_BASE_URL": model_api.url,
                    "GOOGLE_GEMINI_BASE_URL": model_api.url,
                },
                "secrets": {
                    "project_id": "p-agents",
                    "binary": str(prefix / "infisical"),
                    "timeout": 10,
                },
            }
            self.api = model_api

        def command(self, *args, env=None, login=False, **settings):
            config.write_text(json.dumps(dict(self.base, **settings)))
            config.chmod(0o644)
            environ = {
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "HOME": str(home),
                "USER": LOGIN,
                "LOGNAME": LOGIN,
                "TERM": "xterm-256color",
                "DEVENV_CONFIG": str(config),
                "INFISICAL_TOKEN": "tok-agents",
                "DEVENV_FAKE_INFISICAL_SECRETS": str(prefix / "project-secrets.json"),
            }
            environ.update(env or {})
            sub = ["login"] if login else ["run"]
            argv = [*as_user(person), str(prefix / "bin" / "devenv"), *sub, *args]
            return argv, environ

        def run(self, *args, cwd=None, env=None, timeout=180, **settings):
            argv, environ = self.command(*args, env=env, **settings)
            done = subprocess.run(
                argv, env=environ, cwd=cwd or home / "Coding", capture_output=True, text=True,
                timeout=timeout, stdin=subprocess.DEVNULL, check=False,
            )  # fmt: skip
            return done

    return Dev()


def project(person, name):
    """A project directory under the person's code directory."""
    path = Path(person.pw_dir) / "Coding" / f"{name}-{RUN}"
    path.mkdir()
    os.chown(path, person.pw_uid, person.pw_gid)
    return path


def requests_with(api, tag, kind="anthropic"):
    """Recorded requests whose last user message holds standin-tag:<tag>."""
    found = []
    for request in api.requests(kind):
        body = request["body"]
        turns = body.get("messages") or body.get("contents") or []
        users = [t for t in turns if t.get("role", "user") == "user"]
        if users and f"standin-tag:{tag}" in texts_of({"body": {"messages": users[-1:]}}):
            found.append(request)
    return found


def state_dir(person):
    return Path(person.pw_dir) / ".local" / "share" / "devenv" / "state" / "user"


# ---------------------------------------------------------------- print mode


def test_versions_are_the_pinned_ones(dev):
    done = dev.run("--no-secrets", "--", "sh", "-c", "claude --version; gemini --version")
    assert done.returncode == 0, done.stderr
    assert "2.0.76" in done.stdout and "0.22.4" in done.stdout
    # The first run imported the host's logins (said once, on the terminal).
    assert "imported your Claude Code login" in done.stderr
    assert "imported your Gemini CLI login" in done.stderr


def test_the_image_has_the_reference_s_tools_and_never_updates_its_agents(dev):
    # What the reference image has (an SSH client for git, a pager, a compiler), and the
    # system-wide settings that keep Gemini CLI from updating itself in a read-only image.
    script = (
        "for tool in ssh less gcc make git nc; do command -v $tool || echo missing $tool; done; "
        "cat /etc/gemini-cli/settings.json; cat /etc/ssh/ssh_config.d/*.conf"
    )
    done = dev.run("--no-secrets", "--", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    assert "missing" not in done.stdout, done.stdout
    (line,) = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    settings = json.loads(line)
    assert settings["general"] == {"disableAutoUpdate": True, "disableUpdateNag": True}
    assert "UserKnownHostsFile ~/.ssh/known_hosts /run/devenv/known_hosts" in done.stdout
    assert 'ProxyCommand nc -X connect -x "$DEVENV_PROXY" %h %p' in done.stdout


def test_claude_answers_a_prompt_with_the_api_key_from_infisical(dev, person, host_files):
    tag = f"claude-p-{RUN}"
    done = dev.run("--", "claude", "-p", f"Say hello. standin-tag:{tag}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"ANSWER({tag})"
    (request,) = [r for r in requests_with(dev.api, tag) if r["body"].get("stream")]
    assert request["headers"]["x-api-key"] == ANTHROPIC_KEY
    assert request["path"].startswith("/v1/messages")
    # First use imported the host's login into devenv's own state, once, private.
    imported = state_dir(person) / "claude" / ".credentials.json"
    assert imported.read_bytes() == (Path(person.pw_dir) / ".claude/.credentials.json").read_bytes()
    info = imported.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o600, person.pw_uid)
    assert "imported" not in done.stderr  # once only


def test_the_imported_login_answers_without_an_api_key(dev):
    tag = f"oauth-{RUN}"
    done = dev.run("--no-secrets", "--", "claude", "-p", f"standin-tag:{tag}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"ANSWER({tag})"
    heard = {r["headers"].get("authorization") for r in requests_with(dev.api, tag)}
    assert heard == {f"Bearer {OAUTH_TOKEN}"}  # the host's login, copied into the state


def test_gemini_answers_a_prompt(dev, person):
    tag = f"gemini-p-{RUN}"
    done = dev.run("--", "gemini", "-m", GEMINI_MODEL, "-p", f"Say hello. standin-tag:{tag}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"ANSWER({tag})"
    streamed = requests_with(dev.api, tag, "gemini-streamGenerateContent")
    assert streamed and all(r["headers"]["x-goog-api-key"] == GEMINI_KEY for r in streamed)
    assert f"/models/{GEMINI_MODEL}:streamGenerateContent" in streamed[0]["path"]
    # Its state is devenv's: the session was saved there, and the login came along.
    gemini = state_dir(person) / "gemini"
    assert list(gemini.glob("tmp/*/chats")), sorted(p.name for p in gemini.rglob("*"))
    assert (gemini / "oauth_creds.json").stat().st_uid == person.pw_uid


def test_under_gvisor_both_agents_answer_and_write_their_state(dev, person):
    # A kernel boundary changes nothing for the person: the API keys arrive through the
    # start channel, the state and the identity files are mounted, the agents' threads
    # fit the process limit that the sandbox's own kernel keeps.
    tag = f"gvisor-{RUN}"
    claude = dev.run("--isolation", "gvisor", "--", "claude", "-p", f"standin-tag:{tag}-c")
    assert claude.returncode == 0, claude.stderr
    assert claude.stdout.strip() == f"ANSWER({tag}-c)"
    gemini = dev.run(
        "--isolation", "gvisor", "--", "gemini", "-m", GEMINI_MODEL, "-p", f"standin-tag:{tag}-g"
    )
    assert gemini.returncode == 0, gemini.stderr
    assert gemini.stdout.strip() == f"ANSWER({tag}-g)"
    (request,) = [r for r in requests_with(dev.api, f"{tag}-c") if r["body"].get("stream")]
    assert request["headers"]["x-api-key"] == ANTHROPIC_KEY
    sessions = state_dir(person) / "claude" / "projects"
    assert any(f"{tag}-c" in p.read_text() for p in sessions.rglob("*.jsonl"))


def test_a_tool_call_writes_a_file_in_the_code_directory_owned_by_the_user(dev, person):
    code = project(person, "tool")
    word = f"written-{RUN}"
    prompt = f"Create the file. standin-write:/app/{code.name}/hello.txt:{word}"
    done = dev.run("--", "claude", "--dangerously-skip-permissions", "-p", prompt, cwd=code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ANSWER(wrote)"
    made = code / "hello.txt"
    assert made.read_text() == word + "\n"
    assert (made.stat().st_uid, made.stat().st_gid) == (person.pw_uid, person.pw_gid)
    results = [
        r for r in dev.api.requests("anthropic") if "File created successfully" in texts_of(r)
    ]
    assert results, "the stand-in never saw the tool's result"


def test_continue_sends_the_earlier_conversation_and_ephemeral_does_not(dev, person):
    code = project(person, "continue")
    first, second, third = (f"{n}-{RUN}" for n in ("first", "second", "third"))
    done = dev.run("--", "claude", "-p", f"Remember this. standin-tag:{first}", cwd=code)
    assert done.returncode == 0 and done.stdout.strip() == f"ANSWER({first})", done.stderr
    # A second, fresh container: the conversation comes from the kept state.
    done = dev.run("--", "claude", "--continue", "-p", f"And now? standin-tag:{second}", cwd=code)
    assert done.returncode == 0 and done.stdout.strip() == f"ANSWER({second})", done.stderr
    sent = "\n".join(texts_of(r) for r in requests_with(dev.api, second))
    assert f"standin-tag:{first}" in sent and f"ANSWER({first})" in sent
    # An ephemeral run has its own empty state: nothing of the first conversation.
    before = sorted(p.name for p in (state_dir(person) / "claude" / "projects").rglob("*"))
    done = dev.run(
        "--ephemeral", "--", "claude", "--continue", "-p", f"standin-tag:{third}", cwd=code
    )
    assert f"standin-tag:{first}" not in "\n".join(
        texts_of(r) for r in requests_with(dev.api, third)
    )
    assert done.stdout.strip() in (f"ANSWER({third})", "No conversation found to continue")
    after = sorted(p.name for p in (state_dir(person) / "claude" / "projects").rglob("*"))
    assert after == before  # and it left nothing in the kept state


def test_an_ephemeral_run_is_seeded_with_the_host_login(dev):
    tag = f"seeded-{RUN}"
    done = dev.run("--ephemeral", "--no-secrets", "--", "claude", "-p", f"standin-tag:{tag}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"ANSWER({tag})"
    heard = {r["headers"].get("authorization") for r in requests_with(dev.api, tag)}
    assert heard == {f"Bearer {OAUTH_TOKEN}"}


def test_a_multiline_secret_arrives_whole(dev):
    done = dev.run("--", "sh", "-c", 'printf %s "$DEVENV_PEM" | sha256sum')
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == hashlib.sha256(PEM.encode()).hexdigest()


def test_the_user_exists_in_the_container(dev, person):
    done = dev.run("--no-secrets", "--", "sh", "-c", 'whoami; getent passwd "$(id -u)"; echo $HOME')
    assert done.returncode == 0, done.stderr
    name, entry, home = done.stdout.split("\n")[:3]
    assert name == LOGIN and home == "/home/dev"
    assert entry == f"{LOGIN}:x:{person.pw_uid}:{person.pw_gid}:{LOGIN}:/home/dev:/bin/bash"


# ---------------------------------------------------------------- in a real terminal


class Terminal:
    """A tmux session of its own (own server socket), running one command."""

    def __init__(self, argv, environ, cwd):
        self.socket = f"devenv-test-{RUN}-{uuid.uuid4().hex[:6]}"
        inner = "cd {} && env -i {} {}; sleep 3".format(
            shlex.quote(str(cwd)),
            " ".join(shlex.quote(f"{k}={v}") for k, v in environ.items()),
            shlex.join(argv),
        )
        self.tmux("new-session", "-d", "-s", "t", "-x", "160", "-y", "50", inner)

    def tmux(self, *args):
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30,
            check=False,
        ).stdout  # fmt: skip

    def screen(self):
        return self.tmux("capture-pane", "-p", "-J", "-t", "t")

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "t", *keys)

    def type(self, text):
        self.tmux("send-keys", "-t", "t", "-l", text)

    def wait_for(self, *needles, timeout=90):
        def seen():
            screen = self.screen()
            return next((needle for needle in needles if needle in screen), None)

        found = wait_for(seen, timeout=timeout, step=0.5)
        assert found, f"none of {needles} on the screen:\n{self.screen()}"
        return found

    def alive(self):
        return "t" in self.tmux("list-sessions", "-F", "#{session_name}").split()

    def close(self, timeout=30):
        """Close the terminal, as a person closes the window: the run must end with it.
        Returns the names of this module's containers still running after `timeout`
        seconds (removed then, so the next test starts clean)."""
        self.tmux("kill-server")

        def running():
            lines = docker(
                "ps", "--format", "{{.Names}} {{.Command}}", "--filter", f"label={RUN_LABEL}={RUN}",
                check=False,
            ).splitlines()  # fmt: skip
            return [line for line in lines if not line.startswith("devenv-test-")]

        wait_for(lambda: not running(), timeout=timeout, step=0.5)
        left = running()
        for line in left:
            docker("rm", "-f", line.split()[0], check=False)
        return left


def test_interactive_claude_in_a_terminal(dev, person):
    code = project(person, "tty")
    tag = f"tty-{RUN}"
    argv, environ = dev.command("--", "claude")
    term = Terminal(argv, environ, code)
    try:
        # Claude Code's first questions in a new folder, answered as a person would.
        for _ in range(4):
            seen = term.wait_for(
                "Do you trust the files", "Do you want to use this API key", "? for shortcuts"
            )
            if seen == "Do you trust the files":
                term.keys("Enter")  # 1. Yes, proceed
            elif seen == "Do you want to use this API key":
                term.keys("Up", "Enter")  # Yes (the default is No)
            else:
                break
            time.sleep(1.5)
        term.type(f"Hello there standin-tag:{tag}")
        time.sleep(0.5)
        term.keys("Enter")
        term.wait_for(f"ANSWER({tag})")
        term.type("/exit")
        time.sleep(0.5)
        term.keys("Enter")
        end = time.monotonic() + 30
        while term.alive() and time.monotonic() < end:
            time.sleep(0.5)
    finally:
        left = term.close()
    assert requests_with(dev.api, tag), "the stand-in never saw the typed prompt"
    assert not left, f"runs outlived their terminal: {left}"


@pytest.mark.parametrize(
    ("agent", "url", "question"),
    [
        ("claude", "https://claude.ai/oauth/authorize", "Paste code here"),
        ("gemini", "https://accounts.google.com/o/oauth2", "Enter the authorization code"),
    ],
)
def test_login_runs_the_agent_s_own_flow_without_a_browser(dev, person, agent, url, question):
    code = project(person, f"login-{agent}")
    argv, environ = dev.command(agent, "--no-secrets", login=True)
    term = Terminal(argv, environ, code)
    try:
        for _ in range(4):
            seen = term.wait_for("Do you trust the files", "Select login method", question)
            if seen == question:
                break
            term.keys("Enter")  # trust the folder; a Claude account with a subscription
            time.sleep(1.5)
        assert url in term.screen()
        term.keys("C-c")
        time.sleep(1)
        term.keys("C-c")
    finally:
        left = term.close()
    assert not left, f"runs outlived their terminal: {left}"


# ---------------------------------------------------------------- git over SSH


@pytest.fixture(scope="module")
def git_server(person, cleanup):
    """A real sshd with a bare repository, for the git user, keyed to the person's key."""
    lock = Path(tempfile.gettempdir()) / "devenv-test-sshd-image.lock"
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        if subprocess.run(
            ["docker", "image", "inspect", SSHD_IMAGE], capture_output=True, check=False
        ).returncode:
            docker("build", "-q", "-t", SSHD_IMAGE, str(ROOT / "tests/images/sshd"), timeout=900)
    home = Path(person.pw_dir)
    as_person = as_user(person)
    subprocess.run(
        [*as_person, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", LOGIN,
         "-f", str(home / ".ssh/id_ed25519")],
        check=True, env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    name = f"devenv-test-sshd-{RUN}"
    docker(
        "run",
        "-d",
        "--name",
        name,
        "--label",
        f"{TEST_LABEL}=1",
        "--label",
        f"{RUN_LABEL}={RUN}",
        SSHD_IMAGE,
    )
    try:
        ip = json.loads(docker("inspect", name))[0]["NetworkSettings"]["IPAddress"]
        public = (home / ".ssh/id_ed25519.pub").read_text()
        docker(
            "exec",
            "-i",
            "-u",
            "git",
            name,
            "sh",
            "-c",
            "cat > ~/.ssh/authorized_keys && chmod 600 ~/.ssh/authorized_keys",
            input=public,
        )
        setup = (
            "git init -q --bare -b main /home/git/repo.git && git init -q -b main /tmp/w "
            "&& cd /tmp/w && echo first > README && git add README "
            "&& git -c user.name=s -c user.email=s@e commit -qm first "
            "&& git push -q /home/git/repo.git main"
        )
        docker("exec", "-u", "git", name, "sh", "-c", setup)
        for _ in range(60):
            keys = subprocess.run(
                ["ssh-keyscan", "-T", "2", ip], capture_output=True, text=True, check=False
            ).stdout
            if keys.strip():
                break
            time.sleep(0.5)
        known = home / ".ssh" / "known_hosts"
        known.write_text(keys)
        os.chown(known, person.pw_uid, person.pw_gid)
        yield name, ip
    finally:
        docker("rm", "-f", name, check=False)


@pytest.fixture
def ssh_agent(person):
    """The person's own ssh-agent on the host, holding their key."""
    home = Path(person.pw_dir)
    as_person = as_user(person)
    sock = Path(tempfile.mkdtemp(prefix="devenv-agent-")) / "agent.sock"
    os.chown(sock.parent, person.pw_uid, person.pw_gid)
    agent = subprocess.Popen(
        [*as_person, "ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL
    )
    try:
        for _ in range(50):
            if sock.exists():
                break
            time.sleep(0.1)
        env = {"SSH_AUTH_SOCK": str(sock), "HOME": str(home), "PATH": "/usr/bin:/bin"}
        subprocess.run(
            [*as_person, "ssh-add", "-q", str(home / ".ssh/id_ed25519")], env=env, check=True
        )
        yield str(sock)
    finally:
        agent.terminate()
        agent.wait(timeout=10)
        shutil.rmtree(sock.parent, ignore_errors=True)


GIT_WORK = r"""set -e
git clone -q git@IP:repo.git work
cd work
echo "from the container" > pushed.txt
git add pushed.txt
git -c user.name=dev -c user.email=dev@example.com commit -qm "from dev"
git push -q origin main
for f in ~/.ssh/id_ed25519 /app/*/id_ed25519; do test -e "$f" && echo "KEY VISIBLE: $f"; done
grep -rl "OPENSSH PRIVATE KEY" /home/dev /run/devenv /tmp /app 2>/dev/null \
  | sed 's/^/KEY FILE: /' || true
echo pushed
"""


# Under gVisor the agent's socket is a host socket the sandbox connects to
# (runsc --host-uds=open, as the devenv_engine role registers it).
@pytest.mark.parametrize("isolation", ["runc", "gvisor"])
def test_git_clone_and_push_over_ssh_through_the_forwarded_agent(
    dev, person, git_server, ssh_agent, isolation
):
    name, ip = git_server
    code = project(person, f"git-{isolation}")
    done = dev.run(
        "--no-secrets", "--isolation", isolation, "--", "sh", "-c",
        GIT_WORK.replace("IP", ip).replace("from the container", f"pushed under {isolation}"),
        cwd=code, env={"SSH_AUTH_SOCK": ssh_agent}, ssh="auto",
    )  # fmt: skip
    if done.returncode != 0:
        probe = "cat /run/devenv/known_hosts; ssh -v -o BatchMode=yes git@IP true 2>&1 | tail -25"
        again = dev.run(
            "--no-secrets", "--", "sh", "-c", probe.replace("IP", ip), cwd=code,
            env={"SSH_AUTH_SOCK": ssh_agent}, ssh="auto",
        )  # fmt: skip
        known = (Path(person.pw_dir) / ".ssh/known_hosts").read_text()
        pytest.fail(f"{done.stderr}\nhost known_hosts:\n{known}\nin the container:\n{again.stdout}")
    assert done.stdout.strip().splitlines()[-1] == "pushed"
    assert "KEY" not in done.stdout
    log = docker(
        "exec",
        "-u",
        "git",
        name,
        "git",
        "--git-dir=/home/git/repo.git",
        "log",
        "--format=%s",
        "main",
    )
    assert log.split("\n")[0] == "from dev"
    assert (code / "work" / "pushed.txt").stat().st_uid == person.pw_uid
    # The private key stayed on the host: it is in no file the container could see.
    private = (Path(person.pw_dir) / ".ssh/id_ed25519").read_bytes()
    assert private not in b"".join(p.read_bytes() for p in code.rglob("*") if p.is_file())


# ---------------------------------------------------------------- the module


def test_secure_run_module_runs_claude_with_the_api_key_as_a_secret(dev, person, prefix, tmp_path):
    code = project(person, "module")
    tag = f"module-{RUN}"
    args = {
        "image": dev.base["image"],
        "command": ["claude", "-p", f"standin-tag:{tag}"],
        "code_dir": str(code),
        "user": f"{person.pw_uid}:{person.pw_gid}",
        "memory": "2g",
        "pids_limit": 200,
        "labels": dev.base["labels"],
        "env": dev.base["env"],
        "network": "open",
        "infisical": {
            "project_id": "p-agents",
            "binary": str(prefix / "infisical"),
            "token": "tok-mod",
        },
        "timeout": 180,
    }
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT / "collections"),
        DEVENV_FAKE_INFISICAL_SECRETS=str(prefix / "project-secrets.json"),
    )
    done = subprocess.run(
        [sys.executable, str(MODULE), str(path)], env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    result = json.loads(done.stdout)
    assert result.get("rc") == 0, result
    assert result["stdout"].strip() == f"ANSWER({tag})"
    (request,) = [r for r in requests_with(dev.api, tag) if r["body"].get("stream")]
    assert request["headers"]["x-api-key"] == ANTHROPIC_KEY
    assert ANTHROPIC_KEY not in done.stdout  # never returned


# ---------------------------------------------------------------- afterwards


def test_state_command_shows_it_and_reset_clears_one_agent(dev, person):
    done = dev.run("--no-secrets", "--", "true")  # nothing to do; then ask about the state
    argv, environ = dev.command()
    argv[argv.index("run")] = "state"
    shown = subprocess.run(
        argv, env=environ, capture_output=True, text=True, check=False, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    assert str(state_dir(person) / "claude") in shown.stdout and "KiB" in shown.stdout
    refused = subprocess.run(
        [*argv, "reset", "gemini"], env=environ, capture_output=True, text=True, check=False,
        timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert refused.returncode == 2 and "--yes" in refused.stderr
    cleared = subprocess.run(
        [*argv, "reset", "gemini", "--yes"], env=environ, capture_output=True, text=True,
        check=False, timeout=60,
    )  # fmt: skip
    assert cleared.returncode == 0, cleared.stderr
    assert not (state_dir(person) / "gemini").exists() and (state_dir(person) / "claude").exists()
    assert done.returncode == 0


def test_host_agent_files_unchanged_and_no_state_file_readable_by_others(person, host_files):
    home = Path(person.pw_dir)
    for name, before in host_files.items():
        assert tree(home / name) == before, f"the host's {name} changed"
    data = home / ".local" / "share" / "devenv"
    paths = [str(p) for p in data.rglob("*") if not p.is_symlink()]
    assert any(p.endswith("/.credentials.json") for p in paths)
    probe = (
        "import json, os, sys\n"
        "opened = []\n"
        "for p in json.load(sys.stdin):\n"
        "    try:\n"
        "        (os.listdir if os.path.isdir(p) else lambda q: open(q, 'rb').read(1))(p)\n"
        "        opened.append(p)\n"
        "    except OSError:\n"
        "        pass\n"
        "print(json.dumps(opened))\n"
    )
    other = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
         "/usr/bin/python3", "-c", probe],
        input=json.dumps(paths), capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert json.loads(other.stdout) == []
    for path in [data, *data.rglob("*")]:
        assert path.lstat().st_uid == person.pw_uid, path
