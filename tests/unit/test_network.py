"""The network policy without an engine: destinations, narrowing, the run specification's
network properties, the proxy's plan and Squid configuration, and the Engine API
choreography of `_network.ensure()` against a recording fake engine."""

import json
import re

import pytest
from ansible_collections.kuatecno.devenv.plugins.module_utils import _network
from ansible_collections.kuatecno.devenv.plugins.module_utils import _settings as st
from ansible_collections.kuatecno.devenv.plugins.module_utils._runspec import Host, build_spec
from ansible_collections.kuatecno.devenv.plugins.module_utils._settings import (
    FLAG,
    PER_USER,
    SYSTEM,
    USER,
    RunSpecError,
    covers,
    parse,
    parse_destination,
)

SYSTEM_FILE = "/etc/devenv/config.json"


# ---------------------------------------------------------------- destinations


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("api.anthropic.com:443", ("api.anthropic.com", 443)),
        ("GitHub.com:22", ("github.com", 22)),
        ("*.googleapis.com:443", ("*.googleapis.com", 443)),
        ("allowed:80", ("allowed", 80)),
        ("host.example.:8443", ("host.example", 8443)),
        ("under_score.example.org:443", ("under_score.example.org", 443)),
    ],
)
def test_destinations(written, expected):
    assert parse_destination(written, "network_allow[0]") == expected


@pytest.mark.parametrize(
    ("written", "fragment"),
    [
        ("api.anthropic.com", "expected HOST:PORT"),
        ("api.anthropic.com:", "expected HOST:PORT"),
        ("api.anthropic.com:0", "expected HOST:PORT"),
        ("api.anthropic.com:65536", "expected HOST:PORT"),
        ("api.anthropic.com:https", "expected HOST:PORT"),
        (":443", "expected HOST:PORT"),
        ("1.2.3.4:443", "is an IP address"),
        ("[::1]:443", "is not a host name"),
        ("-bad.example:443", "is not a host name"),
        ("a..b:443", "is not a host name"),
        ("*.*.example:443", "is not a host name"),
        ("ex ample.org:443", "is not a host name"),
        ("evil.org\n:443", "expected HOST:PORT"),
        (443, "expected HOST:PORT"),
    ],
)
def test_bad_destinations(written, fragment):
    with pytest.raises(RunSpecError) as info:
        parse_destination(written, "network_allow[0]")
    assert fragment in str(info.value) and "network_allow[0]" in str(info.value)


def test_the_list_keeps_order_and_drops_duplicates():
    allow = st._network_allow(["b.org:443", "a.org:443", "B.org:443"], "network_allow")
    assert allow == (("b.org", 443), ("a.org", 443))
    with pytest.raises(RunSpecError, match="expected a list"):
        st._network_allow("a.org:443", "network_allow")


@pytest.mark.parametrize(
    ("wide", "narrow", "covered"),
    [
        (("a.org", 443), ("a.org", 443), True),
        (("a.org", 443), ("a.org", 80), False),
        (("a.org", 443), ("x.a.org", 443), False),
        (("*.a.org", 443), ("a.org", 443), True),
        (("*.a.org", 443), ("x.y.a.org", 443), True),
        (("*.a.org", 443), ("*.x.a.org", 443), True),
        (("*.a.org", 443), ("xa.org", 443), False),
        (("x.a.org", 443), ("*.a.org", 443), False),
    ],
)
def test_covers(wide, narrow, covered):
    assert covers(wide, narrow) is covered


# ---------------------------------------------------------------- narrowing


def layers(system=None, user=None, flag=None, per_user=None):
    out = []
    if system is not None or per_user is not None:
        data = dict(system or {})
        if per_user is not None:
            data["users"] = {"alice": per_user}
        out.append((f"system file {SYSTEM_FILE}", SYSTEM, data))
    if user is not None:
        out.append(("user file ~/.config/devenv/config.json", USER, user))
    if flag is not None:
        out.append(("flag", FLAG, flag))
    return out


def settings_of(**given):
    return parse(layers(**given), login="alice", system_file=SYSTEM_FILE)


def refusal(**given):
    with pytest.raises(RunSpecError) as info:
        settings_of(**given)
    return str(info.value)


def test_defaults_are_allowlist_with_the_agents_hosts():
    settings = settings_of()
    assert settings["network"] == "allowlist"
    allow = {f"{h}:{p}" for h, p in settings["network_allow"]}
    for needed in (
        "api.anthropic.com:443",
        "generativelanguage.googleapis.com:443",
        "registry.npmjs.org:443",
        "pypi.org:443",
        "github.com:443",
        "github.com:22",
    ):
        assert needed in allow


