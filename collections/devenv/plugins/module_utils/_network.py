# Copyright (c) devenv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The egress policy of a run (`network: allowlist`): the proxy and its networks.

Standard library only, Python 3.9+, no Ansible import: the `devenv` launcher carries a
byte-identical copy, and the secure_run module runs the very same code (docs/
architecture.md says why it is cut this way).

    plan(allow, egress, image)       the names and the Squid configuration (pure)
    ensure(engine, plan, labels)     the egress network, the internal network and the
                                     proxy exist and the proxy runs (Engine API calls)
    after_run(engine, plan, name, since)   what the proxy refused for one run, and
                                     whether the proxy stopped while it ran

A run container is attached only to the plan's internal network (`Internal`, and the
bridge has no address on the host: `com.docker.network.bridge.inhibit_ipv4`), so it has
no route out and cannot reach the host. The one other member of that network is the
proxy, a Squid from the distribution in its own hardened container, attached also to
the egress network. One proxy and one internal network per distinct configuration
(allow-list, egress network, proxy image), named after its hash: runs with other
allow-lists never share a proxy or a network. `engine` is anything with
`call(method, path, query=None, body=None, timeout=None) -> (status, bytes)`:
`UnixEngine` here (the launcher), or the module's adapter over the docker SDK.
"""

from __future__ import annotations

import json
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only; typing costs start-up time
    from collections.abc import Iterable
    from typing import Any, Optional

PROXY_PORT = 3128
PROXY_PREFIX = "devenv-proxy-"
NETWORK_PREFIX = "devenv-net-"
MANAGED_LABEL = "io.kuatecno.devenv.managed"
# On the proxy and on both kinds of network devenv creates: what the role's `absent`
# state removes. The value is the plan's hash (proxy, internal network) or "egress".
PROXY_LABEL = "io.kuatecno.devenv.proxy"
# The owner of a run (devenv ps and stop find a user's containers by it): never on the
# proxy and its networks, which runs of every user share.
OWNER_LABEL = "io.kuatecno.devenv.uid"
INHIBIT_IPV4 = "com.docker.network.bridge.inhibit_ipv4"
# The run container's resolver: a failed lookup fails in a second, and setting any DNS
# option makes the engine treat its upstream servers as the container's own (never
# queried from the host's namespace; see docs/architecture.md).
DNS_OPTIONS = ("timeout:1", "attempts:1")
NO_PROXY = "localhost,127.0.0.1,::1"
# The proxy container's own limits.
PROXY_MEMORY = 256 * 1024 * 1024
PROXY_NANO_CPUS = 1_000_000_000
PROXY_PIDS = 64
READY_TIMEOUT = 20.0
READY_LINE = b"Accepting HTTP Socket connections"
# A destination the proxy refused: its access log's Squid result code.
DENIED = "TCP_DENIED"
# Addresses the proxy never connects to, whatever a name resolves to: its own loopback,
# "this network" and link-local (cloud metadata services).
NEVER = ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16")
# Raised in the rendering when the template changes, so proxies of older devenv
# versions are not reused with a configuration they do not have.
CONFIG_VERSION = 2


class ProxyError(Exception):
    """The egress proxy cannot serve a run; the message says why and what to do."""


class Plan:
    """What `network: allowlist` needs for one configuration: the hash (`ident`), the
    proxy's and the internal network's names, the egress network, the proxy image,
    the allowed destinations ((host, port), sorted) and the Squid configuration."""

    __slots__ = ("allow", "config", "egress", "ident", "image", "network", "proxy")

    def __init__(self, allow: tuple, egress: str, image: str) -> None:
        import hashlib  # noqa: PLC0415 - only for runs with an allow-list

        canonical = tuple(sorted(set(allow)))
        template = squid_config(canonical, "NETWORK")
        identity = json.dumps([CONFIG_VERSION, template, egress, image])
        ident = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:12]
        values = {
            "allow": canonical,
            "egress": egress,
            "image": image,
            "ident": ident,
            "proxy": PROXY_PREFIX + ident,
            "network": NETWORK_PREFIX + ident,
        }
        values["config"] = squid_config(canonical, values["network"])
        for key, value in values.items():
            object.__setattr__(self, key, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Plan is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Plan) and other.ident == self.ident

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Plan({self.proxy!r}, allow={len(self.allow)})"

    @property
    def address(self) -> str:
        """host:port of the proxy, as runs on the internal network reach it."""
        return f"{self.proxy}:{PROXY_PORT}"

    def environment(self) -> tuple:
        """The run container's proxy variables, in both cases: curl reads only the
        lower-case http_proxy, other tools prefer the upper case."""
        url = f"http://{self.address}"
        pairs = [("HTTP_PROXY", url), ("HTTPS_PROXY", url), ("NO_PROXY", NO_PROXY)]
        pairs += [(name.lower(), value) for name, value in pairs]
        return (*pairs, ("DEVENV_PROXY", self.address))

    def describe(self) -> dict:
        return {
            "proxy": self.proxy,
            "network": self.network,
            "egress": self.egress,
            "image": self.image,
            "allow": [f"{h}:{p}" for h, p in self.allow],
        }


def plan(allow: Iterable, egress: str, image: str) -> Plan:
    return Plan(tuple(allow), egress, image)


# ---------------------------------------------------------------- Squid's configuration


def _squid_domain(host: str) -> str:
    return "." + host[2:] if host.startswith("*.") else host


def _by_port(allow: tuple) -> dict:
    """{port: [Squid dstdomain entries]}; a name under a wildcard of the same port is
    dropped (Squid refuses to list both)."""
    ports: dict = {}
    for host, port in allow:
        ports.setdefault(port, set()).add(_squid_domain(host))
    result = {}
    for port, domains in sorted(ports.items()):
        wild = [d for d in domains if d.startswith(".")]
        kept = [
            d for d in domains if not any(w != d and (d == w[1:] or d.endswith(w)) for w in wild)
        ]
        result[port] = sorted(kept)
    return result


def squid_config(allow: tuple, network: str) -> str:
    """The proxy's whole configuration. Only CONNECT and plain HTTP, only to the allowed
    names on their ports, only for containers of `network` (the reverse lookup of a
    client is also what names the run in the access log); everything else gets 403, and
    a name that is not allowed is never looked up.
    Each request is logged as one line without its contents: time, client, method,
    destination host:port, status, Squid's result."""
    lines = [
        "# The devenv egress proxy: generated by devenv (module_utils/_network.py).",
        f"http_port {PROXY_PORT}",
        "visible_hostname devenv-proxy",
        "pid_filename none",
        "coredump_dir /tmp",
        "cache deny all",
        "cache_mem 8 MB",
        "pinger_enable off",
        "forwarded_for delete",
        "via off",
        "httpd_suppress_version_string on",
        # A client's name is looked up again after a second: addresses are reused by the
        # next run at once, and a name cached longer would put its requests on another
        # run (the lower bound of every DNS answer's lifetime is negative_dns_ttl).
        "positive_dns_ttl 1 second",
        "negative_dns_ttl 1 second",
        "logformat devenv devenv-proxy %ts.%03tu %>a %>A %rm %>rd:%>rP %>Hs %Ss",
        "access_log stdio:/dev/stdout devenv",
        "cache_log stdio:/dev/stderr",
        "cache_store_log none",
        "logfile_rotate 0",
        f"acl devenv_clients srcdomain .{network}",
        "acl devenv_connect method CONNECT",
        "acl devenv_http proto HTTP",
        "acl devenv_never dst " + " ".join(NEVER),
    ]
    rules = [
        "http_access deny !devenv_clients",
        "http_access deny manager",
        "http_access deny !devenv_connect !devenv_http",
    ]
    for port, domains in _by_port(allow).items():
        lines.append(f"acl devenv_port_{port} port {port}")
        # -n: never a reverse lookup of an address to match a name.
        lines.append(f"acl devenv_to_{port} dstdomain -n " + " ".join(domains))
        # The name is matched first, without DNS: only an allowed name is ever looked up
        # (devenv_never needs its addresses), so a refused name cannot carry anything
        # out in a lookup either.
        rules.append(f"http_access allow devenv_to_{port} devenv_port_{port} !devenv_never")
    rules.append("http_access deny all")
    return "\n".join(lines + rules) + "\n"


