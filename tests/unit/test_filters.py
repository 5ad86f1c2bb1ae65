"""The collection's filter plugins (plugins/filter/), as pure functions.

The role tests (test_role_*.py) show that the roles call them with the right arguments;
these pin down what each filter does, edge cases and errors included.
"""

import random

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.kuatecno.devenv.plugins.filter import (
    credentials,
    image,
    launcher,
    semver,
    users,
)

PASSWD = {
    "alice": ["x", "1000", "1000", "", "/home/alice", "/bin/bash"],
    "bob": ["x", "1001", "1001", "", "/srv/home/bob", "/usr/bin/zsh"],
}


# --------------------------------------------------------------------------- users


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ([], []),
        (["alice"], [{"name": "alice"}]),
        (
            ["alice", {"name": "bob", "code_dir": "/srv/bob"}],
            [{"name": "alice"}, {"name": "bob", "code_dir": "/srv/bob"}],
        ),
        # A record without a name is passed on: the roles' checks name the variable.
        ([{"home": "/h"}], [{"home": "/h"}]),
    ],
)
def test_user_records(given, expected):
    assert users.user_records(given) == expected


@pytest.mark.parametrize("given", ["alice", {"name": "alice"}, None, 3])
def test_user_records_needs_a_list(given):
    with pytest.raises(AnsibleFilterError, match=r"kuatecno\.devenv\.user_records: the users"):
        users.user_records(given)


@pytest.mark.parametrize(
    ("record", "passwd", "home_base", "user_group", "expected"),
    [
        # Linux: everything from the passwd database.
        (
            {"name": "alice"},
            PASSWD,
            "/home",
            None,
            {"name": "alice", "home": "/home/alice", "group": "1000", "shell": "/bin/bash"},
        ),
        (
            {"name": "bob"},
            PASSWD,
            "/home",
            None,
            {"name": "bob", "home": "/srv/home/bob", "group": "1001", "shell": "/usr/bin/zsh"},
        ),
        # macOS (no passwd database read): the OS map's home base and group.
        (
            {"name": "alice"},
            {},
            "/Users",
            "staff",
            {"name": "alice", "home": "/Users/alice", "group": "staff", "shell": ""},
        ),
        ({"name": "carol"}, None, "/home", None, {"name": "carol", "home": "/home/carol"}),
        # A record's own home wins over both, even when empty.
        ({"name": "alice", "home": "/data/a"}, PASSWD, "/home", None, {"home": "/data/a"}),
        ({"name": "alice", "home": ""}, {}, "/Users", "staff", {"home": ""}),
        # An empty passwd entry counts as no entry.
        ({"name": "alice"}, {"alice": []}, "/Users", "staff", {"group": "staff", "shell": ""}),
    ],
)
def test_user_accounts(record, passwd, home_base, user_group, expected):
    (account,) = users.user_accounts([record], passwd, home_base, user_group)
    assert {key: account[key] for key in expected} == expected
    assert list(account) == ["name", "home", "group", "shell"]


@pytest.mark.parametrize(
    ("record", "keep", "extra"),
    [
        ({"name": "a"}, {"code_dir": "~/C", "shells": None}, {"code_dir": "~/C", "shells": None}),
        ({"name": "a", "code_dir": "/c", "shells": ["zsh"]}, {"code_dir": "~/C", "shells": None},
         {"code_dir": "/c", "shells": ["zsh"]}),
        ({"name": "a", "credential_paths": []}, {"credential_paths": [{"path": ".x"}]},
         {"credential_paths": []}),
        # Keys not named in keep are not copied.
        ({"name": "a", "code_dir": "/c", "gitconfig": ""}, None, {}),
    ],
)  # fmt: skip
def test_user_accounts_keep_record_keys_with_defaults(record, keep, extra):
    (account,) = users.user_accounts([record], {}, "/Users", "staff", keep=keep)
    assert account == {"name": "a", "home": "/Users/a", "group": "staff", "shell": "", **extra}