@pytest.mark.parametrize(
    "given",
    [
        {"user": {"network": "none"}},
        {"flag": {"network": "none"}},
        {"system": {"network": "open"}, "user": {"network": "allowlist"}},
        {"user": {"network_allow": ["github.com:22", "pypi.org:443"]}},
        {
            "system": {"network_allow": ["*.corp.example:443"]},
            "user": {"network_allow": ["git.corp.example:443"]},
        },
        {"user": {"network_allow": []}},
    ],
)
def test_a_user_may_narrow(given):
    settings_of(**given)


@pytest.mark.parametrize(
    ("given", "fragments"),
    [
        (
            {"flag": {"network": "open"}},
            ["command line: network: 'open' is wider", "'allowlist' (the default)"],
        ),
        ({"user": {"network": "open"}}, ["user file", "network: 'open' is wider"]),
        (
            {"system": {"network": "none"}, "user": {"network": "allowlist"}},
            [
                "'allowlist' is wider than the administrator's 'none'",
                f"(system file {SYSTEM_FILE})",
            ],
        ),
        (
            {"user": {"network_allow": ["github.com:22", "evil.example:443"]}},
            ["evil.example:443 is not in the administrator's list"],
        ),
        (
            {
                "system": {"network_allow": ["git.corp.example:443"]},
                "user": {"network_allow": ["*.corp.example:443"]},
            },
            ["*.corp.example:443 is not in the administrator's list"],
        ),
        (
            {"per_user": {"network": "none"}, "flag": {"network": "allowlist"}},
            [f"(system file {SYSTEM_FILE} (users.alice))"],
        ),
    ],
)
def test_a_user_may_not_widen_and_is_told_where_the_policy_is_set(given, fragments):
    message = refusal(**given)
    for fragment in fragments:
        assert fragment in message
    assert f"the administrator sets it in {SYSTEM_FILE}" in message
    assert "network_widen: true" in message


@pytest.mark.parametrize("where", ["system", "per_user"])
def test_the_administrator_may_let_users_widen(where):
    given = {where: {"network_widen": True}, "flag": {"network": "open"}}
    assert settings_of(**given)["network"] == "open"
    given = {where: {"network_widen": True}, "user": {"network_allow": ["evil.example:443"]}}
    assert settings_of(**given)["network_allow"] == (("evil.example", 443),)


@pytest.mark.parametrize(
    ("setting", "value", "scope"),
    [
        ("network_widen", True, USER),
        ("network_egress", "other", USER),
        ("network_proxy_image", "evil:1", USER),
        ("network_proxy_image", "evil:1", PER_USER),
    ],
)
def test_only_the_administrator_sets_the_proxy_and_widening(setting, value, scope):
    with pytest.raises(RunSpecError) as info:
        if scope == PER_USER:
            settings_of(per_user={setting: value})
        else:
            settings_of(user={setting: value})
    assert setting in str(info.value)


@pytest.mark.parametrize("name", ["host", "none", "bad name", ""])
def test_egress_network_names(name):
    with pytest.raises(RunSpecError, match="network_egress"):
        settings_of(system={"network_egress": name})


def test_the_module_is_one_layer_with_the_same_defaults():
    settings = parse([("module options", st.MODULE, {"network": None})], module=True)
    assert settings["network"] == "allowlist"
    assert settings["network_allow"] == settings_of()["network_allow"]
    options = st.module_options()
    assert options["network"]["choices"] == ["none", "allowlist", "open"]
    assert "network_widen" not in options  # one layer: nothing to widen


# ---------------------------------------------------------------- the run's properties


@pytest.fixture
def host(tmp_path):
    home = tmp_path / "home" / "alice"
    (home / "Coding").mkdir(parents=True)
    return Host(1000, 1000, "alice", str(home), 2, {})


