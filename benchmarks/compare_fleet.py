"""Comparison 5, fleet provisioning: converge playbooks/site.yml on 1 and on 4 new hosts,
then again with nothing to change (the hosts themselves: bench_fleet.py)."""

from __future__ import annotations

import json
import re

from bench_common import IMAGE_VERSION, LABELS, OUR_REF, ROOT, comparison, median, timing
from bench_fleet import Fleet, fleet_inventory, run_rounds
from bench_stats import format_ratio, format_seconds, ratio, summarize
from bench_stats import verdict as said

NEEDS = ("ours",)
COUNTS = {"fleet": (1, 1), "fleet_second": (1, 1)}

SIZES = (1, 4)
PHASES = ("first", "second")
# The timings, in the order measure() lists them.
CASES = [(n, phase) for n in SIZES for phase in PHASES]


def site_roles() -> list:
    site = (ROOT / "playbooks" / "site.yml").read_text(encoding="utf-8")
    return list(dict.fromkeys(re.findall(r"role:\s*kuatecno\.devenv\.(\w+)", site)))


def derive(samples, recaps) -> dict:
    s = {key: summarize(v) for key, v in samples.items()}
    return {
        "scale_4_over_1": ratio(s[(4, "first")]["median"], s[(1, "first")]["median"]),
        # String keys, as the record (JSON) has them.
        "second_over_first": {
            str(n): ratio(s[(n, "second")]["median"], s[(n, "first")]["median"]) for n in SIZES
        },
        "recaps": recaps,
    }


def converge_table(recaps) -> dict:
    return {
        "title": "Every converge (changed = tasks reported changed, summed over the hosts)",
        "columns": ["round", "hosts", "converge", "time", "changed", "failed/unreachable"],
        "rows": [
            [x["round"], x["hosts"], x["phase"], format_seconds(x["seconds"]), x["changed"],
             x["failed"]]
            for x in recaps
        ],
    }  # fmt: skip


def slowest_tables(recaps) -> list:
    """The slowest tasks of each first converge of round 1."""
    return [
        {
            "title": f"Slowest tasks of the first converge on {x['hosts']} host(s) (profile_tasks)",
            "columns": ["task", "time"],
            "rows": [[t, format_seconds(sec)] for t, sec in x["slowest"]],
        }
        for x in recaps
        if x["phase"] == "first" and x["round"] == 1 and x["slowest"]
    ]


def notes(roles, images, rounds: int, seconds_per_round: int) -> list:
    return [
        f"site.yml at the time of the run applies the roles: {', '.join(roles) or 'none found'}.",
        "Hosts: containers of devenv-test/debian-docker:13 (Debian 13 with docker.io), each "
        "with its own engine started before the timing (no systemd in them) and a fresh "
        "volume at /var/lib/docker; new hosts for every round, so the first converge always "
        "starts from an installed, answering engine and nothing else.",
        "Settings: the image pulled from the registry, Infisical CLI not installed "
        "(`devenv_secrets_install_method: none`: its download hosts are unreachable here), no "
        "users (`devenv_users: []`), so per-user tasks (the `dev` function, credential "
        "modes) are not part of these timings.",
        "The image is pushed once to the registry before any timing "
        f"({OUR_REF}, built by the devenv_image role); each host pulls it (about 1.2 GB "
        "unpacked) from the registry container over the benchmark's own network.",
        f"Images on a host after the converge: 1 host: {images.get(1, 'n/a') or '(none)'}; "
        f"4 hosts: {images.get(4, 'n/a') or '(none)'}.",
        "All hosts share this machine's 2 CPUs and one disk, so 4 nested engines unpacking "
        "the same image at once compete for them; on a real fleet every host has its own.",
        f"Rounds: {rounds}, each with new hosts: a first converge, then {seconds_per_round} "
        "converges with nothing to change; the order of 1 and 4 hosts alternates between "
        "rounds.",
    ]