def test_user_accounts_keep_the_order_of_the_records():
    records = [{"name": n} for n in ("carol", "alice", "bob")]
    assert [a["name"] for a in users.user_accounts(records, PASSWD, "/home")] == [
        "carol",
        "alice",
        "bob",
    ]


@pytest.mark.parametrize(
    ("records", "passwd", "message"),
    [
        ("alice", {}, "the user records must be a list"),
        (["alice"], {}, "each entry of the user records must be a mapping"),
        ([{"home": "/h"}], {}, "needs a login name"),
        ([{"name": ""}], {}, "needs a login name"),
        ([{"name": 7}], {}, "needs a login name"),
        ([{"name": "alice"}], ["alice"], "passwd must be a mapping"),
        ([{"name": "alice"}], {"alice": ["x", "1000"]}, "passwd entry of alice has too few"),
        ([{"name": "alice"}], {"alice": "x:1000"}, "passwd entry of alice must be a list"),
    ],
)
def test_user_accounts_errors_name_the_bad_input(records, passwd, message):
    with pytest.raises(AnsibleFilterError, match=r"kuatecno\.devenv\.user_accounts: .*" + message):
        users.user_accounts(records, passwd, "/home")


def test_user_overrides_take_only_the_per_user_keys_a_record_sets():
    records = [
        {"name": "alice"},
        {"name": "bob", "code_dir": "/srv/bob", "credentials": [], "shells": ["zsh"]},
        {"name": "carol", "gitconfig": "", "home": "/data/carol"},
    ]
    assert users.user_overrides(records) == {
        "bob": {"code_dir": "/srv/bob", "credentials": []},
        "carol": {"gitconfig": ""},
    }


@pytest.mark.parametrize("key", users.PER_USER_KEYS)
def test_user_overrides_cover_every_per_user_key_of_the_run_specification(key):
    record = {"name": "a", key: "value", "home": "/h", "shells": [], "credential_paths": []}
    assert users.user_overrides([record]) == {"a": {key: "value"}}


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ({"name": "a"}, "the user records must be a list"),
        ([{"code_dir": "/c"}], "needs a login name"),
    ],
)
def test_user_overrides_errors(records, message):
    with pytest.raises(AnsibleFilterError, match=r"kuatecno\.devenv\.user_overrides: .*" + message):
        users.user_overrides(records)


# --------------------------------------------------------------------------- launcher

RC_NAMES = {"bash": ".bashrc", "zsh": ".zshrc"}


def _account(login_shell="/bin/bash", shells=None, **more):
    return {"name": "a", "home": "/h", "group": "g", "shell": login_shell, "shells": shells, **more}


@pytest.mark.parametrize(
    ("account", "state", "zsh_installed", "files"),
    [
        (_account(), "present", False, [".bashrc"]),
        (_account(), "present", True, [".bashrc", ".zshrc"]),
        (_account(login_shell="/usr/bin/zsh"), "present", False, [".bashrc", ".zshrc"]),
        (_account(login_shell=""), "present", False, [".bashrc"]),
        # A record's shells list decides, whatever is installed.
        (_account(shells=["zsh"]), "present", False, [".zshrc"]),
        (_account(shells=["bash"]), "present", True, [".bashrc"]),
        (_account(shells=[]), "present", True, []),
        # Removal looks at both files, whatever the record says.
        (_account(shells=["bash"]), "absent", False, [".bashrc", ".zshrc"]),
    ],
)
def test_rc_files(account, state, zsh_installed, files):
    found = launcher.rc_files([account], RC_NAMES, state=state, zsh_installed=zsh_installed)
    assert [f["file"] for f in found] == files
    assert all(f == dict(account, file=f["file"]) for f in found)


def test_rc_files_keep_the_order_of_the_accounts():
    accounts = [_account(name=n) for n in ("b", "a")]
    found = launcher.rc_files(accounts, RC_NAMES, zsh_installed=True)
    assert [(f["name"], f["file"]) for f in found] == [
        ("b", ".bashrc"),
        ("b", ".zshrc"),
        ("a", ".bashrc"),
        ("a", ".zshrc"),
    ]