def test_allowlist_runs_on_the_proxys_internal_network(host):
    spec = build_spec({"ssh": "none", "gitconfig": None}, host=host)
    assert spec.network_policy == "allowlist"
    assert spec.network == spec.proxy.network
    body = spec.engine_create_body()
    assert body["HostConfig"]["NetworkMode"] == spec.proxy.network
    assert body["HostConfig"]["DnsOptions"] == ["timeout:1", "attempts:1"]
    env = dict(item.split("=", 1) for item in body["Env"])
    url = f"http://{spec.proxy.proxy}:3128"
    assert env["HTTPS_PROXY"] == env["https_proxy"] == env["HTTP_PROXY"] == env["http_proxy"] == url
    assert env["NO_PROXY"] == env["no_proxy"] == "localhost,127.0.0.1,::1"
    assert env["DEVENV_PROXY"] == f"{spec.proxy.proxy}:3128"
    assert "api.anthropic.com:443" in spec.describe()["proxy"]["allow"]


@pytest.mark.parametrize(("policy", "mode"), [("none", "none"), ("open", "default")])
def test_none_and_open_have_no_proxy(host, policy, mode):
    spec = build_spec({"ssh": "none", "gitconfig": None, "network": policy}, host=host)
    assert (spec.network, spec.proxy, spec.dns_options) == (mode, None, ())
    env = spec.engine_create_body()["Env"]
    assert not any("proxy" in item.lower() for item in env)
    argv = spec.docker_argv(tty=False, interactive=False)
    assert ("--network" in argv) is (policy == "none")


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy", "NO_PROXY", "DEVENV_PROXY"])
def test_proxy_variables_stay_reserved_for_secrets_and_env(host, name):
    with pytest.raises(RunSpecError, match="reserved"):
        build_spec({"ssh": "none", "env": {name: "x"}}, host=host)
    spec = build_spec({"ssh": "none"}, host=host)
    with pytest.raises(RunSpecError, match="reserved"):
        spec.with_secrets({name: "http://elsewhere:1"})


# ---------------------------------------------------------------- the plan


def plan_of(allow, egress="devenv-egress", image="devenv-proxy:latest"):
    return _network.plan(st._network_allow(allow, "allow"), egress, image)


def test_one_proxy_per_configuration():
    one = plan_of(["a.org:443", "b.org:22"])
    assert one == plan_of(["b.org:22", "a.org:443", "a.org:443"])
    others = [
        plan_of(["a.org:443"]),
        plan_of(["a.org:443", "b.org:22"], egress="corp"),
        plan_of(["a.org:443", "b.org:22"], image="devenv-proxy:v2.0.0"),
    ]
    assert len({one.ident, *(o.ident for o in others)}) == 4
    assert one.proxy == "devenv-proxy-" + one.ident and one.network == "devenv-net-" + one.ident
    assert one.address == one.proxy + ":3128"


def test_squid_configuration():
    config = plan_of(["*.a.org:443", "x.a.org:443", "a.org:443", "b.org:443", "b.org:22"]).config
    lines = config.splitlines()
    # Only clients of this plan's network (their reverse names), only CONNECT and HTTP.
    network = plan_of(["*.a.org:443", "x.a.org:443", "a.org:443", "b.org:443", "b.org:22"]).network
    assert f"acl devenv_clients srcdomain .{network}" in lines
    assert "http_access deny !devenv_clients" in lines
    assert "http_access deny !devenv_connect !devenv_http" in lines
    assert "acl devenv_never dst 0.0.0.0/8 127.0.0.0/8 169.254.0.0/16" in lines
    # The dst ACL (a DNS lookup) only ever follows a name that matched: a refused name is
    # never looked up, so it cannot carry data out through the proxy's resolver either.
    dst_rules = [
        line for line in lines if line.startswith("http_access") and "devenv_never" in line
    ]
    assert dst_rules and all(
        re.match(r"^http_access allow devenv_to_\d+ devenv_port_\d+ !devenv_never$", rule)
        for rule in dst_rules
    )
    # Names only (-n: no reverse lookups), per port; a name under a wildcard is dropped.
    assert "acl devenv_to_22 dstdomain -n b.org" in lines
    assert "acl devenv_to_443 dstdomain -n .a.org b.org" in lines
    assert "http_access allow devenv_to_443 devenv_port_443 !devenv_never" in lines
    assert lines[-1] == "http_access deny all"
    # The access log: one line per request, destination and result, no URL path.
    assert "logformat devenv devenv-proxy %ts.%03tu %>a %>A %rm %>rd:%>rP %>Hs %Ss" in lines
    assert "%ru" not in config and "%rp" not in config
    assert "via off" in lines and "forwarded_for delete" in lines


def test_an_empty_list_refuses_everything():
    lines = plan_of([]).config.splitlines()
    assert not any(line.startswith("http_access allow") for line in lines)
    assert lines[-1] == "http_access deny all"