def measure(counts, facts) -> dict:
    comp = comparison("fleet")
    roles = site_roles()
    rounds, seconds_per_round = counts["fleet"], counts["fleet_second"]
    samples, recaps, images = run_rounds(Fleet(), rounds, seconds_per_round)
    comp["timings"] = [
        timing(f"{n} host{'s' if n > 1 else ''}: {phase} converge", samples[(n, phase)])
        for n, phase in CASES
    ]
    comp["tables"] = [converge_table(recaps), *slowest_tables(recaps)]
    comp["derived"] = derive(samples, recaps)
    comp["commands"] = [
        "ansible-playbook -i INVENTORY playbooks/site.yml   # timed; INVENTORY below",
    ]
    example = fleet_inventory(["HOST1", "..."], "REGISTRY:5000", LABELS, IMAGE_VERSION)
    comp["files"] = [
        {"title": "Inventory of a round (generated; JSON is YAML)", "lang": "json",
         "text": json.dumps(example, indent=2)},
    ]  # fmt: skip
    comp["notes"] = notes(roles, images, rounds, seconds_per_round)
    return comp


def figures(comp) -> dict:
    derived = comp["derived"]
    second = derived["second_over_first"]
    changed = [x["changed"] for x in derived["recaps"] if x["phase"] == "second"]
    return {
        "one_host_s": median(comp, CASES.index((1, "first"))),
        "four_hosts_s": median(comp, CASES.index((4, "first"))),
        "scale_4_over_1": derived["scale_4_over_1"],
        "second_1": second["1"],
        "second_4": second["4"],
        "second_changed_max": max(changed, default=None),
    }


def result(figures, goal, verdicts) -> str:
    limits = goal.limits
    scale = "n/a" if figures["scale_4_over_1"] is None else f"{figures['scale_4_over_1']:.2f}"
    return (
        f"4 hosts {format_seconds(figures['four_hosts_s'])} against 1 host "
        f"{format_seconds(figures['one_host_s'])}: {scale} x (goal {limits['scale'].goal()}, "
        f"{said(verdicts['scale'])}); second converge {format_ratio(figures['second_1'])} "
        f"(1 host) and {format_ratio(figures['second_4'])} (4 hosts) of the first, "
        f"changed={figures['second_changed_max']} at most (goal {limits['second'].goal()} and "
        f"{limits['changes'].shown()} changes, "
        f"{said(verdicts['second'] and verdicts['changes'])})."
    )


def fleet_analysis(met_scale: bool, met_second: bool, changed_again: bool) -> list:
    """Why a fleet goal was missed and what would close it (empty when all are met)."""
    analysis = []
    if not met_scale:
        analysis.append(
            "**Why the 4-host goal is missed:** the four hosts are containers on this one "
            "machine: their engines pull and unpack the same image at once on its one disk and "
            "2 CPUs, and Ansible's forks share the same CPUs; on a real fleet each host brings "
            "its own. **What would close it here:** fewer moving bytes per host (a smaller "
            "image, see comparison 3) or a machine with more cores; in the product, nothing "
            "is serialised between hosts."
        )
    if not met_second:
        analysis.append(
            "**Why the no-change goal is missed:** a converge with nothing to do still runs "
            "every task (fact gathering, package and file checks, image look-ups), each a "
            "round trip to the host; here every round trip is a `docker exec` on a loaded "
            "machine. **What would close it:** fewer tasks on the no-change path (skip the "
            "package index refresh when packages are present, one image look-up instead of "
            "several), and facts gathered once (`gather_subset`)."
        )
    if changed_again:
        analysis.append(
            "A converge with nothing to change reported changes: see the per-converge table "
            "and the logs under `.state/bench/logs/`; the roles are not idempotent there."
        )
    return analysis


def analysis(figures, verdicts) -> list:
    changed_again = bool(figures["second_changed_max"])
    return fleet_analysis(
        verdicts["scale"], verdicts["second"] and verdicts["changes"], changed_again
    )


def repetitions(counts) -> str:
    return (
        f"fleet {counts['fleet']} round(s) of 1 and 4 hosts, each a first converge and "
        f"{counts['fleet_second']} with nothing to change"
    )