# ---------------------------------------------------------------- the engine


class UnixEngine:
    """The Engine API over its unix socket (the launcher), through _engineapi's client."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout

    def call(
        self,
        method: str,
        path: str,
        query: Optional[dict] = None,
        body: Any = None,
        timeout: Optional[float] = None,
    ) -> tuple:
        from urllib.parse import urlencode  # noqa: PLC0415 - lean start-up

        from ._engineapi import request  # noqa: PLC0415 - lean start-up

        target = path + ("?" + urlencode(query) if query else "")
        return request(self.path, method, target, body, timeout=timeout or self.timeout)


def _json(payload: bytes) -> Any:
    try:
        return json.loads(payload or b"null")
    except ValueError:
        return None


def _message(payload: bytes) -> str:
    data = _json(payload)
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return payload.decode("utf-8", "replace").strip()[:300] or "no details"


def _call(engine: Any, method: str, path: str, what: str, ok: tuple, **kwargs: Any) -> tuple:
    try:
        status, payload = engine.call(method, path, **kwargs)
    except OSError as exc:
        raise ProxyError(f"the engine did not answer while {what} ({exc})") from None
    if status not in ok:
        raise ProxyError(f"the engine refused {what}: {_message(payload)} (HTTP {status})")
    return status, payload


def _labels(value: str, extra: Iterable) -> dict:
    """The proxy's or a network's labels: devenv's own, and the creating run's other
    labels (a test's, a team's) but not its owner: the proxy is no one user's."""
    kept = {k: v for k, v in extra if k not in (MANAGED_LABEL, OWNER_LABEL)}
    return dict(kept, **{MANAGED_LABEL: "true", PROXY_LABEL: value})


