#!/usr/bin/env bash
# The README's main job on the local sandbox: start the local stand-ins, run playbooks/site.yml
# against inventories/sandbox, stop the stand-ins. Needs .ci/setup.sh to have run (./dev does it).
set -euo pipefail
WORK=${WORK:-$HOME/.cache/cai-ack}
# shellcheck source=/dev/null
source "$WORK/env.sh"
cd "$COLL"
ansible-playbook playbooks/site.yml -i inventories/sandbox "$@"
