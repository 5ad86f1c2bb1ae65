"""The fleet of the fleet comparison (compare_fleet.py): hosts, their registry, rounds.

Each host is a container of devenv-test/debian-docker:13 with its own Docker engine
(nested, per the recipe of the test environment: every capability but SYS_RESOURCE,
seccomp and AppArmor unconfined, the cgroup tree read-write, a volume at /var/lib/docker).
The image comes from a registry (Debian's docker-registry, in a container on the
benchmark's own network, published on loopback so this engine can push to it); the inner
engines list it under insecure-registries. Ansible reaches the hosts with the
community.docker.docker connection. Hosts are new for every round, so each first
converge starts from the same state: an engine installed and answering, nothing else.
"""

from __future__ import annotations

import json
import re
import socket
import time
from time import perf_counter

from bench_common import (
    IMAGE_VERSION,
    KILLED_FROM_OUTSIDE,
    LABELS,
    NAME,
    NESTED_BASE,
    OUR_PROXY_REF,
    OUR_REF,
    REGISTRY_IMAGE,
    ROOT,
    WORK,
    BenchError,
    docker_label_args,
    log,
    playbook,
    run,
)
from bench_stats import format_seconds

RECAP_RE = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.M,
)
REGISTRY_NAMESPACE = "kuatecno"
HOST_IMAGE_NAME = "devenv"
# The role's default name of the egress proxy image, which the hosts pull too.
HOST_PROXY_NAME = "devenv-proxy"


def parse_recap(output: str) -> dict:
    """PLAY RECAP lines of ansible-playbook -> {host: {ok, changed, unreachable, failed}}."""
    recap = output.rpartition("PLAY RECAP")[2]
    return {
        m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
        for m in RECAP_RE.finditer(recap)
    }


TASK_TIME_RE = re.compile(r"^(?P<task>\S.*?) -{2,} (?P<seconds>\d+\.\d+)s$", re.M)


def slowest_tasks(output: str, count: int = 5) -> list:
    """The first entries of profile_tasks' TASKS RECAP: [(task, seconds)], slowest first."""
    recap = output.rpartition("TASKS RECAP")[2]
    tasks = [(m["task"].strip(), float(m["seconds"])) for m in TASK_TIME_RE.finditer(recap)]
    return sorted(tasks, key=lambda t: -t[1])[:count]


def fleet_inventory(hosts, registry: str, labels: dict, version: str) -> dict:
    """The inventory of one round: every host pulls the image from the registry."""
    return {
        "all": {
            "vars": {
                "ansible_connection": "community.docker.docker",
                "ansible_python_interpreter": "/usr/bin/python3",
                "devenv_engine_daemon_options": {"insecure-registries": [registry]},
                "devenv_image_source": "pull",
                "devenv_image_registry": f"{registry}/{REGISTRY_NAMESPACE}",
                "devenv_image_name": HOST_IMAGE_NAME,
                "devenv_image_version": version,
                "devenv_image_container_labels": labels,
                "devenv_image_infisical": False,
                "devenv_secrets_install_method": "none",
                "devenv_users": [],
            },
            "children": {"devenv_workers": {"hosts": {h: {"ansible_host": h} for h in hosts}}},
        }
    }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_registry(port: int) -> None:
    code = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)"
    for _ in range(30):
        probe = run(["python3", "-c", code, f"http://127.0.0.1:{port}/v2/"], check=False)
        if probe.returncode == 0:
            return
        time.sleep(1)
    raise BenchError("the fleet's registry did not answer within 30 s")


def wait_for_engine(host: str) -> None:
    for _ in range(60):
        if run(["docker", "exec", host, "docker", "info"], check=False).returncode == 0:
            return
        time.sleep(1)
    log_tail = run(["docker", "exec", host, "tail", "-20", "/var/log/dockerd.log"], check=False)
    raise BenchError(f"the engine in {host} did not start:\n{log_tail.stdout}")


