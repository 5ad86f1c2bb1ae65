"""Comparison 6, the egress proxy: what `network: allowlist` adds to an agent's requests
and to a run, against `network: open` (Docker's default bridge), side by side.

A stand-in of the Anthropic Messages API (tests/support/anthropic_api.py, HTTPS with a
CA made for the run) sits on a benchmark network that the proxy reaches and, for the
open side, on Docker's default bridge too. Each round starts one container per side
through the installed launcher, which sends the same streamed Messages request (the one
`claude -p` makes) several times with curl, each a new connection (through the proxy: a
CONNECT tunnel, then TLS), and reports curl's own time for each; and it times whole
`devenv run -- true` runs per side (the launcher's proxy check and its end-of-run
report).
"""

from __future__ import annotations

import json
import shlex

from bench_common import (
    NAME,
    OUR_PROXY_REF,
    ROOT,
    WORK,
    BenchError,
    alternate,
    comparison,
    docker_label_args,
    log,
    median,
    run,
    timed,
    timing,
)
from bench_stats import format_seconds, format_signed_ms, summarize
from bench_stats import verdict as said

NEEDS = ("ours", "launcher")
COUNTS = {"proxy_rounds": (10, 2), "proxy_requests": (10, 5), "proxy_runs": (10, 3)}

SIDES = ("allowlist", "open")
HOST = "api.bench.devenv.test"
NETWORK = f"{NAME}-internet"
STAND_IN = f"{NAME}-anthropic"
CA_TARGET = "/run/bench-ca"
# The timings in the order measure() lists them.
REQUEST = {"allowlist": 0, "open": 1}
RUN = {"allowlist": 2, "open": 3}

# One Messages request as Claude Code sends it (streamed), repeated; curl reports each.
BODY = json.dumps(
    {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "Say hello"}],
    }
)


def request_script(count: int, resolve: str) -> str:
    curl = (
        f"curl -sS -o /dev/null -w '%{{time_total}}\\n' --cacert {CA_TARGET}/ca.crt {resolve}"
        f" -H 'x-api-key: sk-bench' -H 'anthropic-version: 2023-06-01'"
        f" -H 'content-type: application/json' --data {shlex.quote(BODY)}"
        f" https://{HOST}/v1/messages"
    )
    return f"for i in $(seq {count}); do {curl} || exit 1; done"


def _openssl(where, *args) -> None:
    run(["openssl", *args], cwd=where)