@pytest.mark.parametrize(
    ("accounts", "rc_names", "state", "message"),
    [
        ([_account(shells=["fish"])], RC_NAMES, "present", "user a has an unknown shell 'fish'"),
        ([_account(shells="zsh")], RC_NAMES, "present", "the shells of a must be a list"),
        ([{"name": "a"}], RC_NAMES, "present", "has no shell"),
        ([_account()], [".bashrc"], "present", "rc_names must be a mapping"),
        ([_account()], RC_NAMES, "gone", "state must be present or absent"),
    ],
)
def test_rc_files_errors(accounts, rc_names, state, message):
    with pytest.raises(AnsibleFilterError, match=r"kuatecno\.devenv\.rc_files: .*" + message):
        launcher.rc_files(accounts, rc_names, state=state)


@pytest.mark.parametrize(
    ("code_dir", "path"),
    [
        ("~/Coding", "/h/Coding"),
        ("~/", "/h/"),
        ("/srv/code", "/srv/code"),
        # Only "~/" is the home; "~" or "~other/" are paths as written.
        ("~", "~"),
        ("~bob/code", "~bob/code"),
        ("", None),
        (None, None),
    ],
)
def test_code_dirs(code_dir, path):
    found = launcher.code_dirs([_account(code_dir=code_dir)])
    assert found == ([{"name": "a", "group": "g", "path": path}] if path else [])


def test_code_dirs_without_a_code_dir_key():
    assert launcher.code_dirs([{"name": "a", "home": "/h", "group": "g"}]) == []


@pytest.mark.parametrize(
    ("accounts", "message"),
    [
        ([{"name": "a", "group": "g", "code_dir": "/c"}], "has no home"),
        ([_account(code_dir=["/c"])], "the code_dir of a must be a string"),
        ({"name": "a"}, "the accounts must be a list"),
    ],
)
def test_code_dirs_errors(accounts, message):
    with pytest.raises(AnsibleFilterError, match=r"kuatecno\.devenv\.code_dirs: .*" + message):
        launcher.code_dirs(accounts)


# --------------------------------------------------------------------------- credentials


def _secrets_account(*paths, home="/h"):
    return {
        "name": "a",
        "home": home,
        "group": "g",
        "credential_paths": [{"path": p, "kind": k} for p, k in paths],
    }


@pytest.mark.parametrize(
    ("relative", "path", "parents"),
    [
        (".claude.json", "/h/.claude.json", []),
        (".config/infisical", "/h/.config/infisical", ["/h/.config"]),
        ("a/b/c", "/h/a/b/c", ["/h/a", "/h/a/b"]),
        # Leading and trailing slashes do not leave the home or add a parent.
        ("/.gemini/oauth_creds.json/", "/h/.gemini/oauth_creds.json", ["/h/.gemini"]),
    ],
)
def test_credential_paths_lead_from_the_home(relative, path, parents):
    (entry,) = credentials.credential_paths([_secrets_account((relative, "file"))], False)
    assert entry == {"user": "a", "group": "g", "kind": "file", "path": path, "parents": parents}


@pytest.mark.parametrize(
    ("manage_ssh", "paths"),
    [
        (True, ["/h/.env", "/h/.ssh"]),
        (False, ["/h/.env"]),
    ],
)
def test_credential_paths_add_ssh_when_managed(manage_ssh, paths):
    entries = credentials.credential_paths([_secrets_account((".env", "file"))], manage_ssh)
    assert [e["path"] for e in entries] == paths
    assert [e["kind"] for e in entries] == ["file", "directory"][: len(paths)]


def test_credential_paths_per_user_in_order():
    accounts = [
        dict(_secrets_account((".env", "file"), home="/u/b"), name="b"),
        dict(_secrets_account(home="/u/a"), name="a"),
    ]
    assert [(e["user"], e["path"]) for e in credentials.credential_paths(accounts)] == [
        ("b", "/u/b/.env"),
        ("b", "/u/b/.ssh"),
        ("a", "/u/a/.ssh"),
    ]