class Fleet:
    def __init__(self):
        self.prefix = f"{NAME}-fleet"
        self.network = f"{self.prefix}-net"
        self.registry = f"{self.prefix}-registry"
        self.work = WORK / "fleet"
        self.work.mkdir(parents=True, exist_ok=True)
        self.registry_addr = None
        self.hosts = []

    @staticmethod
    def labels():
        return docker_label_args()

    def start_registry(self) -> None:
        run(["docker", "network", "create", *self.labels(), self.network])
        port = free_port()
        run(["docker", "run", "-d", "--name", self.registry, *self.labels(),
             "--network", self.network, "-p", f"127.0.0.1:{port}:5000",
             "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",  # noqa: S108
             "--security-opt", "no-new-privileges",
             "--mount", "type=volume,destination=/var/lib/docker-registry",
             REGISTRY_IMAGE])  # fmt: skip
        fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
        ip = run(["docker", "inspect", "--format", fmt, self.registry]).stdout.strip()
        self.registry_addr = f"{ip}:5000"
        wait_for_registry(port)
        # The agent image and the egress proxy image, as the build host's role pushes them.
        for ref, name in ((OUR_REF, HOST_IMAGE_NAME), (OUR_PROXY_REF, HOST_PROXY_NAME)):
            local = f"127.0.0.1:{port}/{REGISTRY_NAMESPACE}/{name}:v{IMAGE_VERSION}"
            log(f"fleet: pushing {ref} to the registry (not timed)")
            run(["docker", "tag", ref, local])
            try:
                run(["docker", "push", local], timeout=1800)
            finally:
                run(["docker", "rmi", local], check=False)

    def create_hosts(self, count: int, tag: str) -> list:
        hosts = [f"{self.prefix}-{tag}-{i}" for i in range(1, count + 1)]
        for host in hosts:
            self.hosts.append(host)
            self.start_host(host)
        for host in hosts:
            wait_for_engine(host)
        return hosts

    def start_host(self, host: str) -> None:
        """A container with its own engine, which trusts the fleet's plain-HTTP registry."""
        daemon = json.dumps({"insecure-registries": [self.registry_addr]})
        run(["docker", "volume", "create", *self.labels(), f"{host}-docker"])
        run(["docker", "run", "-d", "--name", host, "--hostname", host, *self.labels(),
             "--network", self.network,
             "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
             "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
             "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
             "--mount", f"type=volume,source={host}-docker,destination=/var/lib/docker",
             "-e", "DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1",
             NESTED_BASE, "sleep", "infinity"])  # fmt: skip
        run(["docker", "exec", host, "sh", "-c",
             f"mkdir -p /etc/docker && printf '%s\\n' '{daemon}' > /etc/docker/daemon.json"
             " && rm -f /var/run/docker.pid"])  # fmt: skip
        run(["docker", "exec", "-d", host, "sh", "-c", "dockerd >/var/log/dockerd.log 2>&1"])

    def lost_containers(self) -> bool:
        """Whether the registry or a host of this benchmark is gone (removed from outside)."""
        for name in [self.registry, *self.hosts]:
            if run(["docker", "container", "inspect", name], check=False).returncode:
                return True
        return False

    def restart_registry_if_lost(self) -> None:
        if run(["docker", "container", "inspect", self.registry], check=False).returncode:
            run(["docker", "rm", "-fv", self.registry], check=False)
            run(["docker", "network", "rm", self.network], check=False)
            self.start_registry()

    def remove_hosts(self, hosts) -> None:
        run(["docker", "rm", "-fv", *hosts], check=False)
        run(["docker", "volume", "rm", "-f", *[f"{h}-docker" for h in hosts]], check=False)
        self.hosts = [h for h in self.hosts if h not in hosts]

    def converge(self, hosts, name: str) -> dict:
        inventory = self.work / f"inventory-{name}.yml"
        data = fleet_inventory(hosts, self.registry_addr, LABELS, IMAGE_VERSION)
        inventory.write_text(json.dumps(data, indent=2), encoding="utf-8")
        argv = ["-i", str(inventory), str(ROOT / "playbooks" / "site.yml")]
        start = perf_counter()
        proc = playbook(argv, log_name=f"fleet-{name}", timeout=3600)
        elapsed = perf_counter() - start
        recap = parse_recap(proc.stdout)
        missing = set(hosts) - set(recap)
        if missing:
            raise BenchError(f"no PLAY RECAP for {sorted(missing)} in fleet-{name}")
        return {"seconds": elapsed, "recap": recap, "slowest": slowest_tasks(proc.stdout)}

    def image_on(self, host: str) -> str:
        fmt = "{{.Repository}}:{{.Tag}}"
        argv = ["docker", "exec", host, "docker", "image", "ls", "--format", fmt]
        out = run(argv, check=False).stdout
        return " ".join(sorted(line for line in out.split() if "<none>" not in line))


def one_round(fleet, number: int, n: int, phases, attempt: int) -> dict:
    """New hosts, a first converge and the repeated second ones; hosts removed after."""
    hosts = fleet.create_hosts(n, f"r{number}n{n}a{attempt}")
    recaps = []
    try:
        for index, phase in enumerate(phases):
            log(f"fleet: round {number}, {n} host(s), {phase} converge")
            result = fleet.converge(hosts, f"r{number}-n{n}-{index}-{phase}")
            values = result["recap"].values()
            changed = sum(v["changed"] for v in values)
            failed = sum(v["failed"] + v["unreachable"] for v in values)
            recaps.append({"round": number, "hosts": n, "phase": phase,
                           "seconds": result["seconds"], "changed": changed,
                           "failed": failed, "recap": result["recap"],
                           "slowest": result["slowest"]})  # fmt: skip
            log(f"  {format_seconds(result['seconds'])}, changed={changed}")
        images = fleet.image_on(hosts[0])
    except BenchError as error:
        # Told apart before the hosts are removed: did something else remove ours?
        error.lost = fleet.lost_containers()
        raise
    finally:
        fleet.remove_hosts(hosts)
    return {"recaps": recaps, "images": images}


def round_with_retry(fleet, number: int, n: int, phases) -> dict:
    """one_round, repeated once when something else removed the benchmark's containers."""
    for attempt in (1, 2):
        try:
            return one_round(fleet, number, n, phases, attempt)
        except BenchError as error:
            if attempt == 2 or not getattr(error, "lost", False):
                raise
            KILLED_FROM_OUTSIDE["rounds"] += 1
            log("  fleet containers were removed from outside; repeating the round")
            fleet.remove_hosts(list(fleet.hosts))
            fleet.restart_registry_if_lost()
    raise AssertionError("unreachable")


def run_rounds(fleet, rounds: int, seconds_per_round: int):
    """Every round: 1 and 4 new hosts (order alternating), each converged and reconverged."""
    samples = {(n, phase): [] for n in (1, 4) for phase in ("first", "second")}
    recaps = []
    images = {}
    phases = ["first"] + ["second"] * seconds_per_round
    try:
        fleet.start_registry()
        for r in range(rounds):
            for n in (1, 4) if r % 2 == 0 else (4, 1):
                done = round_with_retry(fleet, r + 1, n, phases)
                for x in done["recaps"]:
                    samples[(n, x["phase"])].append(x["seconds"])
                recaps += done["recaps"]
                images[n] = done["images"]
    finally:
        fleet.remove_hosts(list(fleet.hosts))
    return samples, recaps, images