def make_ca(where) -> None:
    where.mkdir(parents=True, exist_ok=True)
    _openssl(
        where,
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=devenv benchmark CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    (where / "ext.cnf").write_text(f"subjectAltName=DNS:{HOST}\n", encoding="utf-8")
    _openssl(
        where,
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        f"/CN={HOST}",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    _openssl(
        where,
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.crt",
    )
    pem = (where / "server.crt").read_text() + (where / "server.key").read_text()
    (where / "server.pem").write_text(pem, encoding="utf-8")
    for path in where.iterdir():
        path.chmod(0o644)
    where.chmod(0o755)


class Sides:
    """The two launcher configurations (same launcher, image and stand-in)."""

    def __init__(self, launcher, ca_dir, stand_in_ip: str):
        self.launcher = launcher
        self.stand_in_ip = stand_in_ip
        base = json.loads(launcher.config.read_text(encoding="utf-8"))
        base["mounts"] = [{"source": str(ca_dir), "target": CA_TARGET}]
        self.configs = {}
        for side in SIDES:
            data = dict(base, network=side)
            if side == "allowlist":
                data.update(
                    network_allow=[f"{HOST}:443"],
                    network_egress=NETWORK,
                    network_proxy_image=OUR_PROXY_REF,
                )
            path = launcher.work / f"config-{side}.json"
            path.write_text(json.dumps(data, indent=2), encoding="utf-8")
            self.configs[side] = path

    def env(self, side: str) -> dict:
        env = self.launcher.env(secrets=False)
        env["DEVENV_CONFIG"] = str(self.configs[side])
        return env

    def requests_argv(self, side: str, count: int) -> list:
        # Open: straight to the stand-in's address on the default bridge (no name service
        # there), with the same name for TLS.
        resolve = "" if side == "allowlist" else f"--resolve {HOST}:443:{self.stand_in_ip}"
        return self.launcher.argv(
            ["--no-secrets", "--", "sh", "-c", request_script(count, resolve)]
        )

    def run_argv(self) -> list:
        return self.launcher.argv(["--no-secrets", "--", "true"])


def prepare(facts) -> None:
    launcher = facts["launcher"]
    ca_dir = WORK / "proxy-ca"
    make_ca(ca_dir)
    run(["docker", "network", "create", *docker_label_args(), NETWORK])
    run(
        [
            "docker",
            "run",
            "-d",
            "--name",
            STAND_IN,
            *docker_label_args(),
            "--network",
            NETWORK,
            "--network-alias",
            HOST,
            "--read-only",
            "--mount",
            f"type=bind,source={ROOT / 'tests' / 'support'},target=/stand-in,readonly",
            "--mount",
            f"type=bind,source={ca_dir},target=/certs,readonly",
            "devenv-test/debian:13",
            "python3",
            "/stand-in/anthropic_api.py",
            "--port",
            "443",
            "--cert",
            "/certs/server.pem",
            "--answer",
            "Hello.",
        ]
    )
    run(["docker", "network", "connect", "bridge", STAND_IN])
    fmt = "{{.NetworkSettings.Networks.bridge.IPAddress}}"
    address = run(["docker", "inspect", "--format", fmt, STAND_IN]).stdout.strip()
    if not address:
        raise BenchError(f"the stand-in {STAND_IN} has no address on the default bridge")
    sides = Sides(launcher, ca_dir, address)
    # Untimed: creates the proxy and its networks, and proves both sides answer.
    for side in SIDES:
        seconds, out = timed(sides.requests_argv(side, 1), env=sides.env(side), timeout=300)
        log(f"proxy comparison: {side} side answers ({format_seconds(seconds)}, {out.strip()} s)")
    facts["proxy_sides"] = sides


def cleanup() -> None:
    # The stand-in and the networks carry the benchmark's labels, and so do the proxy and
    # the internal network the launcher created (a run's labels go on them); they are
    # swept with every other container and network of the benchmark.
    run(["docker", "rm", "-f", STAND_IN], check=False)


def time_requests(sides, rounds: int, count: int) -> dict:
    """{side: [seconds of each request]}, rounds alternated A B, B A."""
    samples = {side: [] for side in SIDES}
    for i in range(rounds):
        for side in reversed(SIDES) if i % 2 else SIDES:
            _seconds, out = timed(
                sides.requests_argv(side, count), env=sides.env(side), timeout=600
            )
            times = [float(line) for line in out.split()]
            if len(times) != count:
                raise BenchError(f"{side}: expected {count} request times, got {out!r}")
            samples[side] += times
    return samples


def time_runs(sides, count: int) -> dict:
    samples = {side: [] for side in SIDES}
    for side in alternate("allowlist", count, "open", count):
        samples[side].append(timed(sides.run_argv(), env=sides.env(side), timeout=300)[0])
    return samples


def derive(requests: dict, runs: dict) -> dict:
    req = {side: summarize(v) for side, v in requests.items()}
    whole = {side: summarize(v) for side, v in runs.items()}
    return {
        "added_request_s": req["allowlist"]["median"] - req["open"]["median"],
        "added_run_s": whole["allowlist"]["median"] - whole["open"]["median"],
    }


def derived_table(derived: dict) -> dict:
    return {
        "title": "Derived figures",
        "columns": ["figure", "value"],
        "rows": [
            [
                "added to a streamed Messages request (difference of medians)",
                format_signed_ms(derived["added_request_s"]),
            ],
            [
                "added to `devenv run -- true` (difference of medians)",
                format_signed_ms(derived["added_run_s"]),
            ],
        ],
    }


def notes() -> list:
    return [
        "The stand-in answers at once, so the request time is the network path alone: on the "
        "allowlist side a TCP connection to the proxy, the CONNECT exchange, Squid's name "
        "lookup and its connection to the stand-in, then TLS through the tunnel; on the open "
        "side a TCP connection and TLS straight to the stand-in. Each request is a new curl "
        "process (a new connection), so no side reuses a tunnel; tools that keep their "
        "connections open pay the CONNECT once.",
        "The proxy is created before the timings (preparation), as a host's first allowlist "
        "run does once; every timed run finds it running.",
        "A run with allowlist asks the engine once more before the start (is the proxy "
        "running) and twice after it (the proxy's log for refused destinations, and its "
        "state); the container starts on an internal network instead of the default bridge.",
        "Both sides: the same launcher, image, stand-in and limits; a read-only mount of the "
        "run's CA (curl --cacert); `--no-secrets`.",
    ]


def measure(counts, facts) -> dict:
    sides = facts["proxy_sides"]
    comp = comparison("proxy")
    rounds, count, runs_count = (
        counts[k] for k in ("proxy_rounds", "proxy_requests", "proxy_runs")
    )
    log(f"egress proxy: {rounds} rounds of {count} requests per side, then {runs_count} runs")
    requests = time_requests(sides, rounds, count)
    runs = time_runs(sides, runs_count)
    comp["timings"] = [
        timing(
            "streamed Messages request, `network: allowlist` (through the proxy)",
            requests["allowlist"],
        ),
        timing("streamed Messages request, `network: open` (default bridge)", requests["open"]),
        timing("`devenv run --no-secrets -- true`, `network: allowlist`", runs["allowlist"]),
        timing("`devenv run --no-secrets -- true`, `network: open`", runs["open"]),
    ]
    comp["derived"] = derive(requests, runs)
    comp["tables"].append(derived_table(comp["derived"]))
    comp["notes"] = notes() + sides.launcher.notes()
    launcher = sides.launcher
    comp["commands"] = [
        f"# configurations: {launcher.display([str(sides.configs['allowlist'])])} and "
        f"{launcher.display([str(sides.configs['open'])])} (network, allow-list, egress, CA mount)",
        "# requests, allowlist (DEVENV_CONFIG = the allowlist configuration)",
        launcher.display(sides.requests_argv("allowlist", count)),
        "# requests, open",
        launcher.display(sides.requests_argv("open", count)).replace(
            sides.stand_in_ip, "STAND_IN_IP"
        ),
        "# whole runs, each side",
        launcher.display(sides.run_argv()),
    ]
    return comp


def figures(comp) -> dict:
    derived = comp["derived"]
    return {
        "added_request_s": derived["added_request_s"],
        "added_run_s": derived["added_run_s"],
        "request_allowlist_s": median(comp, REQUEST["allowlist"]),
        "request_open_s": median(comp, REQUEST["open"]),
        "run_allowlist_s": median(comp, RUN["allowlist"]),
        "run_open_s": median(comp, RUN["open"]),
    }


def result(figures, goal, verdicts) -> str:
    return (
        f"a request: {format_signed_ms(figures['added_request_s'])} "
        f"({format_seconds(figures['request_allowlist_s'])} against "
        f"{format_seconds(figures['request_open_s'])}; goal {goal.limits['request'].goal()}, "
        f"{said(verdicts['request'])}); a run: {format_signed_ms(figures['added_run_s'])} "
        f"(goal {goal.limits['run'].goal()}, {said(verdicts['run'])})."
    )


def analysis(figures, verdicts) -> list:
    notes = []
    if not verdicts["request"]:
        notes.append(
            "**Why the request goal is missed:** a new connection through the proxy costs one "
            "more connection, the CONNECT round trip and Squid's lookup of the name (through "
            "the engine's resolver) before TLS starts; on a loaded 2-CPU machine Squid also "
            "waits for a CPU. **What would close it:** clients that keep their connections "
            "(the agents' HTTP clients do), Squid's name cache for allowed names (it keeps "
            "answers for at most a second here, so that a run's reverse name is never a "
            "stale one: a longer lifetime for forward lookups only), and a quieter machine."
        )
    if not verdicts["run"]:
        notes.append(
            "**Why the run goal is missed:** the launcher asks the engine whether the proxy "
            "runs before the start and reads its log after the run; each is a round trip on "
            "the engine's socket, slower when the engine is busy. **What would close it:** "
            "reading the log only when the run's exit status is not 0."
        )
    return notes


def repetitions(counts) -> str:
    return (
        f"egress proxy {counts['proxy_rounds']} rounds x {counts['proxy_requests']} requests "
        f"per side, {counts['proxy_runs']} runs per side"
    )