@pytest.mark.parametrize(
    ("accounts", "message"),
    [
        ([{"name": "a", "home": "/h", "group": "g"}], "has no credential_paths"),
        ([dict(_secrets_account(), credential_paths=[{"path": ".x"}])], "has no kind"),
        ([dict(_secrets_account(), credential_paths=[{"path": 1, "kind": "file"}])],
         "must be a string"),
        ([dict(_secrets_account(), credential_paths=".x")],
         "the credential paths of a must be a list"),
    ],
)  # fmt: skip
def test_credential_paths_errors(accounts, message):
    with pytest.raises(
        AnsibleFilterError, match=r"kuatecno\.devenv\.credential_paths: .*" + message
    ):
        credentials.credential_paths(accounts)


@pytest.mark.parametrize(
    ("real_parents", "safe"),
    [
        ([], ["/h/.ssh"]),
        (["/h/.config"], ["/h/.ssh", "/h/.config/infisical"]),
        (["/h/a"], ["/h/.ssh"]),
        (["/h/a", "/h/a/b", "/h/.config"], ["/h/.ssh", "/h/.config/infisical", "/h/a/b/c"]),
    ],
)
def test_safe_paths_need_every_parent_real(real_parents, safe):
    paths = [
        {"path": "/h/.ssh", "parents": []},
        {"path": "/h/.config/infisical", "parents": ["/h/.config"]},
        {"path": "/h/a/b/c", "parents": ["/h/a", "/h/a/b"]},
    ]
    assert credentials.safe_paths(paths, real_parents) == safe


def test_safe_paths_errors():
    with pytest.raises(AnsibleFilterError, match=r"safe_paths: an entry of the paths has no"):
        credentials.safe_paths([{"path": "/h/x"}], [])
    with pytest.raises(AnsibleFilterError, match=r"safe_paths: real_parents must be a list"):
        credentials.safe_paths([], "/h")


def _stat(path, kind="directory", **stat):
    return {"item": {"path": path, "kind": kind, "user": "u", "group": "g"}, "stat": stat}


SAFE = ["/h/.ssh", "/h/.env", "/h/link", "/h/dir-file", "/h/file-dir"]


@pytest.mark.parametrize(
    ("result", "ssh_dir"),
    [
        (_stat("/h/.ssh", exists=True, isdir=True), True),
        (_stat("/h/.ssh", exists=False), False),
        (_stat("/h/.ssh", exists=True, isdir=False, islnk=True), False),
        (_stat("/u/.ssh", exists=True, isdir=True), False),  # not in safe
        (_stat("/h/.sshx", exists=True, isdir=True), False),
        ({"item": {"path": "/h/.ssh"}, "failed": True, "msg": "Not a directory"}, False),
    ],
)
def test_ssh_dirs(result, ssh_dir):
    assert credentials.ssh_dirs([result], SAFE) == ([result["item"]] if ssh_dir else [])


@pytest.mark.parametrize(
    ("result", "note"),
    [
        (_stat("/h/.ssh", exists=True, isdir=True, isreg=False, islnk=False), None),
        (_stat("/h/.env", "file", exists=True, isdir=False, isreg=True, islnk=False), None),
        (_stat("/h/.env", "file", exists=False), None),
        (_stat("/h/link", exists=True, isdir=False, isreg=False, islnk=True), "symlink"),
        (_stat("/h/dir-file", exists=True, isdir=False, isreg=True, islnk=False),
         "not a directory"),
        (_stat("/h/file-dir", "file", exists=True, isdir=True, isreg=False, islnk=False),
         "not a regular file"),
        (_stat("/h/x/.env", "file", exists=True, isreg=True, islnk=False),
         "a parent is a symlink or not a directory"),
        ({"item": {"path": "/h/y/.env", "kind": "file"}, "failed": True, "msg": "Not a directory"},
         "a parent is a symlink or not a directory"),
        # Missing below an unsafe parent: nothing to report but "missing".
        (_stat("/h/x/.gone", "file", exists=False), None),
    ],
)  # fmt: skip
def test_left_alone(result, note):
    expected = [f"{result['item']['path']} ({note})"] if note else []
    assert credentials.left_alone([result], SAFE) == expected