# ---------------------------------------------------------------- ensure() on a fake engine


class FakeEngine:
    """Answers the Engine API calls `ensure()` makes from a small state; records them."""

    def __init__(self, *, proxy=None, image=True, networks=(), logs=b"", race=False):
        self.calls = []
        self.proxy = proxy  # None, "running" or "exited"
        self.image = image
        self.networks = {
            n: {"Internal": True, "Options": {_network.INHIBIT_IPV4: "true"}} for n in networks
        }
        self.attached = set()
        self.logs = logs
        self.race = race
        self.created = None

    def call(self, method, path, query=None, body=None, timeout=None):  # noqa: PLR0911 - one answer per call
        self.calls.append((method, path))
        if method == "GET" and path.startswith("/containers/") and path.endswith("/json"):
            if self.proxy is None:
                return 404, b'{"message": "No such container"}'
            networks = {n: {} for n in self.attached}
            state = {
                "Running": self.proxy == "running",
                "ExitCode": 0 if self.proxy == "running" else 137,
            }
            return 200, json.dumps(
                {"State": state, "NetworkSettings": {"Networks": networks}}
            ).encode()
        if method == "GET" and path.startswith("/images/"):
            return (200, b"{}") if self.image else (404, b'{"message": "No such image"}')
        if method == "GET" and path.startswith("/networks/"):
            name = path.split("/")[2]
            return (
                (200, json.dumps(self.networks[name]).encode())
                if name in self.networks
                else (404, b"{}")
            )
        if path == "/networks/create":
            self.networks[body["Name"]] = body
            return 201, b"{}"
        if path == "/containers/create":
            if self.race:
                self.race = False
                self.proxy = "exited"
                return 409, b'{"message": "Conflict. The container name is already in use"}'
            self.created = body
            self.proxy = "exited"
            return 201, b'{"Id": "abc"}'
        if path.endswith("/connect"):
            self.attached.add(path.split("/")[2])
            return 200, b""
        if path.endswith("/start"):
            self.proxy = "running"
            return 204, b""
        if path.endswith("/logs"):
            text = b"2026/01/01 00:00:00| Accepting HTTP Socket connections at conn2\n" + self.logs
            return 200, b"\x02\0\0\0" + len(text).to_bytes(4, "big") + text
        raise AssertionError(f"unexpected call {method} {path}")


def test_a_running_proxy_costs_one_lookup():
    plan = plan_of(["a.org:443"])
    engine = FakeEngine(proxy="running", networks=[plan.network])
    engine.attached.add(plan.network)
    assert _network.ensure(engine, plan) == "running"
    assert engine.calls == [("GET", f"/containers/{plan.proxy}/json")]


def test_a_missing_proxy_is_created_with_its_networks_and_hardened():
    plan = plan_of(["a.org:443"])
    engine = FakeEngine()
    # The run's labels, as the launcher and the module pass them: its owner and
    # devenv's own label are not the shared proxy's (devenv ps would list it).
    run_labels = (("io.kuatecno.devenv.managed", "true"), ("io.kuatecno.devenv.uid", "1000"))
    assert _network.ensure(engine, plan, [("team", "a"), *run_labels]) == "created"
    assert engine.created["Labels"] == {
        "team": "a",
        "io.kuatecno.devenv.managed": "true",
        "io.kuatecno.devenv.proxy": plan.ident,
    }
    internal = engine.networks[plan.network]
    assert internal["Internal"] is True and internal["Options"] == {_network.INHIBIT_IPV4: "true"}
    assert internal["Labels"] == {
        "team": "a",
        "io.kuatecno.devenv.managed": "true",
        "io.kuatecno.devenv.proxy": plan.ident,
    }
    egress = engine.networks["devenv-egress"]
    assert "Internal" not in egress and egress["Labels"]["io.kuatecno.devenv.proxy"] == "egress"
    body = engine.created
    host = body["HostConfig"]
    assert body["User"] == "proxy:proxy" and body["Image"] == "devenv-proxy:latest"
    assert body["Env"] == ["DEVENV_PROXY_CONFIG=" + plan.config]
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"] and host["CapAdd"] == []
    assert host["SecurityOpt"] == ["no-new-privileges"] and host["Privileged"] is False
    assert host["RestartPolicy"] == {"Name": "unless-stopped"}
    assert host["Memory"] == host["MemorySwap"] and host["PidsLimit"] == 64
    assert host["NetworkMode"] == "devenv-egress"
    assert engine.attached == {plan.network}
    order = [path for _method, path in engine.calls]
    assert order.index("/containers/create") < order.index(f"/networks/{plan.network}/connect")
    assert order.index(f"/networks/{plan.network}/connect") < order.index(
        f"/containers/{plan.proxy}/start"
    )


