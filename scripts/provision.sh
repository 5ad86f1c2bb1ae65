#!/usr/bin/env bash
# Provision this machine: create the environment, then run playbooks/site.yml
# against the default inventory (localhost). Extra arguments go to
# ansible-playbook, e.g. scripts/provision.sh --check --diff
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
# inventory/host_vars/localhost.yml asks for a locally made base image where no
# registry is reachable; make it once (debootstrap + docker import).
if grep -q '^devenv_image_base: devenv-local/debian:13' inventory/host_vars/localhost.yml 2>/dev/null; then
  # shellcheck source=scripts/lib/images.sh
  . "$DEVENV_ROOT/scripts/lib/images.sh"
  mkdir -p "$DEVENV_STATE"
  ensure_engine
  DEVENV_TEST_IMAGE_PREFIX=devenv-local ensure_debian_base trixie 13
fi
exec ansible-playbook playbooks/site.yml "$@"
