#!/usr/bin/env bash
# `ansible-test sanity` on the kuatecno.devenv collection.
#
# ansible-test needs the collection at .../ansible_collections/<namespace>/<name> and
# inside a git checkout (it lists files with git), so the collection source is copied into
# a temporary tree of that shape and committed there. Usage: scripts/lib/sanity.sh
# [extra ansible-test sanity arguments, e.g. --test validate-modules]
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
. "$(dirname "$0")/common.sh"

PYTHON_VERSION="${DEVENV_SANITY_PYTHON:-3.11}"
ANSIBLE_TEST="$DEVENV_VENV/bin/ansible-test"
[ -x "$ANSIBLE_TEST" ] || die "ansible-test not found in $DEVENV_VENV (run scripts/test.sh once to create the venv)"

# ansible-test bootstraps pip in each test venv with a script downloaded from a host that is
# not reachable here; a cached script of the expected name that bootstraps pip from the
# standard library's ensurepip works the same way.
pip_cache() {
  local version source
  source="$("$DEVENV_VENV/bin/python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py"
  version="$(grep -oE "pip='[0-9.]+'" "$source" | head -n 1 | tr -dc '0-9.')"
  [ -n "$version" ] || die "cannot find the pip version ansible-test expects in $source"
  local cache="$HOME/.ansible/test/cache/get_pip_${version//./_}.py"
  if [ ! -s "$cache" ]; then
    mkdir -p "$(dirname "$cache")"
    printf 'import ensurepip\nensurepip.bootstrap(upgrade=True)\n' >"$cache"
  fi
}

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
dest="$workdir/ansible_collections/kuatecno/devenv"
mkdir -p "$dest"
# The collection's files known to git (as a fresh clone has them; a file must be added
# before it is checked), with their working-tree content.
(
  cd "$DEVENV_ROOT/collections/devenv"
  git ls-files -z --cached -- . | while IFS= read -r -d '' file; do
    if [ -e "$file" ]; then printf '%s\0' "$file"; fi
  done | tar --null -T - -cf -
) | tar -C "$dest" -xf -

pip_cache
cd "$dest"
git init -q
git add -A
git -c user.name=sanity -c user.email=sanity@localhost commit -q -m "sanity copy"

log "ansible-test sanity (python $PYTHON_VERSION) on kuatecno.devenv"
"$ANSIBLE_TEST" sanity --local --requirements --python "$PYTHON_VERSION" --color no "$@"
