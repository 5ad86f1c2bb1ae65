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
finish() {
  local rc=$?
  # Only runs that start containers sweep, so a lint or unit run never touches the
  # containers of another run in progress on the same engine.
  case " ${LAYERS[*]} " in *" integration "* | *" molecule "*) sweep_test_leftovers ;; esac
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
# Two workers, each taking whole test files (a file's tests share module fixtures such as
# a nested engine); the tests mostly wait on engines, so two workers fit two CPUs.
# DEVENV_TEST_WORKERS=0 runs them in this process, one after the other.
layer_integration() {
  local workers="${DEVENV_TEST_WORKERS:-2}"
  if [ "$workers" = 0 ]; then
    pytest -q -m integration --durations=15 tests/integration
  else
    pytest -q -m integration -n "$workers" --dist loadfile --durations=15 tests/integration
  fi
}
# The scenarios run side by side, each on its own test hosts with its own engines (only
# the test registry and network are shared, and neither is removed by a scenario); each
# writes to its own log, printed whole when it ends. DEVENV_MOLECULE_SERIAL=1: one by one.
layer_molecule() {
  local s i rc=0 start logs="$DEVENV_STATE/molecule"
  local -a pids=()
  ensure_test_registry
  if [ "${DEVENV_MOLECULE_SERIAL:-0}" = 1 ]; then
    for s in "${MOLECULE_SCENARIOS[@]}"; do
      printf -- '--- molecule scenario: %s\n' "$s"
      molecule test -s "$s"
    done
    return
  fi
  mkdir -p "$logs"
  start=$SECONDS
  for s in "${MOLECULE_SCENARIOS[@]}"; do
    printf -- '--- molecule scenario: %s, started (log: %s)\n' "$s" "$logs/$s.log"
    molecule test -s "$s" >"$logs/$s.log" 2>&1 &
    pids+=("$!")
  done
  for i in "${!pids[@]}"; do
    s="${MOLECULE_SCENARIOS[$i]}"
    if wait "${pids[$i]}"; then
      printf -- '--- molecule scenario: %s passed (%ds since the start)\n' "$s" $((SECONDS - start))
    else
      printf -- '--- molecule scenario: %s FAILED (%ds since the start)\n' "$s" $((SECONDS - start))
      rc=1
    fi
  done
  for s in "${MOLECULE_SCENARIOS[@]}"; do
    printf -- '\n--- molecule scenario: %s, its log\n' "$s"
    cat "$logs/$s.log"
  done
  return "$rc"
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
