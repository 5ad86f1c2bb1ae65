# Shared helpers for the project's set-up scripts (sourced, not executed).
# shellcheck shell=bash

DEVENV_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEVENV_VENV="${DEVENV_VENV:-$DEVENV_ROOT/.venv}"
DEVENV_STATE="${DEVENV_STATE:-$DEVENV_ROOT/.state}"
export DEVENV_ROOT DEVENV_VENV DEVENV_STATE

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# The scripts install packages and start the Docker engine: root only. The message says
# how to get there with sudo, or without it where sudo is not installed.
need_root() {
  [ "$(id -u)" -eq 0 ] && return 0
  local script="${0#"$DEVENV_ROOT"/}" how
  if command -v sudo >/dev/null 2>&1; then
    how="sudo $script"
  else
    how="su -c '$DEVENV_ROOT/$script' (sudo is not installed here; su asks for root's password)"
  fi
  die "$script must run as root (it installs packages and starts the Docker engine): run $how, or run it from a root shell"
}

# Debian packages the tooling needs on a fresh Debian 12 machine.
ensure_host_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The pinned Python toolchain, in a virtual environment inside the checkout.
ensure_venv() {
  local stamp="$DEVENV_VENV/.requirements.sha256" want
  want="$(cat "$DEVENV_ROOT/requirements/requirements.txt" "$DEVENV_ROOT/requirements/constraints.txt" | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  log "creating the Python virtual environment in ${DEVENV_VENV#"$DEVENV_ROOT"/}"
  python3 -m venv "$DEVENV_VENV"
  "$DEVENV_VENV/bin/pip" install -q --disable-pip-version-check \
    -r "$DEVENV_ROOT/requirements/requirements.txt" \
    -c "$DEVENV_ROOT/requirements/constraints.txt"
  echo "$want" >"$stamp"
}

activate_venv() {
  # shellcheck disable=SC1091
  . "$DEVENV_VENV/bin/activate"
  export ANSIBLE_CONFIG="$DEVENV_ROOT/ansible.cfg"
}

# A Docker engine that answers. An engine that already answers is left alone;
# otherwise dockerd is started in the background (no systemd on these machines,
# and Debian's init script cannot raise limits or mount cgroups here), and
# DEVENV_ENGINE_STARTED=1 says so: nothing else can be using an engine started here.
DEVENV_ENGINE_STARTED=0
ensure_engine() {
  if docker info >/dev/null 2>&1; then
    return 0
  fi
  command -v dockerd >/dev/null 2>&1 || ensure_host_packages docker.io
  if docker info >/dev/null 2>&1; then
    return 0
  fi
  mkdir -p "$DEVENV_STATE"
  local logfile="$DEVENV_STATE/dockerd.log" i
  log "starting dockerd (log: ${logfile#"$DEVENV_ROOT"/})"
  rm -f /var/run/docker.pid
  nohup dockerd >"$logfile" 2>&1 </dev/null &
  for i in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
      DEVENV_ENGINE_STARTED=1
      return 0
    fi
    sleep 1
  done
  tail -n 20 "$logfile" >&2
  die "dockerd did not answer within 60 s; see $logfile"
}
