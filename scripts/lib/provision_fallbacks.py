"""Choose the settings this machine needs because of what it can reach, for provision.sh.

    python3 scripts/lib/provision_fallbacks.py OUTPUT.yml

Probes, each bounded by a few seconds: the registry the default base image comes from
(Docker Hub, unless the image is already here) and Infisical's package repository. It
writes an inventory source whose group `all` holds only the fallbacks needed, below
any setting of yours (inventory group variables rank just above role defaults), and
prints one line per decision:

- no registry and no local ubuntu:24.04: a Debian 13 base made locally by debootstrap
  (provision.sh builds devenv-local/debian:13 once) instead of pulling one;
- Infisical's repository not reachable: no Infisical CLI in the image or on the host
  (devenv_image_infisical false, devenv_secrets_install_method none);
- extra CA certificates on the host (a TLS-intercepting proxy, as on corporate networks
  and these build machines): trusted in the image too, so npm works during the build.

On a machine that reaches everything, and has no extra CA, the file is empty of settings
and the defaults apply. Standard library only.
"""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_BASE = "ubuntu:24.04"
LOCAL_BASE = "devenv-local/debian:13"
REGISTRY_URL = "https://registry-1.docker.io/v2/"
INFISICAL_URL = "https://artifacts-cli.infisical.com/deb/dists/stable/Release"
CA_DIR = "/usr/local/share/ca-certificates"
TIMEOUT = 5.0


def reachable(url, timeout=TIMEOUT):
    """Does anything answer HTTP at url? Any HTTP status counts (a registry says 401)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):  # noqa: S310 - fixed https URLs
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def image_present(name):
    try:
        done = subprocess.run(
            ["docker", "image", "inspect", name],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def decide(*, base_present, registry, infisical, ca_files):
    """The fallback settings and one reason per setting."""
    settings, reasons = {}, []
    if not base_present and not registry:
        settings["devenv_image_base"] = LOCAL_BASE
        reasons.append(
            f"no container registry answers and {DEFAULT_BASE} is not here: the image is "
            f"built on {LOCAL_BASE}, made locally by debootstrap"
        )
    if not infisical:
        settings["devenv_image_infisical"] = False
        settings["devenv_secrets_install_method"] = "none"
        reasons.append(
            "Infisical's package repository does not answer: no Infisical CLI in the image "
            "or on this host (dev runs without secrets until it is installed)"
        )
    if ca_files:
        settings["devenv_image_ca_certificates"] = sorted(ca_files)
        reasons.append(
            f"{len(ca_files)} extra CA certificate(s) in {CA_DIR} (a TLS-intercepting proxy?): "
            "trusted in the image too, so npm works during the build"
        )
    return settings, reasons


def main(output):
    environ = os.environ
    base_present = image_present(environ.get("DEVENV_PROBE_BASE", DEFAULT_BASE))
    registry = base_present or reachable(environ.get("DEVENV_PROBE_REGISTRY_URL", REGISTRY_URL))
    infisical = reachable(environ.get("DEVENV_PROBE_INFISICAL_URL", INFISICAL_URL))
    ca_dir = Path(environ.get("DEVENV_PROBE_CA_DIR", CA_DIR))
    ca_files = [str(p) for p in ca_dir.glob("*.crt")] if ca_dir.is_dir() else []
    settings, reasons = decide(
        base_present=base_present, registry=registry, infisical=infisical, ca_files=ca_files
    )
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "---",
        "# Written by scripts/provision.sh (scripts/lib/provision_fallbacks.py) for this",
        "# machine; your own inventory or host_vars settings take precedence over these.",
        *(f"# - {reason}" for reason in reasons),
        "all:",
        "  vars:" if settings else "  vars: {}",
        *(f"    {key}: {json.dumps(value)}" for key, value in settings.items()),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for reason in reasons or ["this machine reaches what the defaults need: no fallback"]:
        print(f"==> {reason}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
