#!/usr/bin/env bash
# Lints every Dockerfile of the project with hadolint: each role's templates/Dockerfile*.j2
# rendered with the role's defaults and vars (plus each variant in the role's
# tests/hadolint/*.yml, which switches optional parts on), and tests/images/*/Dockerfile.
#
# Ignored rules, each for a reason:
#   DL3008 (pin apt package versions): the packages come from the base's release and its
#          security updates; exact Debian revisions disappear from the mirror on every
#          update, breaking rebuilds. The image itself is pinned by its immutable vX.Y.Z tag.
# Failure threshold "warning": info-level findings (style hints such as DL3066) are
# printed but do not fail the lint layer; errors and warnings do.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
HADOLINT="${HADOLINT:-hadolint}"
if [ -x "$ROOT/.venv/bin/hadolint" ]; then HADOLINT="$ROOT/.venv/bin/hadolint"; fi
ANSIBLE_PLAYBOOK="ansible-playbook"
if [ -x "$ROOT/.venv/bin/ansible-playbook" ]; then ANSIBLE_PLAYBOOK="$ROOT/.venv/bin/ansible-playbook"; fi
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rendered=()
for tpl in collections/devenv/roles/*/templates/Dockerfile*.j2; do
  [ -e "$tpl" ] || continue
  role_dir="${tpl%/templates/*}"
  role="$(basename "$role_dir")"
  variants=("$role_dir"/tests/hadolint/*.yml)
  [ -e "${variants[0]}" ] || variants=("")
  for variant in "${variants[@]}"; do
    name="$(basename "$tpl" .j2)"
    out="$work/$role/${variant:+$(basename "$variant" .yml)/}$name"
    mkdir -p "$(dirname "$out")"
    # Rendered by Ansible itself, so filters and lookups behave as in the role.
    cat >"$work/render.yml" <<PLAY
- name: Render a Dockerfile template for hadolint
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  vars_files:
    - $ROOT/$role_dir/defaults/main.yml
    - $ROOT/$role_dir/vars/main.yml
${variant:+    - $ROOT/$variant}
  tasks:
    - name: Render the template
      ansible.builtin.template:
        src: $ROOT/$tpl
        dest: $out
        mode: "0644"
PLAY
    "$ANSIBLE_PLAYBOOK" -i localhost, "$work/render.yml" >"$work/render.log" 2>&1 || {
      cat "$work/render.log" >&2
      echo "hadolint.sh: could not render $tpl${variant:+ with $variant}" >&2
      exit 1
    }
    rendered+=("$out")
  done
done

status=0
for file in "${rendered[@]}" tests/images/*/Dockerfile; do
  [ -e "$file" ] || continue
  label="${file#"$work"/}"
  if "$HADOLINT" --ignore DL3008 --failure-threshold warning "$file"; then
    printf 'hadolint: %s ok\n' "$label"
  else
    printf 'hadolint: %s FAILED\n' "$label" >&2
    status=1
  fi
done
exit "$status"
