# Local base images for the tests (sourced). No registry is reachable from the
# build machines, so Debian bases are made with debootstrap and `docker import`.
# shellcheck shell=bash

DEVENV_TEST_MIRROR="${DEVENV_TEST_MIRROR:-http://deb.debian.org/debian}"
DEVENV_TEST_IMAGE_PREFIX="${DEVENV_TEST_IMAGE_PREFIX:-devenv-test}"

image_present() { docker image inspect "$1" >/dev/null 2>&1; }

# ensure_debian_base SUITE TAG -> image $DEVENV_TEST_IMAGE_PREFIX/debian:TAG
ensure_debian_base() {
  local suite="$1" tag="$2" name="$DEVENV_TEST_IMAGE_PREFIX/debian:$2" rootfs
  image_present "$name" && return 0
  command -v debootstrap >/dev/null 2>&1 || ensure_host_packages debootstrap
  rootfs="$(mktemp -d "${TMPDIR:-/tmp}/devenv-rootfs.XXXXXX")"
  log "building base image $name (debootstrap $suite)"
  if ! debootstrap --variant=minbase --include=python3,ca-certificates "$suite" "$rootfs" "$DEVENV_TEST_MIRROR" \
      >"$DEVENV_STATE/debootstrap-$suite.log" 2>&1; then
    rm -rf "$rootfs"
    die "debootstrap $suite failed; see $DEVENV_STATE/debootstrap-$suite.log"
  fi
  # Keep images small and apt usable without recommends, as a registry base would be.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import --change 'CMD ["/bin/bash"]' - "$name" >/dev/null
  rm -rf "$rootfs"
}

# ensure_derived_image NAME DOCKERFILE_DIR -> built once, reused afterwards.
ensure_derived_image() {
  local name="$1" dir="$2"
  image_present "$name" && return 0
  log "building test image $name"
  docker build -q -t "$name" "$dir" >/dev/null
}

ensure_test_images() {
  mkdir -p "$DEVENV_STATE"
  ensure_debian_base trixie 13
  ensure_debian_base bookworm 12
  # Debian 11's python3 is 3.9, the oldest Python the launcher promises (macOS's python3).
  ensure_debian_base bullseye 11
  ensure_derived_image "$DEVENV_TEST_IMAGE_PREFIX/debian-python:11" "$DEVENV_ROOT/tests/images/debian-python"
  # A host that boots systemd (Molecule instances) and one that runs its own engine.
  ensure_derived_image "$DEVENV_TEST_IMAGE_PREFIX/debian-systemd:13" "$DEVENV_ROOT/tests/images/debian-systemd"
  ensure_derived_image "$DEVENV_TEST_IMAGE_PREFIX/debian-docker:13" "$DEVENV_ROOT/tests/images/debian-docker"
  # A git server over SSH, for git clone and push from inside dev through the agent.
  ensure_derived_image "$DEVENV_TEST_IMAGE_PREFIX/sshd:13" "$DEVENV_ROOT/tests/images/sshd"
}

# A registry shared by the Molecule scenarios: a container on the network
# devenv-test, published on loopback for this engine, reachable as
# devenv-test-registry:5000 from test hosts with their own (nested) engines.
DEVENV_TEST_NETWORK="${DEVENV_TEST_NETWORK:-devenv-test}"
DEVENV_TEST_REGISTRY_NAME="${DEVENV_TEST_REGISTRY_NAME:-devenv-test-registry}"
DEVENV_TEST_REGISTRY_PORT="${DEVENV_TEST_REGISTRY_PORT:-5555}"
export DEVENV_TEST_NETWORK DEVENV_TEST_REGISTRY_NAME DEVENV_TEST_REGISTRY_PORT

