#!/usr/bin/env bash
# The README's main job on the local sandbox: start the local stand-ins, run playbooks/site.yml
# against inventories/sandbox, stop what it started. Needs .ci/setup.sh to have run (./dev does it).
#
# Stand-ins (state under $WORK/sandbox, kept between runs so a second run shows idempotence):
#   - the Alibaba Cloud emulator (ECS, ACK, OSS) on 127.0.0.1, keys in alicloud.json (0600)
#   - cai-sandbox-model: a Debian 12 systemd container (host network, so it reaches the emulator on
#     loopback) with a small generated model, as the model host of step 1
#   - cai-sandbox-trustee: a Debian 12 systemd container (no network) with the Trustee stand-in
#     repository mounted, as the Trustee server of step 2
set -euo pipefail
WORK=${WORK:-$HOME/.cache/cai-ack}
# shellcheck source=/dev/null
source "$WORK/env.sh"
cd "$COLL"

SANDBOX=$WORK/sandbox
export CAI_SANDBOX_DIR=$SANDBOX
mkdir -p "$SANDBOX/secrets"
chmod 0700 "$SANDBOX" "$SANDBOX/secrets"

emulator_pid=
cleanup() {
  if [ -n "$emulator_pid" ]; then
    kill "$emulator_pid" 2>/dev/null || true
    wait "$emulator_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

# -- the Alibaba Cloud emulator ---------------------------------------------------------------
rm -f "$SANDBOX/alicloud/endpoints.json"
python -m sandbox.alicloud serve --state-dir "$SANDBOX/alicloud" --clock-scale 0.01 \
  >"$SANDBOX/alicloud.log" 2>&1 &
emulator_pid=$!
for _ in $(seq 100); do
  [ -s "$SANDBOX/alicloud/endpoints.json" ] && break
  kill -0 "$emulator_pid" 2>/dev/null || { cat "$SANDBOX/alicloud.log"; exit 1; }
  sleep 0.1
done
python - "$SANDBOX" <<'PY'
import json, os, sys
sandbox = sys.argv[1]
endpoints = json.load(open(os.path.join(sandbox, "alicloud", "endpoints.json")))
keys = json.load(open(os.path.join(sandbox, "alicloud", "credentials.json")))["keys"]
ak, entry = next((k, v) for k, v in keys.items() if not v.get("security_token"))
config = {"access_key": ak, "secret_key": entry["secret"], "region": endpoints["region"], "protocol": "http",
          "endpoints": {"ecs": endpoints["api_endpoint"], "cs": endpoints["api_endpoint"], "oss": endpoints["oss_endpoint"]}}
path = os.path.join(sandbox, "alicloud.json")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as f:
    json.dump(config, f)
print("alicloud emulator: ECS/ACK %s, OSS %s" % (endpoints["api_endpoint"], endpoints["oss_endpoint"]))
PY

# -- the Trustee host container -------------------------------------------------------------------
if [ "$(podman inspect -f '{{.State.Running}}' cai-sandbox-trustee 2>/dev/null)" != "true" ]; then
  podman rm -f -t 0 cai-sandbox-trustee >/dev/null 2>&1 || true
  podman run -d --name cai-sandbox-trustee --hostname trustee --systemd=always --network=none \
    --volume="$TRUSTEE_REPO_DIR:/srv/trustee-repo:ro" "$MOLECULE_IMAGE" /sbin/init >/dev/null
  podman exec cai-sandbox-trustee systemctl is-system-running --wait >/dev/null || true
fi
echo "trustee host: container cai-sandbox-trustee (podman rm -f cai-sandbox-trustee to start over)"

# -- the model host container (host network: it reaches the emulator's OSS on 127.0.0.1) ------------
if [ "$(podman inspect -f '{{.State.Running}}' cai-sandbox-model 2>/dev/null)" != "true" ]; then
  podman rm -f -t 0 cai-sandbox-model >/dev/null 2>&1 || true
  podman run -d --name cai-sandbox-model --hostname model-builder --systemd=always --network=host \
    --volume="$TEST_WHEELHOUSE:/srv/wheelhouse:ro" \
    "$MOLECULE_IMAGE" /sbin/init >/dev/null
  podman exec cai-sandbox-model systemctl is-system-running --wait >/dev/null || true
fi
echo "model host: container cai-sandbox-model"
ansible-playbook sandbox/prepare.yml -i inventories/sandbox

ansible-playbook playbooks/site.yml -i inventories/sandbox "$@"
