"""The agents' state on the host (no engine): where it lives, the first-use import of the
host's login (once, 0600, never back), the private directories, the generated files,
and the work done as the state's owner when root prepares it."""

import json
import os
import stat
from pathlib import Path

import pytest
from ansible_collections.kuatecno.devenv.plugins.module_utils import _agents as ag
from ansible_collections.kuatecno.devenv.plugins.module_utils._runspec import (
    Host,
    RunSpecError,
    build_spec,
)

NOBODY = 65534


def tree(root):
    """{relative path: (mode, bytes)} of everything under root (the host's files)."""
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory) / name
            info = path.lstat()
            data = path.read_bytes() if stat.S_ISREG(info.st_mode) else b""
            found[str(path.relative_to(root))] = (stat.S_IMODE(info.st_mode), data)
    return found


@pytest.fixture
def home(tmp_path):
    """A home whose owner has used both agents on the host."""
    home = tmp_path / "home" / "alice"
    (home / "Coding").mkdir(parents=True)
    (home / ".claude").mkdir()
    (home / ".claude" / ".credentials.json").write_text('{"claudeAiOauth": {"accessToken": "t"}}')
    (home / ".claude" / "settings.json").write_text('{"hooks": {}}')
    (home / ".claude.json").write_text(
        json.dumps(
            {
                "hasCompletedOnboarding": True,
                "lastOnboardingVersion": "2.0.76",
                "userID": "u-1",
                "oauthAccount": {"emailAddress": "alice@example.com"},
                "projects": {"/home/alice/secret-project": {"history": ["private"]}},
            }
        )
    )
    (home / ".gemini").mkdir()
    (home / ".gemini" / "oauth_creds.json").write_text('{"refresh_token": "r"}')
    (home / ".gemini" / "google_accounts.json").write_text('{"active": "alice@example.com"}')
    (home / ".gemini" / "settings.json").write_text(
        '{"security": {"auth": {"selectedType": "oauth-personal"}}, "theme": "x"}'
    )
    return home


def me(home, **environ):
    return Host(os.getuid(), os.getgid(), "alice", str(home), 2, environ)


def spec_for(home, **settings):
    # The suite runs as root in CI: then the run is root's own, explicitly.
    base = {"ssh": "none", "run_as_root": os.geteuid() == 0, "gitconfig": None}
    return build_spec(dict(base, **settings), host=me(home))


def state_of(spec, name):
    return Path(next(p for n, p, _t, _s in spec.state if n == name))


def test_first_use_imports_the_host_login_once_and_never_writes_back(home):
    before = tree(home)
    spec = spec_for(home)
    notices = ag.prepare(spec)
    assert len(notices) == 2 and all("imported your" in n for n in notices)
    claude, gemini = state_of(spec, "claude"), state_of(spec, "gemini")
    assert (claude / ".credentials.json").read_bytes() == (
        home / ".claude" / ".credentials.json"
    ).read_bytes()
    imported = json.loads((claude / ".claude.json").read_text())
    # The login and the onboarding, not the host's projects or its settings (hooks).
    assert imported == {
        "oauthAccount": {"emailAddress": "alice@example.com"},
        "userID": "u-1",
        "hasCompletedOnboarding": True,
        "lastOnboardingVersion": "2.0.76",
    }
    assert not (claude / "settings.json").exists()
    assert (gemini / "oauth_creds.json").read_text() == '{"refresh_token": "r"}'
    assert (gemini / "google_accounts.json").exists()
    assert json.loads((gemini / "settings.json").read_text()) == {
        "security": {"auth": {"selectedType": "oauth-personal"}}
    }
    for path in (*claude.iterdir(), *gemini.iterdir()):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert path.stat().st_uid == os.getuid()
    # A login the agent refreshed in the container is kept; the host's is not copied again.
    (claude / ".credentials.json").write_text("refreshed in the container")
    (home / ".claude" / ".credentials.json").write_text('{"claudeAiOauth": {"accessToken": "new"}}')
    assert ag.prepare(spec) == []
    assert (claude / ".credentials.json").read_text() == "refreshed in the container"
    after = tree(home)
    after.pop(".claude/.credentials.json")
    before.pop(".claude/.credentials.json")
    assert {k: v for k, v in after.items() if not k.startswith(".local")} == before