ensure_test_registry() {
  local i state local_ref="127.0.0.1:$DEVENV_TEST_REGISTRY_PORT/devenv-test/debian:13"
  ensure_derived_image "$DEVENV_TEST_IMAGE_PREFIX/registry:13" "$DEVENV_ROOT/tests/images/registry"
  docker network inspect "$DEVENV_TEST_NETWORK" >/dev/null 2>&1 ||
    docker network create --label io.kuatecno.devenv.test=1 "$DEVENV_TEST_NETWORK" >/dev/null
  # A running registry is another run's, shared; a stopped one was left by a run that
  # was killed before its sweep (or by an engine restart) and is made anew.
  state="$(docker container inspect -f '{{.State.Status}}' "$DEVENV_TEST_REGISTRY_NAME" 2>/dev/null || true)"
  if [ -n "$state" ] && [ "$state" != running ]; then
    log "removing the test registry left $state by an earlier run"
    docker rm -fv "$DEVENV_TEST_REGISTRY_NAME" >/dev/null
    state=""
  fi
  if [ -z "$state" ]; then
    docker run -d --name "$DEVENV_TEST_REGISTRY_NAME" --label io.kuatecno.devenv.test=1 \
      --network "$DEVENV_TEST_NETWORK" -p "127.0.0.1:$DEVENV_TEST_REGISTRY_PORT:5000" \
      --read-only --tmpfs /tmp --mount type=volume,destination=/var/lib/docker-registry \
      --cap-drop ALL --security-opt no-new-privileges \
      "$DEVENV_TEST_IMAGE_PREFIX/registry:13" >/dev/null
  fi
  for i in $(seq 1 60); do
    python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" \
      "http://127.0.0.1:$DEVENV_TEST_REGISTRY_PORT/v2/" 2>/dev/null && break
    if [ "$i" -eq 60 ]; then
      docker ps -a --filter "name=^$DEVENV_TEST_REGISTRY_NAME\$" --format '{{.Names}}: {{.Status}}, ports {{.Ports}}' >&2
      docker logs --tail 20 "$DEVENV_TEST_REGISTRY_NAME" >&2 || true
      die "the test registry did not answer on 127.0.0.1:$DEVENV_TEST_REGISTRY_PORT within 60 s (its state and log are above)"
    fi
    sleep 1
  done
  # The Debian 13 base, for image builds on test hosts with their own engines.
  docker tag "$DEVENV_TEST_IMAGE_PREFIX/debian:13" "$local_ref"
  docker push -q "$local_ref" >/dev/null
  docker rmi "$local_ref" >/dev/null
}

# gVisor's runsc registered with the test engine as the devenv_engine role registers it
# with devenv_engine_gvisor (its default platform ptrace; gVisor's host network, which
# Docker's resolver on devenv's internal networks needs; host sockets that are mounted
# in, such as the SSH agent's). The engine reloads its runtimes on SIGHUP, without a
# restart; what else daemon.json holds is kept.
DEVENV_TEST_RUNSC_ARGS='["--platform=ptrace", "--network=host", "--host-uds=open"]'
ensure_gvisor_runtime() {
  local i
  command -v runsc >/dev/null 2>&1 || ensure_host_packages runsc
  docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"' && return 0
  log "registering gVisor's runsc with the engine"
  mkdir -p /etc/docker
  python3 - "$DEVENV_TEST_RUNSC_ARGS" <<'PY'
import json, os, sys
path = "/etc/docker/daemon.json"
config = json.load(open(path)) if os.path.exists(path) else {}
config.setdefault("runtimes", {})["runsc"] = {"path": "/usr/bin/runsc", "runtimeArgs": json.loads(sys.argv[1])}
with open(path + ".new", "w") as out:
    json.dump(config, out, indent=2)
os.replace(path + ".new", path)
PY
  kill -HUP "$(cat /var/run/docker.pid 2>/dev/null || pgrep -xo dockerd)"
  for i in $(seq 1 20); do
    docker info --format '{{json .Runtimes}}' | grep -q '"runsc"' && return 0
    sleep 0.5
  done
  die "the engine did not take gVisor's runtime from /etc/docker/daemon.json"
}

# Anything of the suite's own left on the engine (containers, networks, volumes with the
# test label): by a failed test, or by a run that was killed before it could sweep.
sweep_test_leftovers() {
  local ids
  ids="$(docker ps -aq --filter label=io.kuatecno.devenv.test=1 2>/dev/null || true)"
  [ -z "$ids" ] || docker rm -fv $ids >/dev/null 2>&1 || true
  ids="$(docker network ls -q --filter label=io.kuatecno.devenv.test=1 2>/dev/null || true)"
  [ -z "$ids" ] || docker network rm $ids >/dev/null 2>&1 || true
  ids="$(docker volume ls -q --filter label=io.kuatecno.devenv.test=1 2>/dev/null || true)"
  [ -z "$ids" ] || docker volume rm -f $ids >/dev/null 2>&1 || true
}

# Everything the test suite and the benchmark need on a fresh machine: Debian
# packages, the pinned toolchain (activated), a Docker engine, the local base images,
# and the host's extra CA certificates (TLS-intercepting proxies) for image builds.
prepare_test_world() {
  # tmux: a real terminal for the interactive tests; openssh-client: a host SSH agent;
  # runsc: gVisor, for the runs with isolation: gvisor.
  ensure_host_packages python3-venv debootstrap docker.io docker-registry git tmux openssh-client runsc
  ensure_venv
  activate_venv
  ensure_engine
  # An engine started here had stopped with whatever a killed run left on it (stopped
  # test hosts, a stopped registry); no other run can be using them.
  if [ "$DEVENV_ENGINE_STARTED" = 1 ]; then
    sweep_test_leftovers
  fi
  ensure_gvisor_runtime
  ensure_test_images
  export DEVENV_TEST_CA_DIR="${DEVENV_TEST_CA_DIR:-/usr/local/share/ca-certificates}"
}