def test_a_stopped_proxy_is_started_again():
    plan = plan_of(["a.org:443"])
    engine = FakeEngine(proxy="exited", networks=[plan.network])
    engine.attached.add(plan.network)
    assert _network.ensure(engine, plan) == "started"
    assert ("POST", f"/containers/{plan.proxy}/start") in engine.calls


def test_a_concurrent_creation_is_joined():
    plan = plan_of(["a.org:443"])
    engine = FakeEngine(race=True)
    assert _network.ensure(engine, plan) == "started"
    assert engine.created is None


def test_a_missing_proxy_image_fails_closed():
    engine = FakeEngine(image=False)
    with pytest.raises(_network.ProxyError, match="is not on this host, and devenv never pulls"):
        _network.ensure(engine, plan_of(["a.org:443"]))
    assert not any(path == "/containers/create" for _m, path in engine.calls)


def test_a_foreign_network_of_the_same_name_is_refused():
    plan = plan_of(["a.org:443"])
    engine = FakeEngine()
    engine.networks[plan.network] = {"Internal": False, "Options": {}}
    with pytest.raises(_network.ProxyError, match="is not devenv's internal network"):
        _network.ensure(engine, plan)


def test_an_unreachable_engine_is_a_clear_error():
    class Down:
        def call(self, *args, **kwargs):
            raise ConnectionRefusedError(111, "Connection refused")

    with pytest.raises(_network.ProxyError, match="did not answer"):
        _network.ensure(Down(), plan_of(["a.org:443"]))


# ---------------------------------------------------------------- after a run

LOG = """\
devenv-proxy 1000.100 172.30.0.3 devenv-alice-1.devenv-net-x CONNECT api.example:443 200 TCP_TUNNEL
devenv-proxy 1000.200 172.30.0.3 devenv-alice-1.devenv-net-x CONNECT evil.example:443 403 TCP_DENIED
devenv-proxy 1000.300 172.30.0.3 devenv-alice-1.devenv-net-x CONNECT evil.example:443 403 TCP_DENIED
devenv-proxy 1000.400 172.30.0.4 devenv-bob-2.devenv-net-x GET other.example:80 403 TCP_DENIED
devenv-proxy 900.000 172.30.0.3 devenv-alice-1.devenv-net-x GET old.example:80 403 TCP_DENIED
devenv-proxy 1000.500 172.30.0.3 devenv-alice-1.devenv-net-x GET 10.0.0.1:80 403 TCP_DENIED
2026/01/01 00:00:00| a line of Squid's own log
"""


def test_the_refused_destinations_of_one_run():
    refused = _network.parse_access_log(LOG, "devenv-alice-1", since=1000.0)
    assert refused == {"evil.example:443": 2, "10.0.0.1:80": 1}


def test_after_run_reads_the_log_and_notices_a_stopped_proxy():
    plan = plan_of(["a.org:443"])
    engine = FakeEngine(proxy="exited", logs=LOG.encode())
    done = _network.after_run(engine, plan, "devenv-alice-1", since=1000.0)
    assert done["refused"] == {"evil.example:443": 2, "10.0.0.1:80": 1}
    assert done["stopped"] == "it is not running (exit 137)"
    assert _network.after_run(FakeEngine(proxy="running"), plan, "x", 1000.0)["stopped"] is None


def test_the_message_names_what_was_refused_and_where_the_list_is_set():
    message = _network.refused_message({"evil.example:443": 2, "10.0.0.1:80": 1}, SYSTEM_FILE)
    assert message.startswith("the network policy refused 2 destinations during this run: ")
    assert "evil.example:443 (2 times), 10.0.0.1:80." in message
    assert SYSTEM_FILE in message and "network_allow" in message


@pytest.mark.parametrize("port", ["\u0664\u0664\u0663", "\u00b2", "44\u0663"])
def test_a_port_is_ascii_digits(port):
    with pytest.raises(RunSpecError, match="expected HOST:PORT"):
        settings_of(system={"network_allow": [f"api.anthropic.com:{port}"]})
