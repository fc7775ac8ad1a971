#!/usr/bin/env bash
# The built artifact: `ansible-galaxy collection build` works, `collection install` accepts it, it
# leaves out the development-only folders, and ansible-doc renders every module from the install.
set -euo pipefail

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

ansible-galaxy collection build --output-path "$out" . >/dev/null
artifact=$(ls "$out"/confidential_ai-ack-*.tar.gz)
echo "built $(basename "$artifact") ($(du -h "$artifact" | cut -f1))"

for dev_only in tests/ sandbox/ benchmarks/ extensions/molecule/ .ci/ .git/ dev inventories/sandbox/; do
  if tar -tzf "$artifact" | grep -q "^${dev_only}"; then
    echo "FAIL: the artifact contains $dev_only"
    exit 1
  fi
done

# the third-party collections only: the checkout itself must not satisfy the install, the
# dependencies must (Galaxy is out of reach)
ANSIBLE_COLLECTIONS_PATH="$WORK/collections" ansible-galaxy collection install --offline --force -p "$out/installed" "$artifact" >/dev/null 2>&1
installed=$out/installed/ansible_collections/confidential_ai/ack
test -f "$installed/MANIFEST.json"

# Every module and role documents itself from the installed copy.
modules=$(ANSIBLE_COLLECTIONS_PATH="$out/installed:${ANSIBLE_COLLECTIONS_PATH:-}" ansible-doc -t module -l confidential_ai.ack 2>&1)
if echo "$modules" | grep -qiE 'error|warning'; then
  echo "FAIL: ansible-doc reports problems:"
  echo "$modules"
  exit 1
fi
count=0
for name in $(echo "$modules" | awk '{print $1}'); do
  ANSIBLE_COLLECTIONS_PATH="$out/installed:${ANSIBLE_COLLECTIONS_PATH:-}" ansible-doc -t module "$name" >/dev/null
  count=$((count + 1))
done
echo "ansible-doc rendered $count modules"

roles=$(ANSIBLE_COLLECTIONS_PATH="$out/installed:${ANSIBLE_COLLECTIONS_PATH:-}" ansible-doc -t role -l confidential_ai.ack 2>&1)
if echo "$roles" | grep -qiE 'error|warning'; then
  echo "FAIL: ansible-doc reports problems with the roles:"
  echo "$roles"
  exit 1
fi
echo "ansible-doc lists roles: $(echo "$roles" | grep -cE "^confidential_ai\.ack\.")"