def _ensure_network(engine: Any, name: str, *, internal: bool, labels: dict) -> None:
    status, payload = _call(
        engine, "GET", f"/networks/{name}", f"looking up the network {name}", (200, 404)
    )
    if status == 200:
        info = _json(payload) or {}
        options = info.get("Options") or {}
        if internal and not (info.get("Internal") and options.get(INHIBIT_IPV4) == "true"):
            raise ProxyError(
                f"the network {name} exists but is not devenv's internal network (it must "
                f"be internal, with {INHIBIT_IPV4}); remove it (`docker network rm {name}`)"
            )
        return
    body: dict = {"Name": name, "CheckDuplicate": True, "Driver": "bridge", "Labels": labels}
    if internal:
        # No route out, and no address of the host on the bridge: a run reaches nothing
        # but the proxy (with an address, the host itself would be reachable).
        body.update(Internal=True, Options={INHIBIT_IPV4: "true"})
    _call(engine, "POST", "/networks/create", f"creating the network {name}", (201, 409), body=body)


def _proxy_body(plan_: Plan, labels: dict) -> dict:
    """The proxy container: the distribution's Squid as an unprivileged user, every
    capability dropped, a read-only root, limits, restarted with the engine."""
    return {
        "Image": plan_.image,
        "User": "proxy:proxy",
        "Env": ["DEVENV_PROXY_CONFIG=" + plan_.config],
        "Labels": labels,
        "HostConfig": {
            "NetworkMode": plan_.egress,
            "Privileged": False,
            "ReadonlyRootfs": True,
            "CapDrop": ["ALL"],
            "CapAdd": [],
            "SecurityOpt": ["no-new-privileges"],
            "Memory": PROXY_MEMORY,
            "MemorySwap": PROXY_MEMORY,
            "NanoCpus": PROXY_NANO_CPUS,
            "PidsLimit": PROXY_PIDS,
            "Init": True,
            # Its configuration file only (noqa: the container's own private tmpfs).
            "Tmpfs": {"/tmp": "rw,nosuid,nodev,noexec,size=16m,mode=1777"},  # noqa: S108
            # It carries traffic only as Squid does, never by routing packets.
            "Sysctls": {"net.ipv4.ip_forward": "0"},
            "RestartPolicy": {"Name": "unless-stopped"},
            "PortBindings": {},
            "PublishAllPorts": False,
            "Devices": [],
        },
        "NetworkingConfig": {"EndpointsConfig": {plan_.egress: {}}},
    }


def _inspect(engine: Any, name: str) -> Optional[dict]:
    status, payload = _call(
        engine, "GET", f"/containers/{name}/json", f"looking up the proxy {name}", (200, 404)
    )
    return _json(payload) if status == 200 else None


def _logs(engine: Any, name: str, since: float, *, stdout: bool, stderr: bool) -> bytes:
    """The container's log since `since` (Unix time), frames unwrapped."""
    query = {"stdout": int(stdout), "stderr": int(stderr), "since": f"{since:.3f}"}
    status, payload = engine.call("GET", f"/containers/{name}/logs", query=query)
    if status != 200:
        return b""
    out, view = [], memoryview(payload)
    while len(view) >= 8 and view[0] in (0, 1, 2) and view[1:4] == b"\0\0\0":
        size = int.from_bytes(view[4:8], "big")
        out.append(bytes(view[8 : 8 + size]))
        view = view[8 + size :]
    return b"".join(out) if out else payload


def _wait_ready(engine: Any, plan_: Plan, since: float) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if READY_LINE in _logs(engine, plan_.proxy, since, stdout=False, stderr=True):
            return
        info = _inspect(engine, plan_.proxy) or {}
        state = info.get("State") or {}
        if not state.get("Running") or time.monotonic() > deadline:
            tail = _logs(engine, plan_.proxy, since, stdout=False, stderr=True)
            lines = tail.decode("utf-8", "replace").strip().splitlines()[-3:]
            how = (
                "did not start listening in time"
                if state.get("Running")
                else (f"stopped (exit {state.get('ExitCode')})")
            )
            raise ProxyError(
                f"the egress proxy {plan_.proxy} {how}: {' | '.join(lines) or 'no log'}"
            )
        time.sleep(0.1)