@pytest.mark.parametrize("name", ["ssh_dirs", "left_alone"])
@pytest.mark.parametrize(
    ("results", "message"),
    [
        ([{"stat": {"exists": True}}], "an entry of the stat results has no item"),
        ([{"item": "/h/.ssh", "stat": {}}], "the item of a stat result must be a mapping"),
        ([{"item": {"kind": "file"}, "stat": {}}], "the item of a stat result has no path"),
    ],
)
def test_stat_result_errors(name, results, message):
    with pytest.raises(AnsibleFilterError, match=rf"kuatecno\.devenv\.{name}: .*{message}"):
        getattr(credentials, name)(results, SAFE)


def test_found_files_carry_the_owner_of_their_loop_item():
    results = [
        {"item": {"path": "/a/.ssh", "user": "a", "group": "ga"},
         "files": [{"path": "/a/.ssh/id_ed25519"}, {"path": "/a/.ssh/id_rsa"}]},
        {"item": {"path": "/b/.ssh", "user": "b", "group": "gb"}, "skipped": True},
        {"item": {"path": "/c/.ssh", "user": "c", "group": "gc"}, "files": []},
        {"item": {"path": "/d/.ssh", "user": "d", "group": "gd"},
         "files": [{"path": "/d/.ssh/key"}]},
    ]  # fmt: skip
    assert credentials.found_files(results) == [
        {"path": "/a/.ssh/id_ed25519", "user": "a", "group": "ga"},
        {"path": "/a/.ssh/id_rsa", "user": "a", "group": "ga"},
        {"path": "/d/.ssh/key", "user": "d", "group": "gd"},
    ]


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ({"results": []}, "the find results must be a list"),
        ([{"files": [{"path": "/k"}]}], "the item of a find result must be a mapping"),
        (
            [{"item": {"user": "u"}, "files": [{"name": "k"}]}],
            "an entry of the found files has no path",
        ),
    ],
)
def test_found_files_errors(results, message):
    with pytest.raises(AnsibleFilterError, match=r"kuatecno\.devenv\.found_files: .*" + message):
        credentials.found_files(results)


# --------------------------------------------------------------------------- semver

# Oldest to newest. The pre-release run is the example of semver.org (11.4.4).
ORDERED = [
    "v0.2.0",
    "v0.9.0",
    "v0.10.0-rc.1",
    "v0.10.0",
    "v0.10.1",
    "v1.0.0-alpha",
    "v1.0.0-alpha.1",
    "v1.0.0-alpha.beta",
    "v1.0.0-beta",
    "v1.0.0-beta.2",
    "v1.0.0-beta.11",
    "v1.0.0-rc.1",
    "v1.0.0",
    "v2.0.0-0",
    "v2.0.0-0.a",
    "v2.0.0-1",
    "v2.0.0-10",
    "v2.0.0-1a",
    "v2.0.0-A",
    "v2.0.0-a",
    "v10.0.0",
]


@pytest.mark.parametrize("seed", range(5))
def test_semver_sort_follows_semver_precedence(seed):
    shuffled = ORDERED[:]
    random.Random(seed).shuffle(shuffled)  # noqa: S311 - a reproducible order, not a secret
    assert semver.semver_sort(shuffled) == ORDERED
    assert semver.semver_sort(shuffled, reverse=True) == ORDERED[::-1]


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        ([], []),
        (["v0.10.0", "v0.9.0"], ["v0.9.0", "v0.10.0"]),  # not lexical
        (["1.0.0", "v0.1.0"], ["v0.1.0", "1.0.0"]),  # the "v" is optional
        # Build metadata is ignored: equal versions keep their order.
        (["1.0.0+b2", "1.0.0+b1", "1.0.0-rc.1+x"], ["1.0.0-rc.1+x", "1.0.0+b2", "1.0.0+b1"]),
        (["v1.0.0", "1.0.0"], ["v1.0.0", "1.0.0"]),
        # Digits-only identifiers compare as numbers, leading zeros too.
        (["1.0.0-rc.010", "1.0.0-rc.9"], ["1.0.0-rc.9", "1.0.0-rc.010"]),
    ],
)
def test_semver_sort(versions, expected):
    assert semver.semver_sort(versions) == expected


