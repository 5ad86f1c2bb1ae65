#!/usr/bin/env bash
# The benchmark of issue 6: every comparison side by side in one run on this machine,
# then docs/benchmarks.md and docs/benchmarks.json rewritten. Not part of the test suite.
# Same set-up as scripts/test.sh (Debian packages, venv, engine, local base images).
# Usage: sudo scripts/benchmark.sh [--quick] [--only launcher,ready,size,rebuild,fleet] [--docs]
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
. "$(dirname "$0")/lib/common.sh"
# shellcheck source=scripts/lib/images.sh
. "$DEVENV_ROOT/scripts/lib/images.sh"

need_root
cd "$DEVENV_ROOT"
mkdir -p "$DEVENV_STATE"

prepare_test_world
# The fleet's registry: Debian's docker-registry in a container (the tests' image).
ensure_derived_image "$DEVENV_TEST_IMAGE_PREFIX/registry:13" "$DEVENV_ROOT/tests/images/registry"

exec python3 "$DEVENV_ROOT/benchmarks/run.py" "$@"
