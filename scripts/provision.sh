#!/usr/bin/env bash
# Provision this machine: create the environment, then run playbooks/site.yml against
# the default inventory (localhost), with fallbacks for what this machine cannot reach
# (scripts/lib/provision_fallbacks.py decides them; nothing to edit by hand). Extra
# arguments go to ansible-playbook, e.g. scripts/provision.sh --check --diff
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
. "$(dirname "$0")/lib/common.sh"

need_root
cd "$DEVENV_ROOT"
ensure_host_packages python3-venv git
ensure_venv
activate_venv
# Where systemd runs, the devenv_engine role starts the engine as a service. Without
# it (containers, WSL, these build machines) Debian's init script cannot start
# dockerd, so start it here when no engine answers; the role then finds it running.
if [ "$(ps -o comm= -p 1)" != "systemd" ]; then
  ensure_engine
fi
# What this machine reaches (a registry for the base image, Infisical's repository) and
# whether it has extra CA certificates decide a few settings. They are written as group
# variables of a second inventory source, below anything set in your own inventory.
mkdir -p "$DEVENV_STATE"
fallbacks="$DEVENV_STATE/provision-fallbacks.yml"
python3 "$DEVENV_ROOT/scripts/lib/provision_fallbacks.py" "$fallbacks"
if grep -q 'devenv_image_base: "devenv-local/debian:13"' "$fallbacks"; then
  # No registry: the Debian 13 base is made locally, once (debootstrap + docker import).
  # shellcheck source=scripts/lib/images.sh
  . "$DEVENV_ROOT/scripts/lib/images.sh"
  ensure_engine
  DEVENV_TEST_IMAGE_PREFIX=devenv-local ensure_debian_base trixie 13
fi
exec ansible-playbook -i inventory/localhost.yml -i "$fallbacks" playbooks/site.yml "$@"