def test_semver_sort_reverse_keeps_equal_versions_in_order():
    assert semver.semver_sort(["v1.0.0", "1.0.0", "v2.0.0"], reverse=True) == [
        "v2.0.0",
        "v1.0.0",
        "1.0.0",
    ]


@pytest.mark.parametrize(
    "bad",
    ["latest", "v1.2", "1.2.3.4", "01.2.3", "v1.02.3", "1.2.3-", "1.2.3-rc..1", "1.2.3-rc_1",
     "V1.2.3", " 1.2.3", 123, None],
)  # fmt: skip
def test_semver_sort_refuses_what_is_not_a_version(bad):
    with pytest.raises(AnsibleFilterError, match=r"kuatecno\.devenv\.semver_sort: not a semantic"):
        semver.semver_sort(["1.0.0", bad])


@pytest.mark.parametrize(
    ("versions", "reverse", "message"),
    [
        ("v1.0.0", False, "the versions must be a list"),
        (["v1.0.0"], "yes", "reverse must be true or false"),
    ],
)
def test_semver_sort_argument_errors(versions, reverse, message):
    with pytest.raises(AnsibleFilterError, match=r"kuatecno\.devenv\.semver_sort: .*" + message):
        semver.semver_sort(versions, reverse=reverse)


# --------------------------------------------------------------------------- image checks

NPM = r"^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*$"
EXACT = r"^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$"
SEMVER = r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$"
NAME = r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$"


@pytest.mark.parametrize(
    ("agents", "problems"),
    [
        ({"@anthropic-ai/claude-code": "2.0.76", "@google/gemini-cli": "0.22.4"}, []),
        (
            {"@anthropic-ai/claude-code": "^2.0.0", "@google/gemini-cli": "0.22.4"},
            ["@anthropic-ai/claude-code: '^2.0.0' (not an exact version)"],
        ),
        ({"Bad Name": "1.0.0", "x": "latest"}, ["'Bad Name' (not an npm package name)",
                                                "x: 'latest' (not an exact version)"]),
        ({"x": 2}, ["x: 2 (not an exact version)"]),
    ],
)  # fmt: skip
def test_agent_pin_problems_name_only_the_wrong_agents(agents, problems):
    assert image.agent_pin_problems(agents, NPM, EXACT) == problems


@pytest.mark.parametrize(
    ("images", "problems"),
    [
        ([{"name": "tools", "version": "1.0.0", "instructions": ["RUN true"]}], []),
        (
            [{"name": "tools", "version": "1.0.0"}],
            ["entry 1 (tools) needs a list of Dockerfile instructions"],
        ),
        (
            [{"name": "devenv", "version": 1, "instructions": "RUN true"}],
            [
                "entry 1 (devenv) needs a name other than devenv, a quoted semantic version, "
                "a list of Dockerfile instructions"
            ],
        ),
        (
            [
                {"name": "ok", "version": "1.0.0", "instructions": ["RUN true"]},
                {"version": "1.0.0", "instructions": ["RUN true"], "verify_commands": "x"},
                "text",
            ],
            [
                "entry 2 ((no name)) needs a name that is a Docker repository name, "
                "verify_commands as a list of argument lists",
                "entry 3 must be a mapping with name, version, instructions",
            ],
        ),
    ],
)
def test_custom_image_problems_name_what_each_entry_needs(images, problems):
    assert image.custom_image_problems(images, "devenv", NAME, SEMVER) == problems


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.4, "0s"), (42.6, "43s"), (59.4, "59s"), (60, "1m 00s"), (125.2, "2m 05s"),
     ("7.0", "7s"), (3725, "62m 05s")],
)  # fmt: skip
def test_duration(seconds, text):
    assert image.duration(seconds) == text


def test_duration_refuses_what_is_no_number():
    with pytest.raises(AnsibleFilterError, match=r"kuatecno\.devenv\.duration: expected a number"):
        image.duration("soon")