def _start(engine: Any, plan_: Plan) -> None:
    since = time.time() - 1
    _call(engine, "POST", f"/containers/{plan_.proxy}/start", f"starting {plan_.proxy}", (204, 304))
    _wait_ready(engine, plan_, since)


def ensure(engine: Any, plan_: Plan, labels: Iterable = ()) -> str:
    """Make the proxy of `plan_` run, creating what is missing (the egress network, the
    internal network, the proxy); `labels` are the run's (key, value) pairs. Returns
    what was done: "running" (nothing: one lookup), "started" (it had stopped) or
    "created". Raises ProxyError (fail closed: without its proxy a run does not start)."""
    info = _inspect(engine, plan_.proxy)
    if info is not None:
        attached = (info.get("NetworkSettings") or {}).get("Networks") or {}
        if plan_.network not in attached:
            _ensure_network(
                engine, plan_.network, internal=True, labels=_labels(plan_.ident, labels)
            )
            _connect(engine, plan_)
        if (info.get("State") or {}).get("Running"):
            return "running"
        _start(engine, plan_)
        return "started"
    status, _payload = engine.call("GET", f"/images/{plan_.image}/json")
    if status == 404:
        raise ProxyError(
            f"the egress proxy image {plan_.image} is not on this host, and devenv never "
            "pulls at run time. Build it with `ansible-playbook playbooks/site.yml --tags "
            "image` (devenv_image_proxy), or choose another network mode"
        )
    _ensure_network(engine, plan_.egress, internal=False, labels=_labels("egress", labels))
    _ensure_network(engine, plan_.network, internal=True, labels=_labels(plan_.ident, labels))
    body = _proxy_body(plan_, _labels(plan_.ident, labels))
    status, _payload = _call(
        engine,
        "POST",
        "/containers/create",
        f"creating the proxy {plan_.proxy}",
        (201, 409),
        query={"name": plan_.proxy},
        body=body,
    )
    if status == 409:  # another run created it at the same moment
        return ensure(engine, plan_, labels)
    _connect(engine, plan_)
    _start(engine, plan_)
    return "created"


def _connect(engine: Any, plan_: Plan) -> None:
    _call(
        engine,
        "POST",
        f"/networks/{plan_.network}/connect",
        f"attaching {plan_.proxy} to {plan_.network}",
        (200, 403, 409),
        body={"Container": plan_.proxy},
    )


# ---------------------------------------------------------------- after a run


def parse_access_log(text: str, client: str, since: float) -> dict:
    """{destination: count} of the requests the proxy refused to the container named
    `client` (the reverse name `<container>.<network>` Squid logs) since `since`."""
    refused: dict = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 8 or parts[0] != "devenv-proxy":
            continue
        _tag, stamp, _ip, name, _method, destination, _status, result = parts
        try:
            when = float(stamp)
        except ValueError:
            continue
        if when + 1 < since or name.split(".", 1)[0] != client or DENIED not in result:
            continue
        refused[destination] = refused.get(destination, 0) + 1
    return refused


def after_run(engine: Any, plan_: Plan, client: str, since: float) -> dict:
    """What the proxy did for the run container `client` that started at `since`:
    `refused` ({destination: count}) and `stopped` (the proxy stopped or restarted
    during the run: its traffic failed). Best effort: never raises."""
    result: dict = {"refused": {}, "stopped": None}
    try:
        text = _logs(engine, plan_.proxy, since - 1, stdout=True, stderr=False)
        result["refused"] = parse_access_log(text.decode("utf-8", "replace"), client, since)
        info = _inspect(engine, plan_.proxy) or {}
    except (OSError, ProxyError):
        return result
    state = info.get("State") or {}
    if not state.get("Running"):
        result["stopped"] = f"it is not running (exit {state.get('ExitCode')})"
    elif _started_after(state.get("StartedAt"), since):
        result["stopped"] = "it was restarted"
    return result


def _started_after(stamp: Optional[str], since: float) -> bool:
    if not stamp:
        return False
    import calendar  # noqa: PLC0415 - only after a run

    try:
        head = stamp.split(".")[0].rstrip("Z")
        started = calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return False
    return started > since + 1


def refused_message(refused: dict, system_file: str) -> str:
    """The end-of-run note for the user: what was refused and where the list is set."""
    shown = ", ".join(
        f"{dest} ({count} times)" if count > 1 else dest
        for dest, count in sorted(refused.items(), key=lambda item: (-item[1], item[0]))
    )
    return (
        f"the network policy refused {len(refused)} destination"
        f"{'' if len(refused) == 1 else 's'} during this run: {shown}. Only network_allow "
        f"is reachable (`devenv config` shows it; the administrator sets it in {system_file})"
    )