def test_every_level_of_devenv_s_directory_is_private(home):
    os.umask(0o022)
    spec = spec_for(home)
    ag.prepare(spec)
    data = home / ".local" / "share" / "devenv"
    for path in (data, data / "state", data / "state" / "user", state_of(spec, "claude")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    # Widened by hand: made private again on the next run.
    (data / "state").chmod(0o755)
    ag.prepare(spec)
    assert stat.S_IMODE((data / "state").stat().st_mode) == 0o700


def test_nothing_to_import_leaves_an_empty_state(tmp_path):
    home = tmp_path / "bob"
    (home / "Coding").mkdir(parents=True)
    spec = spec_for(home)
    assert ag.prepare(spec) == []
    assert list(state_of(spec, "claude").iterdir()) == []
    assert list(state_of(spec, "gemini").iterdir()) == []


def test_an_existing_state_gets_the_login_merged_in(home):
    spec = spec_for(home)
    gemini = state_of(spec, "gemini")
    gemini.mkdir(parents=True)
    (gemini / "settings.json").write_text('{"ui": {"theme": "dark"}}')
    ag.prepare(spec)
    assert json.loads((gemini / "settings.json").read_text()) == {
        "ui": {"theme": "dark"},
        "security": {"auth": {"selectedType": "oauth-personal"}},
    }


def test_a_host_claude_config_dir_is_where_the_login_is_read(home, tmp_path):
    moved = tmp_path / "claude-elsewhere"
    moved.mkdir()
    (moved / ".credentials.json").write_text("moved login")
    (moved / ".claude.json").write_text('{"userID": "moved"}')
    base = {"ssh": "none", "run_as_root": os.geteuid() == 0}
    spec = build_spec(base, host=me(home, CLAUDE_CONFIG_DIR=str(moved)))
    ag.prepare(spec)
    claude = state_of(spec, "claude")
    assert (claude / ".credentials.json").read_text() == "moved login"
    assert json.loads((claude / ".claude.json").read_text()) == {"userID": "moved"}
    # ... and that directory is guarded like ~/.claude.
    with pytest.raises(Exception, match="never writable"):
        mount = {"source": str(moved), "target": "/m", "read_only": False}
        build_spec(dict(base, mounts=[mount]), host=me(home, CLAUDE_CONFIG_DIR=str(moved)))


def test_ephemeral_runs_touch_no_state_on_the_host(home):
    spec = spec_for(home, ephemeral=True)
    ag.prepare(spec)
    assert not (home / ".local" / "share" / "devenv" / "state").exists()
    # Only the generated, non-secret identity files are written.
    assert sorted(p.name for p in (home / ".local/share/devenv/identity").iterdir()) == [
        "group",
        "passwd",
    ]


def test_generated_files_are_written_once_and_readable(home):
    spec = spec_for(home)
    ag.prepare(spec)
    for path, content in spec.generated:
        assert Path(path).read_text() == content
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o644
    first = os.stat(spec.generated[0][0]).st_ino
    ag.prepare(spec)
    assert os.stat(spec.generated[0][0]).st_ino == first  # unchanged content: not rewritten


def test_login_readies_the_agent_s_own_flow(home):
    spec = spec_for(home)
    ag.prepare(spec, "gemini")
    settings = json.loads((state_of(spec, "gemini") / "settings.json").read_text())
    assert settings["security"]["auth"]["selectedType"] == "oauth-personal"
    ag.prepare(spec, "claude")
    claude = json.loads((state_of(spec, "claude") / ".claude.json").read_text())
    assert claude["hasCompletedOnboarding"] is True and claude["userID"] == "u-1"


@pytest.mark.parametrize(
    ("mode", "code", "expected"),
    [("user", "", "state/user"), ("code_dir", "/srv/My Code", "state/code/My_Code-")],
)
def test_state_dir_names(mode, code, expected):
    assert expected in ag.state_dir("/d", mode, code)


def test_data_dir_follows_xdg():
    assert ag.data_dir("/h", {}) == "/h/.local/share/devenv"
    assert ag.data_dir("/h", {"XDG_DATA_HOME": "/x"}) == "/x/devenv"
    assert ag.data_dir("/h", {"XDG_DATA_HOME": "relative"}) == "/h/.local/share/devenv"


def test_size_and_removal_never_follow_symlinks(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x" * 5000)
    state = tmp_path / "state"
    (state / "sub").mkdir(parents=True)
    (state / "sub" / "f").write_text("x" * 100)
    (state / "link").symlink_to(outside)
    assert ag.tree_size(str(state)) < 1000
    ag.remove_tree(str(state))
    assert not state.exists() and (outside / "keep").exists()
    assert ag.format_size(1536) == "1.5 KiB" and ag.format_size(12) == "12 B"


@pytest.fixture
def open_dir():
    """A directory any user can traverse (pytest's own is private to root)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="devenv-agents-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another user needs root")
def test_root_prepares_a_user_s_state_as_that_user(open_dir):
    home = open_dir / "nobody-home"
    (home / "Coding").mkdir(parents=True)
    (home / ".claude").mkdir()
    (home / ".claude" / ".credentials.json").write_text("login")
    for path in (home, home / "Coding", home / ".claude", home / ".claude/.credentials.json"):
        os.chown(path, NOBODY, NOBODY)
    host = Host(NOBODY, NOBODY, "nobody", str(home), 2, {})
    spec = build_spec({"ssh": "none"}, host=host)
    assert ag.prepare(spec)  # the import notice came back from the child
    for path in (home / ".local", state_of(spec, "claude") / ".credentials.json"):
        assert path.stat().st_uid == NOBODY, path
    # A trap laid in the user's home is followed with the user's rights only.
    os.chown(home / ".local" / "share" / "devenv", 0, 0)
    (home / ".local" / "share" / "devenv").chmod(0o700)
    with pytest.raises(OSError, match="Permission denied"):
        ag.prepare(spec)


def test_an_ephemeral_run_is_seeded_with_the_host_login_and_writes_none(home):
    before = tree(home)
    spec = spec_for(home, ephemeral=True)
    seeds = {path: (mode, data) for path, mode, data in ag.seed_files(spec)}
    assert set(seeds) == {
        ".claude/.credentials.json",
        ".claude/.claude.json",
        ".gemini/google_accounts.json",
        ".gemini/settings.json",
        ".gemini/oauth_creds.json",
    }
    assert all(mode == 0o600 for mode, _data in seeds.values())
    assert (
        seeds[".claude/.credentials.json"][1] == (home / ".claude/.credentials.json").read_bytes()
    )
    assert json.loads(seeds[".claude/.claude.json"][1])["userID"] == "u-1"
    assert "projects" not in json.loads(seeds[".claude/.claude.json"][1])
    assert tree(home) == before  # read only: nothing written, not even devenv's directory
    # They travel in the start payload only, and are kept out of the run's repr.
    seeded = spec.replace(seed_files=ag.seed_files(spec))
    assert seeded.uses_start and b"F 0600 .claude/.credentials.json " in seeded.start_payload()
    assert "accessToken" not in repr(seeded)
    # A run with a kept state is not seeded: its state has the login already.
    assert ag.seed_files(spec_for(home)) == ()


def test_a_plain_start_is_not_through_sudo_and_knows_its_platform():
    import sys

    host = Host.current()
    if "SUDO_UID" not in os.environ:
        assert host.sudo is False
    assert host.platform == sys.platform


@pytest.mark.skipif(os.geteuid() != 0, reason="the sudo door runs as root")
def test_through_sudo_devenv_s_own_sources_are_pinned_once_created(open_dir):
    from ansible_collections.kuatecno.devenv.plugins.module_utils import _runspec

    home = open_dir / "nobody-home"
    (home / "Coding").mkdir(parents=True)
    for path in (home, home / "Coding"):
        os.chown(path, NOBODY, NOBODY)
    host = Host(NOBODY, NOBODY, "nobody", str(home), 2, {}, sudo=True)
    spec = build_spec({"ssh": "none", "gitconfig": None}, host=host)
    assert {t for t, _d, _i in spec.pins} == {"/app"}  # the state is not there yet
    ag.prepare(spec)
    pinned = _runspec.pin_own(spec, host)
    targets = {t for t, _d, _i in pinned.pins}
    assert targets == {
        "/app",
        "/home/dev/.claude",
        "/home/dev/.gemini",
        "/etc/passwd",
        "/etc/group",
    }
    claude = next(p for n, p, _t, _s in spec.state if n == "claude")
    info = os.stat(claude)
    pins = {t: (d, i) for t, d, i in pinned.pins}
    assert pins["/home/dev/.claude"] == (info.st_dev, info.st_ino)
    # Swapped for a link to somewhere else after the check: refused.
    os.rename(claude, claude + ".old")
    os.symlink("/etc", claude)
    with pytest.raises(RunSpecError, match="changed while it was checked"):
        _runspec.pin_own(spec, host)
