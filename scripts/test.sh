#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine or a reused one:
# installs what it needs (Debian packages, the pinned Python toolchain, the Docker
# engine, local base images), then runs the layers in order and stops at the first
# broken one. Usage: scripts/test.sh [lint|unit|integration|molecule ...]
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
. "$(dirname "$0")/lib/common.sh"
# shellcheck source=scripts/lib/images.sh
. "$DEVENV_ROOT/scripts/lib/images.sh"

need_root
cd "$DEVENV_ROOT"
mkdir -p "$DEVENV_STATE"

LAYERS=("$@")
[ "${#LAYERS[@]}" -gt 0 ] || LAYERS=(lint unit integration molecule)
# Molecule scenarios, in order (each a directory under molecule/).
MOLECULE_SCENARIOS=(${DEVENV_MOLECULE_SCENARIOS:-default fleet})

SUMMARY=()
sweep() {
  # Anything of the suite's own left behind by a failed test: containers, networks, volumes.
  local ids
  ids="$(docker ps -aq --filter label=io.kuatecno.devenv.test=1 2>/dev/null || true)"
  [ -z "$ids" ] || docker rm -fv $ids >/dev/null 2>&1 || true
  ids="$(docker network ls -q --filter label=io.kuatecno.devenv.test=1 2>/dev/null || true)"
  [ -z "$ids" ] || docker network rm $ids >/dev/null 2>&1 || true
  ids="$(docker volume ls -q --filter label=io.kuatecno.devenv.test=1 2>/dev/null || true)"
  [ -z "$ids" ] || docker volume rm -f $ids >/dev/null 2>&1 || true
}
finish() {
  local rc=$?
  # Only runs that start containers sweep, so a lint or unit run never touches the
  # containers of another run in progress on the same engine.
  case " ${LAYERS[*]} " in *" integration "* | *" molecule "*) sweep ;; esac
  printf '\n==== summary ====\n'
  printf '%s\n' "${SUMMARY[@]}"
  exit "$rc"
}
trap finish EXIT

run_layer() {
  local name="$1" start rc
  shift
  printf '\n==== layer: %s ====\n' "$name"
  start=$SECONDS
  set +e
  (
    set -e
    "$@"
  )
  rc=$?
  set -e
  if [ "$rc" -eq 0 ]; then
    SUMMARY+=("$(printf '%-12s passed  %4ds' "$name" $((SECONDS - start)))")
  else
    SUMMARY+=("$(printf '%-12s FAILED  %4ds (exit %d)' "$name" $((SECONDS - start)) "$rc")")
    exit "$rc"
  fi
}

layer_lint() {
  yamllint --strict .
  ruff check .
  ruff format --check .
  ansible-lint --profile production
  "$DEVENV_ROOT/scripts/lib/hadolint.sh"
  "$DEVENV_ROOT/scripts/lib/sanity.sh"
}
layer_unit() { pytest -q tests/unit; }
layer_integration() { pytest -q -m integration tests/integration; }
layer_molecule() {
  local s
  ensure_test_registry
  for s in "${MOLECULE_SCENARIOS[@]}"; do
    printf -- '--- molecule scenario: %s\n' "$s"
    molecule test -s "$s"
  done
}

setup_start=$SECONDS
prepare_test_world
SUMMARY+=("$(printf '%-12s done    %4ds' setup $((SECONDS - setup_start)))")

for layer in "${LAYERS[@]}"; do
  case "$layer" in
    lint | unit | integration | molecule) run_layer "$layer" "layer_$layer" ;;
    *) die "unknown layer '$layer' (use lint, unit, integration, molecule)" ;;
  esac
done
